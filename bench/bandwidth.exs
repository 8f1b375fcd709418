# The bandwidth benchmark through Elixir: Mx.add + Mx.eval and Mx.sum + Mx.eval
# on 16M-element f32 arrays, timed with :timer.tc, beside the same kernels
# called from C (bench/bandwidth, run first in this script) and the C STREAM
# triad. Shows that the NIF and dirty-scheduler overhead is negligible at this size.
#
#   mix run bench/bandwidth.exs PATH_TO_BANDWIDTH_BINARY [reps]
Code.require_file("bench_helper.exs", __DIR__)

{exe, reps} =
  case System.argv() do
    [exe] -> {exe, 20}
    [exe, reps] -> {exe, String.to_integer(reps)}
    _ -> raise ArgumentError, "usage: mix run bench/bandwidth.exs PATH_TO_BANDWIDTH_BINARY [reps]"
  end

# The C figures, measured in this run just before the Elixir ones.
{out, 0} = System.cmd(Path.expand(exe), [Integer.to_string(reps), "--kv"])

c =
  for "kv " <> kv <- String.split(out, "\n"), into: %{} do
    [k, v] = String.split(kv, "=")
    {k, String.to_float(v)}
  end

n = 16 * 1024 * 1024
a = Mx.iota({n}, type: :f32) |> Mx.multiply(0.5) |> Mx.eval()
b = Mx.full({n}, 3.0, type: :f32) |> Mx.eval()

# Each rep builds a fresh node, evaluates it (on a dirty scheduler: its cost is
# far above the threshold), then disposes it so its buffer returns to the cache.
time_ms = fn build ->
  {us, out} = :timer.tc(fn -> build.() |> Mx.eval() end)
  Mx.dispose(out)
  us / 1000
end

# The fixed cost of the path itself: the same calls on a 1-element add, forced
# through a dirty scheduler (Mx.eval would run it inline), median of 1000 calls.
x1 = Mx.tensor([1.0])

overhead_us = fn ->
  ts =
    for _ <- 1..1000 do
      t0 = Bench.now_ns()
      Mx.NIF.eval_dirty([Mx.add(x1, x1).ref])
      (Bench.now_ns() - t0) / 1000
    end

  Bench.median(ts)
end

# one warm-up each, then reps alternating add, sum and the fixed-overhead probe
time_ms.(fn -> Mx.add(a, b) end)
time_ms.(fn -> Mx.sum(a) end)

{adds, sums, overs} =
  Enum.reduce(1..reps, {[], [], []}, fn _, {adds, sums, overs} ->
    {[time_ms.(fn -> Mx.add(a, b) end) | adds], [time_ms.(fn -> Mx.sum(a) end) | sums],
     [overhead_us.() | overs]}
  end)

add_ms = Bench.median(adds)
sum_ms = Bench.median(sums)
over_us = Bench.median(overs)
gbs = fn bytes_per_elem, ms -> bytes_per_elem * n / (ms / 1000) / 1.0e9 end
pct = fn x -> :erlang.float_to_binary(100 * x, decimals: 1) <> "%" end

IO.puts(
  "bandwidth.exs: #{n} f32 elements, #{reps} reps, median; C figures from #{Path.basename(exe)} in this run"
)

IO.puts(
  "  " <>
    Bench.pad("kernel", 34) <>
    Bench.lpad("ms", 8) <>
    Bench.lpad("GB/s", 8) <> Bench.lpad("vs C", 9) <> Bench.lpad("vs triad", 10)
)

for {name, ms, bpe, cms} <- [
      {"Elixir Mx.add + Mx.eval", add_ms, 12, c["add_ms"]},
      {"Elixir Mx.sum + Mx.eval", sum_ms, 4, c["sum_ms"]}
    ] do
  IO.puts(
    "  " <>
      Bench.pad(name, 34) <>
      Bench.lpad(Bench.fmt(ms * 1.0), 8) <>
      Bench.lpad(Bench.fmt(gbs.(bpe, ms)), 8) <>
      Bench.lpad(pct.(cms / ms), 9) <> Bench.lpad(pct.(gbs.(bpe, ms) / c["triad_gbs"]), 10)
  )
end

IO.puts(
  "  (C in the same run: triad #{Bench.fmt(c["triad_gbs"])} GB/s, engine add #{Bench.fmt(c["add_gbs"])} GB/s " <>
    "= #{pct.(c["add_over_triad"])} of triad, engine sum #{Bench.fmt(c["sum_gbs"])} GB/s)"
)

IO.puts(
  "  Elixir - C: add #{Bench.fmt((add_ms - c["add_ms"]) * 1000)} us, sum #{Bench.fmt((sum_ms - c["sum_ms"]) * 1000)} us " <>
    "(separate phases of the run, so this includes the machine's drift)"
)

IO.puts(
  "  fixed cost of build + dirty eval (1-element add, measured between reps): #{Bench.fmt(over_us * 1.0)} us = " <>
    "#{pct.(over_us / 1000 / add_ms)} of the 16M add, #{pct.(over_us / 1000 / sum_ms)} of the 16M sum"
)
