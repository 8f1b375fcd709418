defmodule Gen.ChainCheck do
  @moduledoc "Posterior checks for MCMC chains shared by the inference tests."
  import ExUnit.Assertions

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
end
