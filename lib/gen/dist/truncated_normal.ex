defmodule Gen.Dist.TruncatedNormal do
  @moduledoc """
  A normal distribution with mean `mu` and standard deviation `sigma > 0`
  restricted to `[lo, hi]`, `lo < hi` (either may be infinite)
  (`Gen.Dist.truncated_normal/4`; scipy's `truncnorm((lo-mu)/sigma,
  (hi-mu)/sigma, mu, sigma)`):

      log p(x) = log N(x; mu, sigma) - log(Φ(b) - Φ(a)),  a = (lo - mu)/sigma, b = (hi - mu)/sigma

  The mass `Φ(b) - Φ(a)` is formed in log space from `log_ndtr`, on the side
  of the mean that keeps it from cancelling (`Φ(-a) - Φ(-b)` when `a > 0`),
  so intervals far in a tail score exactly. Standardized bounds beyond
  ±1e100 count as infinite (keeps gradients finite). Not reparameterized
  (draws invert the CDF at the interval's bounds in the engine). Invalid
  parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise
  (`sigma <= 0` or `lo >= hi`).

      iex> Gen.Dist.logpdf(Gen.Dist.truncated_normal(0.0, 1.0, 0.0, :infinity), Mx.tensor([1.0, -1.0])) |> Mx.to_list()
      [-0.7257913526447274, :neg_infinity]
  """

  defstruct [:mu, :sigma, :lo, :hi]
  @type t :: %__MODULE__{mu: Mx.t(), sigma: Mx.t(), lo: Mx.t(), hi: Mx.t()}

  @big 1.0e100

  @doc """
  A truncated normal with `mu` finite, `sigma > 0` and `lo < hi` (checked
  when constant); give infinite bounds as `:neg_infinity` and `:infinity`.
  """
  @spec new(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(mu, sigma, lo, hi) do
    unless below?(lo, hi) do
      raise ArgumentError,
            "Gen.Dist.truncated_normal: lo must be below hi, got lo = #{inspect(lo)}, hi = #{inspect(hi)}"
    end

    d = %__MODULE__{
      mu: Gen.Dist.param!(mu, "truncated_normal", "mu", :finite),
      sigma: Gen.Dist.param!(sigma, "truncated_normal", "sigma", :positive),
      lo: Gen.Dist.param!(lo, "truncated_normal", "lo"),
      hi: Gen.Dist.param!(hi, "truncated_normal", "hi")
    }

    if Gen.Dist.known?([lo, hi]),
      do:
        Gen.Dist.known!(
          Mx.any(Mx.greater_equal(d.lo, d.hi)),
          [d.lo, d.hi],
          "truncated_normal",
          "lo must be below hi"
        )

    d
  end

  # Bounds given as numbers or infinities are checked; arrays are not inspected.
  defp below?(lo, hi) when :nan in [lo, hi] or lo == :infinity or hi == :neg_infinity, do: false
  defp below?(:neg_infinity, _hi), do: true
  defp below?(lo, :infinity), do: lo != :infinity
  defp below?(lo, hi) when is_number(lo) and is_number(hi), do: lo < hi
  defp below?(_lo, _hi), do: true

  @doc false
  # log(Φ(b) - Φ(a)) for a < b, from the side of the mean where it does not cancel.
  def log_mass(a, b) do
    upper = Mx.greater(a, 0.0)
    {na, nb} = {Mx.negate(a), Mx.negate(b)}
    # Upper side: log(Φ(-a) - Φ(-b)); lower side: log(Φ(b) - Φ(a)).
    hi_term = Mx.select(upper, Mx.log_ndtr(na), Mx.log_ndtr(b))
    lo_term = Mx.select(upper, Mx.log_ndtr(nb), Mx.log_ndtr(a))
    Mx.add(hi_term, Mx.log1mexp(Mx.subtract(lo_term, hi_term)))
  end

  @doc false
  def standardize(bound, mu, sigma) do
    bound |> Mx.clip(-@big, @big) |> Mx.subtract(mu) |> Mx.divide(sigma) |> Mx.clip(-@big, @big)
  end

  defimpl Gen.Distribution do
    alias Gen.Dist.TruncatedNormal, as: T

    def logpdf(%{mu: mu, sigma: sigma, lo: lo, hi: hi}, x) do
      x = Gen.Dist.value!(x, "truncated_normal")
      inside = Mx.logical_and(Mx.greater_equal(x, lo), Mx.less_equal(x, hi))
      xs = Mx.select(inside, x, mu)
      a = T.standardize(lo, mu, sigma)
      b = T.standardize(hi, mu, sigma)
      lp = Mx.subtract(Gen.Dist.Normal.logpdf(xs, mu, sigma), T.log_mass(a, b))
      invalid = Mx.logical_or(Gen.Dist.invalid(sigma, :positive), Mx.greater_equal(lo, hi))
      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: false
    def support(%{lo: lo, hi: hi}), do: {:interval, lo, hi}

    defp draw(%{mu: mu, sigma: sigma, lo: lo, hi: hi}, key, lead) do
      {type, shape} = Gen.Dist.batch("truncated_normal", [mu, sigma, lo, hi])
      shape = List.to_tuple(lead ++ Tuple.to_list(shape))
      a = Mx.stop_gradient(Mx.divide(Mx.subtract(lo, mu), sigma))
      b = Mx.stop_gradient(Mx.divide(Mx.subtract(hi, mu), sigma))
      t = Mx.Random.truncated_normal(key, a, b, shape: shape, type: type)
      # Rounding in mu + sigma t could step just outside [lo, hi]; clamp back.
      mu |> Mx.add(Mx.multiply(sigma, t)) |> Mx.min(hi) |> Mx.max(lo)
    end
  end
end
