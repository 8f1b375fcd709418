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
    {t, _} =
      Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(gen_key))

    Inference.run(kernel, t,
      samples: 2000,
      burn: 200,
      key: Mx.Random.key(run_key),
      select: &Mx.to_number(&1[:mu])
    )
  end

  test "choice_gradients: the analytic gradient of the normal–normal log joint" do
    {t, _} =
      Gen.generate(normal_model(), [@ys], Gen.Choicemap.put(normal_observations(@ys), :mu, 0.7))

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

  test "hmc, mala and hmc_warmup are runs of the C sampler: the same key gives a direct Sampler.run's result" do
    # mu and a gamma scale (log transform), so the write-back goes through a transform too.
    m =
      gen(fn ys ->
        mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
        s = trace(:s, Gen.Dist.gamma(2.0, rate: 1.0))
        for {_y, i} <- Enum.with_index(ys), do: trace({:y, i}, Gen.Dist.normal(mu, s))
      end)

    obs = Map.new(Enum.with_index(@ys), fn {y, i} -> {{:y, i}, y} end)
    {t, _} = Gen.generate(m, [@ys], Map.merge(obs, %{mu: 0.3, s: 1.2}))
    sel = Gen.select([:mu, :s])
    target = Gen.Inference.Target.new(t, sel)
    spec = Gen.Inference.Target.sampler_target(target)
    values = fn tr -> [Mx.to_number(tr[:mu]), Mx.to_number(tr[:s])] end

    kernels = [
      {&Inference.hmc(&1, sel, step_size: 0.3, n_leapfrog: 4, key: &2),
       [algorithm: :hmc, step_size: 0.3, n_leapfrog: 4]},
      {&Inference.mala(&1, sel, tau: 0.08, key: &2),
       [algorithm: :mala, step_size: :math.sqrt(2 * 0.08)]}
    ]

    for {kernel, opts} <- kernels do
      moved =
        for i <- 1..12 do
          key = Mx.Random.key(300 + i)
          {t2, accepted?} = kernel.(t, key)
          r = Gen.Inference.Sampler.run(spec, [warmup: 0, samples: 1, key: key] ++ opts)
          assert r.draws == [r.last]
          assert accepted? == (r.last != target.q0)
          assert values.(t2) == Gen.Inference.Target.constrain(target, r.last)
          if not accepted?, do: assert(t2 == t)
          accepted?
        end

      # both branches are exercised
      assert true in moved and false in moved, "#{opts[:algorithm]}: #{inspect(moved)}"
    end

    key = Mx.Random.key(320)
    {t3, eps, stats} = Inference.hmc_warmup(t, sel, warmup: 60, n_leapfrog: 3, key: key)

    r =
      Gen.Inference.Sampler.run(spec,
        algorithm: :hmc,
        warmup: 60,
        samples: 0,
        n_leapfrog: 3,
        step_size: 1.0,
        target_accept: 0.8,
        adapt_metric: false,
        key: key
      )

    assert {r.draws, eps} == {[], r.step_size}

    assert stats ==
             Enum.map(r.warmup_stats, &%{step_size: &1.step_size, accept_prob: &1.accept_stat})

    assert values.(t3) == Gen.Inference.Target.constrain(target, r.last)
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
