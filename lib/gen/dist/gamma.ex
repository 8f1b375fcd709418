defmodule Gen.Dist.Gamma do
  @moduledoc """
  The gamma distribution with `shape > 0` and `rate > 0`, or `scale = 1 / rate`
  (`Gen.Dist.gamma(shape, rate: r)` or `Gen.Dist.gamma(shape, scale: s)`,
  the second parameter by name because Gen.jl's `gamma(shape, scale)` and
  Stan's `gamma(alpha, beta)` read it oppositely; scipy's
  `gamma(a = shape, scale = 1 / rate)`), on `x >= 0`:

      log p(x) = shape · log rate + (shape - 1) log x - rate · x - lgamma(shape)

  (`xlogy` makes `x = 0` with `shape = 1` give `log rate`). Not
  reparameterized: draws come from Marsaglia and Tsang's rejection sampler.
  Invalid parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`shape <= 0` or `rate <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.gamma(2.0, rate: 3.0), Mx.tensor([1.0, -1.0])) |> Mx.to_list()
      [-0.8027754226637804, :neg_infinity]
  """

  defstruct [:shape, :rate]
  @type t :: %__MODULE__{shape: Mx.t(), rate: Mx.t()}

  @doc "A gamma distribution with `shape > 0` and `rate > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(shape, rate) do
    %__MODULE__{
      shape: Gen.Dist.param!(shape, "gamma", "shape", :positive),
      rate: Gen.Dist.param!(rate, "gamma", "rate", :positive)
    }
  end

  @doc "A gamma distribution with `shape > 0` and `scale > 0` (checked when constant)."
  @spec with_scale(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def with_scale(shape, scale) do
    %__MODULE__{
      shape: Gen.Dist.param!(shape, "gamma", "shape", :positive),
      rate: Mx.reciprocal(Gen.Dist.param!(scale, "gamma", "scale", :positive))
    }
  end

  defimpl Gen.Distribution do
    def logpdf(%{shape: k, rate: r}, x) do
      x = Gen.Dist.value!(x, "gamma")
      # At x = inf the density's limit is 0, but the formula is inf - inf.
      inside = Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less(x, :infinity))
      xs = Mx.select(inside, x, 1.0)

      lp =
        Mx.multiply(k, Mx.log(r))
        |> Mx.add(Mx.xlogy(Mx.subtract(k, 1.0), xs))
        |> Mx.subtract(Mx.multiply(r, xs))
        |> Mx.subtract(Mx.lgamma(k))

      invalid = Mx.logical_or(Gen.Dist.invalid(k, :positive), Gen.Dist.invalid(r, :positive))
      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: false
    def support(_d), do: :positive

    defp draw(%{shape: k, rate: r}, key, lead) do
      {type, shape} = Gen.Dist.batch("gamma", [k, r])

      g =
        Mx.Random.gamma(key, Mx.stop_gradient(k),
          shape: List.to_tuple(lead ++ Tuple.to_list(shape)),
          type: type
        )

      Mx.divide(g, r)
    end
  end
end
