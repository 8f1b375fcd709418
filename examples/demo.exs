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

# Gen on top: importance sampling of the slope of a small Bayesian regression,
# with the prior as proposal (one Gen.generate per particle).
import Gen

model = gen fn xs ->
  slope = trace(:slope, Gen.Dist.normal(0.0, 2.0))
  intercept = trace(:intercept, Gen.Dist.normal(0.0, 2.0))
  for {x, j} <- Enum.with_index(xs) do
    trace({:y, j}, Gen.Dist.normal(Mx.add(Mx.multiply(slope, x), intercept), 0.5))
  end
  slope
end

xs = [-1.0, 0.0, 1.0, 2.0]
obs = Gen.choicemap(for {y, j} <- Enum.with_index([-1.1, 0.9, 3.2, 4.8]), into: %{}, do: {{:y, j}, y})
keys = Mx.Random.split(Mx.Random.key(2026), 2000)

{slopes, weights} =
  Enum.map(0..1999, fn i ->
    {tr, w} = Gen.generate(model, [xs], obs, key: keys[i])
    {Mx.to_number(tr[:slope]), Mx.to_number(w)}
  end)
  |> Enum.unzip()

log_z = Mx.logsumexp(Mx.tensor(weights, type: :f64)) |> Mx.to_number()
probs = Enum.map(weights, &:math.exp(&1 - log_z))
mean = Enum.zip(slopes, probs) |> Enum.map(fn {s, p} -> s * p end) |> Enum.sum()
ess = 1 / Enum.sum(Enum.map(probs, &(&1 * &1)))
IO.puts("importance sampling, 2000 particles: posterior mean slope #{Float.round(mean, 3)} " <>
          "(least squares: 2.0), effective sample size #{round(ess)} of 2000")
