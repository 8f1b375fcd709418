# A small real computation on Mx: fit y = X w by gradient descent on synthetic
# data, entirely with lazy graphs evaluated once per step, and show that the
# engine's memory stays flat across the loop.
n = 10_000
true_w = Mx.tensor([[2.0], [-3.0], [0.5]])

# Deterministic "noise" so the demo prints the same numbers every run.
x = Mx.stack([Mx.ones({n}), Mx.linspace(-1, 1, n: n), Mx.sin(Mx.linspace(0, 40, n: n))], axis: 1)
noise = Mx.multiply(Mx.cos(Mx.multiply(Mx.iota({n, 1}, type: :f32), 7.3)), 0.1)
y = x |> Mx.matmul(true_w) |> Mx.add(noise) |> Mx.eval()

IO.puts("Fitting #{Mx.describe(x)} -> #{Mx.describe(y)} by gradient descent")
step = 0.5

w =
  Enum.reduce(1..200, Mx.zeros({3, 1}), fn i, w ->
    residual = Mx.subtract(Mx.matmul(x, w), y)
    grad = x |> Mx.transpose() |> Mx.matmul(residual) |> Mx.divide(n)
    w = Mx.subtract(w, Mx.multiply(grad, step)) |> Mx.eval()

    if rem(i, 50) == 0 do
      loss = residual |> Mx.square() |> Mx.mean() |> Mx.to_number()
      mem = Mx.Memory.report()
      IO.puts("step #{i}: loss #{Float.round(loss, 6)}  live arrays #{mem.live_arrays}  active #{mem.active_bytes} B")
    end

    w
  end)

IO.puts("fitted w = #{inspect(Mx.to_list(Mx.reshape(w, {3})))}  (true: [2.0, -3.0, 0.5])")
IO.inspect(w, label: "w")
