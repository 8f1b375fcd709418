# SMC (issue 5): the streaming particle filter's steps per second, and log marginal
# likelihood estimates against the exact Kalman value.
#
# 1. Steps per second at n = 100 particles of Gen.Inference.SMC.filter (each particle holds
#    only its latest step) beside Gen.Inference.smc/5 on the same model written with Unfold
#    (each particle's trace holds the whole history), over T = 200 steps (median of
#    round-robin batches) and T = 400 (one run each): the filter's rate does not depend on T.
# 2. log-ML estimates on the linear-Gaussian model of test/gen/smc_test.exs (T = 15) with
#    n = 100 over `keys` keys: the bootstrap filter and SMCP3 with the locally optimal
#    proposal, mean minus the Kalman value and sd over keys.
#
#   mix run bench/smc.exs [batches] [keys]
Code.require_file("bench_helper.exs", __DIR__)
import Gen

{batches, n_keys} =
  case System.argv() do
    [b, k] -> {String.to_integer(b), String.to_integer(k)}
    _ -> {3, 20}
  end

a = 0.9
q = 0.25
r = 0.09

unfold =
  Gen.Combinators.unfold(
    gen fn i, prev ->
      x =
        if i == 0,
          do: trace(:x, Gen.Dist.normal(0.0, 1.0)),
          else: trace(:x, Gen.Dist.normal(Mx.multiply(prev, a), :math.sqrt(q)))

      trace(:y, Gen.Dist.normal(x, :math.sqrt(r)))
      x
    end
  )

init = gen fn -> x = trace(:x, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(x, :math.sqrt(r))); x end

step =
  gen fn _t, prev ->
    x = trace(:x, Gen.Dist.normal(Mx.multiply(prev, a), :math.sqrt(q)))
    trace(:y, Gen.Dist.normal(x, :math.sqrt(r)))
    x
  end

simulate = fn t_len ->
  tr = Gen.simulate(unfold, [t_len, 0.0], key: Mx.Random.key(2024))
  for i <- 0..(t_len - 1), do: Mx.to_number(tr[[i, :y]])
end

kalman = fn ys ->
  {ll, _, _} =
    ys
    |> Enum.with_index()
    |> Enum.reduce({0.0, 0.0, 1.0}, fn {y, t}, {ll, m, p} ->
      {m, p} = if t == 0, do: {m, p}, else: {a * m, a * a * p + q}
      s = p + r
      k = p / s
      {ll - 0.5 * (:math.log(2 * :math.pi() * s) + (y - m) ** 2 / s), m + k * (y - m), (1 - k) * p}
    end)

  ll
end

n = 100
run_filter = fn ys -> Gen.Inference.SMC.filter(init, step, Enum.map(ys, &%{y: &1}), n, key: Mx.Random.key(1)) end

run_smc = fn ys ->
  obs = for {y, i} <- Enum.with_index(ys), do: %{i => %{y: y}}
  Gen.Inference.smc(unfold, &[&1 + 1, 0.0], obs, n, key: Mx.Random.key(1))
end

IO.puts("SMC benchmarks, load #{Bench.load()}")
IO.puts("\n1. steps per second, n = #{n}")

ys200 = simulate.(200)
times = Bench.round_robin([{:filter, fn -> run_filter.(ys200) end}, {:smc, fn -> run_smc.(ys200) end}], 1, batches)
rate = fn ns, t_len -> t_len / (ns / 1.0e9) end
f200 = rate.(Bench.median(times.filter), 200)
s200 = rate.(Bench.median(times.smc), 200)

ys400 = simulate.(400)
:erlang.garbage_collect()
f400 = rate.(Bench.batch_ns(fn -> run_filter.(ys400) end, 1), 400)
:erlang.garbage_collect()
s400 = rate.(Bench.batch_ns(fn -> run_smc.(ys400) end, 1), 400)

IO.puts("  #{Bench.pad("T", 6)}#{Bench.lpad("SMC.filter", 12)}#{Bench.lpad("smc/5 (Unfold)", 16)}#{Bench.lpad("ratio", 8)}")

for {t_len, f, s} <- [{200, f200, s200}, {400, f400, s400}] do
  IO.puts("  #{Bench.pad(t_len, 6)}#{Bench.lpad(Bench.fmt(f), 12)}#{Bench.lpad(Bench.fmt(s), 16)}#{Bench.lpad(:erlang.float_to_binary(f / s, decimals: 2), 8)}")
end

IO.puts("\n2. log ML on the linear-Gaussian model, T = 15, n = #{n}, #{n_keys} keys, load #{Bench.load()}")
ys = simulate.(15)
exact = kalman.(ys)
obs = for {y, i} <- Enum.with_index(ys), do: %{i => %{y: y}}

forward =
  gen fn old, t, obs ->
    {mu, v} = if t == 0, do: {0.0, 1.0}, else: {a * Mx.to_number(old[[t - 1, :x]]), q}
    s2 = 1 / (1 / v + 1 / r)
    trace([t, :x], Gen.Dist.normal(s2 * (mu / v + Mx.to_number(obs[[t, :y]]) / r), :math.sqrt(s2)))
  end

stats = fn f ->
  ls = for s <- 1..n_keys, do: Mx.to_number(elem(f.(Mx.Random.key(500 + s)), 2))
  m = Enum.sum(ls) / n_keys
  {m, :math.sqrt(Enum.sum(Enum.map(ls, &((&1 - m) ** 2))) / (n_keys - 1))}
end

{bm, bsd} = stats.(fn k -> Gen.Inference.smc(unfold, &[&1 + 1, 0.0], obs, n, key: k) end)
{pm, psd} = stats.(fn k -> Gen.Inference.smcp3(unfold, &[&1 + 1, 0.0], obs, n, forward: forward, key: k) end)

IO.puts("  Kalman log p(y) = #{:erlang.float_to_binary(exact, decimals: 4)}")
IO.puts("  #{Bench.pad("method", 22)}#{Bench.lpad("mean - exact", 14)}#{Bench.lpad("sd over keys", 14)}#{Bench.lpad("SE of mean", 12)}")

for {name, m, sd} <- [{"bootstrap smc/5", bm, bsd}, {"SMCP3 optimal K", pm, psd}] do
  IO.puts(
    "  #{Bench.pad(name, 22)}#{Bench.lpad(:erlang.float_to_binary(m - exact, decimals: 4), 14)}#{Bench.lpad(:erlang.float_to_binary(sd, decimals: 4), 14)}#{Bench.lpad(:erlang.float_to_binary(sd / :math.sqrt(n_keys), decimals: 4), 12)}"
  )
end

IO.puts("  sd ratio bootstrap / SMCP3: #{:erlang.float_to_binary(bsd / psd, decimals: 1)}")
