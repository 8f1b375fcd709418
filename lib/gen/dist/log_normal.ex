defmodule Gen.Dist.LogNormal do
  @moduledoc """
  The log-normal distribution: `exp(Y)` for `Y ~ Normal(mu, sigma)`
  (`Gen.Dist.log_normal/2`; scipy's `lognorm(s = sigma, scale = exp(mu))`),
  on `x > 0`: `log p(x) = log N(log x; mu, sigma) - log x`. Reparameterized:
  `exp(mu + sigma · z)`. Invalid parameters follow `Gen.Dist`'s rule: raise
  for a constant, `-Inf` otherwise (`sigma <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.log_normal(0.0, 1.0), Mx.tensor([1.0, 0.0])) |> Mx.to_list()
      [-0.9189385332046728, :neg_infinity]
  """

  defstruct [:mu, :sigma]
  @type t :: %__MODULE__{mu: Mx.t(), sigma: Mx.t()}

  @doc "A log-normal distribution with `mu` finite and `sigma > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(mu, sigma) do
    %__MODULE__{
      mu: Gen.Dist.param!(mu, "log_normal", "mu", :finite),
      sigma: Gen.Dist.param!(sigma, "log_normal", "sigma", :positive)
    }
  end

  defimpl Gen.Distribution do
    def logpdf(%{mu: mu, sigma: sigma}, x) do
      x = Gen.Dist.value!(x, "log_normal")
      # At x = 0 the formula is +inf - inf; the density's limit is 0.
      inside = Mx.greater(x, 0.0)
      lx = Mx.log(Mx.select(inside, x, 1.0))
      lp = Mx.subtract(Gen.Dist.Normal.logpdf(lx, mu, sigma), lx)
      Gen.Dist.restrict(lp, inside: inside)
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: true
    def support(_d), do: :positive

    defp draw(%{mu: mu, sigma: sigma}, key, lead) do
      {type, shape} = Gen.Dist.batch("log_normal", [mu, sigma])

      Mx.exp(
        Gen.Dist.Normal.draw(mu, sigma, key, List.to_tuple(lead ++ Tuple.to_list(shape)), type)
      )
    end
  end
end
