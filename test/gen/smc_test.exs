defmodule Gen.SMCTest do
  use ExUnit.Case, async: true
  alias Gen.Inference.Resample

  doctest Gen.Inference.Resample

  # ---- resampling schemes ---------------------------------------------------------

  @probs [0.05, 0.3, 0.001, 0.149, 0.25, 0.15, 0.1]

  defp counts(idx, k), do: Enum.map(0..(k - 1), fn i -> Enum.count(idx, &(&1 == i)) end)

  defp log_probs(ps), do: Enum.map(ps, &:math.log/1)

  # Unnormalized weights: shifting every log weight must not matter.
  defp shifted(ps), do: Mx.tensor(Enum.map(log_probs(ps), &(&1 + 3.7)), type: :f64)

  defp spread(n),
    do:
      for(i <- 0..(n - 1), do: Enum.at(@probs, rem(i, 7)))
      |> then(fn p -> Enum.map(p, &(&1 / Enum.sum(p))) end)

  test "systematic keeps every count within one of n·wᵢ" do
    for {n, seed} <- [{7, 0}, {100, 1}, {1000, 2}, {333, 3}] do
      ps = spread(n)
      idx = Resample.systematic(shifted(ps), Mx.Random.key(seed))
      assert length(idx) == n and idx == Enum.sort(idx)

      for {c, p} <- Enum.zip(counts(idx, n), ps),
          do: assert(abs(c - n * p) < 1.0 + 1.0e-9, "count #{c} vs n·w = #{n * p}")
    end
  end

  # Residual's remainder is multinomial, so a count can exceed n·wᵢ + 1; what is guaranteed is
  # ⌊n·wᵢ⌋ ≤ count ≤ ⌊n·wᵢ⌋ + R with R = n − Σ⌊n·wᵢ⌋.
  test "residual keeps the deterministic copies and draws exactly R more" do
    for {n, seed} <- [{7, 0}, {100, 1}, {1000, 2}, {333, 3}] do
      ps = spread(n)
      idx = Resample.residual(shifted(ps), Mx.Random.key(seed))
      assert length(idx) == n and idx == Enum.sort(idx)
      floors = Enum.map(ps, &floor(&1 * n))
      r = n - Enum.sum(floors)

      for {c, f} <- Enum.zip(counts(idx, n), floors), do: assert(c >= f and c <= f + r)
    end

    # With n·wᵢ all integers nothing is random: counts are exactly n·wᵢ.
    assert Resample.residual(log_probs([0.25, 0.5, 0.25]) ++ [:neg_infinity], Mx.Random.key(9)) ==
             [0, 1, 1, 2]
  end

  test "multinomial counts pass a chi-square test at alpha 1e-4" do
    n = 20_000

    # 20_000 draws need a weight vector of length 20_000: repeat the 7 weights, pool the counts by class.
    ps = for i <- 0..(n - 1), do: Enum.at(@probs, rem(i, 7)) / (n / 7)
    idx = Resample.multinomial(Mx.tensor(log_probs(ps), type: :f64), Mx.Random.key(12))
    obs = Enum.map(0..6, fn c -> Enum.count(idx, &(rem(&1, 7) == c)) end)

    chi2 =
      Enum.zip(obs, @probs) |> Enum.map(fn {o, p} -> (o - n * p) ** 2 / (n * p) end) |> Enum.sum()

    # scipy.stats.chi2.ppf(1 - 1e-4, df=6) = 27.856
    assert chi2 < 27.856, "chi-square #{chi2} with counts #{inspect(obs)}"
  end

  test "ess and errors" do
    assert_in_delta Resample.ess(log_probs([0.5, 0.5])), 2.0, 1.0e-12
    assert_in_delta Resample.ess(log_probs([0.9, 0.1])), 1.0 / (0.81 + 0.01), 1.0e-12

    assert_raise ArgumentError, ~r/every log weight is -infinity/, fn ->
      Resample.systematic([:neg_infinity], Mx.Random.key(0))
    end

    assert_raise ArgumentError, ~r/numbers or -infinity/, fn ->
      Resample.residual([0.0, :nan], Mx.Random.key(0))
    end

    assert_raise ArgumentError, ~r/rank-1/, fn ->
      Resample.multinomial(Mx.tensor([[0.0]]), Mx.Random.key(0))
    end
  end

  # ---- particle filter on a linear-Gaussian state-space model -----------------------
  # x_0 ~ N(0, 1), x_t ~ N(0.9 x_{t-1}, 0.5²), y_t ~ N(x_t, 0.3²), t = 0..T-1.

  @t_len 15
  # The model, its data and the exact filter: test/support/kalman.ex.
  import Gen.Kalman, only: [ssm: 0]

  defp data, do: Gen.Kalman.data(@t_len)

  defp run(scheme, seed, ys) do
    obs = for {y, i} <- Enum.with_index(ys), do: %{i => %{y: y}}

    {traces, lnw, lml} =
      Gen.Inference.smc(ssm(), &[&1 + 1, 0.0], obs, 500,
        key: Mx.Random.key(seed),
        resampling: scheme
      )

    w = lnw |> Mx.exp() |> Mx.to_list()
    xs = Enum.map(traces, &Mx.to_number(&1[[@t_len - 1, :x]]))
    {Mx.to_number(lml), Enum.zip_with(w, xs, &(&1 * &2)) |> Enum.sum()}
  end

  defp mean_sd(v) do
    m = Enum.sum(v) / length(v)
    {m, :math.sqrt(Enum.sum(Enum.map(v, &((&1 - m) ** 2))) / (length(v) - 1))}
  end

  for scheme <- [:multinomial, :systematic, :residual] do
    test "smc (#{scheme}) matches the Kalman log marginal likelihood and filtered mean" do
      ys = data()
      {exact, k_mean, _k_var} = Gen.Kalman.filter(ys)

      # 10 independent runs (keys 100..109), n = 500: the standard error of one estimate is the sd over runs.
      runs = for seed <- 100..109, do: run(unquote(scheme), seed, ys)
      {lmls, means} = Enum.unzip(runs)
      {lml_avg, lml_sd} = mean_sd(lmls)
      {mean_avg, mean_sd} = mean_sd(means)

      # Each run within 4 SE of the exact value, and the average of 10 within 4 SE / √10.
      for l <- lmls,
          do: assert(abs(l - exact) < 4 * lml_sd, "log ML #{l} vs exact #{exact}, sd #{lml_sd}")

      assert abs(lml_avg - exact) < 4 * lml_sd / :math.sqrt(10),
             "mean log ML #{lml_avg} vs #{exact}, sd #{lml_sd}"

      for x <- means,
          do:
            assert(
              abs(x - k_mean) < 4 * mean_sd,
              "filtered mean #{x} vs Kalman #{k_mean}, sd #{mean_sd}"
            )

      assert abs(mean_avg - k_mean) < 4 * mean_sd / :math.sqrt(10)
    end
  end

  test "smc with resampling never triggered equals importance sampling weights" do
    ys = Enum.take(data(), 3)
    obs = for {y, i} <- Enum.with_index(ys), do: %{i => %{y: y}}

    {_, lnw, lml} =
      Gen.Inference.smc(ssm(), &[&1 + 1, 0.0], obs, 50, key: Mx.Random.key(5), ess_threshold: 0.0)

    assert_in_delta Mx.to_number(Mx.logsumexp(lnw)), 0.0, 1.0e-12
    assert is_float(Mx.to_number(lml))
  end

  test "smc argument errors" do
    obs = [%{0 => %{y: 0.0}}]
    m = ssm()

    assert_raise ArgumentError, ~r/resampling: must be/, fn ->
      Gen.Inference.smc(m, &[&1 + 1, 0.0], obs, 4, resampling: :stratified)
    end

    assert_raise ArgumentError, ~r/ess_threshold/, fn ->
      Gen.Inference.smc(m, &[&1 + 1, 0.0], obs, 4, ess_threshold: 2)
    end

    assert_raise ArgumentError, ~r/positive integer/, fn ->
      Gen.Inference.smc(m, &[&1 + 1, 0.0], obs, 0)
    end

    assert_raise ArgumentError, ~r/non-empty list/, fn ->
      Gen.Inference.smc(m, &[&1 + 1, 0.0], [], 4)
    end
  end
end
