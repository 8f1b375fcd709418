defmodule Gen.NUTSTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.ChainCheck, only: [sample_var: 1, normal_model: 0, normal_observations: 1]
  alias Gen.Inference
  alias Gen.Inference.{Adapt, NUTS}
  alias Gen.Diagnostics

  doctest Gen.Inference.Adapt
  doctest Gen.Inference.NUTS

  # The normal–normal model mu ~ N(0, 2²), y_i ~ N(mu, 1) and its exact posterior: test/support/chain_check.ex.
  @ys Gen.ChainCheck.normal_ys()
  @post_var Gen.ChainCheck.normal_posterior().var
  @post_mean Gen.ChainCheck.normal_posterior().mean

  # Posterior checks from the bulk ESS of the draws: the mean within 4 MC standard errors
  # sd/√ESS; the variance within 4·var·√(2/ESS), the standard error of a Gaussian sample
  # variance from ESS independent draws (the posteriors here are Gaussian, or nearly).
  defp assert_moments(xs, mean, var) do
    ess = Diagnostics.ess(xs)
    assert ess > 200, "ESS #{ess}"
    n = length(xs)
    m = Enum.sum(xs) / n
    v = sample_var(xs)
    assert abs(m - mean) <= 4 * :math.sqrt(var / ess), "mean #{m} vs #{mean} (ESS #{ess})"
    assert abs(v - var) <= 4 * var * :math.sqrt(2 / ess), "variance #{v} vs #{var} (ESS #{ess})"
    {m, v, ess}
  end

  # ---- dual averaging ---------------------------------------------------------------------

  test "dual averaging: a noise-free acceptance curve a(ε) = e^(−ε) converges to a(ε) = δ" do
    t = 3000

    da =
      Enum.reduce(1..t, Adapt.dual_averaging(1.0, delta: 0.8), fn _, da ->
        Adapt.learn_step_size(da, :math.exp(-Adapt.step_size(da)))
      end)

    # Holding xₜ = μ − √t·s̄ₜ/γ off μ needs (t + t₀)s̄ₜ = Σ(δ − aᵢ) to grow like γ(μ − x*)√t, so
    # a(εₜ) − δ ≈ γ(μ − x*)/(2√t) and log εₜ − log ε* ≈ that over |da/dlog ε| = ε*·e^(−ε*):
    # the bias is first order in 1/√t; allow 1.5 times it for x̄'s lag behind xₜ.
    eps_star = -:math.log(0.8)
    bias = 0.05 * (:math.log(10.0) - :math.log(eps_star)) / (2 * :math.sqrt(t)) / (eps_star * 0.8)
    assert abs(:math.log(Adapt.final_step_size(da) / eps_star)) <= 1.5 * bias
  end

  test "dual averaging in hmc_warmup reaches the target acceptance on a Gaussian posterior" do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(10))
    n = 1000

    {t2, eps, stats} =
      Inference.hmc_warmup(t, Gen.select(:mu),
        warmup: n,
        n_leapfrog: 3,
        target_accept: 0.8,
        key: Mx.Random.key(11)
      )

    # Σᵢ(δ − aᵢ) = (t + t₀)·s̄ₜ with s̄ₜ = γ(μ − xₜ)/√t, so the acceptances of the second half
    # average to δ up to γ·|μ − x|·(1010/√1000 + 510/√500)/500 ≤ 0.02 (|μ − x| < 4 here).
    alphas = stats |> Enum.drop(div(n, 2)) |> Enum.map(& &1.accept_prob)
    mean_a = Enum.sum(alphas) / length(alphas)
    assert abs(mean_a - 0.8) <= 0.02, "mean acceptance #{mean_a}"

    # The exact acceptance of 3-step HMC on this Gaussian posterior (polar quadrature below) at
    # the adapted ε. x̄ = log ε averages the iterates log εₜ with weights t^(−κ): over the last
    # ~1/1000^(−0.75) ≈ 180 of them, so its standard error is sd(log εₜ)/√ESS there; through the
    # slope of a(ε) that bounds |a(ε) − δ| at 4 SE, plus the first-order bias γ(μ − x*)/(2√t).
    a = fn e -> exact_hmc_acceptance(e / :math.sqrt(@post_var), 3) end
    log_eps = stats |> Enum.take(-180) |> Enum.map(&:math.log(&1.step_size))
    se = :math.sqrt(sample_var(log_eps) / Diagnostics.ess(log_eps))
    slope = (a.(eps * :math.exp(0.02)) - a.(eps * :math.exp(-0.02))) / 0.04
    bias = 0.05 * abs(:math.log(10.0) - :math.log(eps)) / (2 * :math.sqrt(n))

    assert abs(a.(eps) - 0.8) <= 4 * abs(slope) * se + bias,
           "exact acceptance #{a.(eps)} at ε = #{eps}"

    assert Mx.to_number(t2[{:y, 0}]) == 0.8
  end

  # E[min(1, e^(−ΔH))] for L leapfrog steps of size h on N(0, 1) with unit mass: ΔH is a quadratic
  # form q(θ)·r² in polar coordinates of (x, p), and ∫ e^(−r²/2) min(1, e^(−q r²)) r dr = 1/(1 + 2q)
  # for q > 0 (1 otherwise), leaving a 1-d integral over θ.
  defp exact_hmc_acceptance(h, l) do
    n = 20_000

    s =
      Enum.reduce(0..(n - 1), 0.0, fn i, s ->
        th = 2 * :math.pi() * (i + 0.5) / n
        {x0, p0} = {:math.cos(th), :math.sin(th)}

        {x, p} =
          Enum.reduce(1..l, {x0, p0}, fn _, {x, p} ->
            p = p - h / 2 * x
            x = x + h * p
            {x, p - h / 2 * x}
          end)

        q = 0.5 * (x * x + p * p) - 0.5
        s + if(q <= 0, do: 1.0, else: 1 / (1 + 2 * q))
      end)

    s / n
  end

  # ---- mass matrix ------------------------------------------------------------------------------

  test "windowed mass adaptation recovers the variances of an anisotropic diagonal Gaussian" do
    sds = [0.1, 1.0, 5.0, 30.0]

    m =
      gen(fn ->
        trace(:x, Gen.Dist.broadcasted_normal(Mx.tensor([1.0, -2.0, 0.0, 3.0]), Mx.tensor(sds)))
      end)

    t = Gen.simulate(m, [], key: Mx.Random.key(20))
    r = NUTS.sample(t, Gen.select(:x), warmup: 1000, samples: 1000, key: Mx.Random.key(21))

    # The metric is the last slow window's variance (warmup 450–949, n = 500 draws), shrunk by
    # n/(n+5) towards 1e-3: each ratio to the true variance is 1 within 4·√(2/ESS) of a sample
    # variance, with ESS that of x² in the draws (same sampler and metric), plus the 1 % shrinkage.
    assert Adapt.window_ends(Adapt.windows(1000)) == [99, 149, 249, 449, 949]

    for {{_name, xs}, sd, m_i} <- Enum.zip([NUTS.series(r), sds, r.inv_metric]) do
      mean = Enum.sum(xs) / length(xs)
      ess_sq = Diagnostics.ess(Enum.map(xs, &((&1 - mean) * (&1 - mean))), method: :basic)
      tol = 4 * :math.sqrt(2 / min(ess_sq, 500)) + 5 / 505

      assert abs(m_i / (sd * sd) - 1) <= tol,
             "inverse metric #{m_i} vs variance #{sd * sd} (tol #{tol})"
    end
  end

  test "window schedule: Stan's buffers, doubling windows and the scaled short warmup" do
    assert Adapt.window_ends(Adapt.windows(500)) == [99, 149, 249, 449]
    w = Adapt.windows(150)
    assert {w.init_buffer, w.term_buffer, w.base_window} == {75, 50, 25}
    assert Adapt.window_ends(w) == [99]
    assert Adapt.window_ends(Adapt.windows(60)) == [53]
    assert Adapt.window_ends(Adapt.windows(10)) == []
    assert Adapt.regularize([4.0], 95) == [95 / 100 * 4.0 + 1.0e-3 * 5 / 100]
  end

  # ---- NUTS on conjugate posteriors ------------------------------------------------------------

  test "NUTS.sample: normal–normal posterior mean and variance" do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(30))
    r = NUTS.sample(t, Gen.select(:mu), warmup: 500, samples: 1500, key: Mx.Random.key(31))
    assert_moments(r.draws[[:mu]], @post_mean, @post_var)
    assert Enum.all?(r.stats, &(not &1.divergent))
    assert Mx.to_number(r.trace[:mu]) == List.last(r.draws[[:mu]])
  end

  test "nuts kernel with a fixed step in Gen.Inference.run: normal–normal posterior" do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(32))
    k = fn t, o -> Inference.nuts(t, Gen.select(:mu), [step_size: 0.3] ++ o) end

    xs =
      Inference.run(k, t,
        samples: 800,
        burn: 50,
        key: Mx.Random.key(33),
        select: &Mx.to_number(&1[:mu])
      )

    assert_moments(xs, @post_mean, @post_var)
  end

  # Bayesian linear regression: beta ~ N(0, τ²I) (3 coefficients), y ~ N(X beta, σ²I), σ known.
  # Posterior N(m, S), S = (XᵀX/σ² + I/τ²)⁻¹, m = S Xᵀy/σ², computed below by Gauss–Jordan.
  @tau 3.0
  @sigma 0.7
  @xs for i <- 0..19, do: [1.0, :math.sin(i * 0.7) * 2, (i - 10) / 5]
  @beta_true [0.5, -1.2, 0.8]

  defp regression_model do
    gen(fn x ->
      beta = trace(:beta, Gen.Dist.broadcasted_normal(Mx.zeros({3}, type: :f64), @tau))
      trace(:y, Gen.Dist.broadcasted_normal(Mx.dot(x, beta), @sigma))
    end)
  end

  test "NUTS.sample: Bayesian linear regression recovers the closed-form posterior" do
    noise = Mx.Random.normal(Mx.Random.key(40), shape: {20}, type: :f64) |> Mx.to_flat_list()

    y =
      Enum.zip_with(@xs, noise, fn row, e ->
        Enum.sum(Enum.zip_with(row, @beta_true, &(&1 * &2))) + @sigma * e
      end)

    prec =
      for i <- 0..2 do
        for j <- 0..2 do
          Enum.sum(for row <- @xs, do: Enum.at(row, i) * Enum.at(row, j)) / (@sigma * @sigma) +
            if(i == j, do: 1 / (@tau * @tau), else: 0.0)
        end
      end

    s = invert(prec)

    xty =
      for i <- 0..2,
          do:
            Enum.sum(Enum.zip_with(@xs, y, fn row, yy -> Enum.at(row, i) * yy end)) /
              (@sigma * @sigma)

    m = for row <- s, do: Enum.sum(Enum.zip_with(row, xty, &(&1 * &2)))

    {t, _} =
      Gen.generate(regression_model(), [Mx.tensor(@xs)], %{y: Mx.tensor(y)},
        key: Mx.Random.key(41)
      )

    r = NUTS.sample(t, Gen.select(:beta), warmup: 500, samples: 1000, key: Mx.Random.key(42))

    for {{_name, xs}, i} <- Enum.with_index(NUTS.series(r)) do
      assert_moments(xs, Enum.at(m, i), Enum.at(Enum.at(s, i), i))
    end
  end

  # Gauss–Jordan inverse of a small symmetric positive definite matrix (lists of floats).
  defp invert(a) do
    n = length(a)

    aug =
      for {row, i} <- Enum.with_index(a),
          do: row ++ for(j <- 0..(n - 1), do: if(i == j, do: 1.0, else: 0.0))

    Enum.reduce(0..(n - 1), aug, fn c, rows ->
      pivot = Enum.at(rows, c)
      pv = Enum.at(pivot, c)
      pivot = Enum.map(pivot, &(&1 / pv))

      rows
      |> Enum.with_index()
      |> Enum.map(fn
        {_row, ^c} -> pivot
        {row, _} -> Enum.zip_with(row, pivot, fn x, p -> x - Enum.at(row, c) * p end)
      end)
    end)
    |> Enum.map(&Enum.drop(&1, n))
  end

  test "a :log-transformed rate: gamma–poisson posterior mean and variance" do
    # lambda ~ Gamma(shape 2, rate 1), y_i ~ Poisson(lambda): posterior Gamma(2 + Σy, 1 + n).
    counts = [3, 1, 4, 1, 5, 9, 2, 6]

    m =
      gen(fn n ->
        lam = trace(:lambda, Gen.Dist.gamma(2.0, rate: 1.0))
        for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.poisson(lam))
      end)

    obs = Gen.choicemap(for({c, i} <- Enum.with_index(counts), into: %{}, do: {{:y, i}, c}))
    {t, _} = Gen.generate(m, [length(counts)], obs, key: Mx.Random.key(50))

    r =
      NUTS.sample(t, Gen.select(:lambda),
        warmup: 500,
        samples: 1500,
        key: Mx.Random.key(51),
        transforms: %{lambda: :log}
      )

    a = 2 + Enum.sum(counts)
    b = 1 + length(counts)
    assert_moments(r.draws[[:lambda]], a / b, a / (b * b))
    assert Enum.all?(r.draws[[:lambda]], &(&1 > 0))
  end

  test "transforms: :logit and {:interval, a, b} keep draws inside and match a beta posterior" do
    # p ~ Beta(2, 3) and 7 successes in 10: posterior Beta(9, 6), mean 0.6, variance 9·6/(15²·16).
    m =
      gen(fn ->
        p = trace(:p, Gen.Dist.beta(2.0, 3.0))
        trace(:k, Gen.Dist.binomial(10, p))
      end)

    {t, _} = Gen.generate(m, [], %{k: 7, p: 0.5})
    var = 9 * 6 / (15 * 15 * 16)

    for {tr, k} <- [{:logit, 60}, {{:interval, 0.0, 1.0}, 61}] do
      r =
        NUTS.sample(t, Gen.select(:p),
          warmup: 400,
          samples: 1200,
          key: Mx.Random.key(k),
          transforms: %{p: tr}
        )

      assert Enum.all?(r.draws[[:p]], &(&1 > 0 and &1 < 1))
      assert_moments(r.draws[[:p]], 0.6, var)
    end
  end

  test "same key, same draws; stats are Stan's; errors name the option and the fix" do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(70))
    a = NUTS.sample(t, Gen.select(:mu), warmup: 30, samples: 10, key: Mx.Random.key(71))
    b = NUTS.sample(t, Gen.select(:mu), warmup: 30, samples: 10, key: Mx.Random.key(71))
    assert a.draws == b.draws
    st = hd(a.stats)

    assert st.n_leapfrog <= 1024 and st.tree_depth <= 10 and st.accept_stat >= 0 and
             st.accept_stat <= 1

    # max_depth bounds the trajectory: depth 1 is at most 2 leapfrog steps.
    c =
      NUTS.sample(t, Gen.select(:mu),
        warmup: 0,
        samples: 20,
        step_size: 0.01,
        max_depth: 1,
        key: Mx.Random.key(72)
      )

    assert Enum.all?(c.stats, &(&1.n_leapfrog <= 2 and &1.tree_depth <= 1))

    assert_raise ArgumentError, ~r/step_size: must be a positive number \(required\)/, fn ->
      Inference.nuts(t, Gen.select(:mu), [])
    end

    assert_raise ArgumentError, ~r/transforms: :sqrt at :mu is not a transform/, fn ->
      NUTS.sample(t, Gen.select(:mu), transforms: %{mu: :sqrt})
    end

    assert_raise ArgumentError, ~r/is not a selected continuous choice/, fn ->
      NUTS.sample(t, Gen.select(:mu), transforms: %{sigma: :log})
    end

    assert_raise ArgumentError, ~r/outside the support of its transform :log/, fn ->
      NUTS.sample(Gen.update(t, %{mu: -1.0}) |> elem(0), Gen.select(:mu), transforms: %{mu: :log})
    end

    assert_raise ArgumentError, ~r/inv_metric: must be a list of 1 positive numbers/, fn ->
      Inference.nuts(t, Gen.select(:mu), step_size: 0.1, inv_metric: [1.0, 2.0])
    end

    assert_raise ArgumentError, ~r/callback: must be a function of one argument/, fn ->
      NUTS.sample(t, Gen.select(:mu), callback: fn _, _ -> :ok end)
    end

    assert_raise ArgumentError, ~r/target_accept: must lie in \(0, 1\)/, fn ->
      NUTS.sample(t, Gen.select(:mu), target_accept: 1.5)
    end
  end

  test "chains: k runs one process per chain; chain j is the run with fold_in(key, j)" do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(80))
    key = Mx.Random.key(81)

    rs =
      NUTS.sample(t, Gen.select(:mu),
        warmup: 40,
        samples: 15,
        chains: 3,
        key: key,
        progress: false
      )

    assert length(rs) == 3

    for {r, j} <- Enum.with_index(rs) do
      one =
        NUTS.sample(t, Gen.select(:mu), warmup: 40, samples: 15, key: Mx.Random.fold_in(key, j))

      assert r.draws == one.draws and r.stats == one.stats
    end

    refute Enum.at(rs, 0).draws == Enum.at(rs, 1).draws

    assert_raise ArgumentError, ~r/chains: must be a positive integer/, fn ->
      NUTS.sample(t, Gen.select(:mu), chains: 0)
    end

    assert_raise ArgumentError, ~r/progress: must be true, false or :auto/, fn ->
      NUTS.sample(t, Gen.select(:mu), progress: :yes)
    end
  end

  test "the compiled and the dynamic path run the same C sampler: same key, same draws" do
    # x > 0 on a selected value makes the target dynamic; the same density without the branch compiles.
    branchy =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))
        s = if x > 100.0, do: 2.0, else: 1.0
        trace(:y, Gen.Dist.normal(x, s))
      end)

    plain =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))
        trace(:y, Gen.Dist.normal(x, 1.0))
      end)

    obs = %{x: 0.3, y: 1.2}
    {tb, _} = Gen.generate(branchy, [], obs)
    {tp, _} = Gen.generate(plain, [], obs)
    assert Gen.Inference.Target.new(tb, Gen.select(:x)).tape == nil
    assert is_reference(Gen.Inference.Target.new(tp, Gen.select(:x)).tape)

    a = NUTS.sample(tb, Gen.select(:x), warmup: 50, samples: 30, key: Mx.Random.key(90))
    b = NUTS.sample(tp, Gen.select(:x), warmup: 50, samples: 30, key: Mx.Random.key(90))
    assert a.draws == b.draws and a.stats == b.stats and a.step_size == b.step_size
  end

  test "metric: :dense adapts a full covariance on a correlated posterior" do
    # x ~ N(0, 1), y ~ N(0.95 x, 0.1²): the posterior of (x, y) is strongly correlated.
    m =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))
        trace(:y, Gen.Dist.normal(Mx.multiply(x, 0.95), 0.1))
      end)

    {t, _} = Gen.generate(m, [], %{x: 0.1, y: 0.1})

    r =
      NUTS.sample(t, Gen.select([:x, :y]),
        warmup: 600,
        samples: 1000,
        metric: :dense,
        key: Mx.Random.key(91)
      )

    [[vxx, vxy], [vyx, vyy]] = r.inv_metric
    assert vxy == vyx
    # Cov = [[1, 0.95], [0.95, 0.9125]]; Welford over the last window (≥ 250 draws) with Stan's
    # shrinkage: loose bounds (25%) from the window's sampling error, the point is the off-diagonal.
    assert_in_delta vxx, 1.0, 0.25
    assert_in_delta vyy, 0.9125, 0.25
    assert_in_delta vxy, 0.95, 0.25
    xs = r.draws[[:x]]
    assert_moments(xs, 0.0, 1.0)

    assert_raise ArgumentError, ~r/metric: must be :diag or :dense/, fn ->
      NUTS.sample(t, Gen.select(:x), metric: :full)
    end
  end

  @tag :slow
  test "memory stays flat over a 10^5-iteration run (over 10^6 tape replays)" do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(94))
    _ = NUTS.sample(t, Gen.select(:mu), warmup: 10, samples: 10, key: Mx.Random.key(95))
    base = Mx.Memory.report()

    # A small fixed step makes long trajectories: every leapfrog is one replay of the gradient tape.
    r =
      NUTS.sample(t, Gen.select(:mu),
        warmup: 0,
        samples: 100_000,
        step_size: 0.05,
        key: Mx.Random.key(96)
      )

    assert length(r.draws[[:mu]]) == 100_000
    assert Enum.sum(Enum.map(r.stats, & &1.n_leapfrog)) > 1_000_000
    r = nil
    _ = r
    :erlang.garbage_collect()

    wait = fn wait, n ->
      # tapes other tests' targets left in the cache of compiled targets are not the run's
      Gen.Inference.Target.clear_cache()
      now = Mx.Memory.report()

      if (now.active_bytes <= base.active_bytes and now.live_arrays <= base.live_arrays) or
           n == 0,
         do: now,
         else:
           (
             Process.sleep(20)
             wait.(wait, n - 1)
           )
    end

    after_run = wait.(wait, 250)
    assert after_run.active_bytes <= base.active_bytes
    assert after_run.live_arrays <= base.live_arrays
  end

  test "a process killed mid-sample frees the run's memory" do
    {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(92))
    base = Mx.Memory.report()

    pid =
      spawn(fn ->
        NUTS.sample(t, Gen.select(:mu), warmup: 100_000, samples: 100_000, key: Mx.Random.key(93))
      end)

    Process.sleep(300)
    Process.exit(pid, :kill)

    wait = fn wait, n ->
      # tapes other tests' targets left in the cache of compiled targets are not the run's
      Gen.Inference.Target.clear_cache()
      now = Mx.Memory.report()

      if now.active_bytes <= base.active_bytes or n == 0,
        do: now,
        else:
          (
            Process.sleep(20)
            wait.(wait, n - 1)
          )
    end

    assert wait.(wait, 250).active_bytes <= base.active_bytes
  end

  test "a divergence is flagged when the energy error blows up, and the draw stays finite" do
    # Neal's funnel at a huge fixed step: leapfrog leaves the typical set at once.
    m =
      gen(fn ->
        v = trace(:v, Gen.Dist.normal(0.0, 3.0))

        trace(
          :x,
          Gen.Dist.broadcasted_normal(Mx.zeros({4}, type: :f64), Mx.exp(Mx.divide(v, 2.0)))
        )
      end)

    {t, _} = Gen.generate(m, [], %{v: -4.0, x: [0.1, -0.1, 0.05, 0.0]})

    r =
      NUTS.sample(t, Gen.select([:v, :x]),
        warmup: 0,
        samples: 20,
        step_size: 5.0,
        key: Mx.Random.key(80)
      )

    assert Enum.any?(r.stats, & &1.divergent)
    assert Enum.all?(r.draws[[:v]], &is_float/1)

    # Deep in the neck (v = −400, x₁ = 1e-10) ∂/∂v is ~2.6e153, and with a huge inverse metric
    # on v the position update ε·M⁻¹p overflows a BEAM float (which raises rather than becoming
    # inf): every leaf is a divergence, so the transition stays put.
    {t, _} = Gen.generate(m, [], %{v: -400.0, x: [1.0e-10, 0.0, 0.0, 0.0]})
    inv = [1.0e300, 1.0, 1.0, 1.0, 1.0]

    assert {^t, false} =
             Inference.nuts(t, Gen.select([:v, :x]),
               step_size: 1.0,
               inv_metric: inv,
               key: Mx.Random.key(81)
             )
  end
end
