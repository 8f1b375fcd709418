# Mx.compile's generated-C tier (c_src/jit.c): ns per gradient of the compiled value_and_grad
# of `simple` and `eight_schools_nc` (../shared/bench/nuts), written in Mx ops (:direct) and
# through Gen.assess (:gfi), replayed through mx_tape_run_raw as a C sampler drives it
# (NIF.tape_time_raw loops in C): the interpreter tier, the generated-C tier and the
# hand-written C gradient (bench/grad_floor.c), round-robin in one run. Also the C compile
# time per tape (wall and the compiler's CPU), built into a fresh cache directory.
#
#   mix run bench/jit.exs
Code.require_file("bench_helper.exs", __DIR__)
Code.require_file("nuts/json.exs", __DIR__)
Code.require_file("nuts/models.exs", __DIR__)

alias Bench.NutsModels

root = Path.expand("..", __DIR__)
shared = System.get_env("STAN_BENCH_DIR", Path.expand("../shared/bench/nuts", root))
data = shared |> Path.join("data.json") |> File.read!() |> Bench.JSON.decode!()
m1 = NutsModels.simple(data["simple"])
d1 = NutsModels.simple_densities(m1, data)
m8 = NutsModels.eight_schools(data["eight_schools"], :non_centered)
d8 = NutsModels.eight_schools_nc_densities(m8, data)
models = [{"simple", d1}, {"eight_schools_nc", d8}]

# A fresh cache: every tape is built once here (a miss), timed.
cache = Path.join(System.tmp_dir!(), "genmx_jit_bench_#{System.os_time()}")
System.put_env("XDG_CACHE_HOME", cache)

tapes =
  for {name, d} <- models, kind <- [:direct, :gfi] do
    vg = Mx.value_and_grad(d[kind])
    a = [d.args.()]
    interp = Mx.Compile.tape!(Mx.compile(vg, jit: false), a)
    c = Mx.compile(vg, jit: true)
    c.(d.args.())
    built = Mx.Compile.await_native(c, a, 600_000)
    if built.tier != :native, do: raise("#{name} #{kind}: #{inspect(built.tier)}")
    # a second tape of the signature loads the object from the disk cache
    native = Mx.Compile.tape!(c, a)
    loaded = Mx.Compile.await_native(c, a, 600_000)

    if loaded.tier != :native or not loaded.cache_hit,
      do: raise("#{name} #{kind}: not loaded from the cache")

    ins = Enum.map(d.args.(), &Mx.to_binary/1)
    {"#{name} #{kind}", %{interp: interp, native: native, ins: ins, built: built, loaded: loaded}}
  end

File.rm_rf!(cache)

# Both tiers agree within rounding (the tests check it too).
for {name, t} <- tapes do
  {_, a, _} = Mx.NIF.tape_time_raw(t.interp, t.ins, 1)
  {_, b, _} = Mx.NIF.tape_time_raw(t.native, t.ins, 1)
  xs = for <<x::float-64-native <- IO.iodata_to_binary(a)>>, do: x
  ys = for <<y::float-64-native <- IO.iodata_to_binary(b)>>, do: y

  unless Enum.all?(Enum.zip(xs, ys), fn {x, y} -> abs(x - y) <= 1.0e-12 * max(1.0, abs(x)) end),
    do: raise("#{name}: tiers differ: #{inspect(xs)} vs #{inspect(ys)}")
end

reps = 20_000

samples =
  for _round <- 1..9, reduce: %{} do
    acc ->
      floor = NutsModels.grad_floor(data, 1)

      acc =
        Enum.reduce(["simple", "eight_schools_nc"], acc, fn m, acc ->
          Map.update(
            acc,
            {m, :floor},
            [String.to_float(floor["#{m}_ns"])],
            &[String.to_float(floor["#{m}_ns"]) | &1]
          )
        end)

      for {name, t} <- tapes, tier <- [:interp, :native], reduce: acc do
        acc ->
          {ns, _, _} = Mx.NIF.tape_time_raw(t[tier], t.ins, reps)
          Map.update(acc, {name, tier}, [ns / reps], &[ns / reps | &1])
      end
  end

fmt = &Bench.fmt/1

IO.puts(
  "\nGenerated-C tier: ns per gradient via mx_tape_run_raw (median of 9 rounds x #{reps}); " <>
    "hand-written C (grad_floor.c) in the same rounds; median (min) of the rounds; load #{Bench.load()}, /proc/loadavg " <>
    String.trim(File.read!("/proc/loadavg")) <> "\n"
)

IO.puts(
  "| value_and_grad | instructions | interpreter ns | generated C ns | hand-written C ns | generated / hand-written | C compile wall ms | C compile CPU ms | cache load ms |\n" <>
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)

for {name, t} <- tapes do
  model = name |> String.split(" ") |> hd()
  i = Mx.NIF.tape_info(t.native)
  interp = Bench.median(samples[{name, :interp}])
  native = Bench.median(samples[{name, :native}])
  floor = Bench.median(samples[{model, :floor}])
  best = fn k -> fmt.(Enum.min(samples[k])) end

  IO.puts(
    "| #{name} | #{i.instructions} | #{fmt.(interp)} (#{best.({name, :interp})}) | #{fmt.(native)} (#{best.({name, :native})}) | " <>
      "#{fmt.(floor)} (#{best.({model, :floor})}) | #{fmt.(native / floor)}× (#{fmt.(Enum.min(samples[{name, :native}]) / Enum.min(samples[{model, :floor}]))}×) | " <>
      "#{fmt.(t.built.compile_wall_us / 1000)} | #{fmt.(t.built.compile_cpu_us / 1000)} | #{fmt.(t.loaded.compile_wall_us / 1000)} |"
  )
end
