# Mx.compile (issue 11): ns per call, compiled (tape replay) beside uncompiled
# (graph building + eval), measured round-robin in one run on the same machine.
#
#   1. value_and_grad of the `simple` model's log density (../shared/bench/nuts/simple.stan),
#      through Gen.assess as the NUTS sampler evaluates it, and written directly in Mx ops
#   2. a chain of 8 elementwise ops over 1M f32 elements (one fused group)
#   3. the interpreter tier as a C sampler drives it: ns per gradient of the compiled
#      value_and_grad of `simple` and `eight_schools_nc` replayed through mx_tape_run_raw
#      (NIF.tape_time_raw loops in C), beside a hand-written C log density + gradient of the
#      same models (bench/grad_floor.c) run in the same session
#   4. 8 fused elementwise ops over 16M f32 against a STREAM triad (bench/compile_chain.c)
#   5. trace + capture (folding, CSE, lowering, fusion grouping, buffer plan) per model
#
#   mix run bench/compile.exs
#
# The interpreter tier throughout (jit: false); bench/jit.exs measures the generated-C tier.
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
  vg = Mx.compile(Mx.value_and_grad(f), jit: false)
  fn -> vg.(args.()) end
end

# Both give the same numbers (checked here, not only in the tests).
for f <- [density, direct] do
  {a, ga} = Mx.value_and_grad(f).(args.())
  {b, gb} = Mx.compile(Mx.value_and_grad(f), jit: false).(args.())

  same =
    Mx.to_number(a) == Mx.to_number(b) and
      Enum.map(ga, &Mx.to_number/1) == Enum.map(gb, &Mx.to_number/1)

  if not same, do: raise("compiled and uncompiled value_and_grad differ")
end

info = fn f -> Mx.Compile.tape_info(Mx.compile(Mx.value_and_grad(f), jit: false), [args.()]) end

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
chain_c = Mx.compile(chain, jit: false)

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

# ---- 3. the interpreter tier: mx_tape_run_raw beside hand-written C ------------------------

make_bin = fn name ->
  path = Path.join(root, "_build/bench/#{name}")

  {out, 0} =
    System.cmd("make", ["-s", "-C", Path.join(root, "bench"), path], stderr_to_stdout: true)

  _ = out
  path
end

m8 = NutsModels.eight_schools(data["eight_schools"], :non_centered)
d8 = NutsModels.eight_schools_nc_densities(m8, data)

models = [
  {"simple", %{gfi: density, direct: direct, args: args}},
  {"eight_schools_nc", d8}
]

reps = 20_000

raw_case = fn f, margs ->
  tape = Mx.Compile.tape!(Mx.compile(Mx.value_and_grad(f), jit: false), [margs.()])
  ins = Enum.map(margs.(), &Mx.to_binary/1)
  info = Mx.NIF.tape_info(tape)
  {tape, ins, info}
end

cases =
  for {name, d} <- models, kind <- [:direct, :gfi] do
    {"#{name} #{kind}", raw_case.(d[kind], d.args)}
  end

floor = NutsModels.grad_floor(data, 9)

# The direct tapes compute the hand-written functions: the values agree to rounding.
for {name, _} <- models do
  {_, {tape, ins, _}} = List.keyfind(cases, "#{name} direct", 0)
  {_, outs, _} = Mx.NIF.tape_time_raw(tape, ins, 1)
  got = for <<x::float-64-native <- IO.iodata_to_binary(outs)>>, do: x
  want = floor["#{name}_out"] |> String.split(",") |> Enum.map(&String.to_float/1)

  ok =
    length(got) == length(want) and
      Enum.all?(Enum.zip(got, want), fn {a, b} -> abs(a - b) <= 1.0e-9 * max(1.0, abs(b)) end)

  if not ok,
    do: raise("#{name}: the tape and grad_floor.c disagree: #{inspect(got)} vs #{inspect(want)}")
end

# Each round times the hand-written C (one grad_floor round, 10^6 calls) and then every tape,
# so that a ratio compares times taken under the same load (the machine is shared).
{raw_ns, floors} =
  for _round <- 1..9, reduce: {%{}, []} do
    {acc, fl} ->
      f1 = NutsModels.grad_floor(data, 1)

      acc =
        for {name, {tape, ins, _}} <- cases, reduce: acc do
          acc ->
            {ns, _, cpu} = Mx.NIF.tape_time_raw(tape, ins, reps)
            Map.update(acc, name, [{ns / reps, cpu / reps}], &[{ns / reps, cpu / reps} | &1])
        end

      {acc, [f1 | fl]}
  end

floors = Enum.reverse(floors)
floor_cpu = fn model -> Enum.map(floors, &String.to_float(&1["#{model}_cpu_ns"])) end

IO.puts(
  "\nInterpreter tier: ns per gradient via mx_tape_run_raw (median of 9 x #{reps}), " <>
    "hand-written C (grad_floor.c) timed in each round before the tapes (load #{Bench.load()})\n"
)

IO.puts(
  "| value_and_grad | instructions | fused (groups) | no-ops, dead | arena B | wall ns / gradient | CPU ns / gradient | CPU ns / instruction | hand-written C: wall, CPU ns | ratio (CPU) | ratio per round (CPU): median, max |\n" <>
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)

for {name, {_, _, i}} <- cases do
  ns = raw_ns[name] |> Enum.map(&elem(&1, 0)) |> Bench.median()
  cpu = raw_ns[name] |> Enum.map(&elem(&1, 1)) |> Bench.median()
  model = name |> String.split(" ") |> hd()
  c_ns = floors |> Enum.map(&String.to_float(&1["#{model}_ns"])) |> Bench.median()
  c_cpu = model |> floor_cpu.() |> Bench.median()
  # raw_ns lists the rounds last first
  per_round =
    Enum.zip_with(Enum.reverse(raw_ns[name]), floor_cpu.(model), fn {_, t}, h -> t / h end)

  IO.puts(
    "| #{name} | #{i.instructions} | #{i.fused} (#{i.groups}) | #{i.noops}, #{i.dead} | #{i.arena_bytes} | " <>
      "#{fmt.(ns)} | #{fmt.(cpu)} | #{fmt.(cpu / i.instructions)} | #{fmt.(c_ns)}, #{fmt.(c_cpu)} | #{fmt.(cpu / c_cpu)}× | " <>
      "#{fmt.(Bench.median(per_round))}×, #{fmt.(Enum.max(per_round))}× |"
  )
end

# ---- 4. fused chain against the STREAM triad ------------------------------------------------

{chain_out, 0} = System.cmd(make_bin.("compile_chain"), ["15"])
IO.puts("\n" <> chain_out)

# ---- 5. trace + capture time -----------------------------------------------------------------

IO.puts(
  "| trace + capture (tape!/2: trace, fold, CSE, lower, group, plan) | median µs |\n|---|---:|"
)

for {name, d} <- models, kind <- [:direct, :gfi] do
  c = Mx.compile(Mx.value_and_grad(d[kind]), jit: false)
  a = [d.args.()]

  ts =
    for _ <- 1..15 do
      t0 = Bench.now_ns()
      Mx.Compile.tape!(c, a)
      Bench.now_ns() - t0
    end

  IO.puts("| #{name} #{kind} | #{fmt.(Bench.median(ts) / 1000)} |")
end
