# The gradient kernels on the C sampler (issue 11): µs per call of Gen.Inference.hmc/3 (10
# leapfrogs), mala/3 and hmc_warmup/3 (100 iterations) on `simple` (bench/nuts/models.exs), and
# where one transition's time goes: Target.new (a cache hit), one Sampler.run transition in the
# NIF call (sampler_run_inline) beside the same run on an engine thread (a callback keeps it
# there), and Target.write. Round-robin, medians of 9 batches of 5 calls.
#
#   mix run bench/kernels.exs
Code.require_file("bench_helper.exs", __DIR__)
Code.require_file("nuts/json.exs", __DIR__)
Code.require_file("nuts/models.exs", __DIR__)

alias Gen.Inference.{Sampler, Target}

root = Path.expand("..", __DIR__)
shared = System.get_env("STAN_BENCH_DIR", Path.expand("../shared/bench/nuts", root))
data = shared |> Path.join("data.json") |> File.read!() |> Bench.JSON.decode!()
m = Bench.NutsModels.simple(data["simple"])
t = Bench.NutsModels.init_trace(m, Mx.Random.key(0))
sel = m.selection
tr = m.transforms
k = Mx.Random.key(1)
target = Target.new(t, sel, transforms: tr, caller: "Gen.Inference.hmc")
spec = Target.sampler_target(target)
one = [algorithm: :hmc, warmup: 0, samples: 1, n_leapfrog: 10, step_size: 0.05, key: k]

cases = [
  {"Gen.Inference.hmc, 10 leapfrogs",
   fn -> Gen.Inference.hmc(t, sel, step_size: 0.05, n_leapfrog: 10, key: k, transforms: tr) end},
  {"Gen.Inference.mala",
   fn -> Gen.Inference.mala(t, sel, tau: 0.001, key: k, transforms: tr) end},
  {"Gen.Inference.hmc_warmup, 100 iterations of 10 leapfrogs",
   fn ->
     Gen.Inference.hmc_warmup(t, sel, warmup: 100, n_leapfrog: 10, key: k, transforms: tr)
   end},
  {"  Target.new (cache hit)",
   fn -> Target.new(t, sel, transforms: tr, caller: "Gen.Inference.hmc") end},
  {"  Sampler.run, 1 transition, in the NIF call", fn -> Sampler.run(spec, one) end},
  {"  Sampler.run, 1 transition, on an engine thread",
   fn -> Sampler.run(spec, [callback: fn _ -> :ok end] ++ one) end},
  {"  Target.write", fn -> Target.write(target, t, [0.1, 0.2]) end}
]

load0 = Bench.load()
res = Bench.round_robin(cases, 5, 9)
IO.puts("simple (dim 2), loads #{load0} / #{Bench.load()}\n\n| per call | µs |\n|---|---:|")

for {name, _} <- cases,
    do: IO.puts("| #{name} | #{Bench.fmt(Bench.median(res[name]) / 1000)} |")
