defmodule Gen.Dist.InvGamma do
  @moduledoc """
  The inverse gamma distribution with `shape > 0` and `scale > 0`
  (`Gen.Dist.inv_gamma/2`; scipy's `invgamma(a = shape, scale = scale)`):
  `1 / X` for `X ~ Gamma(shape, rate = scale)`, on `x > 0`:

      log p(x) = shape · log scale - lgamma(shape) - (shape + 1) log x - scale / x

  Not reparameterized (a gamma rejection sampler underneath). Invalid parameters
  follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`shape <= 0` or
  `scale <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.inv_gamma(3.0, 2.0), Mx.tensor([1.0, 0.0])) |> Mx.to_list()
      [-0.6137056388801096, :neg_infinity]
  """

  defstruct [:shape, :scale]
  @type t :: %__MODULE__{shape: Mx.t(), scale: Mx.t()}

  @doc "An inverse gamma distribution with `shape > 0` and `scale > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(shape, scale) do
    %__MODULE__{
      shape: Gen.Dist.param!(shape, "inv_gamma", "shape", :positive),
      scale: Gen.Dist.param!(scale, "inv_gamma", "scale", :positive)
    }
  end

  defimpl Gen.Distribution do
    def logpdf(%{shape: k, scale: s}, x) do
      x = Gen.Dist.value!(x, "inv_gamma")
      # At x = 0 the density's limit is 0 (e^(-s/x) wins), but the formula is inf - inf.
      inside = Mx.greater(x, 0.0)
      xs = Mx.select(inside, x, 1.0)

      lp =
        Mx.multiply(k, Mx.log(s))
        |> Mx.subtract(Mx.lgamma(k))
        |> Mx.subtract(Mx.multiply(Mx.add(k, 1.0), Mx.log(xs)))
        |> Mx.subtract(Mx.divide(s, xs))

      invalid = Mx.logical_or(Gen.Dist.invalid(k, :positive), Gen.Dist.invalid(s, :positive))
      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: false
    def support(_d), do: :positive

    defp draw(%{shape: k, scale: s}, key, lead) do
      {type, shape} = Gen.Dist.batch("inv_gamma", [k, s])

      g =
        Mx.Random.gamma(key, Mx.stop_gradient(k),
          shape: List.to_tuple(lead ++ Tuple.to_list(shape)),
          type: type
        )

      Mx.divide(s, g)
    end
  end
end
