# Figures for the everyday functions (issue 12, helper h6): the linear recurrence
# x_t = a_t x_{t-1} + b_t by Mx.associative_scan (log depth) against a sequential loop of
# Mx ops (one node per step), Mx.asinh (a row) against the f64 composite the backend used
# before, and Nx.top_k through Mx.topk against Nx's default composition on the backend.
# Medians of alternated rounds; `uptime` beside the figures. Run: MIX_ENV=test mix run bench/everyday.exs

defmodule Bench.Everyday do
  def time_ms(f) do
    t0 = System.monotonic_time(:microsecond)
    f.()
    (System.monotonic_time(:microsecond) - t0) / 1000
  end

  def median(xs), do: xs |> Enum.sort() |> Enum.at(div(length(xs), 2))

  # Alternates the variants round by round; median ms per variant.
  def compare(variants, rounds) do
    Enum.each(variants, fn {_, f} -> f.() end)

    times =
      for _ <- 1..rounds, {name, f} <- variants, reduce: %{} do
        acc -> Map.update(acc, name, [time_ms(f)], &[time_ms(f) | &1])
      end

    for {name, _} <- variants, do: {name, median(times[name])}
  end

  def report(title, results) do
    IO.puts("#{title}  (load: #{String.trim(File.read!("/proc/loadavg"))})")
    for {name, ms} <- results, do: IO.puts("  #{String.pad_trailing(name, 44)} #{:erlang.float_to_binary(ms, decimals: 3)} ms")
  end
end

key = Mx.Random.key(1)
[k1, k2] = [Mx.Random.split(key, 2)[0], Mx.Random.split(key, 2)[1]]

for t <- [1_000, 10_000] do
  a = Mx.Random.uniform(k1, -0.99, 0.99, shape: {t}, type: :f64) |> Mx.eval()
  b = Mx.Random.normal(k2, shape: {t}, type: :f64) |> Mx.eval()
  step = fn {a1, b1}, {a2, b2} -> {Mx.multiply(a1, a2), Mx.add(Mx.multiply(a2, b1), b2)} end
  as = for i <- 0..(t - 1), do: a[i]
  bs = for i <- 0..(t - 1), do: b[i]

  scan = fn -> {_, x} = Mx.associative_scan(step, {a, b}); Mx.eval(x) end

  loop = fn ->
    {_, xs} = Enum.zip(as, bs) |> Enum.reduce({nil, []}, fn
      {_a, bi}, {nil, acc} -> {bi, [bi | acc]}
      {ai, bi}, {prev, acc} -> x = Mx.add(Mx.multiply(ai, prev), bi); {x, [x | acc]}
    end)
    xs |> Enum.reverse() |> Mx.stack() |> Mx.eval()
  end

  Bench.Everyday.report("linear recurrence, T = #{t} (f64; slices of a, b prepared outside the timing)",
    Bench.Everyday.compare([{"associative_scan (log depth)", scan}, {"sequential loop of Mx ops", loop}], 7))
end

x = Mx.Random.normal(k1, shape: {1_000_000}) |> Mx.multiply(10.0) |> Mx.eval()

composite = fn x ->
  x = Mx.as_type(x, :f64)
  ax = Mx.abs(x)
  x2 = Mx.square(ax)
  Mx.multiply(Mx.sign(x), Mx.log1p(Mx.add(ax, Mx.divide(x2, Mx.add(1, Mx.sqrt(Mx.add(x2, 1)))))))
  |> Mx.as_type(:f32)
end

Bench.Everyday.report("asinh of 1M f32",
  Bench.Everyday.compare([
    {"Mx.asinh (row, f32)", fn -> Mx.eval(Mx.asinh(x)) end},
    {"Mx.asinh in f64, rounded (the backend's path)", fn -> Mx.eval(Mx.as_type(Mx.asinh(Mx.as_type(x, :f64)), :f32)) end},
    {"f64 composite (the backend's path before)", fn -> Mx.eval(composite.(x)) end}
  ], 9))

Nx.default_backend(Mx.Nx.Backend)
t = Nx.iota({1000, 1000}, type: :f32) |> Nx.multiply(0.37) |> Nx.sin()
Nx.to_binary(t[0][0])

Bench.Everyday.report("top_k k = 5 of {1000, 1000} f32 on Mx.Nx.Backend",
  Bench.Everyday.compare([
    {"Nx.top_k (Mx.topk: slice indices, then gather)", fn -> {v, i} = Nx.top_k(t, k: 5); Nx.to_binary(v); Nx.to_binary(i) end},
    {"Nx's default (gather all, then slice)", fn ->
      i = Nx.argsort(t, axis: 1, direction: :desc)
      v = Nx.take_along_axis(t, i, axis: 1)
      Nx.to_binary(Nx.slice_along_axis(v, 0, 5, axis: 1))
      Nx.to_binary(Nx.slice_along_axis(i, 0, 5, axis: 1))
    end}
  ], 9))
