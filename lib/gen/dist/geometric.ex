defmodule Gen.Dist.Geometric do
  @moduledoc """
  Geometric distribution: the number of failures before the first success
  in Bernoulli(`p`) trials, on `0, 1, 2, ...` (Gen.jl's convention;
  scipy's `geom` counts trials instead and starts at 1). Log-mass
  `k log(1 - p) + log p`. Draws are `:s64`, by inversion:
  `floor(log(v) / log(1 - p))` for `v` uniform in (0, 1]. Invalid parameters
  follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`p` outside (0, 1]).

      iex> d = Gen.Dist.geometric(0.5)
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2, -1])) |> Mx.to_list()
      [-0.6931471805599453, -2.0794415416798357, :neg_infinity]
  """

  defstruct [:p]
  @type t :: %__MODULE__{p: Mx.t()}

  @doc "A geometric distribution with success probability `p` in (0, 1] (checked when constant)."
  @spec new(Mx.tensor_like()) :: t()
  def new(p),
    do: %__MODULE__{p: Gen.Dist.param!(p, "geometric", "p", :positive_probability)}

  defimpl Gen.Distribution do
    def sample(%{p: p}, key), do: draw(p, key, Mx.shape(p))
    def sample_n(%{p: p}, key, n), do: draw(p, key, Tuple.insert_at(Mx.shape(p), 0, n))

    # P(floor(log v / log(1 - p)) >= k) = P(v <= (1 - p)^k) = (1 - p)^k; v = 1 - u is never 0.
    defp draw(p, key, shape) do
      u = Mx.Random.uniform(key, shape: shape, type: :f64)
      q = p |> Mx.as_type(:f64) |> Mx.negate() |> Mx.log1p()
      u |> Mx.negate() |> Mx.log1p() |> Mx.divide(q) |> Mx.floor() |> Mx.as_type(:s64)
    end

    def logpdf(%{p: p}, value) do
      x = value |> Gen.Dist.value!("geometric") |> Mx.as_type(Mx.type(p))
      inside = Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.equal(Mx.floor(x), x))
      k = Mx.select(inside, x, 0.0)
      lp = Mx.add(Mx.xlog1py(k, Mx.negate(p)), Mx.log(p))
      Gen.Dist.restrict(lp, inside: inside, invalid: Gen.Dist.invalid(p, :positive_probability))
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
