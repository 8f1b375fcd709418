# Vectorized vs scalar inference (issue 5): the same algorithm over N particles,
# once with the model run per particle (Gen.Inference.importance_sampling, and
# Gen.Inference.smc's initialisation) and once with the model run once on [N]
# values (Gen.Inference.vimportance_sampling, Gen.Inference.Vectorized.smc_init).
# Every vectorized figure is printed beside the scalar one measured round-robin
# in the same run, with the speedup (scalar time / vectorized time).
#
#   Importance sampling, 5-site model mu ~ N(0, 2), y_i ~ N(mu, 1), i = 1..4 observed,
#   N = 100 and N = 10,000.
#   SMC init, the linear-Gaussian state-space model of test/gen/smc_test.exs as an
#   Unfold (first step: x_0 ~ N(0, 1), y_0 observed), N = 100 and N = 10,000.
#
# Each call evaluates what it returns (weights, log ML, traces), as inference does.
#
#   mix run bench/vectorized.exs [batches_small] [batches_large]
#   mix run bench/vectorized.exs samplers      (only the MALA/HMC section at the end)
Code.require_file("bench_helper.exs", __DIR__)
import Gen

{b_small, b_large} =
  case System.argv() do
    [a, b] -> {String.to_integer(a), String.to_integer(b)}
    _ -> {11, 5}
  end

samplers_only = System.argv() == ["samplers"]

model =
  gen(fn ys ->
    mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
    for {_y, i} <- Enum.with_index(ys), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
    mu
  end)

ys = [0.8, 1.9, 1.1, 2.4]
obs = for {y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}

step =
  gen(fn i, prev ->
    x =
      if i == 0,
        do: trace(:x, Gen.Dist.normal(0.0, 1.0)),
        else: trace(:x, Gen.Dist.normal(Mx.multiply(prev, 0.9), 0.5))

    trace(:y, Gen.Dist.normal(x, 0.3))
    x
  end)

ssm = Gen.Combinators.unfold(step)
ssm_obs = %{0 => %{y: 0.4}}

cases = fn n ->
  key = Mx.Random.key(n)

  [
    {{n, "IS", :scalar}, fn -> Gen.Inference.importance_sampling(model, [ys], obs, n, key: key) end},
    {{n, "IS", :vectorized}, fn -> Gen.Inference.vimportance_sampling(model, [ys], obs, n, key: key) end},
    # One observation step: smc is its initialisation plus the final normalisation of the weights.
    {{n, "SMC init", :scalar}, fn -> Gen.Inference.smc(ssm, &[&1 + 1, 0.0], [ssm_obs], n, key: key) end},
    {{n, "SMC init", :vectorized}, fn -> Gen.Inference.Vectorized.smc_init(ssm, [1, 0.0], ssm_obs, n, key: key) end}
  ]
end

f2 = fn x -> :erlang.float_to_binary(x, decimals: 2) end

unless samplers_only do
  IO.puts("Vectorized vs scalar inference, medians of round-robin batches; load at start #{Bench.load()}")

  IO.puts(
    "  #{Bench.pad("N", 7)} #{Bench.pad("algorithm", 10)} #{Bench.lpad("scalar ms", 12)} #{Bench.lpad("vectorized ms", 14)} #{Bench.lpad("speedup", 9)}   batches  load"
  )
end

for {n, batches} <- [{100, b_small}, {10_000, b_large}], not samplers_only do
  cs = cases.(n)
  results = Bench.round_robin(cs, 1, batches)
  load = Bench.load()

  for alg <- ["IS", "SMC init"] do
    s = Bench.median(results[{n, alg, :scalar}]) / 1.0e6
    v = Bench.median(results[{n, alg, :vectorized}]) / 1.0e6

    IO.puts(
      "  #{Bench.pad(n, 7)} #{Bench.pad(alg, 10)} #{Bench.lpad(f2.(s), 12)} #{Bench.lpad(f2.(v), 14)} #{Bench.lpad(Bench.fmt(s / v) <> "x", 9)}   #{Bench.lpad(batches, 7)}  #{load}"
    )
  end
end

# ---- the gradient samplers on compiled batched targets (issue 11) -----------------------------
# Per-iteration time of Gen.Inference.Vectorized.mala/3 and hmc/3 (10 leapfrog steps) on n chains of
# a 3-parameter regression, with the batched gradient and the proposal's generate as compiled tapes
# (compile: true, the default) and on the dynamic path (compile: false), round-robin in one run.

regression =
  gen(fn xs ->
    a = trace(:a, Gen.Dist.normal(0.0, 2.0))
    b = trace(:b, Gen.Dist.normal(Mx.zeros({2}, type: :f64), 1.0))
    trace(:y, Gen.Dist.normal(Mx.add(a, Mx.multiply(Mx.sum(b), xs)), 0.5))
  end)

xs = Mx.tensor([0.5, -1.0, 2.0], type: :f64)
sel = Gen.select([:a, :b])

IO.puts("\nVectorized MALA and HMC per iteration, compiled tapes vs the dynamic path; load at start #{Bench.load()}")
IO.puts("  #{Bench.pad("chains", 7)} #{Bench.pad("kernel", 8)} #{Bench.lpad("dynamic ms", 12)} #{Bench.lpad("compiled ms", 12)} #{Bench.lpad("speedup", 9)}   load")

for n <- [10, 1000, 100_000] do
  {t, _} = Gen.vgenerate(regression, [xs], %{y: Mx.tensor([0.3, -0.8, 1.9], type: :f64)}, n, key: Mx.Random.key(1))

  kernels = [
    {"MALA", fn c, i -> Gen.Inference.Vectorized.mala(t, sel, tau: 0.01, key: Mx.Random.key(i), compile: c) end},
    {"HMC-10", fn c, i -> Gen.Inference.Vectorized.hmc(t, sel, step_size: 0.05, key: Mx.Random.key(i), compile: c) end}
  ]

  cases = for {name, k} <- kernels, c <- [false, true], do: {{name, c}, fn -> k.(c, System.unique_integer([:positive])) end}
  batches = if n >= 100_000, do: 5, else: 11
  results = Bench.round_robin(cases, 1, batches)
  load = Bench.load()

  for {name, _} <- kernels do
    d = Bench.median(results[{name, false}]) / 1.0e6
    c = Bench.median(results[{name, true}]) / 1.0e6
    IO.puts("  #{Bench.pad(n, 7)} #{Bench.pad(name, 8)} #{Bench.lpad(f2.(d), 12)} #{Bench.lpad(f2.(c), 12)} #{Bench.lpad(Bench.fmt(d / c) <> "x", 9)}   #{load}")
  end
end
