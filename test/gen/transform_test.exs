defmodule Gen.TransformTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.ChainCheck, only: [sample_var: 1]
  alias Gen.{Diagnostics, Inference, Optim, Transform}
  alias Gen.Inference.{NUTS, VI}

  doctest Gen.Transform
  doctest Gen.Distribution

  defp f64(x), do: Mx.tensor(x, type: :f64)
  defp num(x), do: Mx.to_number(x)

  # Posterior checks from the bulk ESS: the mean within 4 MC standard errors sd/√ESS; the variance,
  # the mean of the squared deviations, within 4 of its own standard errors sd(d²)/√ESS(d²) (no
  # Gaussian assumption: an HMC chain can be antithetic in x and not in x²).
  defp assert_moments(xs, mean, var, what) do
    ess = Diagnostics.ess(xs)
    assert ess > 200, "#{what}: ESS #{ess}"
    n = length(xs)
    m = Enum.sum(xs) / n

    assert abs(m - mean) <= 4 * :math.sqrt(var / ess),
           "#{what}: mean #{m} vs #{mean} (ESS #{ess})"

    sq = Enum.map(xs, &((&1 - m) * (&1 - m)))
    ess_sq = Diagnostics.ess(sq)
    v = Enum.sum(sq) / n
    se_v = :math.sqrt(sample_var(sq) / ess_sq)

    assert abs(v - var) <= 4 * se_v,
           "#{what}: variance #{v} vs #{var}, 4 SE = #{4 * se_v} (ESS #{ess_sq})"
  end

  defp nuts(t, sel, key, opts \\ []) do
    NUTS.sample(
      t,
      Gen.select(sel),
      Keyword.merge([warmup: 400, samples: 1200, key: Mx.Random.key(key)], opts)
    )
  end

  # ---- the transforms themselves ------------------------------------------------------------

  # The coordinates a density of the constrained value is taken over.
  defp free(:simplex, x), do: Mx.slice(x, [0], [elem(Mx.shape(x), 0) - 1])

  defp free(t, x) when t in [:positive_definite, :cholesky_factor, :corr_cholesky] do
    {p, p} = Mx.shape(x)
    keep = if t == :corr_cholesky, do: &(&1 > &2), else: &(&1 >= &2)
    idx = for r <- 0..(p - 1), c <- 0..(p - 1), keep.(r, c), do: r * p + c
    Mx.take(Mx.reshape(x, {p * p}), Mx.tensor(idx))
  end

  defp free(_t, x), do: Mx.reshape(x, {Mx.size(x)})

  # log |det J| of u ↦ free(constrain(u)) from autodiff: one jvp per unit tangent, then slogdet.
  defp numeric_log_det(t, u) do
    m = Mx.size(u)

    cols =
      for j <- 0..(m - 1) do
        e = Mx.reshape(f64(for(i <- 0..(m - 1), do: if(i == j, do: 1.0, else: 0.0))), Mx.shape(u))
        {_y, col} = Mx.jvp(fn v -> free(t, elem(Transform.constrain(t, v), 0)) end, [u], [e])
        col
      end

    {_sign, logdet} = Mx.Linalg.slogdet(Mx.stack(cols, axis: 1))
    num(logdet)
  end

  # {transform, unconstrained size}: every transform, and an interval with array bounds covering
  # both sides, the upper side, the lower side and neither, elementwise.
  defp cases do
    mixed =
      {:interval, Mx.tensor([0.0, :neg_infinity, 1.0, :neg_infinity], type: :f64),
       Mx.tensor([1.0, 5.0, :infinity, :infinity], type: :f64)}

    [
      {:identity, 3},
      {:log, 3},
      {:logit, 3},
      {{:lower, -2.0}, 3},
      {{:upper, 4.0}, 3},
      {{:interval, -1.0, 3.0}, 3},
      {mixed, 4},
      {{:lower, f64(0.5)}, 3},
      {:ordered, 4},
      {:simplex, 3},
      {:positive_definite, 6},
      {:cholesky_factor, 6},
      {:corr_cholesky, 3},
      {:corr_cholesky, 6}
    ]
  end

  test "each log-Jacobian equals log |det J| from autodiff and slogdet, and unconstrain inverts constrain" do
    for {{t, m}, i} <- Enum.with_index(cases()), k <- 0..1 do
      u =
        Mx.multiply(Mx.Random.normal(Mx.Random.key(100 + 2 * i + k), shape: {m}, type: :f64), 1.5)

      {x, lj} = Transform.constrain(t, u)
      expected = numeric_log_det(t, u)

      assert_in_delta num(lj),
                      expected,
                      1.0e-9 * (1 + abs(expected)),
                      "#{inspect(t)}: log-Jacobian"

      assert Transform.inside?(t, x), "#{inspect(t)}: #{inspect(Mx.to_list(x))} inside"

      back = Transform.unconstrain(t, x) |> Mx.to_flat_list()

      for {a, b} <- Enum.zip(back, Mx.to_flat_list(u)),
          do: assert_in_delta(a, b, 1.0e-9, "#{inspect(t)}: round trip")
    end
  end

  test "round trip constrain(unconstrain(x)) == x from draws of the distributions with those supports" do
    key = Mx.Random.key(110)

    draws = [
      {:simplex, Gen.Dist.sample(Gen.Dist.dirichlet([0.5, 2.0, 3.0, 1.0]), key)},
      {:positive_definite,
       Gen.Dist.sample(
         Gen.Dist.wishart(5.0, [[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]]),
         key
       )},
      {:positive_definite,
       Gen.Dist.sample(Gen.Dist.inv_wishart(5.0, [[1.0, 0.3], [0.3, 1.0]]), key)},
      {:corr_cholesky, Gen.Dist.sample(Gen.Test.LKJCholesky.new(2.0, 4), key)},
      {:cholesky_factor, Mx.Linalg.cholesky(f64([[4.0, 1.0], [1.0, 3.0]]))},
      {:log, Gen.Dist.sample_n(Gen.Dist.gamma(2.0, rate: 1.0), key, 4)},
      {:logit, Gen.Dist.sample_n(Gen.Dist.beta(0.5, 0.5), key, 4)},
      {:ordered, f64([-3.0, -1.0, 0.25, 7.5])}
    ]

    for {t, x} <- draws do
      assert Transform.inside?(t, x), inspect(t)
      {x2, _} = Transform.constrain(t, Transform.unconstrain(t, x))

      for {a, b} <- Enum.zip(Mx.to_flat_list(x2), Mx.to_flat_list(x)),
          do: assert_in_delta(a, b, 1.0e-12 * (1 + abs(b)), "#{inspect(t)}: #{a} vs #{b}")
    end
  end

  test "a batch transforms each event: shapes and the summed log-Jacobian" do
    u = Mx.Random.normal(Mx.Random.key(120), shape: {2, 3}, type: :f64)
    {x, lj} = Transform.constrain(:simplex, u)
    assert Mx.shape(x) == {2, 4}
    parts = for i <- 0..1, do: num(elem(Transform.constrain(:simplex, u[i]), 1))
    assert_in_delta num(lj), Enum.sum(parts), 1.0e-12
    assert Transform.unconstrained_shape(:simplex, {2, 4}) == {2, 3}

    v = Mx.Random.normal(Mx.Random.key(121), shape: {2, 3}, type: :f64)
    {pd, lj2} = Transform.constrain(:positive_definite, v)
    assert Mx.shape(pd) == {2, 2, 2}
    parts = for i <- 0..1, do: num(elem(Transform.constrain(:positive_definite, v[i]), 1))
    assert_in_delta num(lj2), Enum.sum(parts), 1.0e-12
  end

  test "every distribution declares its support; default/1 picks Stan's transform for it" do
    eye = [[1.0, 0.0], [0.0, 1.0]]

    expected = [
      {Gen.Dist.normal(0.0, 1.0), :real},
      {Gen.Dist.cauchy(0.0, 1.0), :real},
      {Gen.Dist.laplace(0.0, 1.0), :real},
      {Gen.Dist.student_t(3.0, 0.0, 1.0), :real},
      {Gen.Dist.broadcasted_normal(f64([0.0, 1.0]), 1.0), :real},
      {Gen.Dist.multivariate_normal(f64([0.0, 0.0]), eye), :real},
      {Gen.Dist.gamma(2.0, rate: 1.0), :positive},
      {Gen.Dist.inv_gamma(2.0, 1.0), :positive},
      {Gen.Dist.exponential(1.0), :positive},
      {Gen.Dist.log_normal(0.0, 1.0), :positive},
      {Gen.Dist.beta(2.0, 2.0), :unit_interval},
      {Gen.Dist.beta_uniform_mixture(0.5, 2.0, 2.0), :unit_interval},
      {Gen.Dist.dirichlet([1.0, 1.0]), :simplex},
      {Gen.Dist.wishart(3.0, eye), :positive_definite},
      {Gen.Dist.inv_wishart(3.0, eye), :positive_definite},
      {Gen.Dist.mixture([Gen.Dist.gamma(2.0, rate: 1.0), Gen.Dist.gamma(3.0, rate: 1.0)], f64([0.0, 0.0])),
       :positive},
      {Gen.Dist.bernoulli(0.5), :discrete},
      {Gen.Dist.binomial(3, 0.5), :discrete},
      {Gen.Dist.categorical(f64([0.5, 0.5])), :discrete},
      {Gen.Dist.poisson(2.0), :discrete},
      {Gen.Dist.geometric(0.5), :discrete},
      {Gen.Dist.neg_binomial(2.0, 0.5), :discrete},
      {Gen.Dist.discrete_uniform(0, 3), :discrete},
      {Gen.Dist.delta(1.5), :discrete}
    ]

    for {d, s} <- expected, do: assert(Gen.Distribution.support(d) == s, inspect(d))

    bounds = fn d ->
      d |> Gen.Distribution.support() |> then(fn {:interval, a, b} -> {num(a), num(b)} end)
    end

    assert bounds.(Gen.Dist.uniform(-1.0, 2.0)) == {-1.0, 2.0}
    assert bounds.(Gen.Dist.truncated_normal(0.0, 1.0, 0.0, :infinity)) == {0.0, :infinity}
    assert bounds.(Gen.Dist.piecewise_uniform([0.0, 1.0, 3.0], [0.5, 0.5])) == {0.0, 3.0}

    mix =
      Gen.Dist.mixture([Gen.Dist.uniform(0.0, 1.0), Gen.Dist.uniform(2.0, 3.0)], f64([0.0, 0.0]))

    assert bounds.(mix) == {0.0, 3.0}

    assert Enum.map(
             [
               :real,
               :positive,
               :unit_interval,
               :simplex,
               :positive_definite,
               :corr_cholesky,
               :discrete
             ],
             &Transform.default/1
           ) ==
             [:identity, :log, :logit, :simplex, :positive_definite, :corr_cholesky, nil]
  end

  # ---- constrained posteriors with no transforms: (the automatic ones) ---------------------------

  @ys [0.3, -1.2, 0.8, 1.9, -0.4, 0.1]
  @ss Enum.sum(Enum.map([0.3, -1.2, 0.8, 1.9, -0.4, 0.1], &(&1 * &1)))

  defp obs_ys, do: Gen.choicemap(for({y, i} <- Enum.with_index(@ys), into: %{}, do: {{:y, i}, y}))

  test "NUTS, gamma precision: tau ~ Gamma(2, 1), y ~ N(0, 1/√tau) gives Gamma(2 + n/2, 1 + Σy²/2)" do
    m =
      gen(fn n ->
        tau = trace(:tau, Gen.Dist.gamma(2.0, rate: 1.0))
        for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(0.0, Mx.rsqrt(tau)))
      end)

    {t, _} = Gen.generate(m, [length(@ys)], obs_ys(), key: Mx.Random.key(200))
    r = nuts(t, :tau, 201)
    {a, b} = {2 + length(@ys) / 2, 1 + @ss / 2}
    assert r.transforms == %{[:tau] => :log}
    assert Enum.all?(r.draws[[:tau]], &(&1 > 0))
    assert_moments(r.draws[[:tau]], a / b, a / (b * b), "tau")
  end

  test "NUTS, inverse-gamma variance: s2 ~ InvGamma(3, 2), y ~ N(0, √s2) gives InvGamma(3 + n/2, 2 + Σy²/2)" do
    m =
      gen(fn n ->
        s2 = trace(:s2, Gen.Dist.inv_gamma(3.0, 2.0))
        for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(0.0, Mx.sqrt(s2)))
      end)

    {t, _} = Gen.generate(m, [length(@ys)], obs_ys(), key: Mx.Random.key(210))
    r = nuts(t, :s2, 211)
    {a, b} = {3 + length(@ys) / 2, 2 + @ss / 2}
    assert_moments(r.draws[[:s2]], b / (a - 1), b * b / ((a - 1) * (a - 1) * (a - 2)), "s2")
  end

  test "HMC kernel and MALA kernel, beta–bernoulli: p ~ Beta(2, 3) and 7 of 10 gives Beta(9, 6)" do
    m =
      gen(fn ->
        p = trace(:p, Gen.Dist.beta(2.0, 3.0))
        for i <- 0..9, do: trace({:y, i}, Gen.Dist.bernoulli(p))
      end)

    obs = Gen.choicemap(for(i <- 0..9, into: %{}, do: {{:y, i}, i < 7}))
    {t, _} = Gen.generate(m, [], obs, key: Mx.Random.key(220))
    var = 9 * 6 / (15 * 15 * 16)
    select = &Mx.to_number(&1[:p])

    # On the logit scale the posterior sd is ≈ √(ψ′(9) + ψ′(6)) ≈ 0.55: 3 leapfrog steps of 0.29 are a
    # quarter period (nearly independent draws; half a period would make x² nearly constant).
    hmc = fn tr, o -> Inference.hmc(tr, Gen.select(:p), [step_size: 0.29, n_leapfrog: 3] ++ o) end
    xs = Inference.run(hmc, t, samples: 1000, burn: 50, key: Mx.Random.key(221), select: select)
    assert Enum.all?(xs, &(&1 > 0 and &1 < 1))
    assert_moments(xs, 0.6, var, "HMC p")

    mala = fn tr, o -> Inference.mala(tr, Gen.select(:p), [tau: 0.3] ++ o) end
    xs = Inference.run(mala, t, samples: 1000, burn: 50, key: Mx.Random.key(222), select: select)
    assert_moments(xs, 0.6, var, "MALA p")
  end

  test "NUTS, Dirichlet simplex by stick-breaking: Dirichlet(1, 2, 3) and counts (3, 0, 5) gives Dirichlet(4, 2, 8)" do
    # n_k observations of category k, each a Bernoulli(θ_k) = true (likelihood θ_k).
    counts = [3, 0, 5]

    m =
      gen(fn ->
        theta = trace(:theta, Gen.Dist.dirichlet([1.0, 2.0, 3.0]))

        for {c, k} <- Enum.with_index(counts),
            j <- 0..(c - 1)//1,
            do: trace({:y, k, j}, Gen.Dist.bernoulli(theta[k]))
      end)

    obs =
      Gen.choicemap(
        for(
          {c, k} <- Enum.with_index(counts),
          j <- 0..(c - 1)//1,
          into: %{},
          do: {{:y, k, j}, true}
        )
      )

    {t, _} = Gen.generate(m, [], obs, key: Mx.Random.key(230))
    r = nuts(t, :theta, 231)
    assert r.transforms == %{[:theta] => :simplex}

    assert Enum.all?(r.draws[[:theta]], fn th ->
             abs(Enum.sum(th) - 1) < 1.0e-12 and Enum.all?(th, &(&1 > 0))
           end)

    # The flat vector holds K − 1 unconstrained coordinates; the draws are the K components.
    assert length(r.inv_metric) == 2 and length(hd(r.flat)) == 3

    alpha = [4.0, 2.0, 8.0]
    sum = Enum.sum(alpha)

    for {a, k} <- Enum.with_index(alpha) do
      xs = Enum.map(r.draws[[:theta]], &Enum.at(&1, k))
      assert_moments(xs, a / sum, a * (sum - a) / (sum * sum * (sum + 1)), "theta[#{k}]")
    end

    # An explicit :simplex is the automatic transform: the same draws (a short run shows it).
    short = [warmup: 20, samples: 20]

    assert nuts(t, :theta, 232, [transforms: %{theta: :simplex}] ++ short).draws ==
             nuts(t, :theta, 232, short).draws
  end

  test "NUTS, Wishart precision through a Cholesky factor: Λ ~ W(4, I), y ~ N(0, Λ⁻¹) gives W(4 + n, (I + Σyyᵀ)⁻¹)" do
    ys = [[0.5, -0.2], [1.1, 0.7], [-0.3, 0.4], [0.9, 1.5], [-1.2, -0.6]]

    m =
      gen(fn n ->
        lam = trace(:lam, Gen.Dist.wishart(4.0, [[1.0, 0.0], [0.0, 1.0]]))
        cov = Mx.Linalg.inv(lam)

        for i <- 0..(n - 1),
            do: trace({:y, i}, Gen.Dist.multivariate_normal(f64([0.0, 0.0]), cov))
      end)

    obs = Gen.choicemap(for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}))
    {t, _} = Gen.generate(m, [length(ys)], obs, key: Mx.Random.key(240))
    r = nuts(t, :lam, 241)
    assert r.transforms == %{[:lam] => :positive_definite}

    scatter =
      for i <- 0..1,
          do: for(j <- 0..1, do: Enum.sum(for y <- ys, do: Enum.at(y, i) * Enum.at(y, j)))

    v =
      Gen.Conjugate.inverse(
        for i <- 0..1,
            do:
              for(j <- 0..1, do: Enum.at(Enum.at(scatter, i), j) + if(i == j, do: 1.0, else: 0.0))
      )

    nu = 4.0 + length(ys)
    at = fn i, j -> Enum.at(Enum.at(v, i), j) end

    # Wishart moments: E Λᵢⱼ = ν Vᵢⱼ, Var Λᵢⱼ = ν (Vᵢⱼ² + Vᵢᵢ Vⱼⱼ).
    for {i, j} <- [{0, 0}, {1, 0}, {1, 1}] do
      xs = Enum.map(r.draws[[:lam]], &(&1 |> Enum.at(i) |> Enum.at(j)))

      assert_moments(
        xs,
        nu * at.(i, j),
        nu * (at.(i, j) * at.(i, j) + at.(i, i) * at.(j, j)),
        "lam[#{i}][#{j}]"
      )
    end
  end

  # a ~ N(0, 1) with y ~ N(a, 1) = 1 observed, w ~ Exp(1), x ~ U(a, a + w): the posterior of a is
  # N(1/2, 1/2), w keeps its prior, and x = a + w·U, U ~ U(0, 1), has mean 1/2 + 1/2 and variance
  # 1/2 + (E w² E U² − (E w E U)²) = 1/2 + 2/3 − 1/4.
  defp dependent_model do
    gen(fn ->
      a = trace(:a, Gen.Dist.normal(0.0, 1.0))
      trace(:y, Gen.Dist.normal(a, 1.0))
      w = trace(:w, Gen.Dist.exponential(1.0))
      trace(:x, Gen.Dist.uniform(a, Mx.add(a, w)))
    end)
  end

  test "NUTS, bounds that depend on other parameters: x ~ U(a, a + w) with a and w moving too" do
    {t, _} = Gen.generate(dependent_model(), [], %{y: 1.0, a: 0.0, w: 1.0, x: 0.5})
    r = nuts(t, [:a, :w, :x], 250)
    assert match?(%{[:a] => :identity, [:w] => :log, [:x] => {:interval, _, _}}, r.transforms)

    assert Enum.all?(Enum.zip([r.draws[[:a]], r.draws[[:w]], r.draws[[:x]]]), fn {a, w, x} ->
             w > 0 and x > a and x < a + w
           end)

    assert_moments(r.draws[[:a]], 0.5, 0.5, "a")
    assert_moments(r.draws[[:w]], 1.0, 1.0, "w")
    assert_moments(r.draws[[:x]], 1.0, 0.5 + 2 / 3 - 0.25, "x")

    # The same bounds given as functions of the current choices (Stan's real<lower=a, upper=a+w>):
    # the same transform at every step, so the same draws.
    lo = fn cm -> Gen.Choicemap.get(cm, :a) end
    hi = fn cm -> Mx.add(Gen.Choicemap.get(cm, :a), Gen.Choicemap.get(cm, :w)) end
    short = [warmup: 20, samples: 20]
    r2 = nuts(t, [:a, :w, :x], 251, [transforms: %{x: {:interval, lo, hi}}] ++ short)
    assert r2.draws == nuts(t, [:a, :w, :x], 251, short).draws
  end

  test "NUTS, transforms: :ordered: three standard normals kept in order have the order statistics' moments" do
    m = gen(fn -> trace(:x, Gen.Dist.broadcasted_normal(Mx.zeros({3}, type: :f64), 1.0)) end)
    {t, _} = Gen.generate(m, [], %{x: [-1.0, 0.0, 1.0]})
    r = nuts(t, :x, 260, transforms: %{x: :ordered})
    assert Enum.all?(r.draws[[:x]], fn [a, b, c] -> a < b and b < c end)

    # n = 3: E X₍₃₎ = 3/(2√π), E X₍₃₎² = 1 + √3/(2π), E X₍₂₎² = 1 − √3/π (and X₍₁₎ = −X₍₃₎ in law).
    e3 = 3 / (2 * :math.sqrt(:math.pi()))
    v3 = 1 + :math.sqrt(3) / (2 * :math.pi()) - e3 * e3
    v2 = 1 - :math.sqrt(3) / :math.pi()

    for {k, mean, var} <- [{0, -e3, v3}, {1, 0.0, v2}, {2, e3, v3}] do
      assert_moments(Enum.map(r.draws[[:x]], &Enum.at(&1, k)), mean, var, "x(#{k})")
    end
  end

  test "NUTS, :corr_cholesky: an LKJ(1) Cholesky factor gives correlations Beta(3/2, 3/2) on (−1, 1)" do
    m = gen(fn -> trace(:l, Gen.Test.LKJCholesky.new(1.0, 3)) end)
    {t, _} = Gen.generate(m, [], %{l: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]})
    r = nuts(t, :l, 270)
    assert r.transforms == %{[:l] => :corr_cholesky}

    # R = L Lᵀ; each off-diagonal rᵢⱼ has mean 0 and variance 1/(2·3/2 + 1) = 1/4.
    corr = fn l, i, j -> Enum.sum(Enum.zip_with(Enum.at(l, i), Enum.at(l, j), &(&1 * &2))) end

    for {i, j} <- [{1, 0}, {2, 0}, {2, 1}] do
      assert_moments(Enum.map(r.draws[[:l]], &corr.(&1, i, j)), 0.0, 0.25, "r#{i}#{j}")
    end

    short = [warmup: 20, samples: 20]

    assert nuts(t, :l, 271, [transforms: %{l: :corr_cholesky}] ++ short).draws ==
             nuts(t, :l, 271, short).draws
  end

  # ---- MAP and ADVI ------------------------------------------------------------------------

  test "MAP on the unconstrained scale, without the Jacobian: the exact Dirichlet and Wishart modes" do
    counts = [3, 1, 5]

    m =
      gen(fn ->
        theta = trace(:theta, Gen.Dist.dirichlet([2.0, 3.0, 4.0]))

        for {c, k} <- Enum.with_index(counts),
            j <- 0..(c - 1)//1,
            do: trace({:y, k, j}, Gen.Dist.bernoulli(theta[k]))
      end)

    obs =
      Gen.choicemap(
        for(
          {c, k} <- Enum.with_index(counts),
          j <- 0..(c - 1)//1,
          into: %{},
          do: {{:y, k, j}, true}
        )
      )

    {t, _} = Gen.generate(m, [], Gen.Choicemap.put(obs, :theta, f64([0.6, 0.3, 0.1])))
    t2 = Inference.map_optimize(t, Gen.select(:theta), tol: 1.0e-10)
    # The mode of Dirichlet(α + n): (α_k + n_k − 1)/(Σα + N − K) = (4, 3, 8)/15.
    for {x, e} <- Enum.zip(Mx.to_list(t2[:theta]), [4 / 15, 3 / 15, 8 / 15]),
        do: assert_in_delta(x, e, 1.0e-8)

    # The mode of W(ν, V) is (ν − p − 1)V: here ν = 7, p = 2, V = diag(1, 1/2).
    w = gen(fn -> trace(:lam, Gen.Dist.wishart(7.0, [[1.0, 0.0], [0.0, 0.5]])) end)
    {t, _} = Gen.generate(w, [], %{lam: [[1.0, 0.0], [0.0, 1.0]]})
    t2 = Inference.map_optimize(t, Gen.select(:lam), tol: 1.0e-10)

    for {x, e} <- Enum.zip(Mx.to_flat_list(t2[:lam]), [4.0, 0.0, 0.0, 2.0]),
        do: assert_in_delta(x, e, 1.0e-8)
  end

  test "ADVI on the log scale of a positive choice: the exact Gaussian posterior of log s; draws pushed back" do
    # log s ~ N(0, 1) (s log-normal), y_i ~ N(log s, 1): log s | y ~ N(Σy/(n + 1), 1/(n + 1)) = N(0.75, 0.25),
    # which the Gaussian on the unconstrained (log) scale holds exactly.
    ys = [0.5, 1.5, 1.0]

    m =
      gen(fn n ->
        s = trace(:s, Gen.Dist.log_normal(0.0, 1.0))
        for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(Mx.log(s), 1.0))
      end)

    obs = for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y})
    parent = self()

    cb = fn %{iteration: i, params: p} ->
      if i >= 800, do: send(parent, {:it, num(hd(p.mu)), num(hd(p.log_sigma))})
    end

    {p, _} =
      Inference.advi(m, [3], obs, Gen.select(:s),
        steps: 1000,
        stl: true,
        optimizer: Optim.adam(learning_rate: 0.05),
        key: Mx.Random.key(280),
        callback: cb
      )

    its = for _ <- 1..200, do: receive(do: ({:it, a, b} -> {a, b}))
    assert p.transforms == %{[:s] => :log}

    # With stl and the exact family the path derivative vanishes for every draw at the optimum: the
    # last iterates sit there up to 4 SE of their (tiny) fluctuation and f64 rounding.
    for {vals, exact} <- [
          {Enum.map(its, &elem(&1, 0)), 0.75},
          {Enum.map(its, &elem(&1, 1)), :math.log(0.5)}
        ] do
      mean = Enum.sum(vals) / 200
      se = :math.sqrt(sample_var(vals) / 200)
      assert abs(mean - exact) <= 4 * se + 1.0e-9, "#{mean} vs #{exact}"
      assert se < 1.0e-4
    end

    # Draws on the model's scale: positive, their logs N(0.75, 0.25) (mean within 4 SE of 2000 draws).
    draws = VI.advi_draws(m, [3], obs, p, 2000, key: Mx.Random.key(281))
    logs = Enum.map(draws, &:math.log(num(&1[:s])))
    assert abs(Enum.sum(logs) / 2000 - 0.75) <= 4 * 0.5 / :math.sqrt(2000)

    assert_raise ArgumentError,
                 ~r/mean_field_guide: the fit at address :s is on the unconstrained scale of :log.*advi_draws/,
                 fn ->
                   VI.mean_field_guide(p)
                 end
  end

  # ---- errors -------------------------------------------------------------------------------

  test "errors: a discrete support, a start outside the support, a bad override, a bad bound function" do
    m = gen(fn -> {trace(:d, Gen.Dist.delta(0.5)), trace(:s, Gen.Dist.exponential(1.0))} end)
    {t, _} = Gen.generate(m, [], %{d: 0.5, s: 1.0})

    assert_raise ArgumentError,
                 ~r/NUTS.sample: the selected choice at address :d is drawn from Gen.Dist.Delta, whose support is discrete/,
                 fn ->
                   NUTS.sample(t, Gen.select(:d), warmup: 1, samples: 1)
                 end

    assert_raise ArgumentError, ~r/hmc: the selected choice at address :d .*discrete/, fn ->
      Inference.hmc(t, Gen.select(:d), step_size: 0.1)
    end

    {bad, _} = Gen.generate(m, [], %{d: 0.5, s: -1.0})

    assert_raise ArgumentError,
                 ~r/map_optimize: the value -1.0 at address :s is outside the support of its transform :log/,
                 fn ->
                   Inference.map_optimize(bad, Gen.select(:s))
                 end

    assert_raise ArgumentError,
                 ~r/transforms: \{:interval, 1.0, 0.0\} at :s is not a transform; use .*:corr_cholesky/,
                 fn ->
                   Inference.mala(t, Gen.select(:s),
                     tau: 0.1,
                     transforms: %{s: {:interval, 1.0, 0.0}}
                   )
                 end

    assert_raise ArgumentError, ~r/a transforms: bound function returned nil/, fn ->
      NUTS.sample(t, Gen.select(:s),
        warmup: 1,
        samples: 1,
        transforms: %{s: {:lower, fn cm -> cm[:zz] end}}
      )
    end
  end
end
