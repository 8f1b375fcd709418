# Mx.compile of the demo's training step (examples/demo.exs: least squares on X f32[10000][3]
# by gradient descent, w <- w - 0.5 X^T (X w - y) / n): µs per step uncompiled (the graph
# built in Elixir, then Mx.eval) beside Mx.compile's interpreter tier (jit: false) and its
# generated-C tier (jit: true, waited for), round-robin: every round times one batch of each,
# after a garbage collection. Wall and CPU time (every thread of the OS process) per step,
# medians over the rounds, the speedups as medians of per-round ratios; the load is printed.
#
#   mix run bench/compile_train.exs [steps_per_batch] [rounds]
Code.require_file("bench_helper.exs", __DIR__)

{per_batch, rounds} =
  case System.argv() do
    [a, b] -> {String.to_integer(a), String.to_integer(b)}
    _ -> {200, 11}
  end

# The demo's data, as examples/demo.exs builds it.
n = 10_000
true_w = Mx.tensor([[2.0], [-3.0], [0.5]])

x =
  Mx.stack([Mx.ones({n}), Mx.linspace(-1, 1, n: n), Mx.sin(Mx.linspace(0, 40, n: n))], axis: 1)
  |> Mx.eval()

noise = Mx.multiply(Mx.cos(Mx.multiply(Mx.iota({n, 1}, type: :f32), 7.3)), 0.1)
y = x |> Mx.matmul(true_w) |> Mx.add(noise) |> Mx.eval()
lr = 0.5

# The demo's step (its loop body without the every-50-steps report).
step = fn w ->
  residual = Mx.subtract(Mx.matmul(x, w), y)
  grad = x |> Mx.transpose() |> Mx.matmul(residual) |> Mx.divide(n)
  Mx.subtract(w, Mx.multiply(grad, lr))
end

# A fresh cache: the generated tier is built here (a miss), timed.
cache = Path.join(System.tmp_dir!(), "genmx_train_bench_#{System.os_time()}")
System.put_env("XDG_CACHE_HOME", cache)

uncompiled = fn w -> step.(w) |> Mx.eval() end
interp = Mx.compile(step, jit: false)
native = Mx.compile(step, jit: true)
w0 = Mx.zeros({3, 1})
native.(w0)
built = Mx.Compile.await_native(native, [w0], 600_000)
if built.tier != :native, do: raise("the native tier was not built: #{inspect(built)}")
File.rm_rf!(cache)

# Same fit three ways: 200 steps from zero (the interpreter bit for bit; the generated tier
# multiplies by 1/n where the kernel divides by n: within a few ulps per step).
fit = fn f -> Enum.reduce(1..200, w0, fn _, w -> f.(w) end) |> Mx.to_flat_list() end
[wu, wi, wn] = Enum.map([uncompiled, interp, native], fit)
if wi != wu, do: raise("interpreter fit #{inspect(wi)} differs from uncompiled #{inspect(wu)}")

unless Enum.all?(Enum.zip(wn, wu), fn {a, b} -> abs(a - b) <= 1.0e-5 * max(1.0, abs(b)) end),
  do: raise("native fit #{inspect(wn)} differs from uncompiled #{inspect(wu)}")

cases = [{:uncompiled, uncompiled}, {:interpreter, interp}, {:native, native}]

time_batch = fn f ->
  :erlang.garbage_collect()
  c0 = Bench.process_cpu_ns()
  t0 = Bench.now_ns()
  Enum.reduce(1..per_batch, w0, fn _, w -> f.(w) end) |> Mx.eval()
  {(Bench.now_ns() - t0) / per_batch, (Bench.process_cpu_ns() - c0) / per_batch}
end

Enum.each(cases, fn {_, f} -> time_batch.(f) end)
load0 = String.trim(File.read!("/proc/loadavg"))

res =
  for _ <- 1..rounds do
    Map.new(cases, fn {name, f} -> {name, time_batch.(f)} end)
  end

load1 = String.trim(File.read!("/proc/loadavg"))
med = fn name, i -> res |> Enum.map(&elem(&1[name], i)) |> Bench.median() end

ratio = fn name, i ->
  res |> Enum.map(&(elem(&1.uncompiled, i) / elem(&1[name], i))) |> Bench.median()
end

us = fn v -> Bench.fmt(v / 1000) end
info = Mx.Compile.tape_info(interp, [w0])

IO.puts("""

Mx.compile of the demo's training step (X f32[#{n}][3], #{per_batch} steps a batch, #{rounds} rounds;
/proc/loadavg before: #{load0}, after: #{load1}); tape: #{info.instructions} instructions,
#{info.constants} constants; C compile #{Bench.fmt(built.compile_wall_us / 1000)} ms wall, #{Bench.fmt(built.compile_cpu_us / 1000)} ms compiler CPU (cache hit: #{built.cache_hit})

| per step | wall µs | CPU µs | speedup (wall) | speedup (CPU) |
|---|---:|---:|---:|---:|\
""")

for {name, label} <- [
      uncompiled: "uncompiled (graph + Mx.eval)",
      interpreter: "Mx.compile, interpreter tier",
      native: "Mx.compile, generated C"
    ] do
  IO.puts(
    "| #{label} | #{us.(med.(name, 0))} | #{us.(med.(name, 1))} | #{Bench.fmt(ratio.(name, 0))}× | #{Bench.fmt(ratio.(name, 1))}× |"
  )
end
