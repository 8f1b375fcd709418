defmodule Gen.Dist.PiecewiseUniform do
  @moduledoc """
  Gen.jl's `piecewise_uniform`: bin `i` is `[bounds[i], bounds[i+1])` with
  probability `probs[i] / Σ probs`, uniform within the bin (the last bin
  includes its upper bound). `bounds` is `{m + 1}` increasing, `probs` is
  `{m}`. Density `p_i / width_i`, `-Inf` outside `[bounds[0], bounds[m]]`.
  Draws pick a bin (categorical) then a uniform point in it; not reparameterized.
  Unlike Gen.jl's, `probs` are normalized here. Invalid parameters follow
  `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (bounds not strictly
  increasing, a negative weight or weights summing to 0).

      iex> d = Gen.Dist.piecewise_uniform([0.0, 1.0, 3.0], [0.5, 0.5])
      iex> Gen.Dist.logpdf(d, [0.5, 2.0, 4.0]) |> Mx.to_list()
      [-0.6931471805599453, -1.3862943611198906, :neg_infinity]
  """

  defstruct [:bounds, :probs]
  @type t :: %__MODULE__{bounds: Mx.t(), probs: Mx.t()}

  @doc "A piecewise-uniform distribution on the bins between `bounds` (`{m + 1}`) with weights `probs` (`{m}`)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(bounds_given, probs_given) do
    bounds = Gen.Dist.param!(bounds_given, "piecewise_uniform", "bounds")
    probs = Gen.Dist.param!(probs_given, "piecewise_uniform", "probs")

    case {Mx.shape(bounds), Mx.shape(probs)} do
      {{m1}, {m}} when m1 == m + 1 and m >= 1 ->
        if Gen.Dist.known?([bounds_given, probs_given]) do
          Gen.Dist.known!(
            invalid(bounds, probs),
            [bounds, probs],
            "piecewise_uniform",
            "bounds must increase strictly and probs be non-negative, not all 0"
          )
        end

        %__MODULE__{bounds: bounds, probs: probs}

      _ ->
        raise ArgumentError,
              "Gen.Dist.piecewise_uniform: expects bounds {m + 1} and probs {m}, got #{Mx.describe(bounds)} and #{Mx.describe(probs)}"
    end
  end

  @doc false
  # Bounds that do not increase strictly, a negative weight, or no weight at all.
  @spec invalid(Mx.t(), Mx.t()) :: Mx.t()
  def invalid(bounds, probs) do
    {m} = Mx.shape(probs)
    width = Mx.subtract(Mx.slice(bounds, [1], [m]), Mx.slice(bounds, [0], [m]))

    Mx.any(Mx.less_equal(width, 0.0))
    |> Mx.logical_or(Mx.any(Mx.less(probs, 0.0)))
    |> Mx.logical_or(Mx.less_equal(Mx.sum(probs), 0.0))
  end

  defimpl Gen.Distribution do
    alias Gen.Dist.PiecewiseUniform, as: PU

    def sample(d, key), do: draw(d, key, {})
    def sample_n(d, key, n), do: draw(d, key, {n})

    defp draw(%{bounds: b, probs: p}, key, shape) do
      {m} = Mx.shape(p)
      keys = Mx.Random.split(key)
      bin = Mx.Random.categorical(keys[0], Mx.log(p), shape: shape)
      lo = Mx.take(Mx.slice(b, [0], [m]), bin)
      hi = Mx.take(Mx.slice(b, [1], [m]), bin)
      Mx.Random.uniform(keys[1], lo, hi, shape: shape, type: Mx.type(b))
    end

    def logpdf(%{bounds: b, probs: p}, value) do
      {m} = Mx.shape(p)
      x = value |> Gen.Dist.value!("piecewise_uniform") |> Mx.as_type(Mx.type(b))
      lo = Mx.slice(b, [0], [m])
      hi = Mx.slice(b, [1], [m])
      dens = p |> Mx.divide(Mx.sum(p)) |> Mx.log() |> Mx.subtract(Mx.log(Mx.subtract(hi, lo)))
      xe = Mx.new_axis(x, -1)
      last = Mx.equal(Mx.iota({m}), m - 1)
      upper = Mx.logical_or(Mx.less(xe, hi), Mx.logical_and(last, Mx.less_equal(xe, hi)))
      hit = Mx.logical_and(Mx.greater_equal(xe, lo), upper)
      lp = Mx.sum(Mx.select(hit, dens, 0.0), axes: [-1])
      Gen.Dist.restrict(lp, inside: Mx.any(hit, axes: [-1]), invalid: PU.invalid(b, p))
    end

    def reparameterized?(_), do: false

    def support(%{bounds: b}) do
      {m1} = Mx.shape(b)
      {:interval, Mx.squeeze(Mx.slice(b, [0], [1])), Mx.squeeze(Mx.slice(b, [m1 - 1], [1]))}
    end
  end
end
