defmodule Gen.ChainCheck do
  @moduledoc """
  Posterior checks for MCMC chains shared by the inference tests, and the normal–normal
  model they share, mu ~ N(0, 2²), y_i ~ N(mu, 1), with its exact posterior and evidence.
  """
  import ExUnit.Assertions
  import Gen

  # Batch means (batches of √n): the Monte-Carlo standard error of the mean of a correlated chain.
  def batch_means(xs) do
    n = length(xs)
    b = trunc(:math.sqrt(n))
    means = xs |> Enum.take(div(n, b) * b) |> Enum.chunk_every(b) |> Enum.map(&(Enum.sum(&1) / b))
    var_bm = b * sample_var(means)
    %{mean: Enum.sum(xs) / n, se: :math.sqrt(var_bm / n), ess: n * sample_var(xs) / var_bm}
  end

  def sample_var(xs) do
    m = Enum.sum(xs) / length(xs)
    Enum.sum(Enum.map(xs, &((&1 - m) * (&1 - m)))) / (length(xs) - 1)
  end

  # Mean within 4 MC standard errors; variance as the mean of (x − x̄)², whose own batch-means
  # standard error gives the tolerance (4 of them). Four standard errors: a two-sided 6e-5 level.
  def assert_posterior(xs, mean, var) do
    bm = batch_means(xs)
    assert bm.ess > 100, "chain mixes too slowly: ESS #{bm.ess}"
    assert abs(bm.mean - mean) <= 4 * bm.se, "mean #{bm.mean} vs #{mean}, 4 SE = #{4 * bm.se}"
    sq = Enum.map(xs, &((&1 - bm.mean) * (&1 - bm.mean)))
    bv = batch_means(sq)
    assert abs(bv.mean - var) <= 4 * bv.se, "variance #{bv.mean} vs #{var}, 4 SE = #{4 * bv.se}"
  end

  # ---- the normal–normal model -----------------------------------------------------------

  @normal_ys [0.8, 1.9, 1.1, 2.4, 1.5]
  @normal_prior_var 4.0

  @doc "The data the tests condition the normal–normal model on."
  def normal_ys, do: @normal_ys

  @doc "mu ~ N(0, 2²), then y_i ~ N(mu, 1) for each of the argument `ys` (their number fixes the sites)."
  def normal_model do
    gen(fn ys ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
      for i <- 0..(length(ys) - 1), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
      mu
    end)
  end

  @doc "The observations {:y, i} => y_i as a choicemap."
  def normal_observations(ys),
    do: Gen.choicemap(for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}))

  @doc "Conjugacy: the posterior of mu has precision 1/4 + n and mean (Σy)/precision."
  def normal_posterior(ys \\ @normal_ys) do
    var = 1.0 / (1.0 / @normal_prior_var + length(ys))
    %{mean: Enum.sum(ys) * var, var: var}
  end

  @doc "Exact log p(y): y ~ N(0, I + 4·11ᵀ), det = 1 + 4n (determinant lemma), inverse I − 4/(1 + 4n)·11ᵀ (Sherman–Morrison)."
  def normal_log_ml(ys) do
    n = length(ys)
    s = Enum.sum(ys)
    quad = Enum.sum(Enum.map(ys, &(&1 * &1))) - @normal_prior_var / (1 + n * @normal_prior_var) * s * s
    -0.5 * n * :math.log(2 * :math.pi()) - 0.5 * :math.log(1 + n * @normal_prior_var) - 0.5 * quad
  end
end
