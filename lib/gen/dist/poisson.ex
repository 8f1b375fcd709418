defmodule Gen.Dist.Poisson do
  @moduledoc """
  Poisson distribution with mean `rate` on `0, 1, 2, ...`: log-mass
  `k log(rate) - rate - log k!`, `-Inf` at negative or non-integer `k`.
  Draws are `:s64` (`Mx.Random.poisson/3`, exact for every rate).

      iex> d = Gen.Dist.poisson(3.0)
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2, -1, 1.5])) |> Mx.to_list()
      [-3.0, -1.4959226032237259, :neg_infinity, :neg_infinity]
  """

  defstruct [:rate]
  @type t :: %__MODULE__{rate: Mx.t()}

  @doc "A Poisson distribution with mean `rate >= 0`."
  @spec new(Mx.tensor_like()) :: t()
  def new(rate),
    do: %__MODULE__{rate: Gen.Dist.param!(rate, "poisson", "rate", {&(&1 >= 0), ">= 0"})}

  defimpl Gen.Distribution do
    def sample(%{rate: r}, key), do: Mx.Random.poisson(key, r, shape: Mx.shape(r))

    def sample_n(%{rate: r}, key, n),
      do: Mx.Random.poisson(key, r, shape: Tuple.insert_at(Mx.shape(r), 0, n))

    def logpdf(%{rate: r}, value) do
      x = value |> Gen.Dist.value!("poisson") |> Mx.as_type(Mx.type(r))
      inside = Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.equal(Mx.floor(x), x))
      # Off the support the terms see k = 0, so neither value nor gradient meets lgamma's poles.
      k = Mx.select(inside, x, 0.0)
      lp = Mx.xlogy(k, r) |> Mx.subtract(r) |> Mx.subtract(Mx.lgamma(Mx.add(k, 1.0)))
      Gen.Dist.restrict(lp, inside, Mx.greater_equal(r, 0.0))
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
