defmodule Gen.ConjugateTest do
  # Every algorithm against a posterior known in closed form (test/support/conjugate.ex).
  # Tolerances: 4 Monte-Carlo standard errors, from batch means for chains
  # (Gen.ChainCheck.assert_posterior/3) and from Kish's ESS for importance sampling.
  use ExUnit.Case, async: true
  import Gen
  import Gen.ChainCheck
  import Gen.Conjugate
  alias Gen.Inference
  alias Gen.Inference.Kernel

  # ---- gamma–poisson: lambda ~ Gamma(3, rate 2), c_i ~ Poisson(lambda) ---------------------

  @counts [2, 4, 3, 5, 1, 3]

  defp gp_model do
    gen(fn n ->
      lambda = trace(:lambda, Gen.Dist.gamma(3.0, rate: 2.0))
      for i <- 0..(n - 1), do: trace({:c, i}, Gen.Dist.poisson(lambda))
      lambda
    end)
  end

  defp gp_trace(seed) do
    obs = for {c, i} <- Enum.with_index(@counts), into: %{}, do: {{:c, i}, c}
    {t, _} = Gen.generate(gp_model(), [length(@counts)], Map.put(obs, :lambda, 2.0), key: Mx.Random.key(seed))
    t
  end

  defp gp_chain(kernel, seed, samples \\ 2000) do
    Inference.run(kernel, gp_trace(seed),
      samples: samples,
      burn: 100,
      key: Mx.Random.key(seed + 1),
      select: &Mx.to_number(&1[:lambda])
    )
  end

  describe "gamma–poisson (posterior Gamma(21, 8))" do
    setup do: %{exact: gamma_poisson(3.0, 2.0, @counts)}

    test "importance sampling from the prior", %{exact: ex} do
      obs = for {c, i} <- Enum.with_index(@counts), into: %{}, do: {{:c, i}, c}

      {traces, lnw, _} =
        Inference.importance_sampling(gp_model(), [length(@counts)], obs, 3000, key: Mx.Random.key(1))

      w = lnw |> Mx.exp() |> Mx.to_list()
      # Gamma(a, ·) has kurtosis 3 + 6/a.
      assert_weighted(w, Enum.map(traces, &Mx.to_number(&1[:lambda])), ex.mean, ex.var, 3 + 6 / ex.shape)
    end

    test "MH: regenerate from the prior, and a Gaussian random-walk proposal", %{exact: ex} do
      assert_posterior(gp_chain(Kernel.mh(Gen.select(:lambda)), 10), ex.mean, ex.var)
      q = gen(fn t, s -> trace(:lambda, Gen.Dist.normal(t[:lambda], s)) end)
      assert_posterior(gp_chain(Kernel.mh(q, [0.8]), 20), ex.mean, ex.var)
    end

    test "MALA and HMC", %{exact: ex} do
      sel = Gen.select(:lambda)
      assert_posterior(gp_chain(&Inference.mala(&1, sel, Keyword.put(&2, :tau, 0.15)), 30), ex.mean, ex.var)

      # lambda moves on the log scale (Gen.Transform), where the posterior sd is ≈ 1/√21 ≈ 0.22:
      # 5 steps of 0.07 are about a quarter period.
      hmc = &Inference.hmc(&1, sel, Keyword.merge(&2, step_size: 0.07, n_leapfrog: 5))
      assert_posterior(gp_chain(hmc, 40, 1000), ex.mean, ex.var)
    end

    test "involutive MH: multiplicative scale move (x, u) -> (x·u, 1/u) with u ~ LogNormal(0, 0.4)", %{exact: ex} do
      q = gen(fn _t, s -> trace(:u, Gen.Dist.log_normal(0.0, s)) end)
      inv = fn m, a, _ -> {%{lambda: Mx.multiply(m[:lambda], a[:u])}, %{u: Mx.reciprocal(a[:u])}} end
      assert_posterior(gp_chain(Kernel.involutive_mh(q, [0.4], inv), 50), ex.mean, ex.var)
    end
  end

  # ---- Bayesian linear regression: w ~ N(m0, diag(v0)), y ~ N(X w, σ² I) -------------------

  @xs [
    [1.0, -1.2, 0.4],
    [1.0, -0.7, -1.1],
    [1.0, -0.3, 0.9],
    [1.0, 0.1, -0.2],
    [1.0, 0.5, 1.3],
    [1.0, 0.8, -0.6],
    [1.0, 1.1, 0.2],
    [1.0, 1.6, -1.4]
  ]
  @ys [2.31, -0.74, 2.95, -0.22, 2.48, -1.21, -0.55, -3.62]
  @m0 [0.0, 0.5, 1.0]
  @v0 [1.0, 2.0, 4.0]
  @sigma 0.5

  # One scalar choice per coefficient, so regenerate and the kernels can move them one at a time.
  defp lr_model do
    gen(fn xs ->
      w = for j <- 0..2, do: trace({:w, j}, Gen.Dist.normal(Enum.at(@m0, j), :math.sqrt(Enum.at(@v0, j))))

      for {x, i} <- Enum.with_index(xs) do
        mean = Enum.zip(w, x) |> Enum.map(fn {wj, xj} -> Mx.multiply(wj, xj) end) |> Enum.reduce(&Mx.add/2)
        trace({:y, i}, Gen.Dist.normal(mean, @sigma))
      end
    end)
  end

  # The same model with the coefficients as one vector choice, for elliptical slice.
  defp lr_vector_model do
    gen(fn xs ->
      w = trace(:w, Gen.Dist.broadcasted_normal(Mx.tensor(@m0, type: :f64), Mx.sqrt(Mx.tensor(@v0, type: :f64))))
      x = Mx.tensor(xs, type: :f64)
      mean = Mx.matmul(x, w)
      for i <- 0..(length(xs) - 1), do: trace({:y, i}, Gen.Dist.normal(mean[i], @sigma))
    end)
  end

  defp lr_obs, do: for({y, i} <- Enum.with_index(@ys), into: %{}, do: {{:y, i}, y})
  defp coefs(t), do: for(j <- 0..2, do: Mx.to_number(t[{:w, j}]))
  defp lr_sel, do: Gen.select(for j <- 0..2, do: {:w, j})

  defp lr_chain(kernel, seed, samples \\ 2000) do
    {t, _} = Gen.generate(lr_model(), [@xs], lr_obs(), key: Mx.Random.key(seed))
    Inference.run(kernel, t, samples: samples, burn: 200, key: Mx.Random.key(seed + 1), select: &coefs/1)
  end

  describe "Bayesian linear regression (exact posterior mean and covariance)" do
    setup do: %{exact: linear_regression(@xs, @ys, @m0, @v0, @sigma)}

    test "importance sampling with a data-driven proposal (least squares, widened)", %{exact: ex} do
      ls = least_squares(@xs, @ys)

      # Independent normals at the least-squares fit, twice its sampling sd: heavier than the posterior.
      q =
        gen(fn ->
          for j <- 0..2 do
            sd = 2 * @sigma * :math.sqrt(Enum.at(Enum.at(ls.xtx_inv, j), j))
            trace({:w, j}, Gen.Dist.normal(Enum.at(ls.coef, j), sd))
          end
        end)

      {traces, lnw, _} =
        Inference.importance_sampling(lr_model(), [@xs], lr_obs(), 3000, key: Mx.Random.key(60), proposal: {q, []})

      w = lnw |> Mx.exp() |> Mx.to_list()
      rows = Enum.map(traces, &coefs/1)

      for j <- 0..2 do
        assert_weighted(w, Enum.map(rows, &Enum.at(&1, j)), Enum.at(ex.mean, j), Enum.at(Enum.at(ex.cov, j), j), 3)
      end
    end

    test "MH: regenerate one coefficient at a time, and a joint Gaussian random walk", %{exact: ex} do
      regen = Kernel.cycle(for j <- 0..2, do: Kernel.mh(Gen.select({:w, j})))
      assert_gaussian_posterior(lr_chain(regen, 70), ex)

      q = gen(fn t, s -> for j <- 0..2, do: trace({:w, j}, Gen.Dist.normal(t[{:w, j}], s)) end)
      assert_gaussian_posterior(lr_chain(Kernel.mh(q, [0.12]), 80, 3000), ex)
    end

    test "MALA and HMC on all coefficients", %{exact: ex} do
      sel = lr_sel()
      assert_gaussian_posterior(lr_chain(&Inference.mala(&1, sel, Keyword.put(&2, :tau, 0.008)), 90), ex)
      # The stiffest direction has ω ≈ 6.4 (√ of the top eigenvalue of XᵀX/σ² + prior): a trajectory
      # of length T = 0.35 keeps ωT away from π, where HMC would only flip about the mean.
      hmc = &Inference.hmc(&1, sel, Keyword.merge(&2, step_size: 0.05, n_leapfrog: 7))
      assert_gaussian_posterior(lr_chain(hmc, 100, 1000), ex)
    end

    test "elliptical slice on the coefficient vector (prior variances as a vector)", %{exact: ex} do
      {t, _} = Gen.generate(lr_vector_model(), [@xs], lr_obs(), key: Mx.Random.key(110))

      rows =
        Inference.run(Kernel.elliptical_slice(:w, mean: @m0, cov: @v0), t,
          samples: 2000,
          burn: 100,
          key: Mx.Random.key(111),
          select: &Mx.to_list(&1[:w])
        )

      assert_gaussian_posterior(rows, ex)
    end

    test "involutive MH: a joint random walk (w, d) -> (w + d, -d)", %{exact: ex} do
      q = gen(fn _t, s -> for j <- 0..2, do: trace({:d, j}, Gen.Dist.normal(0.0, s)) end)

      inv = fn m, a, _ ->
        {for(j <- 0..2, into: %{}, do: {{:w, j}, Mx.add(m[{:w, j}], a[{:d, j}])}),
         for(j <- 0..2, into: %{}, do: {{:d, j}, Mx.negate(a[{:d, j}])})}
      end

      assert_gaussian_posterior(lr_chain(Kernel.involutive_mh(q, [0.12], inv), 120, 3000), ex)
    end
  end
end
