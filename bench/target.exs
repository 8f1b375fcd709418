# Gen.Inference.Target (issue 11): µs per logp_grad call of the eight-schools non-centered model
# (../shared/bench/nuts/eight_schools_nc.stan, its data and tau on the log scale as the NUTS bench
# runs it), compiled (tape replay) beside dynamic (graph building + eval through Gen.assess),
# measured round-robin; and the time Target.new takes to build each (the compiled one traces on a
# placeholder and lowers the graph to a tape).
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

build = fn compile? -> Target.new(t, m.selection, transforms: m.transforms, compile: compile?) end
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
new_d = new_us.(false)

IO.puts("eight_schools_nc (dim #{compiled.dim}), load #{Bench.load()}")
IO.puts("  logp_grad compiled  #{Bench.fmt(c)} µs/call")
IO.puts("  logp_grad dynamic   #{Bench.fmt(d)} µs/call   (#{Bench.fmt(d / c)}x)")
IO.puts("  Target.new compile: true   #{Bench.fmt(new_c)} µs (probe pass + trace + lowering)")
IO.puts("  Target.new compile: false  #{Bench.fmt(new_d)} µs (probe pass)")

IO.puts(
  "  trace + lowering ≈ #{Bench.fmt(new_c - new_d)} µs ≈ #{Bench.fmt((new_c - new_d) / (d - c))} dynamic calls saved to repay it"
)
