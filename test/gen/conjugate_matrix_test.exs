defmodule Gen.ConjugateMatrixTest do
  # Algorithm × conjugate model: the pairs no other test checked for both posterior mean and
  # variance. Coverage (here = this file; other files named; – = left out, reason below):
  #
  #                      normal–normal     beta–bernoulli        gamma–poisson       regression
  #   IS (prior/custom)  here              here                  conjugate_test      conjugate_test
  #   MH selection       inference_test    here                  conjugate_test      conjugate_test
  #   MH custom          inference_test    inference_test        conjugate_test      conjugate_test
  #   MALA               here              here                  conjugate_test      conjugate_test
  #   HMC fixed step     here              here                  conjugate_test      conjugate_test
  #   HMC + warmup       here              here                  here                here
  #   NUTS               nuts_test         nuts_test (binomial)  nuts_test           nuts_test
  #   elliptical slice   kernels_test      – (prior)             – (prior)           conjugate_test
  #   involutive MH      kernels_test      here                  conjugate_test      conjugate_test
  #   SMC + rejuv.       smc_more_test     here (slow)           here                here (slow)
  #   vectorized IS      here              here                  here                here
  #   vectorized SMC     here              here                  here                here
  #   vectorized MH      vectorized_test   here                  here                here
  #   vectorized MALA    vectorized_test   here                  here                here
  #   ADVI               vi_test           – (not Gaussian)      – (not Gaussian)    vi_test (mean-field)
  #   programmable VI    vi_test (ADVI)    here                  here                here
  #   MAP (mode)         map_test          here                  here                map_test
  #
  # Left out: Gibbs (every latent here is continuous; it needs an enumerable discrete support);
  # elliptical slice off a Gaussian prior; ADVI on (0, 1) and (0, ∞) (its Gaussian on the logit or
  # log scale is not the posterior, so there is no exact answer to check; transform_test checks ADVI
  # on a posterior that is Gaussian on the log scale, and programmable VI with the conjugate family
  # covers these); importance resampling (one resampled draw has the posterior's law only as n → ∞,
  # bias O(1/n), so no Monte-Carlo tolerance bounds it; its weights are importance_sampling's).
  use ExUnit.Case, async: true
  import Gen
  alias Gen.Inference
  alias Gen.Inference.Kernel

  # ---- the four models and their exact posteriors ----------------------------------------------

  # normal–normal: mu ~ N(0, 2²), y_i ~ N(mu, 1): posterior N(Σy/(1/4 + n), 1/(1/4 + n)).
  @nn_ys [0.8, 1.9, 1.1, 2.4, 1.5]
  # beta–bernoulli: p ~ Beta(2, 2), 12 flips with 9 heads: posterior Beta(2 + 9, 2 + 3).
  @bb_flips [1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]
  # gamma–poisson: lambda ~ Gamma(shape 3, rate 2), counts c_i: posterior Gamma(3 + Σc, 2 + n).
  @gp_counts [2, 4, 3, 5, 1, 3]
  # linear regression y = w0 + w1·x + ε, ε ~ N(0, 0.5²), w ~ N((0, 0), diag(1, 4)): Gaussian
  # posterior with precision XᵀX/σ² + diag(1, 1/4) (Gen.Conjugate.linear_regression/5).
  @lr_x [-1.2, -0.6, -0.1, 0.4, 0.9, 1.5]
  @lr_y [-1.9, -0.8, 0.3, 0.7, 1.9, 2.8]
  @lr_sigma 0.5

  defp model(:nn) do
    gen(fn n ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
      for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
      mu
    end)
  end

  defp model(:bb) do
    gen(fn n ->
      p = trace(:p, Gen.Dist.beta(2.0, 2.0))
      for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.bernoulli(p))
      p
    end)
  end

  defp model(:gp) do
    gen(fn n ->
      lambda = trace(:lambda, Gen.Dist.gamma(3.0, rate: 2.0))
      for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.poisson(lambda))
      lambda
    end)
  end

  defp model(:lr) do
    gen(fn xs ->
      w0 = trace({:w, 0}, Gen.Dist.normal(0.0, 1.0))
      w1 = trace({:w, 1}, Gen.Dist.normal(0.0, 2.0))
      for {x, i} <- Enum.with_index(xs), do: trace({:y, i}, Gen.Dist.normal(Mx.add(w0, Mx.multiply(w1, x)), @lr_sigma))
    end)
  end

  defp args(:lr), do: [@lr_x]
  defp args(m), do: [length(data(m))]

  defp data(:nn), do: @nn_ys
  defp data(:bb), do: Enum.map(@bb_flips, &(&1 == 1))
  defp data(:gp), do: @gp_counts
  defp data(:lr), do: @lr_y

  defp obs(m), do: for({y, i} <- Enum.with_index(data(m)), into: %{}, do: {{:y, i}, y})

  # The latent addresses, one coordinate each.
  defp latents(:nn), do: [:mu]
  defp latents(:bb), do: [:p]
  defp latents(:gp), do: [:lambda]
  defp latents(:lr), do: [{:w, 0}, {:w, 1}]

  defp sel(m), do: Gen.select(latents(m))
  defp coords(m, t), do: Enum.map(latents(m), &Mx.to_number(t[&1]))
  defp vcoords(m, t), do: Enum.map(latents(m), &Mx.to_list(t[&1]))

  # Exact posterior per coordinate: mean, variance and kurtosis κ (E(x − m)⁴/var², for the
  # standard error of a variance estimate, var·√((κ − 1)/ESS)).
  defp exact(:nn) do
    prec = 1 / 4 + length(@nn_ys)
    %{mean: [Enum.sum(@nn_ys) / prec], var: [1 / prec], kurt: [3.0]}
  end

  defp exact(:bb) do
    k = Enum.sum(@bb_flips)
    {a, b} = {2.0 + k, 2.0 + length(@bb_flips) - k}
    s = a + b
    # Beta excess kurtosis 6[(a − b)²(s + 1) − ab(s + 2)] / [ab(s + 2)(s + 3)].
    excess = 6 * ((a - b) ** 2 * (s + 1) - a * b * (s + 2)) / (a * b * (s + 2) * (s + 3))
    %{mean: [a / s], var: [a * b / (s * s * (s + 1))], kurt: [3 + excess], a: a, b: b}
  end

  defp exact(:gp) do
    g = Gen.Conjugate.gamma_poisson(3.0, 2.0, @gp_counts)
    # Gamma(a, ·) has excess kurtosis 6/a.
    %{mean: [g.mean], var: [g.var], kurt: [3 + 6 / g.shape], a: g.shape, b: g.rate}
  end

  defp exact(:lr) do
    lr = Gen.Conjugate.linear_regression(Enum.map(@lr_x, &[1.0, &1]), @lr_y, [0.0, 0.0], [1.0, 4.0], @lr_sigma)
    %{mean: lr.mean, var: [Enum.at(Enum.at(lr.cov, 0), 0), Enum.at(Enum.at(lr.cov, 1), 1)], kurt: [3.0, 3.0]}
  end

  # ---- the check -------------------------------------------------------------------------------

  # A run's result: per coordinate the estimated mean and variance with the effective sample size
  # behind each. Both within 4 standard errors (a two-sided 6e-5 level): sd/√ESS for the mean and
  # var·√((κ − 1)/ESS) for the variance (a variance estimate from ESS independent draws of a
  # distribution with kurtosis κ; κ = 3 gives the Gaussian var·√(2/ESS)).
  defp assert_moments(label, est, ex) do
    for {c, j} <- Enum.with_index(est) do
      {m, v, n} = {c.mean, c.var, c.n}
      {em, ev} = {Enum.at(ex.mean, j), Enum.at(ex.var, j)}
      {se_m, se_v} = se(c, ev, Enum.at(ex.kurt, j))
      report(label, j, m, em, se_m, v, ev, se_v, n)
      assert abs(m - em) <= 4 * se_m, "#{label}[#{j}] mean #{m} vs #{em}, 4 SE = #{4 * se_m}"
      assert abs(v - ev) <= 4 * se_v, "#{label}[#{j}] variance #{v} vs #{ev}, 4 SE = #{4 * se_v}"
    end
  end

  # Standard errors from the effective sample sizes (and the exact variance and kurtosis), or,
  # for replicated runs, from the spread between the runs.
  defp se(%{ess_mean: em, ess_var: ev}, var, k) do
    assert em > 100 and ev > 100, "ESS #{em} / #{ev} too small"
    {:math.sqrt(var / em), var * :math.sqrt((k - 1) / ev)}
  end

  defp se(%{se_mean: sm, se_var: sv}, _var, _k), do: {sm, sv}

  defp report(label, j, m, em, se_m, v, ev, se_v, n) do
    if System.get_env("CONJ_REPORT"),
      do: IO.puts("#{label}[#{j}]: mean #{f(m)} exact #{f(em)} SE #{f(se_m)} | var #{f(v)} exact #{f(ev)} SE #{f(se_v)} | n #{round(n)}")
  end

  defp f(x), do: to_string(:io_lib.format("~.5g", [x / 1]))

  # MCMC draws (one list of rows): ESS of the mean by Gen.Diagnostics (rank-normalized bulk, a
  # single chain split in two), and for the variance the ESS of the squared deviations, whose
  # mean is the variance estimate.
  defp from_chain(rows) do
    for j <- 0..(length(hd(rows)) - 1) do
      xs = Enum.map(rows, &Enum.at(&1, j))
      n = length(xs)
      m = Enum.sum(xs) / n
      sq = Enum.map(xs, &((&1 - m) ** 2))
      ess = Gen.Diagnostics.ess(xs)
      %{mean: m, var: Enum.sum(sq) / (n - 1), ess_mean: ess, ess_var: Gen.Diagnostics.ess(sq), n: ess}
    end
  end

  # Weighted particles (normalized weights w): self-normalized moments, Kish's ESS = 1/Σw².
  defp from_weighted(w, cols) do
    ess = 1 / Enum.sum(Enum.map(w, &(&1 * &1)))

    for xs <- cols do
      m = Enum.zip_with(w, xs, &(&1 * &2)) |> Enum.sum()
      v = Enum.zip_with(w, xs, &(&1 * (&2 - m) ** 2)) |> Enum.sum()
      %{mean: m, var: v, ess_mean: ess, ess_var: ess, n: ess}
    end
  end

  # Independent draws (the n chains of a vectorized trace after burn-in, one draw each):
  # the ESS is their number.
  defp from_iid(cols) do
    for xs <- cols do
      n = length(xs)
      m = Enum.sum(xs) / n
      %{mean: m, var: Enum.sum(Enum.map(xs, &((&1 - m) ** 2))) / (n - 1), ess_mean: n, ess_var: n, n: n}
    end
  end

  # ---- the rows --------------------------------------------------------------------------------

  defp start(m, seed) do
    {t, _} = Gen.generate(model(m), args(m), obs(m), key: Mx.Random.key(seed))
    t
  end

  defp chain(m, kernel, seed, samples, burn \\ 200) do
    rows = Inference.run(kernel, start(m, seed), samples: samples, burn: burn, key: Mx.Random.key(seed + 1), select: &coords(m, &1))
    from_chain(rows)
  end

  # Importance sampling from the prior.
  defp run(:is, m, seed) do
    {traces, lnw, _} = Inference.importance_sampling(model(m), args(m), obs(m), 2000, key: Mx.Random.key(seed))
    from_weighted(lnw |> Mx.exp() |> Mx.to_list(), Enum.map(latents(m), fn a -> Enum.map(traces, &Mx.to_number(&1[a])) end))
  end

  # MH regenerating the latent from its prior.
  defp run(:mh_select, m, seed), do: chain(m, Kernel.mh(sel(m)), seed, 2000)

  # MALA, τ about a third of the posterior variance, on the scale the chain moves on: p moves on
  # the logit scale (Gen.Transform), where Beta(11, 5) has variance ψ′(11) + ψ′(5) ≈ 0.32.
  defp run(:mala, m, seed) do
    tau = %{nn: 0.07, bb: 0.1}[m]
    chain(m, &Inference.mala(&1, sel(m), Keyword.put(&2, :tau, tau)), seed, 1500)
  end

  # HMC at a fixed step: trajectories of length εL ≈ 1.2 posterior sd (away from a half period),
  # for p on the logit scale (sd ≈ 0.56).
  defp run(:hmc, m, seed) do
    {eps, l} = %{nn: {0.1, 5}, bb: {0.13, 5}}[m]
    chain(m, &Inference.hmc(&1, sel(m), Keyword.merge(&2, step_size: eps, n_leapfrog: l)), seed, 1000)
  end

  # HMC with dual-averaging warmup (hmc_warmup/3), then draws at the adapted step.
  defp run(:hmc_warmup, m, seed) do
    {t, eps, _} = Inference.hmc_warmup(start(m, seed), sel(m), warmup: 300, n_leapfrog: 4, key: Mx.Random.key(seed + 2))
    rows = Inference.run(&Inference.hmc(&1, sel(m), Keyword.merge(&2, step_size: eps, n_leapfrog: 4)), t, samples: 1000, key: Mx.Random.key(seed + 1), select: &coords(m, &1))
    from_chain(rows)
  end

  # Involutive MH on beta–bernoulli: a random walk on the logit, (p, u) -> (σ(logit p + u), −u),
  # u ~ N(0, 0.8²); |det J| = σ'(logit p + u)/σ'(logit p) = p'(1 − p')/(p(1 − p)), computed by autodiff.
  defp run(:involutive, :bb, seed) do
    q = gen(fn _t -> trace(:u, Gen.Dist.normal(0.0, 0.8)) end)

    inv = fn mm, a, _ ->
      p = mm[:p]
      logit = Mx.subtract(Mx.log(p), Mx.log(Mx.subtract(1.0, p)))
      {%{p: Mx.sigmoid(Mx.add(logit, a[:u]))}, %{u: Mx.negate(a[:u])}}
    end

    chain(:bb, Kernel.involutive_mh(q, [], inv), seed, 2000)
  end

  # Vectorized importance sampling from the prior, 20000 particles in one run of the model.
  defp run(:vis, m, seed) do
    {t, lnw, _} = Inference.vimportance_sampling(model(m), args(m), obs(m), 20_000, key: Mx.Random.key(seed))
    from_weighted(lnw |> Mx.exp() |> Mx.to_list(), vcoords(m, t))
  end

  # Vectorized MH (regenerate from the prior, an independence sampler) on 2000 chains: after t
  # steps the distance to the posterior is at most (1 − 1/M)^t, M = sup π/prior (scipy: 2.94 for
  # beta–bernoulli, 5.59 for gamma–poisson), under 1e-12 after the burn-ins below.
  defp run(:vmh, m, seed) when m in [:bb, :gp] do
    steps = %{bb: 80, gp: 150}[m]
    vchains(m, fn t, o -> Inference.vmh(t, sel(m), o) end, seed, steps)
  end

  # Regression: one coefficient at a time (a joint draw from the 2-d prior is rarely accepted);
  # each move is an independence sampler on that coordinate's conditional, 300 sweeps.
  defp run(:vmh, :lr, seed) do
    sweep = fn t, o ->
      ks = Mx.Random.split(Keyword.fetch!(o, :key), 2)
      {t, a0} = Inference.vmh(t, Gen.select({:w, 0}), key: ks[0])
      {t, a1} = Inference.vmh(t, Gen.select({:w, 1}), key: ks[1])
      {t, Mx.logical_and(a0, a1)}
    end

    vchains(:lr, sweep, seed, 300)
  end

  # Vectorized MALA on 2000 chains. Gamma–poisson: τ = 0.1 against a posterior variance of 0.33,
  # every chain started at lambda = 2: from prior draws near 0 the drift τ(20/λ − 8) overshoots so
  # far that the reverse move is never accepted (with key 250, 80 of 2000 chains never leave
  # their start in 1000 steps) — MALA without a log transform, which vmala/3 does not take.
  # Beta–bernoulli likewise from p = 0.5 (τ = 0.004, a third of the posterior variance 0.0126).
  # Regression: τ = 0.01, the drift contracts the slowest direction (precision ≥ 20) by ≤ 0.8 a step.
  defp run(:vmala, m, seed) do
    {tau, steps, start} = %{gp: {0.1, 300, %{lambda: 2.0}}, bb: {0.004, 300, %{p: 0.5}}, lr: {0.01, 300, %{}}}[m]
    vchains(m, fn t, o -> Inference.vmala(t, sel(m), [tau: tau] ++ o) end, seed, steps, start)
  end

  # SMC over the observations one at a time with MH rejuvenation (regenerate the static parameter,
  # 3 moves a step). A run's particles share ancestors, so Kish's ESS overstates their information:
  # the standard errors come from 10 independent runs instead (sd between runs / √10; four of them
  # bound |t₉| at about the 0.3% level). The runs are the replicates; the bias of one run is O(1/n).
  defp run(:smc_rejuv, m, seed) do
    replicate(m, seed, fn key ->
      {traces, lnw, _} =
        Inference.smc(model(m), &args_at(m, &1), steps(m), 100, key: key, rejuvenate: Kernel.repeat(rejuv(m), 3))

      {lnw |> Mx.exp() |> Mx.to_list(), Enum.map(latents(m), fn a -> Enum.map(traces, &Mx.to_number(&1[a])) end)}
    end)
  end

  # The same with vectorized SMC: 1000 particles in one trace, vectorized MH rejuvenation.
  defp run(:vsmc_rejuv, m, seed) do
    replicate(m, seed, fn key ->
      {t, lnw, _} = Inference.vsmc(model(m), &args_at(m, &1), steps(m), 1000, key: key, rejuvenate: sel(m), rejuvenate_steps: 3)
      {lnw |> Mx.exp() |> Mx.to_list(), vcoords(m, t)}
    end)
  end

  # Rejuvenation: regenerate the parameter; the regression's coefficients one at a time.
  defp rejuv(:lr), do: Kernel.cycle([Kernel.mh(Gen.select({:w, 0})), Kernel.mh(Gen.select({:w, 1}))])
  defp rejuv(m), do: Kernel.mh(sel(m))

  # The model's arguments after the observations 0..t.
  defp args_at(:lr, t), do: [Enum.take(@lr_x, t + 1)]
  defp args_at(_, t), do: [t + 1]

  defp steps(m), do: for({y, i} <- Enum.with_index(data(m)), do: %{{:y, i} => y})

  defp replicate(m, seed, run1) do
    runs = for r <- 1..10, do: run1.(Mx.Random.key(seed * 100 + r)) |> then(fn {w, cols} -> from_weighted(w, cols) end)

    for j <- 0..(length(latents(m)) - 1) do
      {ms, vs} = {Enum.map(runs, &Enum.at(&1, j).mean), Enum.map(runs, &Enum.at(&1, j).var)}
      sd = fn xs -> k = length(xs); a = Enum.sum(xs) / k; :math.sqrt(Enum.sum(Enum.map(xs, &((&1 - a) ** 2))) / (k - 1)) end
      %{mean: Enum.sum(ms) / 10, var: Enum.sum(vs) / 10, se_mean: sd.(ms) / :math.sqrt(10), se_var: sd.(vs) / :math.sqrt(10), n: 10}
    end
  end

  defp vchains(m, kernel, seed, steps, start \\ %{}) do
    {t, _} = Gen.vgenerate(model(m), args(m), Map.merge(obs(m), start), 2000, key: Mx.Random.key(seed))
    [cols] = Gen.Inference.Vectorized.run(kernel, t, samples: 1, burn: steps - 1, key: Mx.Random.key(seed + 1), select: &vcoords(m, &1))
    from_iid(cols)
  end

  # ---- the table -------------------------------------------------------------------------------

  # {algorithm, model, seed, tags}
  @table [
    {:is, :nn, 90, []},
    {:is, :bb, 100, []},
    {:mh_select, :bb, 110, []},
    {:mala, :nn, 120, []},
    {:mala, :bb, 130, []},
    {:hmc, :nn, 140, []},
    {:hmc, :bb, 150, []},
    {:hmc_warmup, :nn, 160, []},
    {:hmc_warmup, :lr, 170, []},
    {:hmc_warmup, :gp, 175, []},
    {:hmc_warmup, :bb, 177, []},
    {:involutive, :bb, 180, []},
    {:vis, :nn, 190, []},
    {:vis, :bb, 200, []},
    {:vis, :gp, 210, []},
    {:vis, :lr, 220, []},
    {:vmh, :bb, 230, []},
    {:vmh, :gp, 240, []},
    {:vmh, :lr, 245, []},
    {:vmala, :gp, 250, []},
    {:vmala, :bb, 255, []},
    {:vmala, :lr, 260, []},
    {:smc_rejuv, :gp, 270, []},
    {:smc_rejuv, :bb, 275, [:slow]},
    {:smc_rejuv, :lr, 278, [:slow]},
    {:vsmc_rejuv, :nn, 285, []},
    {:vsmc_rejuv, :bb, 280, []},
    {:vsmc_rejuv, :gp, 290, []},
    {:vsmc_rejuv, :lr, 295, []}
  ]

  for {alg, m, seed, tags} <- @table do
    for t <- tags, do: @tag(t)
    test "#{alg} on #{m}: posterior mean and variance within 4 ESS-derived standard errors" do
      assert_moments("#{unquote(alg)}/#{unquote(m)}", run(unquote(alg), unquote(m), unquote(seed)), exact(unquote(m)))
    end
  end

  # ---- programmable VI and MAP: a fitted guide and a mode, not draws ----------------------------

  # VI with the conjugate family as guide (Beta for beta–bernoulli, Gamma for gamma–poisson, on
  # log parameters): neither family is reparameterized, so REINFORCE, with stl: — at the exact
  # posterior every sample's log weight is log p(y), the leave-one-out signal is 0 and the gradient
  # noise vanishes, so the iterates converge to the exact posterior instead of fluctuating around it.
  # Tolerance: 4 SE of the iterates' fluctuation over the last 300 steps (ESS by Gen.Diagnostics,
  # Geyer) plus their drift over that window, which bounds the remaining distance when the error
  # shrinks geometrically by at least half per window (about tenfold per 200 steps here, after
  # about 1000 steps to reach the optimum from the prior).
  # Regression: a full-covariance Gaussian guide written as w0 ~ N(m0, s0²), w1 | w0 ~ N(m1 +
  # c(w0 − m0), s1²), reparameterized; the exact posterior is in the family, so stl: applies alike.
  @vi_table [{:bb, 300}, {:gp, 310}, {:lr, 330}]

  defp guide(:bb), do: gen(fn p -> trace(:p, Gen.Dist.beta(Mx.exp(p.la), Mx.exp(p.lb))) end)
  defp guide(:gp), do: gen(fn p -> trace(:lambda, Gen.Dist.gamma(Mx.exp(p.la), rate: Mx.exp(p.lb))) end)

  defp guide(:lr) do
    gen(fn p ->
      w0 = trace({:w, 0}, Gen.Dist.normal(p.m0, Mx.exp(p.ls0)))
      trace({:w, 1}, Gen.Dist.normal(Mx.add(p.m1, Mx.multiply(p.c, Mx.subtract(w0, p.m0))), Mx.exp(p.ls1)))
    end)
  end

  # Started at the prior's parameters (and independence for the regression).
  defp guide_init(:bb), do: %{la: :math.log(2.0), lb: :math.log(2.0)}
  defp guide_init(:gp), do: %{la: :math.log(3.0), lb: :math.log(2.0)}
  defp guide_init(:lr), do: %{m0: 0.0, m1: 0.0, ls0: 0.0, ls1: :math.log(2.0), c: 0.0}

  # The guide's means and variances, per coordinate, from its parameters (plain floats).
  defp guide_moments(:bb, p) do
    {a, b} = {:math.exp(p.la), :math.exp(p.lb)}
    [a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))]
  end

  defp guide_moments(:gp, p) do
    {a, b} = {:math.exp(p.la), :math.exp(p.lb)}
    [a / b, a / (b * b)]
  end

  defp guide_moments(:lr, p) do
    v0 = :math.exp(2 * p.ls0)
    [p.m0, p.m1, v0, p.c * p.c * v0 + :math.exp(2 * p.ls1)]
  end

  defp vi_opts(:lr), do: [samples: 2, steps: 1500, optimizer: Gen.Optim.adam(learning_rate: 0.05)]
  defp vi_opts(_), do: [estimator: :reinforce, samples: 4, steps: 2000, optimizer: Gen.Optim.adam(learning_rate: 0.1)]

  defp fit_vi(m, seed) do
    opts = vi_opts(m)
    {steps, window} = {opts[:steps], 300}
    me = self()
    ref = make_ref()

    cb = fn %{iteration: i, params: p} ->
      if i >= steps - window, do: send(me, {ref, guide_moments(m, Map.new(p, fn {k, v} -> {k, Mx.to_number(v)} end))})
    end

    p0 = Map.new(guide_init(m), fn {k, v} -> {k, Mx.tensor(v, type: :f64)} end)
    Inference.vi(model(m), args(m), obs(m), guide(m), p0, [stl: true, key: Mx.Random.key(seed), callback: cb] ++ opts)
    its = for _ <- 1..window, do: receive(do: ({^ref, x} -> x))
    for k <- 0..(length(hd(its)) - 1), do: its |> Enum.map(&Enum.at(&1, k)) |> settle()
  end

  # Last iterate; tolerance 4·sd/√ESS of the window plus its drift |last − first|.
  defp settle(xs) do
    n = length(xs)
    m = Enum.sum(xs) / n
    sd = :math.sqrt(Enum.sum(Enum.map(xs, &((&1 - m) ** 2))) / (n - 1))
    ess = if sd > 0, do: min(Gen.Diagnostics.ess(xs, method: :basic), n), else: n
    %{value: List.last(xs), tol: 4 * sd / :math.sqrt(ess) + abs(List.last(xs) - hd(xs))}
  end

  for {m, seed} <- @vi_table do
    test "programmable VI (posterior family as guide, stl) on #{m}: the fitted guide's means and variances" do
      m = unquote(m)
      ex = exact(m)
      d = length(ex.mean)
      {means, vars} = fit_vi(m, unquote(seed)) |> Enum.split(d)

      for {{mean, var}, j} <- Enum.with_index(Enum.zip(means, vars)) do
        {em, ev} = {Enum.at(ex.mean, j), Enum.at(ex.var, j)}
        report("vi/#{m}", j, mean.value, em, mean.tol / 4, var.value, ev, var.tol / 4, 300)
        assert abs(mean.value - em) <= mean.tol, "[#{j}] mean #{mean.value} vs #{em}, tolerance #{mean.tol}"
        assert abs(var.value - ev) <= var.tol, "[#{j}] variance #{var.value} vs #{ev}, tolerance #{var.tol}"
      end
    end
  end

  # MAP by gradient ascent with line search until |∇ log p| ≤ tol, the gradient in the unconstrained
  # u the choice moves on (Gen.Transform: logit for p, log for lambda): near the mode x*, |x − x*| ≈
  # |∇_u|/(|dx/du|·|f''(x*)|), so 2·tol/(|dx/du|·|f''(x*)|) bounds it (the factor 2 for the cubic
  # remainder), dx/du = x(1 − x) and x. Beta(a, b): mode (a − 1)/(a + b − 2),
  # f'' = −(a − 1)/x² − (b − 1)/(1 − x)²; Gamma(a, b): (a − 1)/b, f'' = −(a − 1)/x².
  for m <- [:bb, :gp] do
    test "MAP on #{m}: the exact posterior mode" do
      m = unquote(m)
      ex = exact(m)
      [addr] = latents(m)
      {a, b} = {ex.a, ex.b}

      {mode, curv} =
        case m do
          :bb -> (a - 1) / (a + b - 2) |> then(&{&1, &1 * (1 - &1) * ((a - 1) / &1 ** 2 + (b - 1) / (1 - &1) ** 2)})
          :gp -> (a - 1) / b |> then(&{&1, &1 * ((a - 1) / &1 ** 2)})
        end

      tol = 1.0e-9
      t = Inference.map_optimize(start(m, 320), Gen.select(addr), tol: tol)
      x = Mx.to_number(t[addr])
      assert abs(x - mode) <= 2 * tol / curv, "mode #{x} vs #{mode}"
    end
  end
end
