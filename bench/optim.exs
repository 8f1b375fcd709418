# An MLP training step (forward, mean squared error, backward, Adam) in f32 at two sizes:
# Mx uncompiled (lazy graph, one eval per step), Mx under Mx.compile (interpreter, then the
# native tier once built), and PyTorch 1.13 (bench/optim_torch.py, run in the same rounds).
#
#   mix run bench/optim.exs [rounds]
Code.require_file("bench_helper.exs", __DIR__)

rounds =
  case System.argv() do
    [r] -> String.to_integer(r)
    _ -> 5
  end

torch = Path.join(__DIR__, "optim_torch.py")

for {i, h, o, b} <- [{32, 64, 10, 64}, {256, 512, 10, 128}] do
  [k1, k2, k3, k4] = for j <- 0..3, do: Mx.take(Mx.Random.split(Mx.Random.key(0), 4), j)

  p0 = %{
    l1: %{
      w: Mx.multiply(Mx.Random.normal(k1, shape: {i, h}), 1 / :math.sqrt(i)),
      b: Mx.zeros({h})
    },
    l2: %{
      w: Mx.multiply(Mx.Random.normal(k2, shape: {h, o}), 1 / :math.sqrt(h)),
      b: Mx.zeros({o})
    }
  }

  x = Mx.Random.normal(k3, shape: {b, i})
  y = Mx.Random.normal(k4, shape: {b, o})

  loss = fn p, x, y ->
    hid = Mx.tanh(Mx.add(Mx.matmul(x, p.l1.w), p.l1.b))
    Mx.mean(Mx.square(Mx.subtract(Mx.add(Mx.matmul(hid, p.l2.w), p.l2.b), y)))
  end

  opt = Mx.Optim.adam(learning_rate: 1.0e-3)
  vg = Mx.value_and_grad(loss, 0)

  step = fn {p, st} ->
    {_l, g} = vg.(p, x, y)
    Mx.eval(Mx.Optim.update(opt, g, st, p))
  end

  compiled =
    Mx.compile(fn p, st ->
      {_l, g} = vg.(p, x, y)
      Mx.Optim.update(opt, g, st, p)
    end)

  compiled.(p0, Mx.Optim.init(opt, p0))
  Mx.Compile.await_native(compiled, [p0, Mx.Optim.init(opt, p0)])
  n = if h > 100, do: 20, else: 200
  state = fn -> {p0, Mx.Optim.init(opt, p0)} end

  cases = [
    {"Mx uncompiled", fn -> Enum.reduce(1..n, state.(), fn _, s -> step.(s) end) end},
    {"Mx compiled", fn -> Enum.reduce(1..n, state.(), fn _, {p, st} -> compiled.(p, st) end) end},
    {"torch 1.13",
     fn ->
       {out, 0} =
         System.cmd("/usr/bin/python3", [torch | Enum.map([i, h, o, b, n, 1], &to_string/1)])

       # the script's own per-step time (excludes its start-up)
       send(self(), {:torch, out |> String.trim() |> String.to_float()})
     end}
  ]

  times = Bench.round_robin(cases, 1, rounds)
  torch_us = for _ <- 1..(rounds + 1), do: receive(do: ({:torch, t} -> t))
  torch_med = Bench.median(tl(torch_us))

  IO.puts(
    "MLP #{i}-#{h}-#{o}, batch #{b}, load #{Bench.load()}: µs per step (median of #{rounds})"
  )

  for name <- ["Mx uncompiled", "Mx compiled"] do
    us = Bench.median(times[name]) / n / 1000

    IO.puts(
      "  #{Bench.pad(name, 14)} #{Bench.fmt(us)}  (torch / Mx = #{Float.round(torch_med / us, 2)})"
    )
  end

  IO.puts("  #{Bench.pad("torch 1.13", 14)} #{Bench.fmt(torch_med)}")
end
