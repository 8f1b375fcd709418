defmodule Gen.Dist.Exponential do
  @moduledoc """
  The exponential distribution with `rate > 0` (`Gen.Dist.exponential/1`;
  scipy's `expon(scale = 1 / rate)`), on `x >= 0`:
  `log p(x) = log rate - rate · x`. Reparameterized: `E / rate` with `E` a
  unit exponential (`-log u`). Invalid parameters follow `Gen.Dist`'s rule:
  raise for a constant, `-Inf` otherwise (`rate <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.exponential(0.5), 2.0) |> Mx.to_number()
      -1.6931471805599454
  """

  defstruct [:rate]
  @type t :: %__MODULE__{rate: Mx.t()}

  @doc "An exponential distribution with `rate > 0` (checked when constant)."
  @spec new(Mx.tensor_like()) :: t()
  def new(rate),
    do: %__MODULE__{rate: Gen.Dist.param!(rate, "exponential", "rate", :positive)}

  defimpl Gen.Distribution do
    def logpdf(%{rate: r}, x) do
      x = Gen.Dist.value!(x, "exponential")
      inside = Mx.greater_equal(x, 0.0)
      lp = Mx.subtract(Mx.log(r), Mx.multiply(r, Mx.select(inside, x, 0.0)))
      Gen.Dist.restrict(lp, inside: inside, invalid: Gen.Dist.invalid(r, :positive))
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: true
    def support(_d), do: :positive

    defp draw(%{rate: r}, key, lead) do
      {type, shape} = Gen.Dist.batch("exponential", [r])

      Mx.divide(
        Mx.Random.exponential(key, shape: List.to_tuple(lead ++ Tuple.to_list(shape)), type: type),
        r
      )
    end
  end
end
