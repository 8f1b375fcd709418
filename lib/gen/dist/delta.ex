defmodule Gen.Dist.Delta do
  @moduledoc """
  The point mass at `v`: every draw is `v`, log-mass 0 at `v` and `-Inf`
  elsewhere (elementwise: a vector `v` is a batch of point masses). Draws
  are `v` itself, so they are differentiable in `v` (reparameterized). Every
  `v` is valid.

      iex> d = Gen.Dist.delta(Mx.tensor([1.0, 2.0], type: :f64))
      iex> Gen.Dist.logpdf(d, Mx.tensor([1.0, 3.0])) |> Mx.to_list()
      [0.0, :neg_infinity]
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 2) |> Mx.to_list()
      [[1.0, 2.0], [1.0, 2.0]]
  """

  defstruct [:v]
  @type t :: %__MODULE__{v: Mx.t()}

  @doc "The point mass at `v` (a number or an array of any type; numbers become f64)."
  @spec new(Mx.tensor_like()) :: t()
  def new(%Mx.Array{} = v), do: %__MODULE__{v: v}
  def new(v), do: %__MODULE__{v: Gen.Dist.param!(v, "delta", "v")}

  defimpl Gen.Distribution do
    def sample(%{v: v}, _key), do: v
    def sample_n(%{v: v}, _key, n), do: Mx.broadcast(v, Tuple.insert_at(Mx.shape(v), 0, n))

    def logpdf(%{v: v}, value) do
      x = if match?(%Mx.Array{}, value), do: value, else: Gen.Dist.value!(value, "delta")
      hit = Mx.equal(x, v)
      Mx.select(hit, Mx.tensor(0.0, type: :f64), Mx.tensor(:neg_infinity, type: :f64))
    end

    def reparameterized?(_), do: true

    def support(_d), do: :discrete
  end
end
