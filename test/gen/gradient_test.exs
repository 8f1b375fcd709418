defmodule Gen.GradientTest do
  use ExUnit.Case, async: true
  import Gen.ChainCheck
  import Gen
  alias Gen.Inference
  alias Gen.Inference.Gradient

  doctest Gen.Inference.Gradient

  # ---- normal–normal (as in inference_test.exs): mu ~ N(0, 2²), y_i ~ N(mu, 1) ----------

  # The normal–normal model mu ~ N(0, 2²), y_i ~ N(mu, 1) and its exact posterior: test/support/chain_check.ex.
  @ys Gen.ChainCheck.normal_ys()
  @post_var Gen.ChainCheck.normal_posterior().var
  @post_mean Gen.ChainCheck.normal_posterior().mean

  defp posterior_run(kernel, gen_key, run_key) do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(gen_key))

    Inference.run(kernel, t,
      samples: 2000,
      burn: 200,
      key: Mx.Random.key(run_key),
      select: &Mx.to_number(&1[:mu])
    )
  end

  test "choice_gradients: the analytic gradient of the normal–normal log joint" do
    {t, _} = Gen.generate(normal_model(), [@ys], Gen.Choicemap.put(normal_observations(@ys), :mu, 0.7))
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
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(94))

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
