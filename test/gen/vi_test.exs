defmodule Gen.VITest do
  use ExUnit.Case, async: true
  import Gen
  alias Gen.{Inference, Optim}
  alias Gen.Inference.VI

  doctest Gen.Inference.VI

  defp f64(x), do: Mx.tensor(x, type: :f64)
  defp num(x), do: Mx.to_number(x)

  # ---- normal–normal: mu ~ N(0, 2²), y_i ~ N(mu, 1), i = 1..5 -------------------------

  @ys [0.8, 1.9, 1.1, 2.4, 1.5]
  # Conjugacy: posterior precision 1/4 + 5, mean Σy / precision.
  @prec 1.0 / 4.0 + 5
  @post_mean Enum.sum([0.8, 1.9, 1.1, 2.4, 1.5]) / (1.0 / 4.0 + 5)
  @post_sd :math.sqrt(1 / (1.0 / 4.0 + 5))

  defp normal_model do
    gen(fn n ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
      for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
      mu
    end)
  end

  defp obs(ys), do: for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y})

  defp gauss_guide, do: gen(fn p -> trace(:mu, Gen.Dist.normal(p.m, Mx.exp(p.ls))) end)

  # Exact log p(y), y ~ N(0, I + 4·11ᵀ) (determinant lemma, Sherman–Morrison): test/support/chain_check.ex.
  defp exact_log_ml, do: Gen.ChainCheck.normal_log_ml(@ys)

  # ELBO of q = N(a, σ²) = log p(y) − KL(q ‖ N(m, s²)), KL = log(s/σ) + (σ² + (a − m)²)/(2s²) − 1/2.
  defp exact_elbo(a, sigma) do
    s2 = @post_sd * @post_sd
    kl = :math.log(@post_sd / sigma) + (sigma * sigma + (a - @post_mean) * (a - @post_mean)) / (2 * s2) - 0.5
    exact_log_ml() - kl
  end

  # Mean and Monte-Carlo standard error of a (possibly autocorrelated) sequence: sd/√ESS with the
  # classic ESS of the mean (Gen.Diagnostics, Geyer's initial monotone sequence).
  defp mean_se(xs) do
    n = length(xs)
    m = Enum.sum(xs) / n
    var = Enum.sum(Enum.map(xs, &((&1 - m) * (&1 - m)))) / (n - 1)
    ess = if n > 4, do: Gen.Diagnostics.ess(xs, method: :basic), else: n

    ess =
      case ess do
        :nan -> n
        e -> min(e, n)
      end

    {m, :math.sqrt(var / ess)}
  end

  defp iid_mean_se(xs) do
    n = length(xs)
    m = Enum.sum(xs) / n
    {m, :math.sqrt(Enum.sum(Enum.map(xs, &((&1 - m) * (&1 - m)))) / (n - 1) / n)}
  end

  # Collects the callback's parameters for the iterations from `from` on.
  defp collector(from, fun) do
    me = self()
    ref = make_ref()
    cb = fn %{iteration: i, params: p} -> if i >= from, do: send(me, {ref, fun.(p)}) end
    {cb, fn count -> for _ <- 1..count, do: receive(do: ({^ref, x} -> x)) end}
  end

  describe "ADVI" do
    test "normal–normal: averaged iterates recover the exact posterior mean and sd" do
      steps = 3000
      burn = 750
      {cb, collect} = collector(burn, fn p -> {num(hd(p.mu)), num(hd(p.log_sigma))} end)

      {p, elbos} =
        Inference.advi(normal_model(), [5], obs(@ys), Gen.select(:mu),
          steps: steps,
          samples: 4,
          optimizer: Optim.sgd(learning_rate: 0.02),
          key: Mx.Random.key(1),
          callback: cb
        )

      its = collect.(steps - burn)
      assert length(elbos) == steps
      assert Gen.Choicemap.has_value?(p.mu, :mu)
      # Constant-step SGD iterates form a stationary chain around the optimum. E[∇_mu] = −(mu − m)/s² is
      # linear, so the mean of mu is unbiased; for log σ the curvature of e^{2 log σ} biases the mean by
      # about −η·Var(g)/(2·H) = −0.02·(2/4)/4 ≈ −0.0025, a fraction of its SE (≈ 0.006). 4 SE each.
      {m, se_m} = its |> Enum.map(&elem(&1, 0)) |> mean_se()
      {l, se_l} = its |> Enum.map(&elem(&1, 1)) |> mean_se()
      assert abs(m - @post_mean) <= 4 * se_m, "mean #{m} vs #{@post_mean}, SE #{se_m}"
      assert abs(l - :math.log(@post_sd)) <= 4 * se_l, "log sd #{l} vs #{:math.log(@post_sd)}, SE #{se_l}"
      assert se_m < 0.01 and se_l < 0.02

      # At the optimum the ELBO is log p(y) (KL 0): the mean of the last estimates, within 4 SE.
      {e, se_e} = elbos |> Enum.drop(burn) |> mean_se()
      assert abs(e - exact_log_ml()) <= 4 * se_e + 0.01, "ELBO #{e} vs log p(y) #{exact_log_ml()}"
    end

    test "sticking the landing: the gradient vanishes at the exact posterior, so the iterates converge to it" do
      {cb, collect} = collector(800, fn p -> {num(hd(p.mu)), num(hd(p.log_sigma))} end)

      {p, _} =
        Inference.advi(normal_model(), [5], obs(@ys), Gen.select(:mu),
          steps: 1000,
          stl: true,
          optimizer: Optim.adam(learning_rate: 0.05),
          key: Mx.Random.key(2),
          callback: cb
        )

      its = collect.(200)
      # With q = N(m, s²) the path derivative ∇_z[log p(z, y) − log q(z)] is 0 for every z, so the noise
      # dies out near the optimum; what is left is 4 SE of the (tiny) fluctuation plus f64 rounding.
      {m, se_m} = its |> Enum.map(&elem(&1, 0)) |> mean_se()
      {l, se_l} = its |> Enum.map(&elem(&1, 1)) |> mean_se()
      assert abs(m - @post_mean) <= 4 * se_m + 1.0e-9
      assert abs(l - :math.log(@post_sd)) <= 4 * se_l + 1.0e-9
      assert se_m < 1.0e-4 and se_l < 1.0e-4
      assert_in_delta num(p.mu[:mu]), @post_mean, 1.0e-3

      # The fitted guide samples the posterior approximation.
      t = Gen.simulate(VI.mean_field_guide(p), [], key: Mx.Random.key(3))
      assert Mx.describe(t[:mu]) == "f64"
    end

    test "Bayesian linear regression: means at the exact posterior mean, sds at 1/√H_ii" do
      xs = [-1.5, -0.7, 0.0, 0.4, 1.1, 2.0, 2.6]
      ys = [-2.1, -0.4, 0.9, 1.2, 2.6, 4.4, 5.3]
      {tau, sigma} = {3.0, 0.8}

      model =
        gen(fn xs ->
          slope = trace(:slope, Gen.Dist.normal(0.0, tau))
          intercept = trace(:intercept, Gen.Dist.normal(0.0, tau))

          for {x, j} <- Enum.with_index(xs),
              do: trace({:y, j}, Gen.Dist.normal(Mx.add(Mx.multiply(slope, x), intercept), sigma))
        end)

      # Posterior precision H = XᵀX/σ² + I/τ² (X = [x 1]); mean H⁻¹Xᵀy/σ² by Cramer's rule.
      n = length(xs)
      s2 = sigma * sigma
      {sxx, sx} = {Enum.sum(Enum.map(xs, &(&1 * &1))), Enum.sum(xs)}
      {sxy, sy} = {Enum.zip(xs, ys) |> Enum.map(fn {x, y} -> x * y end) |> Enum.sum(), Enum.sum(ys)}
      {a, b, d} = {sxx / s2 + 1 / (tau * tau), sx / s2, n / s2 + 1 / (tau * tau)}
      det = a * d - b * b
      mean = {(d * sxy / s2 - b * sy / s2) / det, (a * sy / s2 - b * sxy / s2) / det}

      steps = 3000
      burn = 750
      {cb, collect} = collector(burn, fn p -> Enum.map(p.mu ++ p.log_sigma, &num/1) end)

      {p, _} =
        Inference.advi(model, [xs], obs(ys), Gen.select([:slope, :intercept]),
          steps: steps,
          samples: 2,
          optimizer: Optim.sgd(learning_rate: 0.01),
          key: Mx.Random.key(4),
          callback: cb
        )

      its = collect.(steps - burn)
      # Addresses in the choicemap's order: intercept, slope.
      assert p.mu |> Gen.Choicemap.to_list() |> Enum.map(&elem(&1, 0)) == [[:intercept], [:slope]]
      # The mean-field optimum of KL(q ‖ N(μ, H⁻¹)) has means μ and variances 1/H_ii. E[∇ means] =
      # −H(means − μ) is linear, so the averaged means are unbiased; 4 SE (ESS of the iterates).
      # The log-sd bias −η·Var(g)/(2·2) ≈ −0.01·1/4 is under half an SE.
      expected = [elem(mean, 1), elem(mean, 0), -0.5 * :math.log(d), -0.5 * :math.log(a)]

      for {j, e} <- Enum.with_index(expected) |> Enum.map(fn {e, j} -> {j, e} end) do
        {m, se} = its |> Enum.map(&Enum.at(&1, j)) |> mean_se()
        assert abs(m - e) <= 4 * se, "parameter #{j}: #{m} vs #{e}, SE #{se}"
        assert se < 0.02
      end
    end

    test "errors" do
      m = gen(fn -> {trace(:b, Gen.Dist.bernoulli(0.5)), trace(:x, Gen.Dist.normal(0.0, 1.0))} end)

      assert_raise ArgumentError, ~r/advi: the selected choice at address :b .* continuous choices only/, fn ->
        Inference.advi(m, [], %{x: 1.0}, Gen.select(:b), key: Mx.Random.key(0))
      end

      assert_raise ArgumentError, ~r/selects no choice/, fn ->
        Inference.advi(m, [], %{x: 1.0}, Gen.select(:zz), key: Mx.Random.key(0))
      end
    end
  end

  describe "gradient estimators" do
    test "reparam and reinforce estimate the same ELBO gradient, the exact one" do
      # q = N(a, σ²) with a = m + 0.5, σ = 0.8: ∂ELBO/∂a = −(a − m)/s², ∂ELBO/∂log σ = 1 − σ²/s².
      {a, sigma} = {@post_mean + 0.5, 0.8}
      p = %{m: f64(a), ls: f64(:math.log(sigma))}
      s2 = @post_sd * @post_sd
      exact = %{m: -(a - @post_mean) / s2, ls: 1 - sigma * sigma / s2}
      reps = 400

      est =
        for estimator <- [:reparam, :reinforce], into: %{} do
          gs =
            for r <- 1..reps do
              {_v, g} =
                VI.gradient(normal_model(), [5], obs(@ys), gauss_guide(), p,
                  estimator: estimator,
                  samples: 2,
                  key: Mx.Random.key(r + if(estimator == :reparam, do: 0, else: 10_000))
                )

              {num(g.m), num(g.ls)}
            end

          {estimator, %{m: iid_mean_se(Enum.map(gs, &elem(&1, 0))), ls: iid_mean_se(Enum.map(gs, &elem(&1, 1)))}}
        end

      # Independent replicates: each mean within 4 SE of the exact gradient, and the two estimators'
      # means within 4 SE of their difference, √(SE₁² + SE₂²).
      for k <- [:m, :ls] do
        {rm, rse} = est.reparam[k]
        {fm, fse} = est.reinforce[k]
        assert abs(rm - exact[k]) <= 4 * rse, "reparam #{k}: #{rm} vs #{exact[k]}, SE #{rse}"
        assert abs(fm - exact[k]) <= 4 * fse, "reinforce #{k}: #{fm} vs #{exact[k]}, SE #{fse}"
        assert abs(rm - fm) <= 4 * :math.sqrt(rse * rse + fse * fse)
        # the score function is the noisier estimator
        assert fse > rse
      end
    end

    test "the ELBO estimate is unbiased; the IWELBO rises with K towards log p(y)" do
      # A guide off the posterior (mean + 0.5, sd 0.8) so the gaps are large next to the SEs.
      p = %{m: f64(@post_mean + 0.5), ls: f64(:math.log(0.8))}
      reps = 200

      # The same key per replicate for every K: the K-sample bounds then share their first draws
      # (sample k uses fold_in(key, k)), so the differences are paired and far less noisy.
      rows =
        for r <- 1..reps do
          opts = fn k -> [samples: k, key: Mx.Random.key(r)] end
          e1 = num(VI.elbo(normal_model(), [5], obs(@ys), gauss_guide(), p, opts.(1)))
          e2 = num(VI.iwelbo(normal_model(), [5], obs(@ys), gauss_guide(), p, opts.(2)))
          e8 = num(VI.iwelbo(normal_model(), [5], obs(@ys), gauss_guide(), p, opts.(8)))
          {e1, e2, e8}
        end

      {e1, s1} = rows |> Enum.map(&elem(&1, 0)) |> iid_mean_se()
      {d21, s21} = rows |> Enum.map(fn {a, b, _} -> b - a end) |> iid_mean_se()
      {d82, s82} = rows |> Enum.map(fn {_, b, c} -> c - b end) |> iid_mean_se()
      {e8, s8} = rows |> Enum.map(&elem(&1, 2)) |> iid_mean_se()
      # E[ELBO estimate] is the closed-form ELBO: within 4 SE.
      assert abs(e1 - exact_elbo(@post_mean + 0.5, 0.8)) <= 4 * s1, "#{e1} vs #{exact_elbo(@post_mean + 0.5, 0.8)}"
      # E[IWELBO_K] rises with K (Burda et al. 2016, Thm 1) and stays ≤ log p(y): each paired mean
      # difference more than 4 of its SEs above 0, and the K = 8 mean within 4 SE under log p(y).
      assert d21 > 4 * s21, "IWELBO_2 − ELBO: #{d21}, SE #{s21}"
      assert d82 > 4 * s82, "IWELBO_8 − IWELBO_2: #{d82}, SE #{s82}"
      assert e8 <= exact_log_ml() + 4 * s8
    end
  end

  describe "programmable VI" do
    test "wake-sleep fits an amortized guide q(mu | ȳ) to the exact posterior map" do
      # q(mu | y) = N(a·ȳ + b, e^{2·ls}); the exact posterior is N(n/(n + 1/4)·ȳ, 1/(n + 1/4)), in the family.
      guide = gen(fn p, ybar -> trace(:mu, Gen.Dist.normal(Mx.add(Mx.multiply(p.a, ybar), p.b), Mx.exp(p.ls))) end)

      ybar = fn cm ->
        vals = cm |> Gen.Choicemap.to_list() |> Enum.map(&elem(&1, 1))
        [Mx.divide(Enum.reduce(vals, &Mx.add/2), length(vals))]
      end

      p0 = %{a: f64(0.0), b: f64(0.0), ls: f64(0.0)}
      steps = 2000
      burn = 1000
      {cb, collect} = collector(burn, fn p -> {num(p.a), num(p.b), num(p.ls)} end)

      {_p, hist} =
        Inference.vi(normal_model(), [5], obs(@ys), guide, p0,
          objective: :wake_sleep,
          samples: 4,
          sleep_samples: 4,
          guide_args: ybar,
          steps: steps,
          optimizer: Optim.sgd(learning_rate: 0.01),
          key: Mx.Random.key(5),
          callback: cb
        )

      its = collect.(steps - burn)
      # At the exact posterior both phases' gradients vanish in expectation (sleep: the maximum-likelihood
      # fit of a family holding the true conditional; wake: equal importance weights). Means of the
      # iterates within 4 SE; the log-sd bias of constant-step SGD is O(η) = O(0.01), below an SE.
      expected = [5 / @prec, 0.0, :math.log(@post_sd)]

      for {e, j} <- Enum.with_index(expected) do
        {m, se} = its |> Enum.map(&elem(&1, j)) |> mean_se()
        assert abs(m - e) <= 4 * se, "parameter #{j}: #{m} vs #{e}, SE #{se}"
        assert se < 0.05
      end

      # The wake IWELBO estimates near the end average close to log p(y).
      {e, se} = hist |> Enum.drop(burn) |> mean_se()
      assert abs(e - exact_log_ml()) <= 4 * se + 0.01
    end

    test "a discrete latent with REINFORCE: the guide's probability converges to the exact posterior" do
      # b ~ Bernoulli(0.3); y ~ N(1.5 if b else −0.5, 1); y = 0.8.
      model = gen(fn -> b = trace(:b, Gen.Dist.bernoulli(0.3)); trace(:y, Gen.Dist.normal(Mx.select(b, f64(1.5), f64(-0.5)), 1.0)) end)
      guide = gen(fn p -> trace(:b, Gen.Dist.bernoulli(Mx.sigmoid(p.logit))) end)
      l1 = :math.log(0.3) - 0.5 * (0.8 - 1.5) * (0.8 - 1.5)
      l0 = :math.log(0.7) - 0.5 * (0.8 + 0.5) * (0.8 + 0.5)
      exact = 1 / (1 + :math.exp(l0 - l1))

      {cb, collect} = collector(800, fn p -> 1 / (1 + :math.exp(-num(p.logit))) end)

      {_p, _} =
        Inference.vi(model, [], %{y: 0.8}, guide, %{logit: f64(0.0)},
          samples: 4,
          stl: true,
          steps: 1000,
          optimizer: Optim.adam(learning_rate: 0.05),
          key: Mx.Random.key(6),
          callback: cb
        )

      # At q = p(b | y) every sample's log weight is log p(y), so with the leave-one-out baseline the
      # score-function term (f − b)·∇log q(b) is exactly 0; stl: drops the weight's own −∇log q(b)
      # (mean 0, not 0 per draw). The noise dies out and the iterates settle on the posterior.
      {m, se} = mean_se(collect.(200))
      assert abs(m - exact) <= 4 * se + 1.0e-9, "#{m} vs #{exact}, SE #{se}"
      assert se < 1.0e-3
    end

    test "mixed guide: reinforce for the discrete choice, reparam for the continuous one" do
      # b ~ Bernoulli(0.5); mu ~ N(±1, 1); y ~ N(mu, 1), y = 0.6. p(b | y) ∝ ½·N(y; ±1, 2) and
      # p(mu | b, y) = N((±1 + y)/2, 1/2): a guide with a branch-wise normal holds the exact posterior.
      model =
        gen(fn ->
          b = trace(:b, Gen.Dist.bernoulli(0.5))
          mu = trace(:mu, Gen.Dist.normal(Mx.select(b, f64(1.0), f64(-1.0)), 1.0))
          trace(:y, Gen.Dist.normal(mu, 1.0))
        end)

      guide =
        gen(fn p ->
          b = trace(:b, Gen.Dist.bernoulli(Mx.sigmoid(p.logit)))
          trace(:mu, Gen.Dist.normal(Mx.select(b, p.m1, p.m0), Mx.exp(Mx.select(b, p.s1, p.s0))))
        end)

      y = 0.6
      exact_pb = 1 / (1 + :math.exp(-(0.5 * ((y + 1) * (y + 1) - (y - 1) * (y - 1)) / 2)))
      p0 = %{logit: f64(0.0), m1: f64(0.0), m0: f64(0.0), s1: f64(0.0), s0: f64(0.0)}
      steps = 1500
      burn = 1000
      {cb, collect} = collector(burn, fn p -> {1 / (1 + :math.exp(-num(p.logit))), num(p.m1), num(p.m0), num(p.s1)} end)

      {_p, _} =
        Inference.vi(model, [], %{y: y}, guide, p0,
          samples: 4,
          stl: true,
          steps: steps,
          optimizer: Optim.adam(learning_rate: 0.02),
          key: Mx.Random.key(7),
          callback: cb
        )

      its = collect.(steps - burn)
      # At the exact posterior every sample's log weight is log p(y): the leave-one-out signal of the
      # score term is 0 and, with stl:, so is the path derivative ∇_z[log p(b, z, y) − log q(z | b)].
      # The gradient noise vanishes at the optimum, so the averaged iterates sit on it within 4 SE.
      expected = [exact_pb, (1 + y) / 2, (-1 + y) / 2, -0.5 * :math.log(2)]

      for {e, j} <- Enum.with_index(expected) do
        {m, se} = its |> Enum.map(&elem(&1, j)) |> mean_se()
        assert abs(m - e) <= 4 * se + 1.0e-9, "parameter #{j}: #{m} vs #{e}, SE #{se}"
        assert se < 1.0e-3
      end
    end

    test "model parameters learned with the guide: the prior mean goes to its maximum-likelihood value" do
      # mu ~ N(θ, 2²), y_i ~ N(mu, 1): y ~ N(θ·1, I + 4·11ᵀ), maximised at θ = ȳ; at that θ the exact
      # posterior (in the guide's family) has mean (θ/4 + Σy)/(1/4 + 5).
      model =
        gen(fn th, n ->
          mu = trace(:mu, Gen.Dist.normal(th.theta, 2.0))
          for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
          mu
        end)

      ybar = Enum.sum(@ys) / 5
      {cb, collect} = collector(1000, fn p -> {num(p.model.theta), num(p.guide.m)} end)

      {p, _} =
        Inference.vi(model, [5], obs(@ys), gauss_guide(), %{m: f64(0.0), ls: f64(0.0)},
          model_params: %{theta: f64(0.0)},
          stl: true,
          steps: 2000,
          optimizer: Optim.sgd(learning_rate: 0.1),
          key: Mx.Random.key(8),
          callback: cb
        )

      assert Map.keys(p) == [:guide, :model]
      its = collect.(1000)
      # The expected gradient is linear in (θ, guide mean) — E[(z − θ)/4] = (m − θ)/4 and the path
      # derivative's mean — so constant-step SGD iterates average to the optimum: 4 SE.
      {t, se_t} = its |> Enum.map(&elem(&1, 0)) |> mean_se()
      {m, se_m} = its |> Enum.map(&elem(&1, 1)) |> mean_se()
      assert abs(t - ybar) <= 4 * se_t, "theta #{t} vs #{ybar}, SE #{se_t}"
      assert abs(m - (ybar / 4 + Enum.sum(@ys)) / @prec) <= 4 * se_m
      assert se_t < 0.03
    end

    test "errors name the option" do
      p = %{m: f64(0.0), ls: f64(0.0)}
      args = [normal_model(), [5], obs(@ys), gauss_guide(), p]

      assert_raise ArgumentError, ~r/objective: must be one of/, fn -> apply(VI, :vi, args ++ [[objective: :kl]]) end
      assert_raise ArgumentError, ~r/estimator: must be :reparam or :reinforce/, fn -> apply(VI, :vi, args ++ [[estimator: :adev]]) end
      assert_raise ArgumentError, ~r/samples: must be an integer >= 2 for objective :iwelbo/, fn -> apply(VI, :vi, args ++ [[objective: :iwelbo, samples: 1]]) end
      assert_raise ArgumentError, ~r/guide_args: must be a list or a function/, fn -> apply(VI, :vi, args ++ [[guide_args: :x]]) end
      assert_raise ArgumentError, ~r/reinforce: must be a Gen.Selection/, fn -> apply(VI, :vi, args ++ [[reinforce: [:mu]]]) end
      assert_raise ArgumentError, ~r/steps: must be a non-negative integer/, fn -> apply(VI, :vi, args ++ [[steps: -1]]) end
    end
  end
end

defmodule Gen.VIMemoryTest do
  # Not async: Mx.Memory.live_arrays is a global count.
  use ExUnit.Case, async: false
  import Gen
  import Gen.TestHelpers, only: [settled_live: 0]

  test "a VI run keeps memory flat: live arrays do not grow with the number of steps" do
    m = gen(fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 2.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end)
    q = gen(fn p -> trace(:mu, Gen.Dist.normal(p.m, Mx.exp(p.ls))) end)
    p0 = %{m: Mx.tensor(0.0, type: :f64), ls: Mx.tensor(0.0, type: :f64)}
    run = fn steps -> Gen.Inference.VI.vi(m, [], %{y: 1.0}, q, p0, objective: :iwelbo, samples: 2, steps: steps, key: Mx.Random.key(1)) end

    {p, _} = run.(20)
    base = settled_live()
    {p2, _} = run.(400)
    after_run = settled_live()
    # Each step builds and drops a graph of hundreds of arrays; a leak of even one per step would show as 380.
    assert after_run - base <= 20, "live arrays #{base} -> #{after_run}"
    assert Mx.describe(p.m) == Mx.describe(p2.m)
  end
end
