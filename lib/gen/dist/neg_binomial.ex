defmodule Gen.Dist.NegBinomial do
  @moduledoc """
  Negative binomial distribution: the number of failures before the `r`-th
  success in Bernoulli(`p`) trials, on `0, 1, 2, ...` (Gen.jl's
  `neg_binom(r, p)`, alias `Gen.Dist.neg_binom/2`, and scipy's `nbinom(r, p)`;
  `r > 0` need not be an integer). Log-mass
  `log Γ(k + r) - log Γ(r) - log k! + r log p + k log(1 - p)`. Draws are
  `:s64`, as a gamma–Poisson mixture: `Poisson(λ)` with
  `λ ~ Gamma(r, scale (1 - p) / p)`. Invalid parameters follow `Gen.Dist`'s
  rule: raise for a constant, `-Inf` otherwise (`r <= 0`, `p` outside (0, 1]).

      iex> d = Gen.Dist.neg_binomial(2.0, 0.5)
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 1, 0.5])) |> Mx.to_list()
      [-1.3862943611198906, -1.3862943611198906, :neg_infinity]
  """

  defstruct [:r, :p]
  @type t :: %__MODULE__{r: Mx.t(), p: Mx.t()}

  @doc "A negative binomial distribution with `r > 0` successes and success probability `p` in (0, 1] (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(r, p) do
    %__MODULE__{
      r: Gen.Dist.param!(r, "neg_binomial", "r", {:positive, "> 0"}),
      p: Gen.Dist.param!(p, "neg_binomial", "p", :positive_probability)
    }
  end

  defimpl Gen.Distribution do
    def sample(d, key), do: draw(d, key, nil)
    def sample_n(d, key, n), do: draw(d, key, n)

    defp draw(%{r: r, p: p}, key, n) do
      {_, batch} = Gen.Dist.batch("neg_binomial", [r, p])
      shape = if n, do: Tuple.insert_at(batch, 0, n), else: batch
      [kg, kp] = key |> Mx.Random.split() |> unstack()
      scale = Mx.divide(Mx.subtract(1.0, p), p) |> Mx.as_type(:f64)
      lambda = Mx.Random.gamma(kg, Mx.as_type(r, :f64), scale, shape: shape, type: :f64)
      Mx.Random.poisson(kp, lambda, shape: shape)
    end

    defp unstack(keys), do: [keys[0], keys[1]]

    def logpdf(%{r: r, p: p}, value) do
      x = value |> Gen.Dist.value!("neg_binomial") |> Mx.as_type(Mx.type(Mx.add(r, p)))
      inside = Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.equal(Mx.floor(x), x))
      k = Mx.select(inside, x, 0.0)

      lp =
        Mx.lgamma(Mx.add(k, r))
        |> Mx.subtract(Mx.lgamma(r))
        |> Mx.subtract(Mx.lgamma(Mx.add(k, 1.0)))
        |> Mx.add(Mx.multiply(r, Mx.log(p)))
        |> Mx.add(Mx.xlog1py(k, Mx.negate(p)))

      invalid =
        Mx.logical_or(Gen.Dist.invalid(r, :positive), Gen.Dist.invalid(p, :positive_probability))

      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
