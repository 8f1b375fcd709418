defmodule Gen.InvalidParamsTest do
  # Issue 10 item 6: one rule for invalid parameters (Gen.Dist's moduledoc). A constant one is
  # an error at the call; one computed from other choices scores -Inf, and an Mx.Error while a
  # sampler evaluates the density at a proposal rejects the move: MH, HMC, MALA and NUTS go on,
  # and their draws still have the right posterior (exact references by quadrature).
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers

  # ---- constant parameters: an error at the call ------------------------------------------

  test "a constant invalid parameter raises at the call, naming the distribution and parameter" do
    assert_raise ArgumentError, ~r/dirichlet: alpha must be > 0, got \[-1.0, 1.0\]/, fn ->
      Gen.Dist.dirichlet(Mx.tensor([-1.0, 1.0]))
    end

    assert_raise ArgumentError, ~r/normal: sigma must be positive, got \[0.5, -1.0\]/, fn ->
      Gen.Dist.normal(0.0, Mx.tensor([0.5, -1.0], type: :f64))
    end

    assert_raise ArgumentError,
                 ~r/multivariate_normal: cov must be symmetric positive definite/,
                 fn ->
                   Gen.Dist.multivariate_normal([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
                 end

    # Inside a model a number or a list is a constant: the first GFI call that reaches it raises.
    m = gen(fn -> trace(:x, Gen.Dist.gamma(2.0, scale: [-1.0])) end)

    assert_raise ArgumentError, ~r/gamma: scale must be positive/, fn ->
      Gen.simulate(m, [], key: Mx.Random.key(0))
    end

    m2 = gen(fn -> trace(:x, Gen.Dist.normal(0.0, -2.0)) end)

    assert_raise ArgumentError, ~r/normal: sigma must be positive, got -2.0/, fn ->
      Gen.generate(m2, [], %{x: 0.0})
    end

    # An array inside a body may hold proposed values, evaluated or not: it scores -Inf instead.
    m3 = gen(fn -> trace(:x, Gen.Dist.normal(0.0, Mx.tensor([-1.0], type: :f64))) end)
    {_t, w} = Gen.generate(m3, [], %{x: [0.0]})
    assert Mx.to_flat_list(w) == [:neg_infinity]
  end

  # ---- computed parameters: -Inf, the move is rejected -------------------------------------

  # s ~ N(0.5, 1) is the rate of exponential observations: where a move takes it to 0 or below
  # the density is -Inf (posterior ∝ N(s; 0.5, 1) s² e^(-1.5 s) on s > 0).
  @zs [0.4, 1.1]

  defp rate_model do
    gen(fn zs ->
      s = trace(:s, Gen.Dist.normal(0.5, 1.0))
      for {_z, i} <- Enum.with_index(zs), do: trace({:z, i}, Gen.Dist.exponential(s))
      s
    end)
  end

  defp rate_trace(s0) do
    obs = for {z, i} <- Enum.with_index(@zs), into: %{}, do: {{:z, i}, z}
    {t, _} = Gen.generate(rate_model(), [@zs], Map.put(obs, :s, s0))
    t
  end

  # Posterior mean and variance on s > 0 by Simpson's rule on [0, 10] (the mass beyond is < 1e-12).
  defp rate_posterior do
    log_p = fn s -> ln_normal(s, 0.5, 1.0) + Enum.sum(Enum.map(@zs, &(:math.log(s) - s * &1))) end
    moments(log_p, 1.0e-12, 10.0)
  end

  defp moments(log_p, a, b) do
    n = 20_000
    h = (b - a) / n
    pts = for i <- 0..n, do: a + i * h
    lps = Enum.map(pts, log_p)
    top = Enum.max(lps)

    w =
      for {lp, i} <- Enum.with_index(lps),
          do:
            :math.exp(lp - top) * if(i in [0, n], do: 1, else: if(rem(i, 2) == 1, do: 4, else: 2))

    z = Enum.sum(w)
    mean = Enum.sum(Enum.zip_with(w, pts, &(&1 * &2))) / z
    var = Enum.sum(Enum.zip_with(w, pts, &(&1 * (&2 - mean) * (&2 - mean)))) / z
    {mean, var}
  end

  test "a parameter computed from a choice scores -Inf where it is invalid (no raise)" do
    t = rate_trace(0.5)
    {t2, w, _, _} = Gen.update(t, %{s: -0.5})
    assert num(w) == :neg_infinity
    assert num(Gen.get_score(t2)) == :neg_infinity
  end

  test "MH: proposals that take the scale below 0 are rejected and the chain keeps the posterior" do
    t = rate_trace(0.5)
    kernel = Gen.Inference.Kernel.mh(Gen.select(:s))

    draws =
      Gen.Inference.run(kernel, t,
        samples: 4000,
        burn: 100,
        key: Mx.Random.key(3),
        select: &num(&1[:s])
      )

    assert Enum.all?(draws, &(&1 > 0))
    {mean, var} = rate_posterior()
    Gen.ChainCheck.assert_posterior(draws, mean, var)
  end

  test "NUTS without transforms: steps below 0 are divergences, the chain goes on with the posterior" do
    r =
      Gen.Inference.NUTS.sample(rate_trace(0.5), Gen.select(:s),
        warmup: 300,
        samples: 1500,
        key: Mx.Random.key(4)
      )

    assert Enum.any?(r.warmup_stats ++ r.stats, & &1.divergent)
    draws = r.draws[[:s]]
    assert Enum.all?(draws, &(&1 > 0))
    {mean, var} = rate_posterior()
    Gen.ChainCheck.assert_posterior(draws, mean, var)
  end

  # ---- an Mx.Error at a proposal: rejected, as Stan rejects it ---------------------------------

  # r ~ U(-1.5, 1.5) is the correlation of 2-d normal observations: for |r| >= 1 the covariance
  # is not positive definite and its Cholesky factor raises Mx.Error when evaluated.
  @pts [[1.0, 0.4], [-0.5, -0.9], [0.3, -0.2], [1.5, 1.6], [-1.2, 0.1], [0.6, 0.8]]

  defp corr_model do
    gen(fn ->
      r = trace(:r, Gen.Dist.uniform(-1.5, 1.5))
      off = Mx.multiply(r, Mx.tensor([[0.0, 1.0], [1.0, 0.0]], type: :f64))
      cov = Mx.add(Mx.eye(2, type: :f64), off)

      for i <- 0..(length(@pts) - 1),
          do: trace({:y, i}, Gen.Dist.multivariate_normal([0.0, 0.0], cov))

      r
    end)
  end

  defp corr_trace(r0) do
    obs = for {p, i} <- Enum.with_index(@pts), into: %{}, do: {{:y, i}, Mx.tensor(p, type: :f64)}
    {t, _} = Gen.generate(corr_model(), [], Map.put(obs, :r, r0))
    t
  end

  # log N2(y; 0, [[1, r], [r, 1]]) = -log 2π - log(1 - r²)/2 - (y1² - 2 r y1 y2 + y2²) / (2 (1 - r²)).
  defp corr_posterior do
    log_p = fn r ->
      d = 1 - r * r

      Enum.sum(
        for [a, b] <- @pts,
            do:
              -:math.log(2 * :math.pi()) - :math.log(d) / 2 -
                (a * a - 2 * r * a * b + b * b) / (2 * d)
      )
    end

    moments(log_p, -1 + 1.0e-9, 1 - 1.0e-9)
  end

  test "the covariance that is not positive definite raises Mx.Error when evaluated (what samplers must survive)" do
    t = corr_trace(0.5)

    assert_raise Mx.Error, ~r/cholesky/, fn ->
      Gen.update(t, %{r: 1.2}) |> elem(1) |> Mx.to_number()
    end
  end

  test "MH: proposals whose Cholesky fails are rejected; the chain keeps the posterior" do
    kernel = Gen.Inference.Kernel.mh(Gen.select(:r))

    draws =
      Gen.Inference.run(kernel, corr_trace(0.5),
        samples: 4000,
        burn: 100,
        key: Mx.Random.key(5),
        select: &num(&1[:r])
      )

    assert Enum.all?(draws, &(abs(&1) < 1))
    {mean, var} = corr_posterior()
    Gen.ChainCheck.assert_posterior(draws, mean, var)
  end

  test "NUTS: a failed Cholesky at a leapfrog step is a divergence; the chain keeps the posterior" do
    r =
      Gen.Inference.NUTS.sample(corr_trace(0.5), Gen.select(:r),
        warmup: 300,
        samples: 1500,
        key: Mx.Random.key(6)
      )

    assert Enum.any?(r.warmup_stats ++ r.stats, & &1.divergent)
    draws = r.draws[[:r]]
    assert Enum.all?(draws, &(abs(&1) < 1))
    {mean, var} = corr_posterior()
    Gen.ChainCheck.assert_posterior(draws, mean, var)
  end

  @tag :slow
  test "HMC and MALA: steps into a failing Cholesky are rejected; the chains keep the posterior" do
    {mean, var} = corr_posterior()
    sel = Gen.select(:r)

    for {name, step} <- [
          {"hmc",
           &Gen.Inference.hmc(&1, sel, Keyword.merge([step_size: 0.15, n_leapfrog: 8], &2))},
          {"mala", &Gen.Inference.mala(&1, sel, Keyword.merge([tau: 0.02], &2))}
        ] do
      draws =
        Gen.Inference.run(step, corr_trace(0.9),
          samples: 3000,
          burn: 100,
          key: Mx.Random.key(7),
          select: &num(&1[:r])
        )

      assert Enum.all?(draws, &(abs(&1) < 1)), name
      Gen.ChainCheck.assert_posterior(draws, mean, var)
    end
  end
end
