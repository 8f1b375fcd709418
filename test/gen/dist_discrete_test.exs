defmodule Gen.DistDiscreteTest do
  # Discrete and multivariate distributions: log-densities against scipy
  # (test/reference/dist_discrete.exs), samplers by chi-square and moments,
  # gradients by finite differences.
  use ExUnit.Case, async: true

  alias Gen.Dist

  doctest Gen.Dist.Bernoulli
  doctest Gen.Dist.Categorical
  doctest Gen.Dist.Poisson
  doctest Gen.Dist.Geometric
  doctest Gen.Dist.NegBinomial
  doctest Gen.Dist.Binomial
  doctest Gen.Dist.DiscreteUniform
  doctest Gen.Dist.Delta
  doctest Gen.Dist.Dirichlet
  doctest Gen.Dist.MultivariateNormal
  doctest Gen.Dist.Mixture
  doctest Gen.Dist.PiecewiseUniform
  doctest Gen.Dist.BetaUniformMixture

  @implemented ~w(bernoulli categorical categorical_logits poisson geometric neg_binomial binomial discrete_uniform
                  dirichlet multivariate_normal mixture_poisson mixture_normal
                  piecewise_uniform beta_uniform_mixture)a

  # ---- log-densities against scipy ---------------------------------------------------

  {cases, _} = Code.eval_file(Path.expand("../reference/dist_discrete.exs", __DIR__))

  for c <- cases, c.dist in @implemented do
    @c c
    test "logpdf: #{c.name}" do
      %{dist: dist, params: params, values: values, expected: expected} = @c
      got = dist |> build(params) |> Dist.logpdf(Mx.tensor(values, type: :f64)) |> Mx.to_list()
      assert_close_list(got, expected, "#{@c.name} at #{inspect(values)}")
    end
  end

  defp build(:mixture_poisson, [rates, lw]),
    do: Dist.mixture(Enum.map(rates, &Dist.poisson/1), lw)

  defp build(:mixture_normal, [ps, lw]),
    do: Dist.mixture(Enum.map(ps, fn [m, s] -> Dist.normal(m, s) end), lw)

  defp build(:categorical_logits, [l]), do: Dist.categorical(logits: l)

  defp build(dist, params), do: apply(Dist, dist, params)

  # Relative error <= 1e-10 in f64 (with an absolute floor of 1e-13 for results near 0),
  # and -Inf exactly where the reference has it.
  defp assert_close_list(got, expected, what) do
    assert length(got) == length(expected)

    for {g, e} <- Enum.zip(got, expected) do
      if is_atom(e) do
        assert g == e, "#{what}: expected #{inspect(e)}, got #{inspect(g)} (#{inspect(got)})"
      else
        assert is_float(g) and abs(g - e) <= 1.0e-10 * abs(e) + 1.0e-13,
               "#{what}: expected #{e}, got #{inspect(g)} (#{inspect(got)})"
      end
    end
  end

  test "logpdf broadcasts values against batched parameters" do
    d = Dist.poisson(Mx.tensor([1.0, 2.0], type: :f64))
    lp = Dist.logpdf(d, Mx.tensor([[0, 1], [2, 3], [4, 5]]))
    assert Mx.shape(lp) == {3, 2}

    assert_close_list(
      Mx.to_list(lp) |> List.flatten(),
      for(k <- 0..5, do: poisson_lp(k, 1 + rem(k, 2))),
      "poisson batch"
    )

    c = Dist.categorical(Mx.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]], type: :f64))
    assert Mx.to_list(Dist.logpdf(c, Mx.tensor([2, 2]))) |> hd() == :neg_infinity

    assert_in_delta Mx.to_list(Dist.logpdf(c, Mx.tensor([2, 2]))) |> List.last(),
                    :math.log(0.7),
                    1.0e-15
  end

  defp poisson_lp(k, r),
    do: k * :math.log(r) - r - Enum.reduce(1..max(k, 1)//1, 0.0, &(&2 + :math.log(&1)))

  test "delta: log-mass 0 at v, -Inf elsewhere; draws are v" do
    d = Dist.delta(Mx.tensor([1.0, 2.0], type: :f64))
    assert Mx.to_list(Dist.logpdf(d, Mx.tensor([1.0, 2.5], type: :f64))) == [0.0, :neg_infinity]
    assert Mx.to_list(Dist.sample(d, Mx.Random.key(0))) == [1.0, 2.0]
    assert Mx.shape(Dist.sample_n(d, Mx.Random.key(0), 3)) == {3, 2}
    assert Dist.reparameterized?(d)
  end

  test "reparameterized?: false for the discrete ones and dirichlet, true for multivariate_normal" do
    for d <- [
          Dist.bernoulli(0.5),
          Dist.categorical([0.5, 0.5]),
          Dist.categorical(logits: [0.0, 0.0]),
          Dist.poisson(1.0),
          Dist.geometric(0.5),
          Dist.neg_binomial(2.0, 0.5),
          Dist.binomial(3, 0.5),
          Dist.discrete_uniform(0, 3),
          Dist.dirichlet([1.0, 1.0]),
          Dist.mixture([Dist.poisson(1.0)], [0.0])
        ] do
      refute Dist.reparameterized?(d), inspect(d)
    end

    assert Dist.reparameterized?(Dist.multivariate_normal([0.0], [[1.0]]))
  end

  test "invalid parameters raise, naming the parameter" do
    assert_raise ArgumentError, ~r/bernoulli: p must be in \[0, 1\]/, fn ->
      Dist.bernoulli(1.5)
    end

    assert_raise ArgumentError, ~r/poisson: rate must be >= 0/, fn -> Dist.poisson(-1.0) end

    assert_raise ArgumentError, ~r/binomial: n must be an integer/, fn ->
      Dist.binomial(2.5, 0.5)
    end

    assert_raise ArgumentError, ~r/discrete_uniform: needs lo <= hi/, fn ->
      Dist.discrete_uniform(3, 1)
    end

    assert_raise ArgumentError, ~r/dirichlet: alpha must be > 0/, fn ->
      Dist.dirichlet([1.0, 0.0])
    end

    assert_raise ArgumentError, ~r/expects mean \{..., d\} and cov \{d, d\}/, fn ->
      Dist.multivariate_normal([0.0, 0.0], [[1.0]])
    end

    assert_raise ArgumentError, ~r/one kind/, fn ->
      Dist.mixture([Dist.poisson(1.0), Dist.geometric(0.5)], [0.0, 0.0])
    end

    assert_raise ArgumentError, ~r/log_weights must have shape \{2\}/, fn ->
      Dist.mixture([Dist.poisson(1.0), Dist.poisson(2.0)], [0.0])
    end
  end

  # Issue 10 item 6 changed this test: an evaluated (constant) array out of range now raises
  # like a number, and a lazy (computed) one scores -Inf instead of NaN, so that inference
  # rejects the move; only a NaN parameter still gives NaN.
  test "array parameters out of range: known ones raise, lazy ones score -Inf, NaN stays NaN" do
    assert_raise ArgumentError, ~r/poisson: rate must be >= 0, got \[-1.0\]/, fn ->
      Dist.poisson(Mx.tensor([-1.0], type: :f64))
    end

    assert_raise ArgumentError, ~r/bernoulli: p must be in \[0, 1\], got \[2.0\]/, fn ->
      Dist.bernoulli(Mx.tensor([2.0], type: :f64))
    end

    lazy = fn x -> Mx.add(Mx.tensor([x], type: :f64), 0.0) end
    refute Mx.evaluated?(lazy.(1.0))
    assert Dist.logpdf(Dist.poisson(lazy.(-1.0)), 1) |> Mx.to_list() == [:neg_infinity]
    assert Dist.logpdf(Dist.bernoulli(lazy.(2.0)), 1) |> Mx.to_list() == [:neg_infinity]
    assert Dist.logpdf(Dist.poisson(lazy.(:nan)), 1) |> Mx.to_list() == [:nan]
  end

  # ---- samplers: chi-square goodness of fit ----------------------------------------------

  @n 20_000

  # {name, distribution, support points to bin (the rest of the mass pools into the last bin)}
  @chi_cases [
    {"bernoulli", quote(do: Dist.bernoulli(0.3)), 0..1},
    {"categorical", quote(do: Dist.categorical([0.1, 0.2, 0.3, 0.4])), 0..3},
    {"categorical logits",
     quote(do: Dist.categorical(logits: Mx.log(Mx.tensor([0.1, 0.2, 0.3, 0.4], type: :f64)))),
     0..3},
    {"poisson 3.5", quote(do: Dist.poisson(3.5)), 0..30},
    {"poisson 60", quote(do: Dist.poisson(60.0)), 0..150},
    {"geometric 0.3", quote(do: Dist.geometric(0.3)), 0..60},
    {"neg_binomial 2.5 0.4", quote(do: Dist.neg_binomial(2.5, 0.4)), 0..80},
    {"binomial 20 0.3", quote(do: Dist.binomial(20, 0.3)), 0..20},
    {"binomial 1000 0.01", quote(do: Dist.binomial(1000, 0.01)), 0..60},
    {"discrete_uniform -2..7", quote(do: Dist.discrete_uniform(-2, 7)), -2..7},
    {"mixture of poissons",
     quote(
       do:
         Dist.mixture(
           [Dist.poisson(1.0), Dist.poisson(12.0)],
           Mx.log(Mx.tensor([0.3, 0.7], type: :f64))
         )
     ), 0..60}
  ]

  for {{name, dist, support}, i} <- Enum.with_index(@chi_cases) do
    @support Enum.to_list(support)
    @seed 100 + i
    test "sample_n: chi-square goodness of fit, #{name}" do
      chi_square!(unquote(dist), @support, @seed)
    end
  end

  defp chi_square!(d, support, seed) do
    draws = Dist.sample_n(d, Mx.Random.key(seed), @n)
    assert Mx.shape(draws) == {@n}
    counts = draws |> Mx.as_type(:s64) |> Mx.to_flat_list() |> Enum.frequencies()
    ks = Enum.to_list(support)
    probs = d |> Dist.logpdf(Mx.tensor(ks, type: :f64)) |> Mx.exp() |> Mx.to_list()
    # Every draw must lie in the support (the binned points or the pooled tail beyond them).
    assert Enum.all?(Map.keys(counts), &(&1 >= hd(ks))),
           "draws below the support: #{inspect(counts)}"

    observed = Enum.map(ks, &Map.get(counts, &1, 0))
    tail = @n - Enum.sum(observed)

    bins =
      Enum.zip(observed, Enum.map(probs, &(&1 * @n))) ++
        [{tail, max(@n * (1 - Enum.sum(probs)), 0.0)}]

    pooled = pool(bins)
    stat = Enum.reduce(pooled, 0.0, fn {o, e}, acc -> acc + (o - e) * (o - e) / e end)
    df = length(pooled) - 1
    crit = chi2_critical(df, 1.0e-4)
    assert stat <= crit, "chi-square #{stat} > #{crit} (df #{df}, alpha 1e-4): #{inspect(pooled)}"
  end

  # Adjacent bins merge until each expects >= 5 draws; a short last run joins the previous bin.
  defp pool(bins) do
    {done, {o, e}} =
      Enum.reduce(bins, {[], {0, 0.0}}, fn {o, e}, {acc, {co, ce}} ->
        {co, ce} = {co + o, ce + e}
        if ce >= 5, do: {[{co, ce} | acc], {0, 0.0}}, else: {acc, {co, ce}}
      end)

    case done do
      [{po, pe} | rest] -> Enum.reverse([{po + o, pe + e} | rest])
      [] -> [{o, e}]
    end
  end

  # The upper-alpha quantile of chi-square(df): bisection on its survival function Q(df/2, x/2).
  defp chi2_critical(df, alpha) do
    sf = fn x ->
      Mx.igammac(Mx.tensor(df / 2, type: :f64), Mx.tensor(x / 2, type: :f64)) |> Mx.to_number()
    end

    Enum.reduce(1..100, {0.0, 1000.0}, fn _, {lo, hi} ->
      mid = (lo + hi) / 2
      if sf.(mid) > alpha, do: {mid, hi}, else: {lo, mid}
    end)
    |> elem(1)
  end

  test "chi2_critical matches tabulated chi-square quantiles" do
    # scipy.stats.chi2.isf(1e-4, df) for df = 1, 10
    assert_in_delta chi2_critical(1, 1.0e-4), 15.136705226623606, 1.0e-8
    assert_in_delta chi2_critical(10, 1.0e-4), 35.56401394488099, 1.0e-8
  end

  test "sample shapes: batched parameters and n draws" do
    key = Mx.Random.key(3)
    assert Mx.shape(Dist.sample(Dist.poisson(Mx.tensor([1.0, 2.0], type: :f64)), key)) == {2}

    assert Mx.shape(Dist.sample_n(Dist.binomial(Mx.tensor([3.0, 50.0], type: :f64), 0.5), key, 7)) ==
             {7, 2}

    assert Mx.shape(
             Dist.sample_n(
               Dist.categorical(
                 logits: Mx.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], type: :f64)
               ),
               key,
               4
             )
           ) == {4, 3}

    assert Mx.shape(
             Dist.sample_n(
               Dist.dirichlet(Mx.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], type: :f64)),
               key,
               5
             )
           ) == {5, 2, 3}

    assert Mx.shape(
             Dist.sample(Dist.multivariate_normal([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]), key)
           ) == {2}

    mix =
      Dist.mixture(
        [
          Dist.multivariate_normal([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]),
          Dist.multivariate_normal([50.0, 50.0], [[1.0, 0.0], [0.0, 1.0]])
        ],
        [0.0, 0.0]
      )

    rows = Dist.sample_n(mix, key, 200) |> Mx.to_list()
    # Whole vectors come from one component: both coordinates near 0 or both near 50.
    assert Enum.all?(rows, fn [a, b] -> abs(a - b) < 20 end)
    assert Enum.any?(rows, fn [a, _] -> a > 25 end) and Enum.any?(rows, fn [a, _] -> a < 25 end)
  end

  test "piecewise_uniform and beta_uniform_mixture draws: KS against their exact CDFs" do
    d = Dist.piecewise_uniform([0.0, 1.0, 3.0, 3.5], [0.2, 0.5, 0.3])
    x = Dist.sample_n(d, Mx.Random.key(31), @n)
    # CDF: the mass of the bins below plus the covered fraction of the bin x is in.
    cdf = fn t ->
      Enum.map(Mx.to_list(t), fn v ->
        [{0.0, 1.0, 0.2}, {1.0, 3.0, 0.5}, {3.0, 3.5, 0.3}]
        |> Enum.map(fn {lo, hi, p} -> p * min(max((v - lo) / (hi - lo), 0.0), 1.0) end)
        |> Enum.sum()
      end)
    end

    Gen.DistCheck.ks!(x, cdf, label: "piecewise_uniform")

    d = Dist.beta_uniform_mixture(0.3, 2.0, 5.0)
    x = Dist.sample_n(d, Mx.Random.key(32), @n)
    cdf = fn t -> Mx.add(Mx.multiply(0.3, Mx.betainc(2.0, 5.0, t)), Mx.multiply(0.7, t)) end
    Gen.DistCheck.ks!(x, cdf, label: "beta_uniform_mixture")
  end

  # ---- samplers: moments -------------------------------------------------------------------

  test "dirichlet: sample means and variances within 5 standard errors" do
    alpha = [0.5, 2.0, 3.5]
    a0 = Enum.sum(alpha)
    x = Dist.sample_n(Dist.dirichlet(alpha), Mx.Random.key(21), @n)
    assert Mx.type(x) == :f64
    assert Mx.to_list(Mx.sum(x, axes: [1])) |> Enum.all?(&(abs(&1 - 1) < 1.0e-12))
    means = Mx.mean(x, axes: [0]) |> Mx.to_list()
    sq = Mx.mean(Mx.square(x), axes: [0]) |> Mx.to_list()

    for {{a, m}, s} <- Enum.zip(Enum.zip(alpha, means), sq) do
      mu = a / a0
      var = mu * (1 - mu) / (a0 + 1)
      assert abs(m - mu) <= 5 * :math.sqrt(var / @n), "mean #{m} vs #{mu}"
      # Var of X^2 bounded by E[X^2] (X in [0, 1]); a loose but valid standard error.
      assert abs(s - m * m - var) <= 5 * :math.sqrt(s / @n) + 5 * :math.sqrt(var / @n),
             "variance #{s - m * m} vs #{var}"
    end
  end

  test "multivariate_normal: sample mean and covariance within 5 standard errors" do
    mean = [1.0, -2.0, 0.5]
    cov = [[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.5]]
    x = Dist.sample_n(Dist.multivariate_normal(mean, cov), Mx.Random.key(22), @n)
    assert Mx.shape(x) == {@n, 3}
    m = Mx.mean(x, axes: [0])

    c =
      x
      |> Mx.subtract(m)
      |> Mx.transpose()
      |> Mx.matmul(Mx.subtract(x, m))
      |> Mx.divide(@n - 1.0)
      |> Mx.to_list()

    for {{mi, si}, i} <- Enum.with_index(Enum.zip(Mx.to_list(m), mean)) do
      sii = cov |> Enum.at(i) |> Enum.at(i)
      assert abs(mi - si) <= 5 * :math.sqrt(sii / @n)

      for j <- 0..2 do
        sij = cov |> Enum.at(i) |> Enum.at(j)
        sjj = cov |> Enum.at(j) |> Enum.at(j)
        # Var of a sample covariance of normals: (S_ii S_jj + S_ij^2) / n.
        se = :math.sqrt((sii * sjj + sij * sij) / @n)
        assert abs((c |> Enum.at(i) |> Enum.at(j)) - sij) <= 5 * se
      end
    end
  end

  # ---- gradients against finite differences -------------------------------------------------

  defp f64(l), do: Mx.tensor(l, type: :f64)

  test "gradient of bernoulli logpdf w.r.t. p" do
    x = Mx.tensor([1, 0, 1])

    Mx.GradCheck.check_grads!(fn p -> Dist.logpdf(Dist.bernoulli(p), x) end, [
      f64([0.3, 0.6, 0.9])
    ])
  end

  test "gradient of categorical logpdf w.r.t. logits" do
    x = Mx.tensor([0, 1, 2, 2])

    Mx.GradCheck.check_grads!(fn l -> Dist.logpdf(Dist.categorical(logits: l), x) end, [
      f64([0.2, -1.0, 0.7])
    ])

    # Probabilities through a softmax, so every finite-difference step stays on the simplex.
    softmax = fn l -> Mx.exp(Mx.subtract(l, Mx.logsumexp(l))) end

    Mx.GradCheck.check_grads!(fn l -> Dist.logpdf(Dist.categorical(softmax.(l)), x) end, [
      f64([0.2, -1.0, 0.7])
    ])
  end

  test "gradients of poisson, geometric, binomial and neg_binomial logpdf w.r.t. their parameters" do
    k = f64([0.0, 3.0, 7.0])
    Mx.GradCheck.check_grads!(fn r -> Dist.logpdf(Dist.poisson(r), k) end, [f64([0.5, 2.0, 9.0])])

    Mx.GradCheck.check_grads!(fn p -> Dist.logpdf(Dist.geometric(p), k) end, [
      f64([0.2, 0.5, 0.8])
    ])

    Mx.GradCheck.check_grads!(fn p -> Dist.logpdf(Dist.binomial(10, p), k) end, [
      f64([0.2, 0.5, 0.8])
    ])

    Mx.GradCheck.check_grads!(fn r, p -> Dist.logpdf(Dist.neg_binomial(r, p), k) end, [
      f64([0.7, 2.0, 5.5]),
      f64([0.2, 0.5, 0.8])
    ])
  end

  test "gradient of dirichlet logpdf w.r.t. alpha and the value" do
    x = f64([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])

    Mx.GradCheck.check_grads!(fn a -> Dist.logpdf(Dist.dirichlet(a), x) end, [
      f64([0.5, 2.0, 3.5])
    ])
  end

  test "gradient of multivariate_normal logpdf w.r.t. mean, covariance factor and value" do
    x = f64([[1.0, -1.0, 0.5], [0.0, 2.0, -0.3]])
    # cov = a aᵀ + I keeps every finite-difference step symmetric positive definite.
    f = fn m, a, v ->
      cov = Mx.add(Mx.matmul(a, Mx.transpose(a)), Mx.eye(3, type: :f64))
      Dist.logpdf(Dist.multivariate_normal(m, cov), v)
    end

    a = f64([[0.5, 0.1, -0.2], [0.3, 0.8, 0.0], [-0.1, 0.2, 0.4]])
    Mx.GradCheck.check_grads!(f, [f64([0.1, -0.5, 0.3]), a, x])
  end

  test "gradient of a mixture's logpdf w.r.t. its log-weights" do
    x = f64([0.0, 2.0, 5.0])
    f = fn lw -> Dist.logpdf(Dist.mixture([Dist.poisson(1.0), Dist.poisson(4.0)], lw), x) end
    Mx.GradCheck.check_grads!(f, [f64([-0.3, 0.4])])
  end
end
