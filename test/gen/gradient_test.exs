defmodule Gen.GradientTest do
  use ExUnit.Case, async: true
  import Gen.ChainCheck
  import Gen
  alias Gen.Inference
  alias Gen.Inference.Gradient

  doctest Gen.Inference.Gradient

  # ---- normal–normal (as in inference_test.exs): mu ~ N(0, 2²), y_i ~ N(mu, 1) ----------

  @ys [0.8, 1.9, 1.1, 2.4, 1.5]
  # Conjugacy: posterior precision 1/4 + 5, mean (Σy)/precision.
  @post_var 1.0 / (1.0 / 4.0 + 5)
  @post_mean Enum.sum([0.8, 1.9, 1.1, 2.4, 1.5]) * (1.0 / (1.0 / 4.0 + 5))

  defp normal_model do
    gen(fn ys ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
      for i <- 0..(length(ys) - 1), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
      mu
    end)
  end

  defp observations(ys),
    do: Gen.choicemap(for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}))

  defp posterior_run(kernel, gen_key, run_key) do
    {t, _} = Gen.generate(normal_model(), [@ys], observations(@ys), key: Mx.Random.key(gen_key))

    Inference.run(kernel, t,
      samples: 2000,
      burn: 200,
      key: Mx.Random.key(run_key),
      select: &Mx.to_number(&1[:mu])
    )
  end

  test "choice_gradients: the analytic gradient of the normal–normal log joint" do
    {t, _} = Gen.generate(normal_model(), [@ys], Gen.Choicemap.put(observations(@ys), :mu, 0.7))
    {lp, g} = Gradient.choice_gradients(t, Gen.select(:mu))
    # d/dmu [log N(mu; 0, 2) + Σ log N(y_i; mu, 1)] = -mu/4 + Σ(y_i - mu).
    mu = 0.7
    expected = -mu / 4 + Enum.sum(Enum.map(@ys, &(&1 - mu)))
    assert abs(Mx.to_number(g[:mu]) - expected) < 1.0e-12
    assert abs(Mx.to_number(lp) - Mx.to_number(Gen.get_score(t))) < 1.0e-12
    # Observed choices are not selected, so they get no gradient.
    refute Gen.Choicemap.has_value?(g, {:y, 0})
  end

  test "mala: normal–normal posterior mean and variance" do
    k = fn t, o -> Inference.mala(t, Gen.select(:mu), [tau: 0.1] ++ o) end
    xs = posterior_run(k, 90, 91)
    assert length(xs) == 2000
    assert_posterior(xs, @post_mean, @post_var)
  end

  test "hmc: normal–normal posterior mean and variance" do
    # ω = √5.25 ≈ 2.29; 4 steps of 0.2 integrate ≈ 1.8 rad, near a quarter period (draws nearly independent).
    k = fn t, o -> Inference.hmc(t, Gen.select(:mu), [step_size: 0.2, n_leapfrog: 4] ++ o) end
    xs = posterior_run(k, 92, 93)
    assert_posterior(xs, @post_mean, @post_var)
  end

  test "same key, same move; observed choices never move; errors name the option" do
    {t, _} = Gen.generate(normal_model(), [@ys], observations(@ys), key: Mx.Random.key(94))

    {a, _} =
      Inference.hmc(t, Gen.select(:mu), step_size: 0.2, n_leapfrog: 3, key: Mx.Random.key(95))

    {b, _} =
      Inference.hmc(t, Gen.select(:mu), step_size: 0.2, n_leapfrog: 3, key: Mx.Random.key(95))

    assert Mx.to_number(a[:mu]) == Mx.to_number(b[:mu])
    assert Mx.to_number(a[{:y, 2}]) == 1.1

    assert_raise ArgumentError, ~r/tau: must be a positive number/, fn ->
      Inference.mala(t, Gen.select(:mu), [])
    end

    assert_raise ArgumentError, ~r/n_leapfrog: must be a positive integer/, fn ->
      Inference.hmc(t, Gen.select(:mu), step_size: 0.1, n_leapfrog: 0)
    end

    assert_raise ArgumentError, ~r/selects no choice/, fn ->
      Inference.mala(t, Gen.select(:nope), tau: 0.1)
    end

    m = gen(fn -> trace(:b, Gen.Dist.bernoulli(0.5)) end)
    tb = Gen.simulate(m, [], key: Mx.Random.key(96))

    assert_raise ArgumentError, ~r/not a floating-point array; select only continuous/, fn ->
      Inference.hmc(tb, Gen.select(:b), step_size: 0.1)
    end
  end
end
