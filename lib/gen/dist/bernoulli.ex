defmodule Gen.Dist.Bernoulli do
  @moduledoc """
  Bernoulli distribution with probability `p` of `true` (Gen.jl's
  `bernoulli`, alias `flip`). Draws are `:bool` arrays; `logpdf` accepts
  `true`/`false` and `1`/`0` (as numbers or arrays) and gives `-Inf` for any
  other value. `p` outside [0, 1] raises for a number and gives NaN for an array.

      iex> d = Gen.Dist.bernoulli(0.25)
      iex> Gen.Dist.logpdf(d, true) |> Mx.to_number()
      -1.3862943611198906
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2])) |> Mx.to_list()
      [-0.2876820724517809, :neg_infinity]
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 3) |> Mx.describe()
      "bool[3]"
  """

  defstruct [:p]
  @type t :: %__MODULE__{p: Mx.t()}

  @doc "A Bernoulli distribution with success probability `p` in [0, 1]."
  @spec new(Mx.tensor_like()) :: t()
  def new(p),
    do: %__MODULE__{
      p: Gen.Dist.param!(p, "bernoulli", "p", {&(&1 >= 0 and &1 <= 1), "in [0, 1]"})
    }

  defimpl Gen.Distribution do
    def sample(%{p: p}, key), do: Mx.Random.bernoulli(key, p, shape: Mx.shape(p))

    def sample_n(%{p: p}, key, n),
      do: Mx.Random.bernoulli(key, p, shape: Tuple.insert_at(Mx.shape(p), 0, n))

    def logpdf(%{p: p}, value) do
      x = value |> bool_to_int() |> Gen.Dist.value!("bernoulli") |> Mx.as_type(Mx.type(p))
      one = Mx.equal(x, 1.0)
      lp = Mx.select(one, Mx.log(p), Mx.log1p(Mx.negate(p)))
      valid = Mx.logical_and(Mx.greater_equal(p, 0.0), Mx.less_equal(p, 1.0))
      Gen.Dist.restrict(lp, Mx.logical_or(one, Mx.equal(x, 0.0)), valid)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete

    defp bool_to_int(true), do: 1
    defp bool_to_int(false), do: 0
    defp bool_to_int(x), do: x
  end
end
