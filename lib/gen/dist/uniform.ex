defmodule Gen.Dist.Uniform do
  @moduledoc """
  The continuous uniform distribution on `[lo, hi]`, `lo < hi`
  (`Gen.Dist.uniform/2`): `log p(x) = -log(hi - lo)` inside, `-Inf` outside.
  Reparameterized: `lo + (hi - lo) * u`. Invalid parameters follow
  `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`lo >= hi`).

      iex> Gen.Dist.logpdf(Gen.Dist.uniform(0.0, 4.0), Mx.tensor([-1.0, 0.0, 4.0, 5.0])) |> Mx.to_list()
      [:neg_infinity, -1.3862943611198906, -1.3862943611198906, :neg_infinity]
  """

  defstruct [:lo, :hi]
  @type t :: %__MODULE__{lo: Mx.t(), hi: Mx.t()}

  @doc "A uniform distribution on `[lo, hi]`, both finite with `lo < hi` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(lo, hi) do
    if is_number(lo) and is_number(hi) and lo >= hi do
      raise ArgumentError,
            "Gen.Dist.uniform: lo must be below hi, got lo = #{inspect(lo)}, hi = #{inspect(hi)}"
    end

    {lo_a, hi_a} =
      {Gen.Dist.param!(lo, "uniform", "lo", :finite),
       Gen.Dist.param!(hi, "uniform", "hi", :finite)}

    if Gen.Dist.known?([lo, hi]),
      do:
        Gen.Dist.known!(
          Mx.any(Mx.greater_equal(lo_a, hi_a)),
          [lo_a, hi_a],
          "uniform",
          "lo must be below hi"
        )

    %__MODULE__{lo: lo_a, hi: hi_a}
  end

  defimpl Gen.Distribution do
    def logpdf(%{lo: lo, hi: hi}, x) do
      x = Gen.Dist.value!(x, "uniform")
      inside = Mx.logical_and(Mx.greater_equal(x, lo), Mx.less_equal(x, hi))
      # x * 0 carries the value's shape (and its gradient, zero) into the result.
      lp = Mx.subtract(Mx.multiply(x, 0.0), Mx.log(Mx.subtract(hi, lo)))
      Gen.Dist.restrict(lp, inside: inside, invalid: Mx.greater_equal(lo, hi))
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: true
    def support(%{lo: lo, hi: hi}), do: {:interval, lo, hi}

    defp draw(%{lo: lo, hi: hi}, key, lead) do
      {type, shape} = Gen.Dist.batch("uniform", [lo, hi])
      u = Mx.Random.uniform(key, shape: List.to_tuple(lead ++ Tuple.to_list(shape)), type: type)
      Mx.add(lo, Mx.multiply(Mx.subtract(hi, lo), u))
    end
  end
end
