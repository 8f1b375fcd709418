defmodule Gen.Dist.DiscreteUniform do
  @moduledoc """
  Uniform distribution on the integers `lo..hi` (both inclusive, as
  Gen.jl's `uniform_discrete`, alias `Gen.Dist.uniform_discrete/2`): log-mass
  `-log(hi - lo + 1)`, `-Inf` elsewhere. Draws are `:s64`
  (`Mx.Random.randint/4`, exactly uniform). Invalid parameters follow
  `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`lo > hi`).

      iex> d = Gen.Dist.discrete_uniform(1, 4)
      iex> Gen.Dist.logpdf(d, Mx.tensor([1, 4, 5, 2.5])) |> Mx.to_list()
      [-1.3862943611198906, -1.3862943611198906, :neg_infinity, :neg_infinity]
  """

  defstruct [:lo, :hi]
  @type t :: %__MODULE__{lo: Mx.t(), hi: Mx.t()}

  @doc "A uniform distribution on the integers `lo..hi`, `lo <= hi` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(lo, hi) do
    if is_number(lo) and is_number(hi) and hi < lo do
      raise ArgumentError,
            "Gen.Dist.discrete_uniform: needs lo <= hi, got lo = #{lo} and hi = #{hi}"
    end

    d = %__MODULE__{
      lo: Gen.Dist.param!(lo, "discrete_uniform", "lo", :integer),
      hi: Gen.Dist.param!(hi, "discrete_uniform", "hi", :integer)
    }

    if Gen.Dist.known?([lo, hi]),
      do:
        Gen.Dist.known!(
          Mx.any(Mx.greater(d.lo, d.hi)),
          [d.lo, d.hi],
          "discrete_uniform",
          "needs lo <= hi"
        )

    d
  end

  defimpl Gen.Distribution do
    def sample(d, key), do: draw(d, key, nil)
    def sample_n(d, key, n), do: draw(d, key, n)

    defp draw(%{lo: lo, hi: hi}, key, n) do
      {_, batch} = Gen.Dist.batch("discrete_uniform", [lo, hi])
      shape = if n, do: Tuple.insert_at(batch, 0, n), else: batch

      Mx.Random.randint(key, Mx.as_type(lo, :s64), Mx.as_type(Mx.add(hi, 1.0), :s64), shape: shape)
    end

    def logpdf(%{lo: lo, hi: hi}, value) do
      x = value |> Gen.Dist.value!("discrete_uniform") |> Mx.as_type(Mx.type(Mx.add(lo, hi)))

      inside =
        Mx.logical_and(
          Mx.logical_and(Mx.greater_equal(x, lo), Mx.less_equal(x, hi)),
          Mx.equal(Mx.floor(x), x)
        )

      lp = Mx.negate(Mx.log(Mx.add(Mx.subtract(hi, lo), 1.0)))

      Gen.Dist.restrict(Mx.add(lp, Mx.multiply(x, 0.0)),
        inside: inside,
        invalid: Mx.greater(lo, hi)
      )
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
