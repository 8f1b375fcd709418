# quantized_matmul (issue 13): a 4096 x 4096 f32 weight quantized to 4 and to 8 bits (group 64,
# MLX's layout), x {batch, 4096} against it as nn.QuantizedLinear does (transpose: true), for
# decoding batches (1-8 rows: the direct loop) and prefill batches (32-512 rows): Mx.quantized_matmul
# vs the f32 Mx.matmul (OpenBLAS) on the unquantized weight, the two alternating batch by batch,
# medians, the ratio f32 / quantized (> 1: quantized is faster), the load beside each figure.
#
#   mix run bench/quant.exs [calls per batch] [batches] [rows,rows,...]
Code.require_file("bench_helper.exs", __DIR__)

{n, batches, rows} =
  case System.argv() do
    [n, b, r] ->
      {String.to_integer(n), String.to_integer(b),
       Enum.map(String.split(r, ","), &String.to_integer/1)}

    [n, b] ->
      {String.to_integer(n), String.to_integer(b), [1, 4, 8, 32, 128, 512]}

    [] ->
      {5, 7, [1, 4, 8, 32, 128, 512]}
  end

k = 4096
w = Mx.Random.normal(Mx.Random.key(1), shape: {k, k}) |> Mx.eval()
wt = Mx.transpose(w) |> Mx.eval()

IO.puts(
  "quantized_matmul vs f32 matmul, 4096 x 4096 weight, group 64, f32; ms per call, median of #{batches} batches x #{n} calls"
)

IO.puts("| bits | batch | quantized_matmul ms | f32 matmul ms | f32 / quantized | load (1 min) |")
IO.puts("|---:|---:|---:|---:|---:|---:|")

for bits <- [4, 8], m <- rows do
  {q, s, b} = Mx.quantize(w, group_size: 64, bits: bits)
  [q, s, b] = Enum.map([q, s, b], &Mx.eval/1)
  x = Mx.Random.normal(Mx.Random.key(2), shape: {m, k}) |> Mx.eval()

  cases = [
    fn -> Mx.quantized_matmul(x, q, s, b, group_size: 64, bits: bits) |> Mx.eval() end,
    fn -> Mx.matmul(x, wt) |> Mx.eval() end
  ]

  Enum.each(cases, &Bench.batch_ns(&1, 1))

  {times, loads} =
    Enum.reduce(1..batches, {List.duplicate([], 2), []}, fn _, {ts, l} ->
      :erlang.garbage_collect()
      ts = Enum.zip_with(cases, ts, fn f, t -> [Bench.batch_ns(f, n) | t] end)
      {ts, [String.to_float(Bench.load()) | l]}
    end)

  [a, d] = Enum.map(times, &(Bench.median(&1) / 1.0e6))
  f = &:erlang.float_to_binary(&1, decimals: 2)

  IO.puts(
    "| #{bits} | #{m} | #{f.(a)} | #{f.(d)} | #{f.(d / a)} | #{f.(Enum.min(loads))}-#{f.(Enum.max(loads))} |"
  )
end
