defmodule Gen.Dist.Beta do
  @moduledoc """
  The beta distribution on `[0, 1]` with shapes `alpha, beta > 0`
  (`Gen.Dist.beta/2`):

      log p(x) = (alpha - 1) log x + (beta - 1) log(1 - x) - log B(alpha, beta)

  formed with `xlogy`/`xlog1py` so that `x = 0` or `1` gives 0 · log 0 = 0
  where the exponent is 0 (and ±Inf otherwise, as scipy), and with
  `Mx.betaln` so large shapes do not cancel. Not reparameterized: draws come
  from gamma rejection samplers (`Mx.Random.beta/4`). Invalid parameters follow
  `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`alpha <= 0` or `beta <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.beta(2.0, 3.0), Mx.tensor([0.5, 1.5])) |> Mx.to_list()
      [0.4054651081081646, :neg_infinity]
  """

  defstruct [:alpha, :beta]
  @type t :: %__MODULE__{alpha: Mx.t(), beta: Mx.t()}

  @doc "A beta distribution with `alpha > 0` and `beta > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(alpha, beta) do
    %__MODULE__{
      alpha: Gen.Dist.param!(alpha, "beta", "alpha", :positive),
      beta: Gen.Dist.param!(beta, "beta", "beta", :positive)
    }
  end

  defimpl Gen.Distribution do
    def logpdf(%{alpha: a, beta: b}, x) do
      x = Gen.Dist.value!(x, "beta")
      inside = Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less_equal(x, 1.0))
      # Outside [0, 1] the logs would be NaN; score a safe point there and mask it.
      xs = Mx.select(inside, x, 0.5)

      lp =
        Mx.xlogy(Mx.subtract(a, 1.0), xs)
        |> Mx.add(Mx.xlog1py(Mx.subtract(b, 1.0), Mx.negate(xs)))
        |> Mx.subtract(Mx.betaln(a, b))

      invalid = Mx.logical_or(Gen.Dist.invalid(a, :positive), Gen.Dist.invalid(b, :positive))
      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: false
    def support(_d), do: :unit_interval

    defp draw(%{alpha: a, beta: b}, key, lead) do
      {type, shape} = Gen.Dist.batch("beta", [a, b])

      Mx.Random.beta(key, Mx.stop_gradient(a), Mx.stop_gradient(b),
        shape: List.to_tuple(lead ++ Tuple.to_list(shape)),
        type: type
      )
    end
  end
end
