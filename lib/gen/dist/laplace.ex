defmodule Gen.Dist.Laplace do
  @moduledoc """
  The Laplace distribution with location `loc` and scale `scale > 0`
  (`Gen.Dist.laplace/2`): `log p(x) = -log(2 scale) - |x - loc| / scale`.
  Reparameterized: `loc + scale · L` with `L` a unit Laplace draw. Invalid
  parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise
  (`scale <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.laplace(1.0, 2.0), 5.0) |> Mx.to_number()
      -3.386294361119891
  """

  defstruct [:loc, :scale]
  @type t :: %__MODULE__{loc: Mx.t(), scale: Mx.t()}

  @doc "A Laplace distribution with `loc` finite and `scale > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(loc, scale) do
    %__MODULE__{
      loc: Gen.Dist.param!(loc, "laplace", "loc", :finite),
      scale: Gen.Dist.param!(scale, "laplace", "scale", :positive)
    }
  end

  defimpl Gen.Distribution do
    @log2 0.6931471805599453

    def logpdf(%{loc: loc, scale: s}, x) do
      x = Gen.Dist.value!(x, "laplace")
      lp = Mx.negate(Mx.add(Mx.add(Mx.log(s), @log2), Mx.divide(Mx.abs(Mx.subtract(x, loc)), s)))
      Gen.Dist.restrict(lp, invalid: Gen.Dist.invalid(s, :positive))
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: true
    def support(_d), do: :real

    defp draw(%{loc: loc, scale: s}, key, lead) do
      {type, shape} = Gen.Dist.batch("laplace", [loc, s])
      l = Mx.Random.laplace(key, shape: List.to_tuple(lead ++ Tuple.to_list(shape)), type: type)
      Mx.add(loc, Mx.multiply(s, l))
    end
  end
end
