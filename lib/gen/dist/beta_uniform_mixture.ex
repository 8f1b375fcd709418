defmodule Gen.Dist.BetaUniformMixture do
  @moduledoc """
  Gen.jl's `beta_uniform`: with probability `theta` a Beta(`alpha`, `beta`)
  draw, otherwise a Uniform(0, 1) draw. Density
  `theta · Beta(x; alpha, beta) + (1 - theta)` on [0, 1], `-Inf` outside,
  formed in logs (`logaddexp`). Not reparameterized (the branch is discrete).
  Alias `Gen.Dist.beta_uniform/3` (Gen.jl's name). Invalid parameters follow
  `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`theta` outside [0, 1],
  `alpha <= 0` or `beta <= 0`).

      iex> d = Gen.Dist.beta_uniform_mixture(0.3, 2.0, 5.0)
      iex> Gen.Dist.logpdf(d, [0.1, 1.1]) |> Mx.to_list()
      [0.2550219912119869, :neg_infinity]
  """

  defstruct [:theta, :alpha, :beta]
  @type t :: %__MODULE__{theta: Mx.t(), alpha: Mx.t(), beta: Mx.t()}

  @doc "The mixture with Beta weight `theta` in [0, 1] and Beta shapes `alpha, beta > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(theta, alpha, beta) do
    name = "beta_uniform_mixture"

    %__MODULE__{
      theta: Gen.Dist.param!(theta, name, "theta", :probability),
      alpha: Gen.Dist.param!(alpha, name, "alpha", {:positive, "> 0"}),
      beta: Gen.Dist.param!(beta, name, "beta", {:positive, "> 0"})
    }
  end

  defimpl Gen.Distribution do
    def sample(d, key), do: draw(d, key, nil)
    def sample_n(d, key, n), do: draw(d, key, n)

    defp draw(%{theta: t, alpha: a, beta: b}, key, n) do
      {type, batch} = Gen.Dist.batch("beta_uniform_mixture", [t, a, b])
      shape = if n, do: Tuple.insert_at(batch, 0, n), else: batch
      keys = Mx.Random.split(key, 3)
      pick = Mx.Random.bernoulli(keys[0], Mx.as_type(t, :f64), shape: shape)

      Mx.select(
        pick,
        Mx.Random.beta(keys[1], a, b, shape: shape, type: type),
        Mx.Random.uniform(keys[2], shape: shape, type: type)
      )
    end

    def logpdf(%{theta: t, alpha: a, beta: b}, value) do
      x =
        value
        |> Gen.Dist.value!("beta_uniform_mixture")
        |> Mx.as_type(elem(Gen.Dist.batch("", [t, a, b]), 0))

      inside = Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less_equal(x, 1.0))
      s = Mx.select(inside, x, 0.5)

      beta_lp =
        Mx.xlogy(Mx.subtract(a, 1.0), s)
        |> Mx.add(Mx.xlog1py(Mx.subtract(b, 1.0), Mx.negate(s)))
        |> Mx.subtract(Mx.betaln(a, b))

      lp = Mx.logaddexp(Mx.add(Mx.log(t), beta_lp), Mx.log1p(Mx.negate(t)))

      invalid =
        Gen.Dist.invalid(t, :probability)
        |> Mx.logical_or(Gen.Dist.invalid(a, :positive))
        |> Mx.logical_or(Gen.Dist.invalid(b, :positive))

      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :unit_interval
  end
end
