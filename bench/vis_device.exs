# Vectorized importance sampling against plain JAX (issue 11's last benchmark): the 5-site model
# mu ~ N(0, 2), y_i ~ N(mu, 1), 4 observed, at N = 10^4..10^6 particles, f64. Five GenMX figures:
#   gen          Gen.Inference.vimportance_sampling(..., compile: false): the vectorized GFI, uncompiled
#   gen compiled Gen.Inference.vimportance_sampling (compile: true, the default): the same run, trace
#                and weights included, as one Mx.compile tape replayed on the generated-C tier
#   mx           the same log ML written in Mx ops, uncompiled (one lazy graph per call)
#   interpreter  that function under Mx.compile(jit: false), key as input
#   compiled     that function under Mx.compile (fused interpreter tier, then generated C), key as input
# The cases of one N run round-robin (rep 1 of each, then rep 2, ...), medians; ns/particle beside.
# Run on the lent machine in the same call as ../shared/device/vis_jax.py (see its README):
#   mix run --no-deps-check bench/vis_device.exs [reps]
Code.require_file("bench_helper.exs", __DIR__)
import Gen

reps = case System.argv() do [r] -> String.to_integer(r); _ -> 21 end
ys = [0.8, 1.9, 1.1, 2.4]
obs = for {y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}

model =
  gen(fn ys ->
    mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
    for {_y, i} <- Enum.with_index(ys), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
    mu
  end)

y = Mx.tensor(ys, type: :f64)

lml = fn n ->
  fn key ->
    mu = Mx.multiply(Mx.Random.normal(key, shape: {n}, type: :f64), 2.0)
    d = Mx.subtract(Mx.reshape(y, {1, 4}), Mx.reshape(mu, {n, 1}))
    lw = Mx.sum(Mx.subtract(Mx.multiply(Mx.square(d), -0.5), 0.5 * :math.log(2 * :math.pi())), axes: [1])
    Mx.subtract(Mx.logsumexp(lw), :math.log(n))
  end
end

IO.puts("schedulers #{System.schedulers_online()}, load #{Bench.load()}")

for n <- [10_000, 100_000, 1_000_000] do
  vis = fn compile, i -> Gen.Inference.vimportance_sampling(model, [ys], obs, n, key: Mx.Random.key(i), compile: compile) end
  _ = vis.(true, 0)
  gen_tier = Gen.Inference.Vectorized.await_native_importance(model, [ys], obs, n).tier
  plain = lml.(n)
  c = Mx.compile(plain)
  _ = c.(Mx.Random.key(0))
  tier = Mx.Compile.await_native(c, [Mx.Random.key(0)], 120_000).tier
  ci = Mx.compile(plain, jit: false)

  cases = [
    gen: fn i -> vis.(false, i) end,
    gen_compiled: fn i -> vis.(true, i) end,
    mx: fn i -> plain.(Mx.Random.key(i)) |> Mx.to_number() end,
    interpreter: fn i -> ci.(Mx.Random.key(i)) |> Mx.to_number() end,
    compiled: fn i -> c.(Mx.Random.key(i)) |> Mx.to_number() end
  ]

  for {_, f} <- cases, do: f.(0)
  times = for i <- 1..reps, {name, f} <- cases, do: {name, elem(:timer.tc(fn -> f.(i) end), 0)}
  ms = Map.new(cases, fn {name, _} -> {name, Bench.median(for {^name, t} <- times, do: t) / 1000} end)
  fmt = fn name -> "#{Float.round(ms[name], 3)} ms (#{Float.round(ms[name] * 1.0e6 / n, 1)} ns/particle)" end

  IO.puts(
    "mx N=#{n}: gen #{fmt.(:gen)}, gen compiled #{inspect(gen_tier)} #{fmt.(:gen_compiled)}, mx #{fmt.(:mx)}, " <>
      "compiled interpreter #{fmt.(:interpreter)}, compiled #{inspect(tier)} #{fmt.(:compiled)}; load #{Bench.load()}"
  )
end
