defmodule Gen.Dist.StudentT do
  @moduledoc """
  Student's t distribution with `df > 0` degrees of freedom, location `loc`
  and scale `scale > 0` (`Gen.Dist.student_t/3`; scipy's `t(df, loc, scale)`).
  With `t = (x - loc) / scale`:

      log p(x) = -log B(df/2, 1/2) - log(df)/2 - log scale - (df + 1)/2 · log(1 + t²/df)

  `lgamma((df+1)/2) - lgamma(df/2)` is taken as `log Γ(1/2) - betaln(df/2, 1/2)`,
  which does not cancel for large `df`, and `log(1 + z²)` as
  `2 log z + log1p(z⁻²)` past `z = 1`, so far tails do not overflow. Not
  reparameterized (the chi-square draw depends on `df` through a rejection
  sampler): a draw is `loc + scale · Z / sqrt(V / df)`, `V ~ χ²(df)`. Invalid
  parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise
  (`df <= 0` or `scale <= 0`).

      iex> Gen.Dist.logpdf(Gen.Dist.student_t(3.0, 1.0, 2.0), 2.0) |> Mx.to_number()
      -1.854121445530528
  """

  defstruct [:df, :loc, :scale]
  @type t :: %__MODULE__{df: Mx.t(), loc: Mx.t(), scale: Mx.t()}

  @doc "A Student's t distribution with `df > 0`, `loc` finite and `scale > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(df, loc, scale) do
    %__MODULE__{
      df: Gen.Dist.param!(df, "student_t", "df", :positive),
      loc: Gen.Dist.param!(loc, "student_t", "loc", :finite),
      scale: Gen.Dist.param!(scale, "student_t", "scale", :positive)
    }
  end

  @doc false
  # log(1 + z²) for z >= 0 without overflow; each branch sees z clamped to its side,
  # so the unused one stays finite (and so do gradients).
  def log1p_square(z) do
    small = z |> Mx.min(1.0) |> Mx.square() |> Mx.log1p()
    zl = Mx.max(z, 1.0)
    large = Mx.add(Mx.multiply(Mx.log(zl), 2.0), Mx.log1p(Mx.reciprocal(Mx.square(zl))))
    Mx.select(Mx.less_equal(z, 1.0), small, large)
  end

  defimpl Gen.Distribution do
    def logpdf(%{df: df, loc: loc, scale: s}, x) do
      x = Gen.Dist.value!(x, "student_t")
      z = Mx.divide(Mx.abs(Mx.subtract(x, loc)), Mx.multiply(s, Mx.sqrt(df)))

      lp =
        Mx.negate(Mx.betaln(Mx.multiply(df, 0.5), 0.5))
        |> Mx.subtract(Mx.multiply(Mx.log(df), 0.5))
        |> Mx.subtract(Mx.log(s))
        |> Mx.subtract(
          Mx.multiply(Mx.multiply(Mx.add(df, 1.0), 0.5), Gen.Dist.StudentT.log1p_square(z))
        )

      invalid = Mx.logical_or(Gen.Dist.invalid(df, :positive), Gen.Dist.invalid(s, :positive))
      Gen.Dist.restrict(lp, invalid: invalid)
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: false
    def support(_d), do: :real

    defp draw(%{df: df, loc: loc, scale: s}, key, lead) do
      {type, shape} = Gen.Dist.batch("student_t", [df, loc, s])
      shape = List.to_tuple(lead ++ Tuple.to_list(shape))
      keys = Mx.Random.split(key)
      z = Mx.Random.normal(keys[0], shape: shape, type: type)
      # V / df = 2 G / df with G ~ Gamma(df / 2, 1).
      half = Mx.stop_gradient(Mx.multiply(df, 0.5))
      g = Mx.Random.gamma(keys[1], half, shape: shape, type: type)
      Mx.add(loc, Mx.multiply(s, Mx.multiply(z, Mx.rsqrt(Mx.divide(g, half)))))
    end
  end
end
