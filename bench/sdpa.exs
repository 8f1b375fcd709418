# Fused scaled-dot-product attention (issue 13): Mx.NN.scaled_dot_product_attention (one fused
# primitive, online-softmax tiles) vs the composition it replaced (matmul, scale, softmax, matmul:
# the Lq x Lk scores materialized) vs torch 1.13 CPU (its documented composition; 1.13 has no fused
# op), B = 1, H = 8, D = 64, f32, L = 128 / 512 / 2048, forward and forward + backward (the loss
# sum(out * w), gradients for q, k and v). Cases alternate batch by batch (round-robin); medians,
# the load beside each row. torch runs with 2 threads and with 1 (a persistent /usr/bin/python3
# process): its OpenMP threads spin, which on this shared 2-core VM can cost more than they bring.
#
#   mix run bench/sdpa.exs [calls per batch] [batches]
Code.require_file("bench_helper.exs", __DIR__)

[n, batches] =
  case System.argv() do
    [n, b] -> Enum.map([n, b], &String.to_integer/1)
    [] -> [3, 5]
  end

port =
  Port.open({:spawn_executable, "/usr/bin/python3"}, [
    :binary,
    {:line, 256},
    args: [Path.join(__DIR__, "sdpa_torch.py")]
  ])

torch_batch = fn {b, h, l, d}, mode, threads, reps ->
  Port.command(port, Enum.join([b, h, l, d, mode, threads, reps], " ") <> "\n")

  receive do
    {^port, {:data, {:eol, line}}} -> String.to_float(line)
  after
    300_000 -> raise "torch did not answer"
  end
end

# The composition Mx.NN.scaled_dot_product_attention had before the fused primitive.
composed = fn q, k, v ->
  d = elem(Mx.shape(q), 3)
  scores = q |> Mx.matmul(Mx.transpose(k, axes: [0, 1, 3, 2])) |> Mx.multiply(1.0 / :math.sqrt(d))
  scores |> Mx.NN.Activations.softmax(axis: -1) |> Mx.matmul(v)
end

fused = &Mx.NN.scaled_dot_product_attention/3

f = &:erlang.float_to_binary(&1, decimals: 2)

IO.puts(
  "scaled_dot_product_attention, f32, B 1, H 8, D 64; ms per call, median of #{batches} batches x #{n} calls"
)

IO.puts(
  "| L | pass | fused ms | composed ms | composed / fused | torch(2) ms | torch(2) / fused | torch(1) ms | torch(1) / fused | load (1 min) |"
)

IO.puts("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")

for l <- [128, 512, 2048], mode <- ["fwd", "fwdbwd"] do
  shape = {1, 8, l, 64}
  [q, k, v, w] = for s <- 1..4, do: Mx.Random.normal(Mx.Random.key(s), shape: shape) |> Mx.eval()

  run = fn attn ->
    if mode == "fwd" do
      fn -> attn.(q, k, v) |> Mx.eval() end
    else
      grad = Mx.grad(fn q, k, v -> Mx.sum(Mx.multiply(attn.(q, k, v), w)) end, [0, 1, 2])
      fn -> grad.(q, k, v) |> Mx.eval() end
    end
  end

  cases = [run.(fused), run.(composed)]
  reps = if l == 2048, do: 1, else: n
  Enum.each(cases, &Bench.batch_ns(&1, 1))
  torch_batch.(shape, mode, 2, 1)
  torch_batch.(shape, mode, 1, 1)

  {times, t2s, t1s, loads} =
    Enum.reduce(1..batches, {[[], []], [], [], []}, fn _, {ts, t2, t1, ld} ->
      :erlang.garbage_collect()
      ts = Enum.zip_with(cases, ts, fn c, acc -> [Bench.batch_ns(c, reps) | acc] end)
      t2 = [torch_batch.(shape, mode, 2, reps) | t2]
      t1 = [torch_batch.(shape, mode, 1, reps) | t1]
      {ts, t2, t1, [String.to_float(Bench.load()) | ld]}
    end)

  [a, c] = Enum.map(times, &(Bench.median(&1) / 1.0e6))
  [t2, t1] = Enum.map([t2s, t1s], &(Bench.median(&1) / 1.0e6))

  IO.puts(
    "| #{l} | #{mode} | #{f.(a)} | #{f.(c)} | #{f.(c / a)} | #{f.(t2)} | #{f.(t2 / a)} | #{f.(t1)} | #{f.(t1 / a)} | #{f.(Enum.min(loads))}-#{f.(Enum.max(loads))} |"
  )
end

Port.close(port)
