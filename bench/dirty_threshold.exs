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

try do
  # One call: build the graph (untimed), evaluate it the given way (timed), free its buffer.
  time_one = fn build, a, how ->
    ref = build.(a).ref
    t0 = Bench.now_ns()
    if how == :inline, do: Mx.NIF.eval([ref]), else: Mx.NIF.eval_dirty([ref])
    t = Bench.now_ns() - t0
    Mx.NIF.dispose(ref)
    t / 1000
  end

  inputs =
    Map.new(sizes, fn n ->
      {n, Mx.iota({n}, type: :f32) |> Mx.remainder(97.0) |> Mx.add(0.5) |> Mx.eval()}
    end)

  # One pass: `k` pairs of (inline, dirty) calls at one point, the order flipping
  # each pair. Returns [{inline_us, dirty_us}].
  pairs = fn build, n, k ->
    a = inputs[n]

    for i <- 1..k do
      if rem(i, 2) == 0 do
        d = time_one.(build, a, :dirty)
        {time_one.(build, a, :inline), d}
      else
        inl = time_one.(build, a, :inline)
        {inl, time_one.(build, a, :dirty)}
      end
    end
  end

  # Several passes over every point, so a burst of load on the shared machine
  # spoils a slice of every point rather than all of one.
  passes = 5

  per_pass = fn n ->
    if n >= 262_144, do: max(div(calls, 5 * passes), 4), else: max(div(calls, passes), 4)
  end

  for {_, build} <- ops, n <- sizes, do: pairs.(build, n, 1)

  samples =
    for _ <- 1..passes, {name, build} <- ops, n <- sizes, reduce: %{} do
      acc ->
        ps = pairs.(build, n, per_pass.(n))
        Map.update(acc, {name, n}, ps, &(ps ++ &1))
    end

  # inline = median inline time; overhead = median of (dirty - inline) within pairs.
  measure = fn name, n ->
    ps = samples[{name, n}]

    {Bench.median(Enum.map(ps, &elem(&1, 0))), Bench.median(Enum.map(ps, fn {i, d} -> d - i end)),
     length(ps)}
  end

  IO.puts(
    "dirty_threshold: us per eval, medians over ~#{calls} call pairs per point (~#{div(calls, 5)} above 256k) " <>
      "in #{passes} passes; overhead = median of paired (dirty - inline); current threshold #{old} elements; " <>
      "load average #{Bench.load()}"
  )

  # the bare dirty round trip, for reference
  noop_dirty =
    Bench.median(
      for _ <- 1..1000 do
        t0 = Bench.now_ns()
        Mx.NIF.noop_dirty()
        (Bench.now_ns() - t0) / 1000
      end
    )

  results =
    for {name, _build} <- ops do
      IO.puts("  #{name}:")

      IO.puts(
        "    " <>
          Bench.lpad("elements", 9) <>
          Bench.lpad("inline", 10) <>
          Bench.lpad("dirty", 10) <>
          Bench.lpad("overhead", 10) <> Bench.lpad("ovh/work", 10) <> Bench.lpad("ns/elem", 9)
      )

      rows =
        for n <- sizes do
          {inl, ovh, _count} = measure.(name, n)
          d = inl + ovh

          IO.puts(
            "    " <>
              Bench.lpad(n, 9) <>
              Bench.lpad(Bench.fmt(inl), 10) <>
              Bench.lpad(Bench.fmt(d), 10) <>
              Bench.lpad(Bench.fmt(ovh), 10) <>
              Bench.lpad(:erlang.float_to_binary(100 * ovh / inl, decimals: 1) <> "%", 10) <>
              Bench.lpad(:erlang.float_to_binary(1000 * inl / n, decimals: 2), 9)
          )

          {n, inl, d}
        end

      {name, rows}
    end

  IO.puts(
    "  empty dirty NIF call (Mx.NIF.noop_dirty): #{Bench.fmt(noop_dirty)} us (median of 1000)"
  )

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

    IO.puts(
      "  #{name}: dirty overhead < 5% of the work from #{cross}; inline eval at the current threshold (#{old}): #{inline_at}"
    )
  end

  # The dirty round trip costs about the same at every size, so dirty pays (< 5%)
  # once the work exceeds 20x its median; each op's large-size speed says where.
  overhead =
    results
    |> Enum.flat_map(fn {_, rows} -> Enum.map(rows, fn {_, i, d} -> d - i end) end)
    |> Bench.median()

  need_us = 20 * overhead

  IO.puts(
    "  median dirty overhead over all points: #{Bench.fmt(overhead)} us, so dirty pays from ~#{Bench.fmt(need_us)} us of work"
  )

  for {name, rows} <- results do
    big = for {n, inl, _} <- rows, n >= 262_144, do: 1000 * inl / n
    ns = Bench.median(big)
    at_old = ns * old / 1000

    IO.puts(
      "    #{name}: #{:erlang.float_to_binary(ns, decimals: 2)} ns/elem at >= 256k -> dirty pays from ~#{round(need_us * 1000 / ns)} elements; " <>
        "inline at the current threshold #{old}: ~#{Bench.fmt(at_old)} us"
    )
  end

  IO.puts(
    "  => one element-count threshold cannot serve both ends: the cheapest op (add) wants it where the costliest\n" <>
      "     (lgamma) would block a normal scheduler far longer than 1 ms; see RESULTS.md for the recommendation"
  )
after
  Mx.NIF.set_dirty_threshold(old)
end

IO.puts("  threshold restored to #{Mx.NIF.set_dirty_threshold(old)}")
