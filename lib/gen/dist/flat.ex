defmodule Gen.Dist.Flat do
  @moduledoc """
  Improper flat priors, for models ported from Stan (a parameter declared
  without a prior): `Gen.Dist.flat/0`, density 1 on the reals, and
  `Gen.Dist.half_flat/0`, density 1 on `[0, ∞)`. Both score 0 at every
  finite value of their support (−∞ elsewhere), for values of any shape.

  An improper prior has no draws: sampling raises. Give the value instead,
  as a constraint (`Gen.generate(model, args, %{sigma: 1.0})`), and move it
  with inference that never draws it from its prior: NUTS, HMC, MALA, MAP
  (with `transforms: %{sigma: :log}` for a `half_flat` scale), MH with a
  custom proposal, elliptical slice. The posterior must be proper.

      iex> Gen.Dist.logpdf(Gen.Dist.flat(), Mx.tensor([-1.0e6, 0.0, 3.5], type: :f64)) |> Mx.to_list()
      [0.0, 0.0, 0.0]
      iex> Gen.Dist.logpdf(Gen.Dist.half_flat(), Mx.tensor([-1.0, 0.0, 2.0], type: :f64)) |> Mx.to_list()
      [:neg_infinity, 0.0, 0.0]
  """

  defstruct half: false
  @type t :: %__MODULE__{half: boolean()}

  @doc "The flat prior on the reals."
  @spec flat() :: t()
  def flat, do: %__MODULE__{half: false}

  @doc "The flat prior on `[0, ∞)`."
  @spec half_flat() :: t()
  def half_flat, do: %__MODULE__{half: true}

  @doc false
  def name(%__MODULE__{half: true}), do: "half_flat"
  def name(%__MODULE__{}), do: "flat"

  defimpl Gen.Distribution do
    def logpdf(d, x) do
      x = Gen.Dist.value!(x, Gen.Dist.Flat.name(d))

      # x * 0 carries the value's shape (and a zero gradient); it is NaN exactly where x is not finite.
      lp = Mx.multiply(x, 0.0)
      finite = Mx.equal(lp, 0.0)
      inside = if d.half, do: Mx.logical_and(finite, Mx.greater_equal(x, 0.0)), else: finite
      Gen.Dist.restrict(lp, inside: inside)
    end

    def sample(d, _key), do: improper!(d)
    def sample_n(d, _key, _n), do: improper!(d)
    def reparameterized?(_d), do: false
    def support(d), do: if(d.half, do: :positive, else: :real)

    defp improper!(d) do
      name = Gen.Dist.Flat.name(d)

      raise ArgumentError,
            "Gen.Dist.#{name}() is an improper prior and cannot be sampled: give its value as a constraint " <>
              "(Gen.generate(model, args, %{addr => value})) and move it with NUTS, HMC, MALA or MAP, never from its prior " <>
              "(MH on a selection, simulate, importance sampling from the prior)"
    end
  end
end
