defmodule Gen.Dist.Cauchy do
  @moduledoc """
  The Cauchy distribution with location `loc` and scale `scale > 0`
  (`Gen.Dist.cauchy/2`): `log p(x) = -log(π scale) - log(1 + ((x - loc)/scale)²)`,
  the last term formed so far tails do not overflow. Reparameterized:
  `loc + scale · tan(π(u - 1/2))`. Invalid parameters follow `Gen.Dist`'s
  rule: raise for a constant, `-Inf` otherwise (`scale <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.cauchy(0.0, 1.0), Mx.tensor([0.0, 1.0e200], type: :f64)) |> Mx.to_list()
      [-1.1447298858494002, -922.1787670834677]
  """

  defstruct [:loc, :scale]
  @type t :: %__MODULE__{loc: Mx.t(), scale: Mx.t()}

  @log_pi 1.1447298858494002

  @doc "A Cauchy distribution with `loc` finite and `scale > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(loc, scale) do
    %__MODULE__{
      loc: Gen.Dist.param!(loc, "cauchy", "loc", :finite),
      scale: Gen.Dist.param!(scale, "cauchy", "scale", :positive)
    }
  end

  @doc false
  def log_pi, do: @log_pi

  defimpl Gen.Distribution do
    def logpdf(%{loc: loc, scale: s}, x) do
      x = Gen.Dist.value!(x, "cauchy")
      z = Mx.divide(Mx.abs(Mx.subtract(x, loc)), s)

      lp =
        Mx.negate(
          Mx.add(Mx.add(Mx.log(s), Gen.Dist.Cauchy.log_pi()), Gen.Dist.StudentT.log1p_square(z))
        )

      Gen.Dist.restrict(lp, invalid: Gen.Dist.invalid(s, :positive))
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: true
    def support(_d), do: :real

    defp draw(%{loc: loc, scale: s}, key, lead) do
      {type, shape} = Gen.Dist.batch("cauchy", [loc, s])
      c = Mx.Random.cauchy(key, shape: List.to_tuple(lead ++ Tuple.to_list(shape)), type: type)
      Mx.add(loc, Mx.multiply(s, c))
    end
  end
end
