# Gen (issue 4): simulate and generate calls per second on a 5-site and a
# 100-site scalar model (mu ~ N(0, 10), y_i ~ N(mu, 1)), and Gen.Dist.logpdf
# throughput for normal and beta on a [10^6] f64 batch. Every figure stands
# beside a plain Elixir baseline measured round-robin in the same run:
#   * one Mx.NIF.noop per site (the floor of any per-site NIF work),
#   * the same log-density graph built directly with Mx ops and evaluated
#     (what generate with every choice constrained computes, without the GFI),
#   * Mx.add on two [10^6] f64 arrays (the engine's streaming bandwidth).
# Each GFI call evaluates its weight/score, as an inference loop would.
#
#   mix run bench/gen.exs [calls_per_batch_100site] [batches]
Code.require_file("bench_helper.exs", __DIR__)
import Gen

{n100, batches} =
  case System.argv() do
    [n, b] -> {String.to_integer(n), String.to_integer(b)}
    _ -> {20, 11}
  end

model = gen fn n ->
  mu = trace(:mu, Gen.Dist.normal(0.0, 10.0))
  for i <- 1..(n - 1)//1, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
  mu
end

half_log_2pi = 0.5 * :math.log(2 * :math.pi())

# log N(x; mu, sigma) written with Mx ops, sigma a number.
normal_lp = fn x, mu, sigma ->
  z = Mx.divide(Mx.subtract(x, mu), sigma)
  Mx.subtract(Mx.multiply(Mx.square(z), -0.5), :math.log(sigma) + half_log_2pi)
end

gfi_cases = fn sites ->
  ys = for i <- 1..(sites - 1), do: {{:y, i}, 0.1 * i}
  all = Gen.choicemap([{:mu, 0.5} | ys])
  half = Gen.choicemap(Enum.take([{:mu, 0.5} | ys], div(sites, 2)))
  key = Mx.Random.key(1)
  mu = Gen.Choicemap.get(all, :mu)
  yvals = Enum.map(ys, fn {addr, _} -> Gen.Choicemap.get(all, addr) end)

  direct = fn ->
    Enum.reduce(yvals, normal_lp.(mu, 0.0, 10.0), fn y, acc -> Mx.add(acc, normal_lp.(y, mu, 1.0)) end) |> Mx.eval()
  end

  noops = fn -> for _ <- 1..sites, do: Mx.NIF.noop() end

  [
    {{sites, "simulate"}, fn -> Gen.simulate(model, [sites], key: key).score |> Mx.eval() end},
    {{sites, "generate, all constrained"}, fn -> Gen.generate(model, [sites], all, key: key) |> elem(1) |> Mx.eval() end},
    {{sites, "generate, half constrained"}, fn -> Gen.generate(model, [sites], half, key: key) |> elem(1) |> Mx.eval() end},
    {{sites, "baseline: direct Mx log-density, build + eval"}, direct},
    {{sites, "baseline: #{sites} x Mx.NIF.noop"}, noops}
  ]
end

report = fn results, name, n ->
  ns = Bench.median(results[name])
  {_, label} = name
  IO.puts("  #{Bench.pad(label, 48)} #{Bench.lpad(Bench.fmt(1.0e9 / ns), 12)} calls/s  #{Bench.lpad(Bench.fmt(ns / 1000), 10)} us/call  (#{n} calls x #{batches} batches)")
end

IO.puts("Gen GFI calls, model mu ~ N(0,10), y_i ~ N(mu,1), load #{Bench.load()}")

for {sites, n} <- [{5, n100 * 20}, {100, n100}] do
  cases = gfi_cases.(sites)
  results = Bench.round_robin(cases, n, batches)
  IO.puts("#{sites} sites, load #{Bench.load()}:")
  Enum.each(cases, fn {name, _} -> report.(results, name, n) end)
end

# ---- batched logpdf -------------------------------------------------------------

len = 1_000_000
xs = Mx.linspace(-4.0, 4.0, n: len, type: :f64) |> Mx.eval()
us = Mx.linspace(1.0e-6, 1.0 - 1.0e-6, n: len, type: :f64) |> Mx.eval()
normal = Gen.Dist.normal(0.3, 1.7)
beta = Gen.Dist.beta(2.5, 0.7)

cases = [
  {"normal logpdf [10^6], build + eval", fn -> Gen.Dist.logpdf(normal, xs) |> Mx.eval() end},
  {"beta logpdf [10^6], build + eval", fn -> Gen.Dist.logpdf(beta, us) |> Mx.eval() end},
  {"baseline: Mx.add [10^6] + [10^6]", fn -> Mx.add(xs, us) |> Mx.eval() end}
]

results = Bench.round_robin(cases, 5, batches)
IO.puts("Gen.Dist.logpdf on a [10^6] f64 batch, load #{Bench.load()}")
IO.puts("  (GB/s counts the bytes the op must move: logpdf reads 8 MB, writes 8 MB; add reads 16 MB, writes 8 MB)")

for {name, _} <- cases do
  ns = Bench.median(results[name])
  bytes = if String.starts_with?(name, "baseline"), do: 24.0e6, else: 16.0e6
  IO.puts("  #{Bench.pad(name, 40)} #{Bench.lpad(Bench.fmt(ns / 1.0e6), 8)} ms  #{Bench.lpad(Bench.fmt(len / ns * 1.0e3), 8)} M elements/s  #{Bench.lpad(Bench.fmt(bytes / ns), 6)} GB/s")
end
