# Where should eval switch from inline (normal scheduler) to a dirty CPU
# scheduler? For elementwise graphs of 1k..1M f32 elements, times
# Mx.NIF.eval forced inline (threshold raised to the maximum) against
# Mx.NIF.eval_dirty on identical graphs, call by call in alternating order.
#
#   overhead(n) = dirty(n) - inline(n)      the price of the dirty round trip
#   work(n)     = inline(n)
#
# The threshold should sit where overhead(n) < 5% of work(n) for the cheapest
# op (add), while an inline eval at the threshold stays well under 1 ms for
# every op (a normal scheduler must not be blocked longer). The threshold is
# restored at the end.
#
#   mix run bench/dirty_threshold.exs [calls_per_point]
Code.require_file("bench_helper.exs", __DIR__)

calls =
  case System.argv() do
    [k] -> String.to_integer(k)
    _ -> 200
  end

sizes = for p <- 10..20, do: Integer.pow(2, p)

# add: the cheapest work per element (memory bound); exp: a common transcendental;
# lgamma: among the costliest unary kernels, the worst case for inline evals.
ops = [
  {"add", fn a -> Mx.add(a, a) end},
  {"exp", fn a -> Mx.exp(a) end},
  {"lgamma", fn a -> Mx.lgamma(a) end}
]

max_threshold = Integer.pow(2, 62)
old = Mx.NIF.set_dirty_threshold(max_threshold)

# One call: build the graph (untimed), evaluate it the given way (timed), free its buffer.
time_one = fn build, a, how ->
  ref = build.(a).ref
  t0 = Bench.now_ns()
  if how == :inline, do: Mx.NIF.eval([ref]), else: Mx.NIF.eval_dirty([ref])
  t = Bench.now_ns() - t0
  Mx.NIF.dispose(ref)
  t / 1000
end

measure = fn build, n ->
  a = Mx.iota({n}, type: :f32) |> Mx.remainder(97.0) |> Mx.add(0.5) |> Mx.eval()
  # fewer calls for big points: each is long, and its median is steady
  k = if n >= 262_144, do: max(div(calls, 5), 15), else: calls
  time_one.(build, a, :inline)
  time_one.(build, a, :dirty)

  {ins, ds} =
    Enum.reduce(1..k, {[], []}, fn i, {ins, ds} ->
      if rem(i, 2) == 0 do
        d = time_one.(build, a, :dirty)
        {[time_one.(build, a, :inline) | ins], [d | ds]}
      else
        inl = time_one.(build, a, :inline)
        {[inl | ins], [time_one.(build, a, :dirty) | ds]}
      end
    end)

  {Bench.median(ins), Bench.median(ds)}
end

try do
  IO.puts("dirty_threshold: median us per eval over #{calls} calls per point (fewer above 256k); " <>
            "current threshold #{old} elements")

  # the bare dirty round trip, for reference
  noop_dirty =
    Bench.median(for _ <- 1..1000, do: elem(:timer.tc(&Mx.NIF.noop_dirty/0), 0) * 1.0)

  results =
    for {name, build} <- ops do
      IO.puts("  #{name}:")
      IO.puts("    " <> Bench.lpad("elements", 9) <> Bench.lpad("inline", 10) <> Bench.lpad("dirty", 10) <>
                Bench.lpad("overhead", 10) <> Bench.lpad("ovh/work", 10) <> Bench.lpad("ns/elem", 9))

      rows =
        for n <- sizes do
          {inl, d} = measure.(build, n)
          ovh = d - inl

          IO.puts("    " <> Bench.lpad(n, 9) <> Bench.lpad(Bench.fmt(inl), 10) <> Bench.lpad(Bench.fmt(d), 10) <>
                    Bench.lpad(Bench.fmt(ovh), 10) <>
                    Bench.lpad(:erlang.float_to_binary(100 * ovh / inl, decimals: 1) <> "%", 10) <>
                    Bench.lpad(:erlang.float_to_binary(1000 * inl / n, decimals: 2), 9))

          {n, inl, d}
        end

      {name, rows}
    end

  IO.puts("  empty dirty NIF call (Mx.NIF.noop_dirty): #{Bench.fmt(noop_dirty)} us (median of 1000, :timer.tc)")

  # the smallest size from which the overhead stays under 5% of the work
  crossover = fn rows ->
    rows
    |> Enum.reverse()
    |> Enum.take_while(fn {_n, inl, d} -> d - inl < 0.05 * inl end)
    |> List.last()
    |> case do
      nil -> nil
      {n, _, _} -> n
    end
  end

  for {name, rows} <- results do
    at = Enum.find(rows, fn {n, _, _} -> n == old end)
    x = crossover.(rows)
    inline_at = if at, do: "#{Bench.fmt(elem(at, 1))} us", else: "n/a"
    cross = if x, do: "#{x} elements", else: "not reached by 1M"
    IO.puts("  #{name}: dirty overhead < 5% of the work from #{cross}; inline eval at the current threshold (#{old}): #{inline_at}")
  end

  {_, add_rows} = List.keyfind(results, "add", 0)
  x = crossover.(add_rows)
  IO.puts("  => the cheapest op (add) implies a threshold of about #{x || "> 1M"} elements; an inline eval must also " <>
            "stay well under 1 ms for the costliest op at that threshold (see lgamma above)")
after
  Mx.NIF.set_dirty_threshold(old)
end

IO.puts("  threshold restored to #{Mx.NIF.set_dirty_threshold(old)}")
