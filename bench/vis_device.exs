# Vectorized importance sampling against plain JAX (issue 11's last benchmark): the 5-site model
# mu ~ N(0, 2), y_i ~ N(mu, 1), 4 observed, at N = 10^4..10^6 particles, f64. Three GenMX figures:
#   gen      Gen.Inference.vimportance_sampling (the vectorized GFI, uncompiled)
#   mx       the same log ML written in Mx ops, uncompiled (one lazy graph per call)
#   compiled that function under Mx.compile (fused interpreter tier, then generated C), key as input
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

median = fn f ->
  f.(0)
  ts = for i <- 1..reps, do: elem(:timer.tc(fn -> f.(i) end), 0)
  Enum.at(Enum.sort(ts), div(reps, 2)) / 1000
end

IO.puts("schedulers #{System.schedulers_online()}, load #{Bench.load()}")

for n <- [10_000, 100_000, 1_000_000] do
  g = median.(fn i -> Gen.Inference.vimportance_sampling(model, [ys], obs, n, key: Mx.Random.key(i)) end)
  plain = lml.(n)
  m = median.(fn i -> plain.(Mx.Random.key(i)) |> Mx.to_number() end)
  c = Mx.compile(plain)
  _ = c.(Mx.Random.key(0))
  tier = Mx.Compile.await_native(c, [Mx.Random.key(0)], 120_000).tier
  cm = median.(fn i -> c.(Mx.Random.key(i)) |> Mx.to_number() end)
  ci = Mx.compile(plain, jit: false)
  ct = median.(fn i -> ci.(Mx.Random.key(i)) |> Mx.to_number() end)

  IO.puts("mx N=#{n}: gen #{Float.round(g, 3)} ms, mx #{Float.round(m, 3)} ms, compiled interpreter #{Float.round(ct, 3)} ms, compiled #{inspect(tier)} #{Float.round(cm, 3)} ms (#{Float.round(cm * 1.0e6 / n, 1)} ns/particle)")
end
