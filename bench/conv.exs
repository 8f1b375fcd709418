# Conv2d forward (issue 13's target: >= 1.0x PyTorch): Mx.conv (im2col + OpenBLAS sgemm on engine
# threads) against torch.nn.functional.conv2d (oneDNN) in the same run, batches alternating
# (a persistent /usr/bin/python3 process answers torch's batches). f32, padding :same.
#
#   mix run bench/conv.exs [calls per batch] [batches] [torch threads]
Code.require_file("bench_helper.exs", __DIR__)

[n, batches, threads] =
  case System.argv() do
    [n, b, t] -> Enum.map([n, b, t], &String.to_integer/1)
    [] -> [10, 9, 2]
  end

port = Port.open({:spawn_executable, "/usr/bin/python3"}, [:binary, {:line, 256}, args: [Path.join(__DIR__, "conv_torch.py")]])

torch_batch = fn {nb, c, h, w, o, k}, reps ->
  Port.command(port, Enum.join([nb, c, h, w, o, k, threads, reps], " ") <> "\n")

  receive do
    {^port, {:data, {:eol, line}}} -> String.to_float(line)
  after
    120_000 -> raise "torch did not answer"
  end
end

shapes = [{8, 64, 32, 32, 64, 3}, {8, 3, 32, 32, 64, 3}, {8, 64, 32, 32, 64, 1}, {1, 128, 56, 56, 128, 3}]

IO.puts("conv2d forward, f32, padding :same; ms per call, median of #{batches} batches x #{n} calls; torch threads #{threads}")
IO.puts("N C H W -> O, k | Mx ms | torch ms | torch / Mx | load")

for {nb, c, h, w, o, k} = s <- shapes do
  key = Mx.Random.key(1)
  x = Mx.Random.normal(key, shape: {nb, c, h, w})
  kern = Mx.Random.normal(Mx.Random.key(2), shape: {o, c, k, k})
  mx_call = fn -> Mx.conv(x, kern, padding: :same) |> Mx.eval() end
  Bench.batch_ns(mx_call, 2)
  torch_batch.(s, 2)

  {mx, th} =
    Enum.reduce(1..batches, {[], []}, fn _, {m, t} ->
      :erlang.garbage_collect()
      {[Bench.batch_ns(mx_call, n) | m], [torch_batch.(s, n) | t]}
    end)

  {mm, tm} = {Bench.median(mx) / 1.0e6, Bench.median(th) / 1.0e6}
  IO.puts("#{nb} #{c} #{h} #{w} -> #{o}, #{k} | #{:erlang.float_to_binary(mm, decimals: 2)} | #{:erlang.float_to_binary(tm, decimals: 2)} | #{:erlang.float_to_binary(tm / mm, decimals: 2)} | #{Bench.load()}")
end

Port.close(port)
