# Inference with Gen on Mx: NUTS on the eight-schools model, vectorized importance
# sampling against the scalar form and the exact marginal likelihood.
import Gen

# --- NUTS (Stan's algorithm: multinomial trees, dual averaging, diagonal metric) ---------
# tau > 0 (a half-normal) moves on the log scale its support implies (Gen.Transform).
y = Mx.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], type: :f64)
sigma = Mx.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], type: :f64)

schools = gen fn sigma ->
  mu = trace(:mu, Gen.Dist.normal(0.0, 5.0))
  tau = trace(:tau, Gen.Dist.truncated_normal(0.0, 5.0, 0.0, :infinity))
  z = trace(:z, Gen.Dist.broadcasted_normal(Mx.zeros({8}, type: :f64), 1.0))
  trace(:y, Gen.Dist.broadcasted_normal(Mx.add(mu, Mx.multiply(tau, z)), sigma))
end

{t0, _} = Gen.generate(schools, [sigma], %{y: y}, key: Mx.Random.key(1))
{us, r} =
  :timer.tc(fn ->
    Gen.Inference.NUTS.sample(t0, Gen.select([:mu, :tau, :z]),
      warmup: 500, samples: 500, key: Mx.Random.key(2))
  end)

IO.puts("NUTS, eight schools (non-centered), 500 warmup + 500 draws in #{Float.round(us / 1.0e6, 1)} s:")
r |> Gen.Inference.NUTS.series() |> Enum.take(2) |> Gen.Diagnostics.summary() |> Enum.each(fn row ->
  IO.puts("  #{inspect(row.name)}: mean #{Float.round(row.mean, 2)}  sd #{Float.round(row.sd, 2)}  bulk ESS #{round(row.ess_bulk)}  R-hat #{Float.round(row.rhat, 3)}")
end)
IO.puts("  divergences: #{Enum.count(r.stats, & &1.divergent)}, step size #{Float.round(r.step_size, 3)}")

# --- Vectorized importance sampling: one run of the body for all particles --------------
model = gen fn ->
  mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
  for i <- 0..3, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
  mu
end

obs = %{{:y, 0} => 1.2, {:y, 1} => 2.1, {:y, 2} => 1.7, {:y, 3} => 2.3}
{us_v, {_tr, _lw, lml_v}} = :timer.tc(fn -> Gen.Inference.vimportance_sampling(model, [], obs, 10_000, key: Mx.Random.key(3)) end)
{us_s, {_trs, _lw2, lml_s}} = :timer.tc(fn -> Gen.Inference.importance_sampling(model, [], obs, 1_000, key: Mx.Random.key(3)) end)
# Exact: y ~ N(0, I + 11') for the four observations; log p(y) in closed form.
ys = Map.values(obs)
s = Enum.sum(ys)
exact = -2 * :math.log(2 * :math.pi()) - 0.5 * :math.log(5.0) - 0.5 * (Enum.sum(Enum.map(ys, &(&1 * &1))) - s * s / 5)
IO.puts("\nlog p(y): exact #{Float.round(exact, 4)}; vectorized IS, 10,000 particles #{Float.round(Mx.to_number(lml_v), 4)} " <>
          "in #{Float.round(us_v / 1000, 1)} ms; scalar IS, 1,000 particles #{Float.round(Mx.to_number(lml_s), 4)} in #{Float.round(us_s / 1000, 1)} ms")

