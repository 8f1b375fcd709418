defmodule Gen.Dist.Categorical do
  @moduledoc """
  Categorical distribution over `0..k-1` from unnormalized log-probabilities
  `logits` (categories on the last axis; leading axes are the batch). Unlike
  Gen.jl's `categorical(probs)` with 1-based indices, indices here are
  0-based (as `Mx.take/3` and `Enum.at/2`) and the parameters are logits, so
  a zero probability is a logit of `-Inf`. Draws are `:s64` indices (Gumbel-max).

      iex> d = Gen.Dist.categorical(Mx.log(Mx.tensor([0.2, 0.3, 0.5], type: :f64)))
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2, 3, -1])) |> Mx.to_list()
      [-1.6094379124341003, -0.6931471805599453, :neg_infinity, :neg_infinity]
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 4) |> Mx.describe()
      "s64[4]"
  """

  defstruct [:logits]
  @type t :: %__MODULE__{logits: Mx.t()}

  @doc "A categorical distribution with log-weights `logits` (`{..., k}`, normalized here)."
  @spec new(Mx.tensor_like()) :: t()
  def new(logits) do
    logits = Gen.Dist.param!(logits, "categorical", "logits")

    if Mx.rank(logits) < 1 or elem(Mx.shape(logits), Mx.rank(logits) - 1) < 1 do
      raise ArgumentError,
            "Gen.Dist.categorical: logits must have the categories on a last axis of size >= 1, got #{Mx.describe(logits)}"
    end

    %__MODULE__{logits: logits}
  end

  defimpl Gen.Distribution do
    def sample(%{logits: l}, key), do: Mx.Random.categorical(key, l)
    def sample_n(%{logits: l}, key, n), do: Mx.Random.categorical(key, l, num_samples: n)

    def logpdf(%{logits: l}, value) do
      k = elem(Mx.shape(l), Mx.rank(l) - 1)
      x = value |> Gen.Dist.value!("categorical") |> Mx.as_type(Mx.type(l))
      logp = Mx.subtract(l, Mx.logsumexp(l, axes: [-1], keep_axes: true))

      # One-hot against 0..k-1: values and batch broadcast, and a value off the grid matches nothing.
      hit = Mx.equal(Mx.new_axis(x, -1), Mx.iota({k}, type: Mx.type(l)))
      lp = Mx.sum(Mx.select(hit, logp, 0.0), axes: [-1])
      Gen.Dist.restrict(lp, Mx.any(hit, axes: [-1]), nil)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
