defmodule Mx.Special do
  @moduledoc """
  Special functions for log-densities and samplers: the gamma family, the
  normal CDF in log space and its inverse, incomplete gamma and beta
  functions, and the `x log y` helpers. Every function here is also
  `Mx.<name>` (delegated), and the one-input and two-input ones that need a
  kernel of their own are ordinary elementwise ops of `Mx`:

  | function | computes | kind |
  | --- | --- | --- |
  | `Mx.lgamma/1`, `Mx.digamma/1`, `Mx.trigamma/1`, `polygamma/2` | log Γ, ψ, ψ′ | kernels (`polygamma` picks one) |
  | `Mx.erf/1`, `Mx.erfc/1`, `Mx.erf_inv/1` | error functions | kernels |
  | `Mx.log_ndtr/1`, `Mx.ndtri/1` | log Φ(x), Φ⁻¹(p) | kernels |
  | `Mx.igamma/2`, `Mx.igammac/2` | P(a, x), Q(a, x) | kernels |
  | `betainc/3` | I_x(a, b) | kernel (three inputs) |
  | `betaln/2`, `log1mexp/1`, `xlogy/2`, `xlog1py/2` | | composites of the above |

  The scalar code is `c_src/prim/special.c`; `f32` inputs are computed in
  double and rounded once. Integer inputs compute in `f32`.

  ## Accuracy

  Measured against mpmath at 60 digits over random sweeps of the domains
  below (`test/reference/generate_special.py` writes the cases that
  `test/mx/special_test.exs` checks, at the issue's bar of 1e-12 in `f64`
  and 1e-5 in `f32`). A tiny result e^t carries a relative error of a few
  ulp times |t| (t itself is only known to an ulp), so those bounds are
  relative to `max(1, |log r|)`.

  | function | domain | max relative error, f64 |
  | --- | --- | --- |
  | `trigamma` | [1e-8, 1e8], [-30, 0) off the poles | 6e-16 |
  | `erfc` | [-6, 27] | 2e-16 (glibc's erfc) |
  | `log_ndtr` | [-1e10, 40] | 4e-16 |
  | `ndtri` | [5e-324, 1) | 4e-16 |
  | `igamma`, `igammac` | a in [1e-10, 1e7], x/a in [1e-3, 10] | 6e-16 · max(1, \|log r\|) |
  | `betainc` | a, b in [1e-3, 1e6], x in (0, 1) | 3e-14 · max(1, \|log r\|) |
  | `betaln` | a, b in [1e-3, 1e10] | 1e-14 where \|log B\| > 0.1 |
  | `log1mexp`, `xlogy`, `xlog1py` | | 2e-16 |

  In `f32` the kernels and `betaln` return the correctly rounded value of
  the exact result at the `f32` input in every reference case (they compute
  in double); `log1mexp`, `xlogy` and `xlog1py` compute in `f32`, within
  1e-7.

  Where accuracy drops:

    * `betainc` for large a + b near the mean: the result is sensitive to x
      itself (a change of an ulp of x moves it by u·x·pdf/I), which limits
      any method to ~1e-14 at a + b = 1e6; the continued fraction runs in
      long double for that reason and takes ~√max(a, b) steps.
    * `betaln`, `lgamma` and `digamma` near their zeros: the error is a few
      ulp of the terms that cancel (lgamma(a), lgamma(b), ...), not of the
      result (1e-13 relative at log B = 7e-4).
    * `ndtri` near p = 1 and `log_ndtr` for x > 38: as for any method, p
      itself cannot resolve 1 - p below an ulp of 1.
    * `igamma`, `igammac` and `betainc` where the result underflows: a few
      ulp times |log r|, as stated above.

  ## Gradients

  `digamma`, `erfc`, `log_ndtr`, `ndtri` and the composites differentiate
  everywhere. `igamma`, `igammac` and `betainc` differentiate with respect to
  x only: their derivatives in the shape parameters have no closed form, so
  asking for one raises `Mx.Error` (wrap the parameter in
  `Mx.stop_gradient/1` when it needs none). `trigamma` has no gradient yet
  (it would need ψ″).
  """

  alias Mx.{Array, NIF, Type}

  @log_sqrt_2pi 0.9189385332046727

  @doc """
  The n-th derivative of the digamma function ψ: `n = 0` is `Mx.digamma/1`,
  `n = 1` is `Mx.trigamma/1` (the only orders supported so far).

      iex> Mx.polygamma(1, Mx.tensor([1.0, 0.5], type: :f64)) |> Mx.to_list()
      [1.6449340668482264, 4.93480220054468]
  """
  @spec polygamma(non_neg_integer(), Mx.tensor_like()) :: Mx.t()
  def polygamma(0, x), do: Mx.digamma(x)
  def polygamma(1, x), do: Mx.trigamma(x)

  def polygamma(n, _x) do
    raise ArgumentError,
          "[polygamma] supports n = 0 (digamma) and n = 1 (trigamma), got #{inspect(n)}; " <>
            "higher orders have no kernel yet"
  end

  @doc """
  log |B(a, b)| = lgamma(a) + lgamma(b) - lgamma(a + b), elementwise.

  Past 10 the difference is formed from Stirling's series instead, so large
  arguments do not cancel: `lgamma(1e10)` is 2.2e11 while `betaln(1e10, 1)`
  is -23. Always computed in `f64` and rounded to the inputs' float type.
  Near the zeros of log B (B(a, b) = 1) the error is a few ulp of the terms
  lgamma(a), lgamma(b), not of the result.

      iex> Mx.betaln(Mx.tensor([1.0, 1.0e10], type: :f64), 1.0) |> Mx.to_list()
      [0.0, -23.025850929940454]
  """
  @spec betaln(Mx.tensor_like(), Mx.tensor_like()) :: Mx.t()
  def betaln(a, b) do
    [a, b] = floats!("betaln", [a, b])
    type = Mx.type(a)
    a = Mx.as_type(a, :f64)
    b = Mx.as_type(b, :f64)
    p = Mx.min(a, b)
    q = Mx.max(a, b)
    s = Mx.add(p, q)
    small = Mx.subtract(Mx.add(Mx.lgamma(p), Mx.lgamma(q)), Mx.lgamma(s))

    # q >= 10: lgamma(q) - lgamma(p + q) = (q - 1/2) log(q/s) - p log s + p + corr(q) - corr(s).
    qm = Mx.max(q, 10.0)
    sm = Mx.add(p, qm)
    rm = Mx.log1p(Mx.negate(Mx.divide(p, sm)))

    mixed =
      Mx.lgamma(p)
      |> Mx.add(Mx.subtract(stirling_corr(qm), stirling_corr(sm)))
      |> Mx.add(Mx.subtract(p, Mx.multiply(p, Mx.log(sm))))
      |> Mx.add(Mx.multiply(Mx.subtract(qm, 0.5), rm))

    # p >= 10 too: lgamma(p) in Stirling's form as well.
    pl = Mx.max(p, 10.0)
    ql = Mx.max(q, 10.0)
    sl = Mx.add(pl, ql)
    rl = Mx.log1p(Mx.negate(Mx.divide(pl, sl)))

    large =
      Mx.subtract(@log_sqrt_2pi, Mx.multiply(Mx.log(ql), 0.5))
      |> Mx.add(Mx.multiply(Mx.subtract(pl, 0.5), Mx.log(Mx.divide(pl, sl))))
      |> Mx.add(Mx.multiply(ql, rl))
      |> Mx.add(Mx.subtract(Mx.add(stirling_corr(pl), stirling_corr(ql)), stirling_corr(sl)))

    Mx.select(Mx.less(q, 10.0), small, Mx.select(Mx.less(p, 10.0), mixed, large))
    |> Mx.as_type(type)
  end

  # lgamma(x) - ((x - 1/2) log x - x + log(2 pi)/2) for x >= 10: B_2k / (2k (2k-1) x^(2k-1)).
  @stirling [
    1 / 12,
    -1 / 360,
    1 / 1260,
    -1 / 1680,
    1 / 1188,
    -691 / 360_360,
    1 / 156,
    -3617 / 122_400
  ]
  defp stirling_corr(x) do
    t = Mx.reciprocal(Mx.square(x))

    @stirling
    |> Enum.reverse()
    |> Enum.reduce(fn c, acc -> Mx.add(Mx.multiply(acc, t), c) end)
    |> Mx.divide(x)
  end

  @doc """
  The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b),
  the CDF of a Beta(a, b) variable at x; a, b and x broadcast together.

  A continued fraction (with the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) past
  the mean, and a power series where that would cancel for b < 1), with the
  prefactor x^a (1-x)^b / B(a, b) in Stirling's form for a, b >= 10. Follows
  scipy's special values: NaN outside 0 <= x <= 1 and for a or b <= 0 or
  infinite. Differentiable in x only (see the module doc).

      iex> Mx.betainc(2.0, 3.0, Mx.tensor([0.0, 0.5, 1.0], type: :f64)) |> Mx.to_list()
      [0.0, 0.6874999999999998, 1.0]
  """
  @spec betainc(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) :: Mx.t()
  def betainc(a, b, x) do
    [a, b, x] = floats!("betainc", [a, b, x])
    NIF.betainc(a.ref, b.ref, x.ref) |> Array.wrap()
  end

  @doc """
  log(1 - e^-|x|), accurate for every x: `log(-expm1(-|x|))` up to |x| = log 2
  and `log1p(-exp(-|x|))` past it (Mächler, "Accurately computing
  log(1 - exp(-|a|))", 2012). -inf at 0.

      iex> Mx.log1mexp(Mx.tensor([1.0e-20, 0.6931471805599453, 50.0], type: :f64)) |> Mx.to_list()
      [-46.051701859880914, -0.6931471805599453, -1.9287498479639178e-22]
  """
  @spec log1mexp(Mx.tensor_like()) :: Mx.t()
  def log1mexp(x) do
    [x] = floats!("log1mexp", [x])
    a = Mx.abs(x)
    ln2 = :math.log(2)

    # Each branch sees its argument clamped to its own side, so the other stays finite (and so do gradients).
    near = a |> Mx.min(ln2) |> Mx.negate() |> Mx.expm1() |> Mx.negate() |> Mx.log()
    far = a |> Mx.max(ln2) |> Mx.negate() |> Mx.exp() |> Mx.negate() |> Mx.log1p()
    Mx.select(Mx.less_equal(a, ln2), near, far)
  end

  @doc """
  x · log(y), and 0 where x == 0 (unless y is NaN), as scipy's `xlogy`: the
  term of a log-density whose count may be zero. Where x == 0 the gradient
  with respect to x is taken as 0.

      iex> Mx.xlogy(Mx.tensor([0.0, 2.0]), Mx.tensor([0.0, 1.0])) |> Mx.to_list()
      [0.0, 0.0]
  """
  @spec xlogy(Mx.tensor_like(), Mx.tensor_like()) :: Mx.t()
  def xlogy(x, y), do: x_log(:log, 1.0, x, y)

  @doc """
  x · log(1 + y), and 0 where x == 0 (unless y is NaN), as scipy's `xlog1py`.
  Where x == 0 the gradient with respect to x is taken as 0.

      iex> Mx.xlog1py(Mx.tensor([0.0, 2.0]), Mx.tensor([-1.0, 0.0])) |> Mx.to_list()
      [0.0, 0.0]
  """
  @spec xlog1py(Mx.tensor_like(), Mx.tensor_like()) :: Mx.t()
  def xlog1py(x, y), do: x_log(:log1p, 0.0, x, y)

  # Where x == 0, y is replaced by a point where the log is 0, so neither the value nor
  # the gradient sees log(0) = -inf times 0.
  defp x_log(log, neutral, x, y) do
    [x, y] = floats!(Atom.to_string(if log == :log, do: :xlogy, else: :xlog1py), [x, y])
    zero = Mx.logical_and(Mx.equal(x, 0.0), Mx.logical_not(Mx.is_nan(y)))
    safe = Mx.select(zero, neutral, y)
    Mx.select(zero, 0.0, Mx.multiply(x, apply(Mx, log, [safe])))
  end

  # Arrays of one float type: the promoted type of the array arguments (integers -> f32);
  # numbers take it, as Mx's binary ops treat them (weakly typed).
  defp floats!(op, args) do
    types = for %Array{type: t} <- args, do: t

    Enum.each(types, fn t ->
      if Type.complex?(t) do
        raise ArgumentError,
              "[#{op}] is defined for real inputs only, got #{t}; take Mx.real/1 first"
      end
    end)

    type =
      case types do
        [] -> :f32
        ts -> ts |> Enum.reduce(&Type.merge/2) |> then(&if(Type.float?(&1), do: &1, else: :f32))
      end

    Enum.map(args, fn
      %Array{type: ^type} = a -> a
      %Array{} = a -> Mx.as_type(a, type)
      n when is_number(n) or n in [:nan, :infinity, :neg_infinity] -> Mx.tensor(n, type: type)
      other -> raise ArgumentError, "[#{op}] expects arrays or numbers, got #{inspect(other)}"
    end)
  end
end
