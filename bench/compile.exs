# Mx.compile (issue 11, foundation): ns per call, compiled (tape replay) beside uncompiled
# (graph building + eval), measured round-robin in one run on the same machine.
#
#   1. value_and_grad of the `simple` model's log density (../shared/bench/nuts/simple.stan),
#      through Gen.assess as the NUTS sampler evaluates it, and written directly in Mx ops
#   2. a chain of 8 elementwise ops over 1M f32 elements (fusion is not in scope yet: the replay
#      runs the 8 kernels one by one)
#
#   mix run bench/compile.exs
Code.require_file("bench_helper.exs", __DIR__)
Code.require_file("nuts/json.exs", __DIR__)
Code.require_file("nuts/models.exs", __DIR__)

alias Bench.NutsModels

root = Path.expand("..", __DIR__)
shared = System.get_env("STAN_BENCH_DIR", Path.expand("../shared/bench/nuts", root))
data = shared |> Path.join("data.json") |> File.read!() |> Bench.JSON.decode!()
m = NutsModels.simple(data["simple"])
%{gfi: density, direct: direct, args: args} = NutsModels.simple_densities(m, data)

uncompiled = fn f ->
  vg = Mx.value_and_grad(f)

  fn ->
    {lp, gs} = vg.(args.())
    Mx.eval([lp | gs])
  end
end

compiled = fn f ->
  vg = Mx.compile(Mx.value_and_grad(f))
  fn -> vg.(args.()) end
end

# Both give the same numbers (checked here, not only in the tests).
for f <- [density, direct] do
  {a, ga} = Mx.value_and_grad(f).(args.())
  {b, gb} = Mx.compile(Mx.value_and_grad(f)).(args.())

  same =
    Mx.to_number(a) == Mx.to_number(b) and
      Enum.map(ga, &Mx.to_number/1) == Enum.map(gb, &Mx.to_number/1)

  if not same, do: raise("compiled and uncompiled value_and_grad differ")
end

info = fn f -> Mx.Compile.tape_info(Mx.compile(Mx.value_and_grad(f)), [args.()]) end

chain = fn x ->
  x
  |> Mx.multiply(1.0001)
  |> Mx.add(0.5)
  |> Mx.sin()
  |> Mx.multiply(x)
  |> Mx.subtract(0.25)
  |> Mx.abs()
  |> Mx.sqrt()
  |> Mx.add(x)
end

x = Mx.Random.uniform(Mx.Random.key(1), shape: {1_000_000})
Mx.eval(x)
chain_c = Mx.compile(chain)

res =
  Bench.round_robin(
    [
      {"simple via Gen.assess: uncompiled", uncompiled.(density)},
      {"simple via Gen.assess: compiled", compiled.(density)},
      {"simple in Mx ops: uncompiled", uncompiled.(direct)},
      {"simple in Mx ops: compiled", compiled.(direct)}
    ],
    300,
    9
  )

res2 =
  Bench.round_robin(
    [
      {"8-op chain, 1M f32: uncompiled", fn -> Mx.eval(chain.(x)) end},
      {"8-op chain, 1M f32: compiled", fn -> chain_c.(x) end}
    ],
    20,
    9
  )

med = fn r, k -> Bench.median(r[k]) end
fmt = &Bench.fmt/1

IO.puts(
  "\nMx.compile (load #{Bench.load()}; /proc/loadavg: #{String.trim(File.read!("/proc/loadavg"))})\n"
)

IO.puts("| per call | uncompiled µs | compiled µs | speedup |\n|---|---:|---:|---:|")

for {name, r, u, c} <- [
      {"value_and_grad, simple via Gen.assess", res, "simple via Gen.assess: uncompiled",
       "simple via Gen.assess: compiled"},
      {"value_and_grad, simple in Mx ops", res, "simple in Mx ops: uncompiled",
       "simple in Mx ops: compiled"},
      {"8 elementwise ops, 1M f32", res2, "8-op chain, 1M f32: uncompiled",
       "8-op chain, 1M f32: compiled"}
    ] do
  IO.puts(
    "| #{name} | #{fmt.(med.(r, u) / 1000)} | #{fmt.(med.(r, c) / 1000)} | #{fmt.(med.(r, u) / med.(r, c))}× |"
  )
end

for {name, f} <- [{"Gen.assess", density}, {"Mx ops", direct}] do
  i = info.(f)

  IO.puts(
    "\ntape of simple via #{name}: #{i.instructions} instructions, #{i.constants} constants, " <>
      "#{i.folded} nodes folded, #{i.merged} merged, #{i.bytes} bytes"
  )
end
