# Throughput of the random primitives: 16M draws into a fresh array, timed
# from the call to the end of Mx.eval (graph building included), median of
# several runs. Prints samples/s and the GB/s of output written; compare the
# latter with the memory bandwidth that bench/bandwidth reports.
#
#   mix run bench/random.exs [elements] [runs]
Code.require_file("bench_helper.exs", __DIR__)

{n, runs} =
  case System.argv() do
    [n, r] -> {String.to_integer(n), String.to_integer(r)}
    _ -> {16 * 1024 * 1024, 7}
  end

key = Mx.Random.key(0)

cases = [
  {"normal f32", 4, fn -> Mx.Random.normal(key, shape: {n}) end},
  {"normal f64", 8, fn -> Mx.Random.normal(key, shape: {n}, type: :f64) end},
  {"uniform f32", 4, fn -> Mx.Random.uniform(key, shape: {n}) end},
  {"bits u32", 4, fn -> Mx.Random.bits(key, shape: {n}) end},
  {"gamma(2.5) f32", 4, fn -> Mx.Random.gamma(key, 2.5, shape: {div(n, 8)}) end},
  {"poisson(30) s64", 8, fn -> Mx.Random.poisson(key, 30.0, shape: {div(n, 8)}) end}
]

IO.puts(
  "#{n} elements (1/8 of that for gamma and poisson), median of #{runs} runs, #{System.schedulers_online()} schedulers"
)

for {name, bytes, fun} <- cases do
  Mx.eval(fun.()) |> then(fn _ -> :ok end)

  times =
    for _ <- 1..runs do
      t0 = Bench.now_ns()
      x = fun.()
      Mx.eval(x)
      t = (Bench.now_ns() - t0) / 1.0e9
      Mx.dispose(x)
      t
    end

  t = Bench.median(times)
  count = if name =~ ~r/gamma|poisson/, do: div(n, 8), else: n

  IO.puts(
    "#{Bench.pad(name, 18)} #{Bench.lpad(Bench.fmt(count / t / 1.0e6), 8)} M samples/s  " <>
      "#{Bench.lpad(:erlang.float_to_binary(count * bytes / t / 1.0e9, decimals: 2), 6)} GB/s written"
  )
end
