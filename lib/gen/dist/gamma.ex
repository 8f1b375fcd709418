defmodule Gen.Dist.Gamma do
  @moduledoc """
  The gamma distribution with `shape > 0` and `rate > 0` (`Gen.Dist.gamma/2`;
  scipy's `gamma(a = shape, scale = 1 / rate)`), on `x >= 0`:

      log p(x) = shape · log rate + (shape - 1) log x - rate · x - lgamma(shape)

  (`xlogy` makes `x = 0` with `shape = 1` give `log rate`). Not
  reparameterized: draws come from Marsaglia and Tsang's rejection sampler.

      iex> Gen.Dist.logpdf(Gen.Dist.gamma(2.0, 3.0), Mx.tensor([1.0, -1.0])) |> Mx.to_list()
      [-0.8027754226637804, :neg_infinity]
  """

  defstruct [:shape, :rate]
  @type t :: %__MODULE__{shape: Mx.t(), rate: Mx.t()}

  @doc "A gamma distribution; numbers must be positive and finite."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(shape, rate) do
    pos = {&(&1 > 0), "positive"}

    %__MODULE__{
      shape: Gen.Dist.param!(shape, "gamma", "shape", pos),
      rate: Gen.Dist.param!(rate, "gamma", "rate", pos)
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

      Gen.Dist.restrict(lp, inside, Mx.logical_and(Mx.greater(k, 0.0), Mx.greater(r, 0.0)))
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
