defmodule Gen.SMCMoreTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers, only: [ln_normal: 3]
  alias Gen.ChainCheck
  alias Gen.Inference.Kernel

  doctest Gen.Inference.SMC

  defp mean_sd(v) do
    m = Enum.sum(v) / length(v)
    {m, :math.sqrt(Enum.sum(Enum.map(v, &((&1 - m) ** 2))) / (length(v) - 1))}
  end

  # ---- rejuvenation on a static parameter -------------------------------------------
  # mu ~ N(0, 1), y_i ~ N(mu, 0.3²) arriving one per step: the posterior after T steps is
  # N(Σy/σ² / (1 + T/σ²), 1 / (1 + T/σ²)), sd 0.067 for T = 20, against the prior's 1.

  @sigma 0.3
  @t_static 20

  defp static_model do
    gen(fn t ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
      for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, @sigma))
      mu
    end)
  end

  defp static_run(kernel, seed, n) do
    ys = for i <- 0..(@t_static - 1), do: 0.7 + 0.3 * :math.sin(i * 1.7)
    obs = for {y, i} <- Enum.with_index(ys), do: %{{:y, i} => y}

    {traces, lnw, _} =
      Gen.Inference.smc(static_model(), &[&1], obs, n,
        key: Mx.Random.key(seed),
        rejuvenate: kernel
      )

    w = lnw |> Mx.exp() |> Mx.to_list()
    mus = Enum.map(traces, &Mx.to_number(&1[:mu]))
    mean = Enum.zip_with(w, mus, &(&1 * &2)) |> Enum.sum()
    var = Enum.zip_with(w, mus, &(&1 * (&2 - mean) ** 2)) |> Enum.sum()
    # Kish's ESS of the weights summed per distinct value: copies of one value count once.
    per_value =
      Enum.zip(mus, w)
      |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
      |> Enum.map(fn {_, ws} -> Enum.sum(ws) end)

    effective = 1 / Enum.sum(Enum.map(per_value, &(&1 * &1)))
    %{distinct: length(Enum.uniq(mus)), effective: effective, mean: mean, var: var, ys: ys}
  end

  test "rejuvenation keeps a static parameter diverse and its posterior right; without it the particles degenerate" do
    n = 50
    seeds = 10..17
    rejuv = for s <- seeds, do: static_run(Kernel.mh(Gen.select(:mu)), s, n)
    plain = for s <- seeds, do: static_run(nil, s, n)

    ys = hd(rejuv).ys
    prec = 1 + @t_static / @sigma ** 2
    {post_mean, post_var} = {Enum.sum(ys) / @sigma ** 2 / prec, 1 / prec}

    # Without moves the particles only ever hold the n prior draws of step 0, and only about
    # n·P(|N(0,1) − 0.7| < 3 posterior sd) ≈ 3 of them lie where the posterior has its mass.
    for r <- plain,
        do:
          assert(r.effective < n / 5, "no rejuvenation: #{r.effective} effective distinct values")

    # With moves every copy made by resampling walks off on its own unless its MH steps reject.
    for r <- rejuv do
      assert r.effective > n / 5, "rejuvenation: only #{r.effective} effective distinct values"
      assert r.distinct > n / 2, "rejuvenation kept only #{r.distinct} distinct values"
    end

    # 8 independent runs: the sd over runs is the standard error of one run's estimate; the
    # average of 8 is within 4 of them / √8 (a t test with 7 df at about the 0.5% level).
    {m_avg, m_sd} = rejuv |> Enum.map(& &1.mean) |> mean_sd()
    {v_avg, v_sd} = rejuv |> Enum.map(& &1.var) |> mean_sd()

    assert abs(m_avg - post_mean) < 4 * m_sd / :math.sqrt(8),
           "mean #{m_avg} vs #{post_mean}, sd #{m_sd}"

    assert abs(v_avg - post_var) < 4 * v_sd / :math.sqrt(8),
           "variance #{v_avg} vs #{post_var}, sd #{v_sd}"
  end

  test "rejuvenate: must be a kernel" do
    assert_raise ArgumentError, ~r/rejuvenate: must be a kernel/, fn ->
      Gen.Inference.smc(static_model(), &[&1], [%{{:y, 0} => 0.0}], 4, rejuvenate: Gen.select(:mu))
    end
  end

  # ---- conditional SMC and particle Gibbs on the linear-Gaussian state-space model -----
  # x_0 ~ N(0, 1), x_t ~ N(0.9 x_{t-1}, 0.5²), y_t ~ N(x_t, 0.3²) (as in smc_test.exs).

  @t_len 10
  # The model, its data, the exact filter and smoother: test/support/kalman.ex.
  import Gen.Kalman, only: [ssm: 0, smoother: 1]
  @a Gen.Kalman.params().a
  @q Gen.Kalman.params().q
  @r Gen.Kalman.params().r

  defp data, do: Gen.Kalman.data(@t_len)

  defp observations(ys), do: for({y, i} <- Enum.with_index(ys), do: %{i => %{y: y}})

  defp all_obs(ys), do: ys |> observations() |> Enum.reduce(%{}, &Map.merge/2)

  test "csmc holds particle 0 to the reference and weighs it as a prior proposal" do
    ys = data()
    obs = observations(ys)
    {ref, _} = Gen.generate(ssm(), [@t_len, 0.0], all_obs(ys), key: Mx.Random.key(3))

    {traces, lnw, new_ref} =
      Gen.Inference.csmc(ssm(), &[&1 + 1, 0.0], obs, 6, ref, key: Mx.Random.key(4))

    assert Gen.Choicemap.to_list(Gen.get_choices(hd(traces)))
           |> Enum.map(fn {p, v} -> {p, Mx.to_number(v)} end) ==
             Gen.Choicemap.to_list(Gen.get_choices(ref))
             |> Enum.map(fn {p, v} -> {p, Mx.to_number(v)} end)

    assert_in_delta Mx.to_number(Gen.get_score(hd(traces))),
                    Mx.to_number(Gen.get_score(ref)),
                    1.0e-10

    assert Enum.any?(traces, &(&1 == new_ref))

    # Every step resamples, so the final weights are the last step's bootstrap increments
    # log N(y_{T-1}; x_{T-1}, r), for particle 0 at the reference's x_{T-1} as for the others.
    y = List.last(ys)
    inc = Enum.map(traces, &ln_normal(y, Mx.to_number(&1[[@t_len - 1, :x]]), :math.sqrt(@r)))
    lse = Gen.Inference.SMC.logsumexp(inc)

    for {l, i} <- Enum.zip(Mx.to_list(lnw), inc), do: assert_in_delta(l, i - lse, 1.0e-9)
  end

  test "particle Gibbs recovers the Kalman smoother's posterior of x_0 and x_{T-1}" do
    ys = data()
    smooth = smoother(ys)
    {t0, _} = Gen.generate(ssm(), [@t_len, 0.0], all_obs(ys), key: Mx.Random.key(1))
    pg = Gen.Inference.particle_gibbs(&[&1 + 1, 0.0], observations(ys), 10)

    xs =
      Gen.Inference.run(pg, t0,
        samples: 600,
        burn: 20,
        key: Mx.Random.key(7),
        select: fn t -> {Mx.to_number(t[[0, :x]]), Mx.to_number(t[[@t_len - 1, :x]])} end
      )

    {x0s, xts} = Enum.unzip(xs)
    {m_last, v_last} = List.last(smooth)
    {m_first, _} = hd(smooth)

    # x_{T-1} mixes well: mean and variance within 4 batch-means standard errors.
    ChainCheck.assert_posterior(xts, m_last, v_last)

    # x_0 mixes slowly (path degeneracy takes the reference's early states along), which the
    # batch-means standard error accounts for: mean within 4 of them.
    bm = ChainCheck.batch_means(x0s)
    assert abs(bm.mean - m_first) < 4 * bm.se, "x_0 mean #{bm.mean} vs #{m_first}, SE #{bm.se}"
  end

  test "csmc argument errors" do
    ys = data()
    obs = observations(ys)
    {ref, _} = Gen.generate(ssm(), [@t_len, 0.0], all_obs(ys), key: Mx.Random.key(3))

    assert_raise ArgumentError, ~r/integer >= 2/, fn ->
      Gen.Inference.csmc(ssm(), &[&1 + 1, 0.0], obs, 1, ref)
    end

    assert_raise ArgumentError, ~r/reference must be a Gen.Trace/, fn ->
      Gen.Inference.csmc(ssm(), &[&1 + 1, 0.0], obs, 3, %{})
    end

    # A reference with fewer steps than the observations lacks x at the later steps.
    {short, _} = Gen.generate(ssm(), [2, 0.0], %{0 => %{y: hd(ys)}}, key: Mx.Random.key(3))

    assert_raise ArgumentError, ~r/has no value at address \[2, :x\]/, fn ->
      Gen.Inference.csmc(ssm(), &[&1 + 1, 0.0], obs, 3, short)
    end
  end

  # ---- SMCP3 on the linear-Gaussian model --------------------------------------------

  @t_p3 15

  defp p3_data, do: Gen.Kalman.data(@t_p3)

  defp kalman_lml(ys), do: elem(Gen.Kalman.filter(ys), 0)

  # The prior of x_t given the particle's x_{t-1} (N(0, 1) at t = 0) times N(y_t; x_t, r):
  # the locally optimal proposal N(m, s²), with 1/s² = 1/v + 1/r, m = s²(μ/v + y/r).
  defp optimal(prev_x, y) do
    {mu, v} = if prev_x == nil, do: {0.0, 1.0}, else: {@a * prev_x, @q}
    s2 = 1 / (1 / v + 1 / @r)
    {s2 * (mu / v + y / @r), :math.sqrt(s2)}
  end

  defp prev_x(nil, _t), do: nil
  defp prev_x(_old, 0), do: nil
  defp prev_x(old, t), do: Mx.to_number(old[[t - 1, :x]])

  defp forward_optimal do
    gen(fn old, t, obs ->
      {m, s} = optimal(prev_x(old, t), Mx.to_number(obs[[t, :y]]))
      trace([t, :x], Gen.Dist.normal(m, s))
    end)
  end

  defp p3_obs(ys), do: for({y, i} <- Enum.with_index(ys), do: %{i => %{y: y}})

  defp lml_runs(fun, seeds), do: for(s <- seeds, do: Mx.to_number(fun.(Mx.Random.key(s))))

  test "smcp3 with the locally optimal proposal matches Kalman, with less spread than the bootstrap filter" do
    ys = p3_data()
    exact = kalman_lml(ys)
    obs = p3_obs(ys)
    n = 50
    seeds = 200..209

    p3 =
      lml_runs(
        fn k ->
          elem(
            Gen.Inference.smcp3(ssm(), &[&1 + 1, 0.0], obs, n, forward: forward_optimal(), key: k),
            2
          )
        end,
        seeds
      )

    boot =
      lml_runs(
        fn k -> elem(Gen.Inference.smc(ssm(), &[&1 + 1, 0.0], obs, n, key: k), 2) end,
        seeds
      )

    {p3_avg, p3_sd} = mean_sd(p3)
    {_boot_avg, boot_sd} = mean_sd(boot)

    # 10 runs each: every run within 4 sd (sd over runs) of the exact value. log Ẑ is biased by
    # about −sd²/2 (Ẑ is unbiased), negligible beside sd/√10 for SMCP3 (sd ≈ 0.2) but not for
    # the bootstrap (sd ≈ 1), so only SMCP3's average is held to 4 sd/√10.
    for {runs, sd} <- [{p3, p3_sd}, {boot, boot_sd}],
        l <- runs,
        do: assert(abs(l - exact) < 4 * sd, "log ML #{l} vs #{exact}, sd #{sd}")

    assert abs(p3_avg - exact) < 4 * p3_sd / :math.sqrt(10),
           "mean log ML #{p3_avg} vs #{exact}, sd #{p3_sd}"

    # The optimal proposal's weights p(y_t | x_{t-1}) vary far less than the bootstrap's p(y_t | x_t).
    assert p3_sd < boot_sd / 2, "smcp3 sd #{p3_sd} vs bootstrap sd #{boot_sd}"
  end

  test "smcp3 moving x_{t-1} too, with a backward proposal scoring the old value, still estimates the Kalman log ML" do
    ys = p3_data()
    exact = kalman_lml(ys)
    obs = p3_obs(ys)

    # K: a random-walk move of x_{t-1}, then x_t from the optimal proposal given the moved value.
    k =
      gen(fn old, t, obs ->
        x_prev =
          if t > 0,
            do: trace([t - 1, :x], Gen.Dist.normal(old[[t - 1, :x]], 0.1)) |> Mx.to_number(),
            else: nil

        {m, s} = optimal(x_prev, Mx.to_number(obs[[t, :y]]))
        trace([t, :x], Gen.Dist.normal(m, s))
      end)

    # L: from the new trace, the old x_{t-1} by the same random walk (it is the update's discard).
    l =
      gen(fn new, t, _obs ->
        if t > 0, do: trace([t - 1, :x], Gen.Dist.normal(new[[t - 1, :x]], 0.1))
      end)

    runs =
      lml_runs(
        fn key ->
          elem(
            Gen.Inference.smcp3(ssm(), &[&1 + 1, 0.0], obs, 50, forward: k, backward: l, key: key),
            2
          )
        end,
        300..309
      )

    {avg, sd} = mean_sd(runs)
    # log Ẑ is biased by about −sd²/2: small beside 4 sd/√10 only while sd is well under 2.5.
    assert sd < 0.6, "sd over runs #{sd}"
    for l <- runs, do: assert(abs(l - exact) < 4 * sd, "log ML #{l} vs #{exact}, sd #{sd}")
    assert abs(avg - exact) < 4 * sd / :math.sqrt(10), "mean log ML #{avg} vs #{exact}, sd #{sd}"

    # Without L the displaced x_{t-1} cannot be scored.
    assert_raise ArgumentError, ~r/no backward: proposal/, fn ->
      Gen.Inference.smcp3(ssm(), &[&1 + 1, 0.0], Enum.take(obs, 2), 3,
        forward: k,
        key: Mx.Random.key(0)
      )
    end
  end

  test "smcp3 with a transform and its Jacobian equals the identity form on the same draws" do
    ys = Enum.take(p3_data(), 6)
    obs = p3_obs(ys)

    # K proposes a standard normal z; the transform writes x_t = m + s·z, |dx/dz| = s.
    k_z = gen(fn _old, _t, _obs -> trace(:z, Gen.Dist.normal(0.0, 1.0)) end)

    transform = fn old, u, t, obs ->
      {m, s} = optimal(prev_x(old, t), Mx.to_number(obs[[t, :y]]))
      x = Mx.add(m, Mx.multiply(s, u[:z]))
      {%{t => %{x: x}}, %{}, :math.log(s)}
    end

    opts = [key: Mx.Random.key(41), ess_threshold: 0.7]

    {tr_a, lnw_a, lml_a} =
      Gen.Inference.smcp3(ssm(), &[&1 + 1, 0.0], obs, 8, [forward: forward_optimal()] ++ opts)

    {tr_b, lnw_b, lml_b} =
      Gen.Inference.smcp3(
        ssm(),
        &[&1 + 1, 0.0],
        obs,
        8,
        [forward: k_z, transform: transform] ++ opts
      )

    assert_in_delta Mx.to_number(lml_a), Mx.to_number(lml_b), 1.0e-9

    for {a, b} <- Enum.zip(Mx.to_list(lnw_a), Mx.to_list(lnw_b)),
        do: assert_in_delta(a, b, 1.0e-9)

    for {a, b} <- Enum.zip(tr_a, tr_b),
        do: assert_in_delta(Mx.to_number(a[[5, :x]]), Mx.to_number(b[[5, :x]]), 1.0e-12)

    # Without the Jacobian term every weight of step t drops by log s_t (s_t the same for all
    # particles), so the estimate drops by Σ_t log s_t exactly.
    no_jac = fn old, u, t, obs ->
      transform.(old, u, t, obs) |> then(fn {c, v, _} -> {c, v} end)
    end

    {_, _, lml_c} =
      Gen.Inference.smcp3(
        ssm(),
        &[&1 + 1, 0.0],
        obs,
        8,
        [forward: k_z, transform: no_jac] ++ opts
      )

    log_s =
      Enum.sum(
        for t <- 0..5, do: :math.log(elem(optimal(if(t == 0, do: nil, else: 0.0), 0.0), 1))
      )

    assert_in_delta Mx.to_number(lml_c), Mx.to_number(lml_a) - log_s, 1.0e-9
  end

  test "smcp3 argument errors" do
    obs = p3_obs(Enum.take(p3_data(), 2))

    assert_raise ArgumentError, ~r/forward: is required/, fn ->
      Gen.Inference.smcp3(ssm(), &[&1 + 1, 0.0], obs, 3, [])
    end

    assert_raise ArgumentError, ~r/forward: must be a generative function/, fn ->
      Gen.Inference.smcp3(ssm(), &[&1 + 1, 0.0], obs, 3, forward: fn -> :ok end)
    end

    assert_raise ArgumentError, ~r/transform: must be a function/, fn ->
      Gen.Inference.smcp3(ssm(), &[&1 + 1, 0.0], obs, 3,
        forward: forward_optimal(),
        transform: fn _ -> :ok end
      )
    end
  end

  # ---- the streaming filter on a short series -----------------------------------------

  test "SMC.filter matches the Kalman log ML; keep: returns each particle's ancestral line" do
    ys = p3_data()
    exact = kalman_lml(ys)
    {init, step} = Gen.Kalman.init_step()
    obs = Stream.map(ys, &%{y: &1})

    runs =
      for s <- 400..409 do
        r =
          Gen.Inference.SMC.filter(init, step, obs, 50,
            key: Mx.Random.key(s),
            keep: &Mx.to_number(&1[:x])
          )

        # The last entry of every line is the particle's current x; every line has T entries.
        for {line, tr} <- Enum.zip(r.history, r.traces) do
          assert length(line) == @t_p3
          assert List.last(line) == Mx.to_number(tr[:x])
        end

        Mx.to_number(r.log_ml)
      end

    {avg, sd} = mean_sd(runs)
    for l <- runs, do: assert(abs(l - exact) < 4 * sd, "log ML #{l} vs #{exact}, sd #{sd}")
    assert abs(avg - exact) < 4 * sd / :math.sqrt(10), "mean log ML #{avg} vs #{exact}, sd #{sd}"
  end

  test "SMC.filter argument errors" do
    {init, step} = Gen.Kalman.init_step()

    assert_raise ArgumentError, ~r/non-empty enumerable/, fn ->
      Gen.Inference.SMC.filter(init, step, [], 3)
    end

    assert_raise ArgumentError, ~r/rejuvenate: is not supported/, fn ->
      Gen.Inference.SMC.filter(init, step, [%{y: 0.0}], 3, rejuvenate: nil)
    end

    assert_raise ArgumentError, ~r/keep: must be/, fn ->
      Gen.Inference.SMC.filter(init, step, [%{y: 0.0}], 3, keep: 1)
    end

    assert_raise ArgumentError, ~r/proposal: must be/, fn ->
      Gen.Inference.SMC.filter(init, step, [%{y: 0.0}], 3, proposal: 1)
    end
  end
end
