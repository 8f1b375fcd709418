# Gen.Inference.Target (issue 11): µs per logp_grad call of the eight-schools non-centered model
# (../shared/bench/nuts/eight_schools_nc.stan, its data and tau on the log scale as the NUTS bench
# runs it), compiled (tape replay) beside dynamic (graph building + eval through Gen.assess),
# measured round-robin; and the time Target.new takes to build each (the compiled one traces on a
# placeholder and lowers the graph to a tape).
# Then the cache of compiled targets on `simple` (bench/nuts/models.exs), as NUTS.sample asks for
# it (jit: true): Target.new on a hit beside a miss (a fresh key each call: trace, capture, the
# native tier from the disk cache, as every call cost before the cache), and NUTS.sample
# (500 + 500, seeds 1..5) with a warm cache beside a cold one (32 other targets evict it first),
# alternated.
#
#   mix run bench/target.exs
Code.require_file("bench_helper.exs", __DIR__)
Code.require_file("nuts/json.exs", __DIR__)
Code.require_file("nuts/models.exs", __DIR__)

alias Gen.Inference.Target

root = Path.expand("..", __DIR__)
shared = System.get_env("STAN_BENCH_DIR", Path.expand("../shared/bench/nuts", root))
data = shared |> Path.join("data.json") |> File.read!() |> Bench.JSON.decode!()
m = Bench.NutsModels.eight_schools(data["eight_schools"], :non_centered)
t = Bench.NutsModels.init_trace(m, Mx.Random.key(0))

# compile: true with a fresh caller: a cache miss, traced as every call was before the cache.
fresh_caller = :counters.new(1, [])

build = fn
  :hit ->
    Target.new(t, m.selection, transforms: m.transforms)

  compile? ->
    :counters.add(fresh_caller, 1, 1)

    Target.new(t, m.selection,
      transforms: m.transforms,
      compile: compile?,
      caller: "bench #{:counters.get(fresh_caller, 1)}"
    )
end

compiled = build.(true)
dynamic = build.(false)
true = compiled.compiled?
q = for x <- compiled.q0, into: <<>>, do: <<x::float-64-native>>
# The same bits either way (the tests check this on six models).
true = Target.logp_grad(compiled, q) == Target.logp_grad(dynamic, q)

new_us = fn compile? ->
  Enum.map(1..20, fn _ ->
    t0 = Bench.now_ns()
    build.(compile?)
    (Bench.now_ns() - t0) / 1000
  end)
  |> Bench.median()
end

times =
  Bench.round_robin(
    [
      {:compiled, fn -> Target.logp_grad(compiled, q) end},
      {:dynamic, fn -> Target.logp_grad(dynamic, q) end}
    ],
    200,
    15
  )

c = Bench.median(times.compiled) / 1000
d = Bench.median(times.dynamic) / 1000
new_c = new_us.(true)
new_h = new_us.(:hit)
new_d = new_us.(false)

IO.puts("eight_schools_nc (dim #{compiled.dim}), load #{Bench.load()}")
IO.puts("  logp_grad compiled  #{Bench.fmt(c)} µs/call")
IO.puts("  logp_grad dynamic   #{Bench.fmt(d)} µs/call   (#{Bench.fmt(d / c)}x)")
IO.puts("  Target.new compile: true   #{Bench.fmt(new_c)} µs (probe pass + trace + lowering)")
IO.puts("  Target.new compile: true, cached  #{Bench.fmt(new_h)} µs (probe pass + key + lookup)")
IO.puts("  Target.new compile: false  #{Bench.fmt(new_d)} µs (probe pass)")

IO.puts(
  "  trace + lowering ≈ #{Bench.fmt(new_c - new_d)} µs ≈ #{Bench.fmt((new_c - new_d) / (d - c))} dynamic calls saved to repay it"
)

# ---- the cache of compiled targets (simple) ------------------------------------------------

alias Gen.Inference.NUTS

simple = Bench.NutsModels.simple(data["simple"])
ts = Bench.NutsModels.init_trace(simple, Mx.Random.key(0))
sel = simple.selection
tr = simple.transforms
fresh = :counters.new(1, [])

new_simple = fn caller ->
  Target.new(ts, sel, transforms: tr, jit: true, caller: caller)
end

miss = fn ->
  :counters.add(fresh, 1, 1)
  new_simple.("bench miss #{:counters.get(fresh, 1)}")
end

hit = fn -> new_simple.("bench hit") end

new_times = Bench.round_robin([{:hit, hit}, {:miss, miss}], 20, 9)

# Fills the cache with other targets, so that the next NUTS.sample traces its own.
evict = fn -> for _ <- 1..Target.cache_stats().cache_size, do: miss.() end

nuts = fn seed ->
  key = Mx.Random.key(seed)
  t = Bench.NutsModels.init_trace(simple, Mx.Random.fold_in(key, 1))
  :erlang.garbage_collect()
  t0 = Bench.now_ns()

  NUTS.sample(t, sel,
    warmup: 500,
    samples: 500,
    transforms: tr,
    key: Mx.Random.fold_in(key, 2),
    progress: false
  )

  (Bench.now_ns() - t0) / 1.0e6
end

# A cold run leaves its target cached: the next warm run hits it.
_ = nuts.(0)

nuts_times =
  for _round <- 1..3, seed <- 1..5, reduce: %{warm: [], cold: []} do
    acc ->
      warm = nuts.(seed)
      evict.()
      cold = nuts.(seed)
      %{warm: [warm | acc.warm], cold: [cold | acc.cold]}
  end

h = Bench.median(new_times.hit) / 1000
mi = Bench.median(new_times.miss) / 1000
IO.puts("\nsimple (dim 2), jit: true, load #{Bench.load()}")
IO.puts("  Target.new cache hit    #{Bench.fmt(h)} µs")
IO.puts("  Target.new cache miss   #{Bench.fmt(mi)} µs   (#{Bench.fmt(mi / h)}x)")
w = Bench.median(nuts_times.warm)
c = Bench.median(nuts_times.cold)
IO.puts("  NUTS.sample 500 + 500, warm cache  #{Bench.fmt(w)} ms (median of 15)")
IO.puts("  NUTS.sample 500 + 500, cold cache  #{Bench.fmt(c)} ms   (#{Bench.fmt(c / w)}x)")
IO.puts("  #{inspect(Map.take(Target.cache_stats(), [:hits, :misses, :compiles, :evictions]))}")
