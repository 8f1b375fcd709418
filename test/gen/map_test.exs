defmodule Gen.MAPTest do
  use ExUnit.Case, async: true
  import Gen
  alias Gen.{Inference, Optim}

  defp f64(x), do: Mx.tensor(x, type: :f64)
  defp num(x), do: Mx.to_number(x)

  # ---- normal–normal: mu ~ N(0, 2²), y_i ~ N(mu, 1) -----------------------------------

  @ys [0.8, 1.9, 1.1, 2.4, 1.5]
  # posterior precision 1/4 + 5; the mode is the mean Σy / precision.
  @prec 1.0 / 4.0 + 5
  @post_mean Enum.sum([0.8, 1.9, 1.1, 2.4, 1.5]) / (1.0 / 4.0 + 5)

  defp normal_model do
    gen(fn n ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
      for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
      mu
    end)
  end

  defp obs(ys), do: for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y})

  # ---- linear regression: w = (slope, intercept) ~ N(0, τ² I), y_j ~ N(slope x_j + intercept, σ²) ----

  @xs [-1.5, -0.7, 0.0, 0.4, 1.1, 2.0, 2.6]
  @lr_ys [-2.1, -0.4, 0.9, 1.2, 2.6, 4.4, 5.3]
  @tau 3.0
  @sigma 0.8

  defp regression do
    gen(fn xs ->
      slope = trace(:slope, Gen.Dist.normal(0.0, @tau))
      intercept = trace(:intercept, Gen.Dist.normal(0.0, @tau))

      for {x, j} <- Enum.with_index(xs),
          do: trace({:y, j}, Gen.Dist.normal(Mx.add(Mx.multiply(slope, x), intercept), @sigma))
    end)
  end

  # Negative Hessian of the log posterior H = XᵀX/σ² + I/τ² (X = [x 1]) and the mode H⁻¹ Xᵀy/σ², by Cramer's rule.
  defp regression_posterior do
    n = length(@xs)
    sxx = Enum.sum(Enum.map(@xs, &(&1 * &1)))
    sx = Enum.sum(@xs)
    sxy = Enum.zip(@xs, @lr_ys) |> Enum.map(fn {x, y} -> x * y end) |> Enum.sum()
    sy = Enum.sum(@lr_ys)
    s2 = @sigma * @sigma
    {a, b, d} = {sxx / s2 + 1 / (@tau * @tau), sx / s2, n / s2 + 1 / (@tau * @tau)}
    {r1, r2} = {sxy / s2, sy / s2}
    det = a * d - b * b
    # smallest eigenvalue of [[a, b], [b, d]]
    lmin = (a + d) / 2 - :math.sqrt((a - d) * (a - d) / 4 + b * b)
    %{mode: {(d * r1 - b * r2) / det, (a * r2 - b * r1) / det}, lmin: lmin, h: {a, b, d}}
  end

  describe "map_optimize" do
    test "normal–normal: the exact posterior mode, other choices kept" do
      {t, _} = Gen.generate(normal_model(), [5], Map.put(obs(@ys), :mu, -3.0))
      t2 = Inference.map_optimize(t, Gen.select(:mu), tol: 1.0e-10)
      # The log posterior is concave with curvature `@prec`, so |mu - mode| ≤ |∇| / prec ≤ 1e-10 / 5.25.
      assert abs(num(t2[:mu]) - @post_mean) <= 1.0e-10 / @prec + 1.0e-15
      assert num(t2[{:y, 3}]) == 2.4
      {w, _} = Gen.assess(normal_model(), [5], Gen.get_choices(t2))
      assert num(Gen.get_score(t2)) == num(w)
    end

    test "linear regression: the exact posterior mode of slope and intercept" do
      %{mode: {m1, m2}, lmin: lmin} = regression_posterior()
      {t, _} = Gen.generate(regression(), [@xs], Map.merge(obs(@lr_ys), %{slope: 0.0, intercept: 0.0}))
      t2 = Inference.map_optimize(t, Gen.select([:slope, :intercept]), tol: 1.0e-9)
      # |w - mode|₂ ≤ |∇|₂ / λ_min(H) ≤ √2 · max|∇| / λ_min.
      bound = :math.sqrt(2) * 1.0e-9 / lmin
      dist = :math.sqrt(:math.pow(num(t2[:slope]) - m1, 2) + :math.pow(num(t2[:intercept]) - m2, 2))
      assert dist <= bound, "distance #{dist} > #{bound}"
    end

    test "with an optimizer: SGD contracts by |1 - η·prec| per step" do
      {t, _} = Gen.generate(normal_model(), [5], Map.put(obs(@ys), :mu, -3.0))
      t2 = Inference.map_optimize(t, Gen.select(:mu), optimizer: Optim.sgd(learning_rate: 0.1), steps: 100)
      # |1 - 0.1 · 5.25| = 0.475; after 100 steps the error is 0.475¹⁰⁰ · |−3 − mode| ≈ 1e-32
      assert abs(num(t2[:mu]) - @post_mean) <= 1.0e-14
    end

    test "errors name the problem" do
      m = gen(fn -> {trace(:b, Gen.Dist.bernoulli(0.5)), trace(:x, Gen.Dist.normal(0.0, 1.0))} end)
      {t, _} = Gen.generate(m, [], %{b: true, x: 0.3})

      assert_raise ArgumentError, ~r/map_optimize: the selected choice at address :b .*not a floating-point array/, fn ->
        Inference.map_optimize(t, Gen.select(:b))
      end

      assert_raise ArgumentError, ~r/selects no choice/, fn -> Inference.map_optimize(t, Gen.select(:zz)) end
      assert_raise ArgumentError, ~r/steps: must be/, fn -> Inference.map_optimize(t, Gen.select(:x), steps: -1) end
    end
  end

  describe "train" do
    test "normal mean and log-sd: the maximum-likelihood estimates" do
      xs = [2.3, 0.4, 1.7, 3.1, 2.2, 0.9, 1.4, 2.8]
      m = gen(fn p -> trace(:x, Gen.Dist.normal(p.mu, Mx.exp(p.log_sd))) end)
      p0 = %{mu: f64(0.0), log_sd: f64(0.0)}
      {p, hist} = Inference.train(m, p0, Enum.map(xs, &%{x: &1}), steps: 1500, optimizer: Optim.adam(learning_rate: 0.05))
      n = length(xs)
      mean = Enum.sum(xs) / n
      sd = :math.sqrt(Enum.sum(Enum.map(xs, &((&1 - mean) * (&1 - mean)))) / n)
      # The MLE makes the gradient vanish; the objective is strictly concave near it (Hessian
      # diag(−n/σ², −2n)), so a gradient under 1e-8 puts the estimate within ~1e-8 of it.
      {_, g} = Mx.value_and_grad(fn p -> Enum.reduce(xs, f64(0.0), fn x, acc -> Mx.add(acc, elem(Gen.assess(m, [p], %{x: x}), 0)) end) end).(p)
      assert abs(num(g.mu)) < 1.0e-8 and abs(num(g.log_sd)) < 1.0e-8
      assert_in_delta num(p.mu), mean, 1.0e-8
      assert_in_delta :math.exp(num(p.log_sd)), sd, 1.0e-8
      # the maximised log-likelihood: −n/2 (log 2π σ̂² + 1)
      assert_in_delta List.last(hist), -n / 2 * (:math.log(2 * :math.pi() * sd * sd) + 1), 1.0e-9
    end

    test "linear regression coefficients: least squares, with extra arguments per item" do
      m = gen(fn p, x -> trace(:y, Gen.Dist.normal(Mx.add(Mx.multiply(p.w, x), p.b), 1.0)) end)
      data = Enum.zip_with(@xs, @lr_ys, fn x, y -> {[x], %{y: y}} end)
      n = length(@xs)
      {sx, sxx} = {Enum.sum(@xs), Enum.sum(Enum.map(@xs, &(&1 * &1)))}
      sy = Enum.sum(@lr_ys)
      sxy = Enum.zip(@xs, @lr_ys) |> Enum.map(fn {x, y} -> x * y end) |> Enum.sum()
      w_ls = (n * sxy - sx * sy) / (n * sxx - sx * sx)
      b_ls = (sy - w_ls * sx) / n
      # The log-likelihood is quadratic with Hessian −XᵀX; SGD with η contracts by max|1 − η λᵢ(XᵀX)|.
      {a, bb, d} = {sxx, sx, n * 1.0}
      half = :math.sqrt((a - d) * (a - d) / 4 + bb * bb)
      {lmin, lmax} = {(a + d) / 2 - half, (a + d) / 2 + half}
      eta = 1.0 / lmax
      rate = 1 - eta * lmin
      steps = 400
      {p, _} = Inference.train(m, %{w: f64(0.0), b: f64(0.0)}, data, steps: steps, optimizer: Optim.sgd(learning_rate: eta))
      err0 = :math.sqrt(w_ls * w_ls + b_ls * b_ls)
      dist = :math.sqrt(:math.pow(num(p.w) - w_ls, 2) + :math.pow(num(p.b) - b_ls, 2))
      assert dist <= :math.pow(rate, steps) * err0 + 1.0e-12, "#{dist} vs rate #{rate}"
    end

    test "minibatches of one: averaged SGD iterates centre on the least-squares solution" do
      m = gen(fn p, x -> trace(:y, Gen.Dist.normal(Mx.add(Mx.multiply(p.w, x), p.b), 1.0)) end)
      data = Enum.zip_with(@xs, @lr_ys, fn x, y -> {[x], %{y: y}} end)
      n = length(@xs)
      {sx, sxx} = {Enum.sum(@xs), Enum.sum(Enum.map(@xs, &(&1 * &1)))}
      sy = Enum.sum(@lr_ys)
      sxy = Enum.zip(@xs, @lr_ys) |> Enum.map(fn {x, y} -> x * y end) |> Enum.sum()
      w_ls = (n * sxy - sx * sy) / (n * sxx - sx * sx)
      me = self()

      {_p, _} =
        Inference.train(m, %{w: f64(w_ls), b: f64(0.0)}, data,
          steps: 3000,
          batch_size: 1,
          key: Mx.Random.key(11),
          optimizer: Optim.sgd(learning_rate: 0.005),
          callback: fn %{iteration: i, params: p} -> if i >= 500, do: send(me, {:w, num(p.w)}) end
        )

      ws = for _ <- 500..2999, do: receive(do: ({:w, w} -> w))
      # The minibatch gradient is unbiased and linear in the parameters, so the stationary mean of
      # constant-step SGD is exactly the least-squares solution. The iterates form a correlated chain
      # (integrated autocorrelation time ≈ 2/(η·λ_min(XᵀX)) ≈ 75 steps): its mean's standard error is
      # sd/√ESS, ESS by Geyer's initial monotone sequence (Gen.Diagnostics); 4 SE.
      k = length(ws)
      mean = Enum.sum(ws) / k
      sd = :math.sqrt(Enum.sum(Enum.map(ws, &((&1 - mean) * (&1 - mean)))) / (k - 1))
      se = sd / :math.sqrt(Gen.Diagnostics.ess(ws, method: :basic))
      assert abs(mean - w_ls) <= 4 * se, "#{mean} vs #{w_ls}, SE #{se}"
      assert se < 0.05
    end

    test "errors" do
      m = gen(fn p -> trace(:x, Gen.Dist.normal(p.mu, 1.0)) end)
      p = %{mu: f64(0.0)}
      assert_raise ArgumentError, ~r/data must be a non-empty list/, fn -> Inference.train(m, p, []) end
      assert_raise ArgumentError, ~r/a data item must be/, fn -> Inference.train(m, p, [1.0]) end
      latent = gen(fn p -> z = trace(:z, Gen.Dist.normal(p.mu, 1.0)); trace(:x, Gen.Dist.normal(z, 1.0)) end)
      assert_raise ArgumentError, ~r/train: .*:z.*every choice of each data item observed/, fn -> Inference.train(latent, p, [%{x: 1.0}], steps: 1) end
      assert_raise ArgumentError, ~r/batch_size: must be an integer in 1..1/, fn -> Inference.train(m, p, [%{x: 1.0}], batch_size: 2) end
    end
  end
end
