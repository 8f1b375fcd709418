defmodule Gen.Dist.Normal do
  @moduledoc """
  The normal distribution with mean `mu` and standard deviation `sigma > 0`
  (`Gen.Dist.normal/2`, alias `Gen.Dist.gaussian/2`):

      log p(x) = -((x - mu) / sigma)² / 2 - log sigma - log(2π) / 2

  Reparameterized: a draw is `mu + sigma * z` with `z` standard normal.
  Invalid parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`sigma <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.gaussian(1.0, 2.0), 3.0) |> Mx.to_number()
      -2.112085713764618
  """

  defstruct [:mu, :sigma]
  @type t :: %__MODULE__{mu: Mx.t(), sigma: Mx.t()}

  @log_sqrt_2pi 0.9189385332046728

  @doc "A normal distribution with `mu` finite and `sigma > 0` (checked when constant, see `Gen.Dist`)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(mu, sigma) do
    %__MODULE__{
      mu: Gen.Dist.param!(mu, "normal", "mu", :finite),
      sigma: Gen.Dist.param!(sigma, "normal", "sigma", :positive)
    }
  end

  @doc false
  # The log-density of a normal, shared with the truncated, log- and broadcasted normals.
  def logpdf(x, mu, sigma) do
    z = Mx.divide(Mx.subtract(x, mu), sigma)
    lp = Mx.negate(Mx.add(Mx.multiply(Mx.square(z), 0.5), Mx.add(Mx.log(sigma), @log_sqrt_2pi)))
    Gen.Dist.restrict(lp, invalid: Gen.Dist.invalid(sigma, :positive))
  end

  @doc false
  def draw(mu, sigma, key, shape, type),
    do: Mx.add(mu, Mx.multiply(sigma, Mx.Random.normal(key, shape: shape, type: type)))

  defimpl Gen.Distribution do
    def logpdf(%{mu: mu, sigma: sigma}, x),
      do: Gen.Dist.Normal.logpdf(Gen.Dist.value!(x, "normal"), mu, sigma)

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: true
    def support(_d), do: :real

    defp draw(%{mu: mu, sigma: sigma}, key, lead) do
      {type, shape} = Gen.Dist.batch("normal", [mu, sigma])
      Gen.Dist.Normal.draw(mu, sigma, key, List.to_tuple(lead ++ Tuple.to_list(shape)), type)
    end
  end
end
