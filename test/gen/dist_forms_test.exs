defmodule Gen.DistFormsTest do
  # Issue 10 item 2: Gen.jl's names and parameterisations, categorical(probs), the gamma
  # forms, and the logit / log-rate forms against mpmath (test/reference/dist_forms.exs,
  # written by generate_dist_forms.py): values and derivatives deep in the tails.
  use ExUnit.Case, async: true

  import Gen
  alias Gen.Dist
  import Gen.DistCheck

  defp f64(x), do: Mx.tensor(x, type: :f64)

  # ---- the forms against mpmath, values and derivatives --------------------------------

  defp build(:bernoulli_logits, [eta]), do: Dist.bernoulli(logits: eta)
  defp build(:binomial_logits, [n, eta]), do: Dist.binomial(n, logits: eta)
  defp build(:poisson_log_rate, [theta]), do: Dist.poisson(log_rate: theta)
  defp build(:gamma_scale, [shape, scale]), do: Dist.gamma(shape, scale: scale)

  for c <- Mx.ReferenceCase.load!("dist_forms") do
    @c c
    test "#{c.name} and its derivative in the parameter match mpmath" do
      [x | rev] = @c.args |> Enum.map(&Mx.ReferenceCase.decode/1) |> Enum.reverse()
      params = Enum.reverse(rev)
      expected = @c.expected |> Mx.ReferenceCase.decode() |> Mx.to_flat_list()

      inputs =
        Enum.map(params ++ [x], &Mx.to_flat_list/1) |> Enum.zip() |> Enum.map(&Tuple.to_list/1)

      assert_close!(Dist.logpdf(build(@c.fun, params), x), expected, @c.name,
        inputs: [inputs],
        rel: 1.0e-12
      )

      # Rows are independent, so the gradient of the sum is each row's derivative.
      last = length(params) - 1

      loss = fn p ->
        Dist.logpdf(build(@c.fun, List.replace_at(params, last, p)), x) |> Mx.sum()
      end

      grad = Mx.grad(loss).(Enum.at(params, last))
      want = @c.aux.grad |> Mx.ReferenceCase.decode() |> Mx.to_flat_list()
      assert_close!(grad, want, "#{@c.name} derivative", inputs: [inputs], rel: 1.0e-12)
    end
  end

  test "probability forms lose the tails that the logit and log-rate forms keep" do
    # p = sigmoid(-800) rounds to 0: the probability form says impossible, the logit form -800.
    assert Mx.to_number(Dist.logpdf(Dist.bernoulli(Mx.sigmoid(f64(-800.0))), true)) ==
             :neg_infinity

    assert Mx.to_number(Dist.logpdf(Dist.bernoulli(logits: -800.0), true)) == -800.0
    # 1 - sigmoid(40) rounds to 0 in f64, but log(1 - p) = -40 - log1p(e^-40).
    assert Mx.to_number(Dist.logpdf(Dist.bernoulli(Mx.sigmoid(f64(40.0))), false)) ==
             :neg_infinity

    assert_in_delta Mx.to_number(Dist.logpdf(Dist.bernoulli(logits: 40.0), false)), -40.0, 1.0e-14
    # e^-800 underflows to 0: the rate form scores k = 1 as impossible, the log-rate form -800.
    assert Mx.to_number(Dist.logpdf(Dist.poisson(log_rate: -800.0), 1)) == -800.0
    assert Mx.to_number(Dist.logpdf(Dist.poisson(Mx.exp(f64(-800.0))), 1)) == :neg_infinity
  end

  test "logit and log-rate forms: gradients against finite differences at moderate points" do
    logpdf_grads!(
      fn [eta] -> Dist.bernoulli(logits: eta) end,
      f64([1.0, 0.0, 1.0]),
      [f64([-2.0, 0.3, 4.0])],
      only: [1],
      label: "bernoulli logits"
    )

    logpdf_grads!(
      fn [eta] -> Dist.binomial(12, logits: eta) end,
      f64([0.0, 5.0, 12.0]),
      [f64([-1.5, 0.2, 2.5])],
      only: [1],
      label: "binomial logits"
    )

    logpdf_grads!(
      fn [t] -> Dist.poisson(log_rate: t) end,
      f64([0.0, 3.0, 40.0]),
      [f64([-1.0, 1.1, 3.6])],
      only: [1],
      label: "poisson log_rate"
    )

    logpdf_grads!(
      fn [k, s] -> Dist.gamma(k, scale: s) end,
      f64([0.4, 2.0, 9.0]),
      [f64([0.7, 2.0, 6.5]), f64([0.5, 1.0, 3.0])],
      label: "gamma scale"
    )
  end

  test "logit and log-rate forms draw from the distribution they score" do
    n = 20_000

    for {d, support, seed} <- [
          {Dist.bernoulli(logits: 0.8), 0..1, 1},
          {Dist.binomial(20, logits: -0.5), 0..20, 2},
          {Dist.poisson(log_rate: 1.2), 0..14, 3}
        ] do
      draws = Dist.sample_n(d, Mx.Random.key(seed), n) |> Mx.as_type(:s64) |> Mx.to_flat_list()
      counts = Enum.frequencies(draws)
      ks = Enum.to_list(support)
      probs = d |> Dist.logpdf(f64(ks)) |> Mx.exp() |> Mx.to_flat_list()
      # The mass beyond the last binned point goes into one tail cell.
      tail = n - Enum.sum(Enum.map(ks, &Map.get(counts, &1, 0)))

      {cells, ps} =
        merge(
          Enum.map(ks, &Map.get(counts, &1, 0)) ++ [tail],
          probs ++ [max(1.0 - Enum.sum(probs), 0.0)],
          n
        )

      chi_square!(cells, ps, label: inspect(d))
    end
  end

  # Adjacent cells merge until each expects >= 5 draws (chi_square!'s condition).
  defp merge(counts, probs, n) do
    {done, {c, p}} =
      Enum.zip(counts, probs)
      |> Enum.reduce({[], {0, 0.0}}, fn {c, p}, {acc, {cc, pp}} ->
        if (pp + p) * n >= 5,
          do: {[{cc + c, pp + p} | acc], {0, 0.0}},
          else: {acc, {cc + c, pp + p}}
      end)

    [{lc, lp} | rest] = done
    Enum.reverse([{lc + c, lp + p} | rest]) |> Enum.unzip()
  end

  test "logit forms under a particle batch: one score per particle, as the scalar model scores it" do
    m =
      gen(fn ->
        eta = trace(:eta, Gen.Dist.normal(0.0, 3.0))
        b = trace(:b, Gen.Dist.bernoulli(logits: eta))
        trace(:k, Gen.Dist.poisson(log_rate: eta))
        b
      end)

    t = Gen.vsimulate(m, [], 6, key: Mx.Random.key(2))
    assert Mx.shape(t[:b]) == {6} and Mx.shape(Gen.get_score(t)) == {6}

    for {eta, b, k, score} <-
          Enum.zip([
            Mx.to_list(t[:eta]),
            Mx.to_list(t[:b]),
            Mx.to_list(t[:k]),
            Mx.to_list(Gen.get_score(t))
          ]) do
      {w, _} = Gen.assess(m, [], %{eta: eta, b: b, k: k})
      assert_in_delta score, Mx.to_number(w), 1.0e-12
    end
  end

  # ---- categorical(probs), Gen.jl's meaning ------------------------------------------------

  test "categorical reads a vector as probabilities, as Gen.jl: [0.1, 0.9] draws 1 with probability 0.9" do
    d = Dist.categorical(Mx.tensor([0.1, 0.9]))
    assert_in_delta Mx.to_number(Dist.logpdf(d, 1)), :math.log(0.9), 1.0e-7
    n = 20_000
    ones = Dist.sample_n(d, Mx.Random.key(7), n) |> Mx.sum() |> Mx.to_number()
    # 4 binomial standard errors around 0.9 n (today's logits reading gives 0.69 n).
    assert abs(ones - 0.9 * n) <= 4 * :math.sqrt(n * 0.9 * 0.1)

    assert_in_delta Mx.to_number(Dist.logpdf(Dist.categorical(logits: [0.0, :math.log(9.0)]), 1)),
                    :math.log(0.9),
                    1.0e-15
  end

  test "categorical probabilities are validated: non-negative, summing to 1 within 1.5e-8 (f64) or 3.5e-4 (f32)" do
    for bad <- [
          [0.5, 0.2],
          [-0.1, 1.1],
          [:math.log(0.2), :math.log(0.8)],
          [[0.5, 0.5], [0.9, 0.3]]
        ] do
      err = assert_raise ArgumentError, fn -> Dist.categorical(bad) end
      assert err.message =~ "Gen.Dist.categorical: probs must be non-negative and sum to 1"
      assert err.message =~ "categorical(logits: ...)"
    end

    # The tolerance, on both sides of it.
    Dist.categorical([0.5, 0.5 + 1.0e-8])
    assert_raise ArgumentError, ~r/sum to 1/, fn -> Dist.categorical([0.5, 0.5 + 3.0e-8]) end
    Dist.categorical(Mx.tensor([0.5, 0.5002], type: :f32))

    assert_raise ArgumentError, ~r/sum to 1/, fn ->
      Dist.categorical(Mx.tensor([0.5, 0.5005], type: :f32))
    end

    # Computed (lazy) probabilities are not inspected; where they are invalid the log-mass is -Inf.
    lazy = Mx.multiply(f64([0.5, 0.2]), 1.0)
    assert Mx.to_number(Dist.logpdf(Dist.categorical(lazy), 0)) == :neg_infinity
    neg = Mx.subtract(f64([0.1, 0.9]), 0.2)
    assert Mx.to_number(Dist.logpdf(Dist.categorical(neg), 1)) == :neg_infinity

    assert_raise ArgumentError, ~r/unknown option prob: \(did you mean probs:\?\); the valid options are probs:, logits:/, fn ->
      Dist.categorical(prob: [0.5, 0.5])
    end
  end

  # ---- gamma: the second parameter by name ------------------------------------------------

  test "gamma takes scale: (Gen.jl) or rate: (Stan), and a bare second parameter raises" do
    x = f64([0.3, 1.0, 4.0])
    by_scale = Dist.logpdf(Dist.gamma(2.5, scale: 0.5), x) |> Mx.to_flat_list()
    by_rate = Dist.logpdf(Dist.gamma(2.5, rate: 2.0), x) |> Mx.to_flat_list()

    assert_close!(Dist.logpdf(Dist.gamma(2.5, scale: 0.5), x), by_rate, "scale vs rate",
      rel: 1.0e-15
    )

    # Gen.jl: (shape - 1) log x - x / scale - shape log scale - lgamma(shape).
    genjl =
      for v <- [0.3, 1.0, 4.0],
          do: 1.5 * :math.log(v) - v / 0.5 - 2.5 * :math.log(0.5) - 0.2846828704729192

    assert_close!(f64(by_scale), genjl, "Gen.jl's formula", rel: 1.0e-14)

    for bad <- [3.0, f64(3.0), [shape: 3.0], [rate: 1.0, scale: 1.0]] do
      err = assert_raise ArgumentError, fn -> Dist.gamma(2.0, bad) end
      assert err.message =~ "gamma(shape, scale: s) as in Gen.jl"
      assert err.message =~ "gamma(shape, rate: r) as in Stan"
    end

    assert_raise ArgumentError, ~r/gamma: scale must be positive, got -1.0/, fn ->
      Dist.gamma(1.0, scale: -1.0)
    end

    # Draws with scale s have mean shape·s (4 standard errors: sd = √shape·s / √n).
    n = 20_000

    m =
      Dist.sample_n(Dist.gamma(3.0, scale: 2.0), Mx.Random.key(11), n)
      |> Mx.mean()
      |> Mx.to_number()

    assert abs(m - 6.0) <= 4 * :math.sqrt(3.0) * 2.0 / :math.sqrt(n)
  end

  # ---- Gen.jl's names -----------------------------------------------------------------------

  test "Gen.jl's names are aliases with Gen.jl's parameters in Gen.jl's order" do
    same = fn a, b, x ->
      assert Mx.to_flat_list(Dist.logpdf(a, x)) == Mx.to_flat_list(Dist.logpdf(b, x)), inspect(a)
    end

    same.(Dist.uniform_discrete(1, 6), Dist.discrete_uniform(1, 6), f64([0.0, 1.0, 6.0, 7.0]))
    same.(Dist.uniform_continuous(-1.0, 3.0), Dist.uniform(-1.0, 3.0), f64([-2.0, 0.0, 3.0]))
    same.(Dist.binom(10, 0.3), Dist.binomial(10, 0.3), f64([0.0, 3.0, 11.0]))
    same.(Dist.binom(10, logits: 0.3), Dist.binomial(10, logits: 0.3), f64([0.0, 3.0]))
    same.(Dist.neg_binom(2.5, 0.4), Dist.neg_binomial(2.5, 0.4), f64([0.0, 3.0]))

    same.(
      Dist.mvnormal([0.0, 1.0], [[2.0, 0.3], [0.3, 1.0]]),
      Dist.multivariate_normal([0.0, 1.0], [[2.0, 0.3], [0.3, 1.0]]),
      f64([0.5, 0.5])
    )

    same.(
      Dist.beta_uniform(0.3, 2.0, 5.0),
      Dist.beta_uniform_mixture(0.3, 2.0, 5.0),
      f64([0.1, 0.9])
    )

    same.(Dist.flip(logits: -1.0), Dist.bernoulli(logits: -1.0), f64([0.0, 1.0]))

    # uniform_discrete is inclusive at both ends, as in Gen.jl.
    assert Mx.to_flat_list(Dist.logpdf(Dist.uniform_discrete(1, 4), f64([1.0, 4.0]))) == [
             -:math.log(4.0),
             -:math.log(4.0)
           ]
  end
end
