# quantized_matmul (issue 13): a 4096 x 4096 f32 weight quantized to 4 bits (group 64, MLX's
# layout), x {batch, 4096} against it as nn.QuantizedLinear does (transpose: true), for batch 1
# and 32: Mx.quantized_matmul vs Mx.dequantize + Mx.matmul vs the f32 matmul on the unquantized
# weight, cases alternating batch by batch (round-robin), medians, the load beside each figure.
#
#   mix run bench/quant.exs [calls per batch] [batches]
Code.require_file("bench_helper.exs", __DIR__)

[n, batches] =
  case System.argv() do
    [n, b] -> Enum.map([n, b], &String.to_integer/1)
    [] -> [5, 7]
  end

k = 4096
w = Mx.Random.normal(Mx.Random.key(1), shape: {k, k}) |> Mx.eval()
wt = Mx.transpose(w) |> Mx.eval()
{q, s, b} = Mx.quantize(w, group_size: 64, bits: 4)
[q, s, b] = Enum.map([q, s, b], &Mx.eval/1)

IO.puts(
  "quantized_matmul, 4096 x 4096 weight, 4 bits, group 64, f32; ms per call, median of #{batches} batches x #{n} calls"
)

IO.puts("| batch | quantized_matmul ms | dequantize + matmul ms | f32 matmul ms | load (1 min) |")
IO.puts("|---:|---:|---:|---:|---:|")

for m <- [1, 32] do
  x = Mx.Random.normal(Mx.Random.key(2), shape: {m, k}) |> Mx.eval()

  cases = [
    fn -> Mx.quantized_matmul(x, q, s, b, group_size: 64, bits: 4) |> Mx.eval() end,
    fn ->
      Mx.matmul(x, Mx.transpose(Mx.dequantize(q, s, b, group_size: 64, bits: 4))) |> Mx.eval()
    end,
    fn -> Mx.matmul(x, wt) |> Mx.eval() end
  ]

  Enum.each(cases, &Bench.batch_ns(&1, 1))

  {times, loads} =
    Enum.reduce(1..batches, {List.duplicate([], 3), []}, fn _, {ts, l} ->
      :erlang.garbage_collect()
      ts = Enum.zip_with(cases, ts, fn f, t -> [Bench.batch_ns(f, n) | t] end)
      {ts, [String.to_float(Bench.load()) | l]}
    end)

  [a, c, d] = Enum.map(times, &(Bench.median(&1) / 1.0e6))
  f = &:erlang.float_to_binary(&1, decimals: 2)

  IO.puts(
    "| #{m} | #{f.(a)} | #{f.(c)} | #{f.(d)} | #{f.(Enum.min(loads))}-#{f.(Enum.max(loads))} |"
  )
end
