defmodule Gen.DistCheck do
  @moduledoc """
  Checks shared by the distribution tests (test/gen/dist_*_test.exs).

    * `ks!/3`: a one-sample Kolmogorov–Smirnov test of draws against an exact
      CDF (continuous distributions).
    * `chi_square!/3`: a chi-square goodness-of-fit test of counts against
      exact probabilities (discrete distributions).
    * `logpdf_grads!/4`: `Mx.grad` of a log-density with respect to the value
      and every parameter against central finite differences, in f64.
    * `assert_close!/4`: elementwise comparison of log-densities with a
      relative bound, exact on infinities and NaN.

  Statistical tests use fixed keys, so they are deterministic; the critical
  values are at significance `alpha` (default 1e-4), so a correct sampler
  fails a given key with probability 1e-4 and a wrong one is caught once the
  discrepancy exceeds the critical value (for KS with n = 20 000, a CDF off
  by more than ~0.016 anywhere).
  """
  import ExUnit.Assertions

  @alpha 1.0e-4

  @doc """
  KS test: `draws` (an Mx array, any shape, read flat) against `cdf`, a
  function from an f64 Mx array of points to the CDF at those points (an Mx
  array or a list; use `Mx.erfc`, `Mx.betainc`, `Mx.igamma`, ... or closed
  forms). Asserts `D_n ≤ K(alpha) / (√n + 0.12 + 0.11/√n)` where `K(alpha)`
  solves the Kolmogorov limit `2 e^{-2K²} = alpha` (Stephens' finite-n
  correction, accurate to the third digit for n ≥ 35). Returns `D_n`.
  """
  def ks!(draws, cdf, opts \\ []) do
    alpha = opts[:alpha] || @alpha
    sorted = draws |> Mx.as_type(:f64) |> Mx.reshape({Mx.size(draws)}) |> Mx.sort()
    n = Mx.size(sorted)
    f = sorted |> cdf.() |> to_list()
    assert length(f) == n, "the CDF gave #{length(f)} values for #{n} points"

    d =
      f
      |> Enum.with_index()
      |> Enum.reduce(0.0, fn {fi, i}, acc -> Enum.max([acc, (i + 1) / n - fi, fi - i / n]) end)

    k = :math.sqrt(-0.5 * :math.log(alpha / 2))
    crit = k / (:math.sqrt(n) + 0.12 + 0.11 / :math.sqrt(n))

    assert d <= crit,
           "#{opts[:label] || "KS test"}: D = #{d} exceeds the critical value #{crit} at alpha = #{alpha} (n = #{n})"

    d
  end

  @doc """
  Chi-square test: `counts` (observed, a list) against `probs` (exact cell
  probabilities, a list summing to 1 over the cells; lump the tail into a
  last cell, and keep every expected count `n·p ≥ 5`). Asserts the statistic
  is below the chi-square quantile at `1 - alpha` with `cells - 1` degrees of
  freedom (Wilson–Hilferty, within 1% of the exact quantile for df ≥ 3).
  Returns the statistic.
  """
  def chi_square!(counts, probs, opts \\ []) do
    alpha = opts[:alpha] || @alpha
    n = Enum.sum(counts)
    assert length(counts) == length(probs) and length(counts) >= 2

    stat =
      Enum.zip_with(counts, probs, fn c, p -> (c - n * p) * (c - n * p) / (n * p) end)
      |> Enum.sum()

    df = length(counts) - 1
    z = normal_quantile(1 - alpha)
    crit = df * :math.pow(1 - 2 / (9 * df) + z * :math.sqrt(2 / (9 * df)), 3)

    assert stat <= crit,
           "#{opts[:label] || "chi-square test"}: #{stat} exceeds #{crit} (df #{df}, alpha #{alpha})"

    stat
  end

  # Φ⁻¹(p) via Mx.ndtri (f64).
  defp normal_quantile(p), do: Mx.ndtri(Mx.tensor(p, type: :f64)) |> Mx.to_number()

  @doc """
  Gradient check of a log-density. `build` maps a list of f64 parameter
  arrays to a distribution; the value and the parameters are the f64 arrays
  `value` and `params`. The scalar `sum(w · logpdf)` (fixed weights `w` in
  [0.5, 1.5]) is differentiated by `Mx.grad` with respect to the value and
  every parameter (skip some with `only: [indices]`, 0 being the value) and
  compared with central differences with step `h·max(1, |x|)`, h = 1e-6:
  truncation O(h²) and rounding O(eps/h) both stay near 1e-10 for
  log-densities of order 1, so `tol` (default 1e-6, relative to
  max(1, |derivative|)) leaves a wide margin and still catches a wrong term.
  """
  def logpdf_grads!(build, value, params, opts \\ []) do
    tol = opts[:tol] || 1.0e-6
    inputs = [value | params]
    only = opts[:only] || Enum.to_list(0..(length(inputs) - 1))
    out = Gen.Dist.logpdf(build.(params), value)
    w = Mx.GradCheck.random_f64(Mx.shape(out), 3, 0.5, 1.5)
    loss = fn [x | ps] -> Mx.sum(Mx.multiply(Gen.Dist.logpdf(build.(ps), x), w)) end
    grads = apply(Mx.grad(arity(length(inputs), loss), only), inputs)

    for {i, g} <- Enum.zip(only, List.wrap(grads)) do
      numeric = numeric(loss, inputs, i)
      analytic = Mx.to_flat_list(g)

      for {{n, a}, k} <- Enum.with_index(Enum.zip(numeric, analytic)) do
        assert is_float(a) and abs(n - a) <= tol * max(1.0, abs(n)),
               "#{opts[:label] || "logpdf"}: d/d(input #{i})[#{k}] analytic #{inspect(a)} vs numeric #{n}"
      end
    end

    :ok
  end

  defp numeric(loss, inputs, i) do
    x = Enum.at(inputs, i)
    flat = Mx.to_flat_list(x)

    for k <- 0..(length(flat) - 1)//1 do
      h = 1.0e-6 * max(1.0, abs(Enum.at(flat, k)))

      at = fn delta ->
        xs =
          List.update_at(flat, k, &(&1 + delta))
          |> Mx.tensor(type: :f64)
          |> Mx.reshape(Mx.shape(x))

        loss.(List.replace_at(inputs, i, xs)) |> Mx.to_number()
      end

      (at.(h) - at.(-h)) / (2 * h)
    end
  end

  defp arity(1, g), do: fn a -> g.([a]) end
  defp arity(2, g), do: fn a, b -> g.([a, b]) end
  defp arity(3, g), do: fn a, b, c -> g.([a, b, c]) end
  defp arity(4, g), do: fn a, b, c, d -> g.([a, b, c, d]) end
  defp arity(5, g), do: fn a, b, c, d, e -> g.([a, b, c, d, e]) end
  defp arity(6, g), do: fn a, b, c, d, e, f -> g.([a, b, c, d, e, f]) end

  @doc """
  Asserts `got` (an Mx array) matches `expected` (a flat list of floats or
  `:infinity`/`:neg_infinity`/`:nan`) elementwise: the same non-finite values,
  and finite ones within `rel · max(1, |expected|)` (default 1e-10). A
  log-density near 0 is a difference of terms of order 1, so its error is
  bounded in absolute terms there, relatively elsewhere. `inputs` (a list of
  flat lists) are shown for the failing elements.
  """
  def assert_close!(got, expected, label, opts \\ []) do
    rel = opts[:rel] || 1.0e-10
    g = Mx.to_flat_list(got)

    assert length(g) == length(expected),
           "#{label}: #{length(g)} values, expected #{length(expected)}"

    bad =
      for {{a, e}, i} <- Enum.with_index(Enum.zip(g, expected)), not close?(a, e, rel) do
        at = (opts[:inputs] || []) |> Enum.map(&Enum.at(&1, i))
        "  [#{i}] at #{inspect(at)}: got #{inspect(a)}, expected #{inspect(e)}"
      end

    assert bad == [],
           "#{label}: #{length(bad)} of #{length(g)} differ beyond #{rel}:\n" <>
             Enum.join(Enum.take(bad, 10), "\n")
  end

  defp close?(a, e, rel) when is_float(a) and is_float(e),
    do: abs(a - e) <= rel * max(1.0, abs(e))

  defp close?(a, e, _rel), do: a == e

  defp to_list(%Mx.Array{} = a), do: Mx.to_flat_list(a)
  defp to_list(l) when is_list(l), do: l
end
