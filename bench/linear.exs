# Mx.NN.Linear.apply (x @ transpose(w), the weight in MLX's {out, in} layout) against the two
# ways it could run: the transpose materialized before the matmul (what it did before the matmul
# read a transposed operand with a BLAS flag; forced here by a reshape between the two) and a
# transpose stored once (what Mx.NN.Llama held before). w {704, 256} as a Llama MLP projection;
# x with 1 and 128 rows. Rounds alternate the three; µs per evaluated call, medians of rounds.
# Usage: mix run bench/linear.exs [ROUNDS]
Code.require_file("bench_helper.exs", __DIR__)

rounds = System.argv() |> List.first("15") |> String.to_integer()
key = Mx.Random.key(0)
w = Mx.Random.normal(key, shape: {704, 256}) |> Mx.eval()
wt = w |> Mx.transpose() |> Mx.eval()
p = %{weight: w}

for rows <- [1, 128] do
  x = Mx.Random.normal(Mx.Random.key(rows), shape: {rows, 256}) |> Mx.eval()

  cases = [
    {"Linear.apply", fn -> Mx.NN.Linear.apply(p, x) |> Mx.eval() end},
    {"matmul(x, transpose(w))", fn -> Mx.matmul(x, Mx.transpose(w)) |> Mx.eval() end},
    {"copied transpose",
     fn -> Mx.matmul(x, w |> Mx.transpose() |> Mx.reshape({256, 704})) |> Mx.eval() end},
    {"stored transpose", fn -> Mx.matmul(x, wt) |> Mx.eval() end}
  ]

  n = if rows == 1, do: 200, else: 20
  times = Bench.round_robin(cases, n, rounds)
  med = fn name -> Bench.median(times[name]) / 1000 end

  IO.puts(
    "rows #{rows}: " <>
      Enum.map_join(cases, ", ", fn {name, _} -> "#{name} #{Bench.fmt(med.(name))} µs" end) <>
      "; copied/apply #{Float.round(med.("copied transpose") / med.("Linear.apply"), 2)}, " <>
      "apply/stored #{Float.round(med.("Linear.apply") / med.("stored transpose"), 2)} (load #{Bench.load()})"
  )
end
