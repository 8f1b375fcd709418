defmodule Gen.SBCTest do
  use ExUnit.Case, async: true
  import Gen
  alias Gen.Inference
  alias Gen.Inference.NUTS

  # Simulation-based calibration of MH, HMC and NUTS on one small model: a two-coefficient
  # regression a ~ N(0, 1), b ~ N(0, 1), y_i ~ N(a + b·x_i, 1) at x = (−1, 0, 1, 2).
  #
  # M = 200 replications, L = 19 kept draws: ranks take 20 values, binned in 10 bins of 2,
  # 20 expected per bin (enough for Pearson's chi-square). The 9-dof chi-square quantile at
  # 1 − 1e-3 is 27.877 (scipy.stats.chi2.ppf(0.999, 9)). With a fixed key the test is
  # deterministic; 6 tests at α = 1e-3 would all pass by chance with probability 0.994.
  # Thinning makes the kept draws nearly independent (the posterior sd is ≈ 0.5 and 0.4):
  # MH regenerating one coefficient from the prior accepts about 1/3 of proposals, so keep one
  # sweep in 8; HMC with 5 steps of 0.3 (≈ a quarter period) and NUTS keep every other draw.
  @xs [-1.0, 0.0, 1.0, 2.0]
  @m 200
  @l 19
  @crit 27.877
  @moduletag timeout: 900_000

  defp model do
    gen(fn xs ->
      a = trace(:a, Gen.Dist.normal(0.0, 1.0))
      b = trace(:b, Gen.Dist.normal(0.0, 1.0))

      for {x, i} <- Enum.with_index(xs),
          do: trace({:y, i}, Gen.Dist.normal(Mx.add(a, Mx.multiply(b, x)), 1.0))
    end)
  end

  defp simulate(key) do
    t = Gen.simulate(model(), [@xs], key: key)
    cm = Gen.get_choices(t)
    theta = %{a: Mx.to_number(cm[:a]), b: Mx.to_number(cm[:b])}
    obs = Gen.choicemap(for i <- 0..(length(@xs) - 1), into: %{}, do: {{:y, i}, cm[{:y, i}]})
    {theta, obs}
  end

  # A fresh start from the prior (not the simulated θ), burn-in, then L draws thinned.
  defp run_kernel(kernel, obs, key, burn, thin) do
    [k0, k1] = key |> Mx.Random.split() |> then(&[&1[0], &1[1]])
    {t, _} = Gen.generate(model(), [@xs], obs, key: k0)
    select = fn t -> %{a: Mx.to_number(t[:a]), b: Mx.to_number(t[:b])} end
    Inference.run(kernel, t, samples: @l, burn: burn, thin: thin, key: k1, select: select)
  end

  defp assert_uniform(ranks, what) do
    for {name, rs} <- ranks do
      chi2 = Gen.SBC.chi_square(rs, @l, 10)

      assert chi2 < @crit,
             "#{what}: ranks of #{name} not uniform, chi-square #{chi2} >= #{@crit}: #{inspect(Enum.frequencies(rs))}"
    end
  end

  @tag :slow
  test "SBC: MH (regenerate each coefficient from its prior)" do
    kernel =
      Inference.Kernel.cycle([
        Inference.Kernel.mh(Gen.select(:a)),
        Inference.Kernel.mh(Gen.select(:b))
      ])

    post = fn obs, key -> run_kernel(kernel, obs, key, 50, 8) end
    assert_uniform(Gen.SBC.ranks(&simulate/1, post, @m, @l, Mx.Random.key(500)), "MH")
  end

  @tag :slow
  test "SBC: HMC" do
    kernel = fn t, o ->
      Inference.hmc(t, Gen.select([:a, :b]), [step_size: 0.3, n_leapfrog: 5] ++ o)
    end

    post = fn obs, key -> run_kernel(kernel, obs, key, 20, 2) end
    assert_uniform(Gen.SBC.ranks(&simulate/1, post, @m, @l, Mx.Random.key(501)), "HMC")
  end

  @tag :slow
  test "SBC: NUTS with warmup adaptation" do
    post = fn obs, key ->
      [k0, k1] = key |> Mx.Random.split() |> then(&[&1[0], &1[1]])
      {t, _} = Gen.generate(model(), [@xs], obs, key: k0)
      r = NUTS.sample(t, Gen.select([:a, :b]), warmup: 100, samples: 2 * @l, key: k1)

      r.draws
      |> then(&Enum.zip(&1[[:a]], &1[[:b]]))
      |> Enum.take_every(2)
      |> Enum.map(fn {a, b} -> %{a: a, b: b} end)
    end

    assert_uniform(Gen.SBC.ranks(&simulate/1, post, @m, @l, Mx.Random.key(502)), "NUTS")
  end

  # A constrained model with no transforms: given, NUTS moves sigma on the log scale and p on the
  # logit scale (Gen.Transform), with their log-Jacobians. sigma ~ Gamma(2, 1), y_i ~ N(0, sigma)
  # at four sites; p ~ Beta(2, 2), five Bernoulli(p) flips.
  defp constrained_model do
    gen(fn ->
      sigma = trace(:sigma, Gen.Dist.gamma(2.0, rate: 1.0))
      for i <- 0..3, do: trace({:y, i}, Gen.Dist.normal(0.0, sigma))
      p = trace(:p, Gen.Dist.beta(2.0, 2.0))
      for j <- 0..4, do: trace({:b, j}, Gen.Dist.bernoulli(p))
    end)
  end

  @tag :slow
  test "SBC: NUTS on a gamma scale and a beta probability with automatic transforms" do
    sim = fn key ->
      cm = Gen.get_choices(Gen.simulate(constrained_model(), [], key: key))

      obs =
        for {path, v} <- cm,
            path not in [[:sigma], [:p]],
            reduce: Gen.Choicemap.new(),
            do: (acc -> Gen.Choicemap.put(acc, path, v))

      {%{sigma: Mx.to_number(cm[:sigma]), p: Mx.to_number(cm[:p])}, obs}
    end

    post = fn obs, key ->
      [k0, k1] = key |> Mx.Random.split() |> then(&[&1[0], &1[1]])
      {t, _} = Gen.generate(constrained_model(), [], obs, key: k0)
      r = NUTS.sample(t, Gen.select([:sigma, :p]), warmup: 100, samples: 2 * @l, key: k1)
      assert r.transforms == %{[:sigma] => :log, [:p] => :logit}

      Enum.zip(r.draws[[:sigma]], r.draws[[:p]])
      |> Enum.take_every(2)
      |> Enum.map(fn {s, p} -> %{sigma: s, p: p} end)
    end

    # Half the replications (CI time): M = 100 in 5 bins of 4 ranks, 20 expected per bin; the 4-dof
    # chi-square quantile at 1 − 1e-3 is 18.467 (scipy.stats.chi2.ppf(0.999, 4)).
    for {name, rs} <- Gen.SBC.ranks(sim, post, 100, @l, Mx.Random.key(504)) do
      chi2 = Gen.SBC.chi_square(rs, @l, 5)

      assert chi2 < 18.467,
             "ranks of #{name} not uniform, chi-square #{chi2}: #{inspect(Enum.frequencies(rs))}"
    end
  end

  test "the chi-square check rejects a miscalibrated sampler (posterior too narrow)" do
    # Sanity of the test itself: draws from N(mean, (sd/2)²) instead of N(mean, sd²) push the
    # prior draw's rank to the ends. Exact conjugate posterior of a with b fixed at its true value.
    sim = fn key ->
      t = Gen.simulate(model(), [@xs], key: key)
      cm = Gen.get_choices(t)
      b = Mx.to_number(cm[:b])
      ys = for i <- 0..3, do: Mx.to_number(cm[{:y, i}])
      {%{a: Mx.to_number(cm[:a])}, {b, ys}}
    end

    post = fn {b, ys}, key ->
      prec = 1 + length(ys)
      mean = Enum.sum(Enum.zip_with(ys, @xs, fn y, x -> y - b * x end)) / prec
      zs = Mx.Random.normal(key, shape: {@l}, type: :f64) |> Mx.to_flat_list()
      Enum.map(zs, &%{a: mean + &1 * 0.5 / :math.sqrt(prec)})
    end

    ranks = Gen.SBC.ranks(sim, post, @m, @l, Mx.Random.key(503))
    assert Gen.SBC.chi_square(ranks.a, @l, 10) > @crit
  end
end
