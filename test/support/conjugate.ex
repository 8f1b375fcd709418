defmodule Gen.Conjugate do
  @moduledoc """
  Exact posteriors of conjugate models in closed form (plain Elixir floats),
  and the Monte-Carlo checks the conjugate tests share.
  """
  import ExUnit.Assertions

  @doc "Gamma(shape a, rate b) prior, Poisson counts: the posterior is Gamma(a + Σc, b + n); mean and variance."
  def gamma_poisson(a, b, counts) do
    {a2, b2} = {a + Enum.sum(counts), b + length(counts)}
    %{shape: a2, rate: b2, mean: a2 / b2, var: a2 / (b2 * b2)}
  end

  @doc """
  Bayesian linear regression y = X w + ε, ε ~ N(0, σ² I), prior w ~ N(m0, diag(v0)):
  posterior covariance S = (diag(1/v0) + XᵀX/σ²)⁻¹ and mean S (m0/v0 + Xᵀy/σ²).
  """
  def linear_regression(xs, ys, m0, v0, sigma) do
    d = length(m0)
    s2 = sigma * sigma

    precision =
      for i <- 0..(d - 1) do
        for j <- 0..(d - 1) do
          xtx = xs |> Enum.map(&(Enum.at(&1, i) * Enum.at(&1, j))) |> Enum.sum()
          xtx / s2 + if(i == j, do: 1 / Enum.at(v0, i), else: 0.0)
        end
      end

    rhs =
      for i <- 0..(d - 1) do
        xty = Enum.zip(xs, ys) |> Enum.map(fn {x, y} -> Enum.at(x, i) * y end) |> Enum.sum()
        Enum.at(m0, i) / Enum.at(v0, i) + xty / s2
      end

    cov = inverse(precision)
    %{mean: mat_vec(cov, rhs), cov: cov}
  end

  @doc "Ordinary least squares (XᵀX)⁻¹Xᵀy and (XᵀX)⁻¹, for a data-driven proposal."
  def least_squares(xs, ys) do
    d = length(hd(xs))
    xtx = for i <- 0..(d - 1), do: for(j <- 0..(d - 1), do: xs |> Enum.map(&(Enum.at(&1, i) * Enum.at(&1, j))) |> Enum.sum())
    xty = for i <- 0..(d - 1), do: Enum.zip(xs, ys) |> Enum.map(fn {x, y} -> Enum.at(x, i) * y end) |> Enum.sum()
    inv = inverse(xtx)
    %{coef: mat_vec(inv, xty), xtx_inv: inv}
  end

  @doc "Gauss–Jordan inverse with partial pivoting of a small square matrix (lists of rows)."
  def inverse(a) do
    n = length(a)
    aug = a |> Enum.with_index() |> Enum.map(fn {row, i} -> row ++ for(j <- 0..(n - 1), do: if(i == j, do: 1.0, else: 0.0)) end)

    0..(n - 1)
    |> Enum.reduce(aug, fn col, m ->
      piv = Enum.max_by(col..(n - 1), &abs(Enum.at(Enum.at(m, &1), col)))
      m = swap(m, col, piv)
      prow = Enum.at(m, col)
      p = Enum.at(prow, col)
      prow = Enum.map(prow, &(&1 / p))

      m
      |> List.replace_at(col, prow)
      |> Enum.with_index()
      |> Enum.map(fn
        {row, ^col} -> row
        {row, _} -> Enum.zip_with(row, prow, &(&1 - Enum.at(row, col) * &2))
      end)
    end)
    |> Enum.map(&Enum.drop(&1, n))
  end

  defp swap(m, i, i), do: m
  defp swap(m, i, j), do: m |> List.replace_at(i, Enum.at(m, j)) |> List.replace_at(j, Enum.at(m, i))

  def mat_vec(m, v), do: Enum.map(m, fn row -> row |> Enum.zip_with(v, &(&1 * &2)) |> Enum.sum() end)

  @doc """
  Importance-sampling check of a posterior mean and variance from normalized
  weights `w` and values `xs`: Kish's ESS = 1/Σw²; the self-normalized mean
  has standard error ≈ sd/√ESS and the variance estimate ≈ σ²·√((κ − 1)/ESS)
  with κ the posterior's kurtosis (3 for a Gaussian, 3 + 6/a for Gamma(a, ·)).
  Both within 4 standard errors.
  """
  def assert_weighted(w, xs, mean, var, kurtosis) do
    ess = 1.0 / Enum.sum(Enum.map(w, &(&1 * &1)))
    assert ess > 100, "importance weights degenerate: ESS #{ess}"
    m = Enum.zip(w, xs) |> Enum.map(fn {wi, x} -> wi * x end) |> Enum.sum()
    v = Enum.zip(w, xs) |> Enum.map(fn {wi, x} -> wi * (x - m) * (x - m) end) |> Enum.sum()
    se_m = :math.sqrt(var / ess)
    se_v = var * :math.sqrt((kurtosis - 1) / ess)
    assert abs(m - mean) <= 4 * se_m, "IS mean #{m} vs #{mean}, 4 SE = #{4 * se_m}"
    assert abs(v - var) <= 4 * se_v, "IS variance #{v} vs #{var}, 4 SE = #{4 * se_v}"
    ess
  end

  @doc """
  A chain's sample covariance of coordinates i and j against the exact one:
  the mean of (xᵢ − x̄ᵢ)(xⱼ − x̄ⱼ) within 4 of its batch-means standard errors.
  """
  def assert_cross_cov(rows, i, j, cov) do
    xi = Enum.map(rows, &Enum.at(&1, i))
    xj = Enum.map(rows, &Enum.at(&1, j))
    {mi, mj} = {Enum.sum(xi) / length(xi), Enum.sum(xj) / length(xj)}
    bm = Gen.ChainCheck.batch_means(Enum.zip_with(xi, xj, fn a, b -> (a - mi) * (b - mj) end))
    assert abs(bm.mean - cov) <= 4 * bm.se, "cov(#{i}, #{j}) #{bm.mean} vs #{cov}, 4 SE = #{4 * bm.se}"
  end

  @doc "Checks every coordinate's mean and variance (`Gen.ChainCheck.assert_posterior/3`) and every covariance."
  def assert_gaussian_posterior(rows, %{mean: mean, cov: cov}) do
    d = length(mean)

    for i <- 0..(d - 1) do
      Gen.ChainCheck.assert_posterior(Enum.map(rows, &Enum.at(&1, i)), Enum.at(mean, i), Enum.at(Enum.at(cov, i), i))
    end

    for i <- 0..(d - 1), j <- (i + 1)..(d - 1)//1, do: assert_cross_cov(rows, i, j, Enum.at(Enum.at(cov, i), j))
    :ok
  end
end
