defmodule Gen.Dist.Categorical do
  @moduledoc """
  Categorical distribution over `0..k-1`, categories on the last axis
  (leading axes are the batch). Two forms:

    * `Gen.Dist.categorical(probs)` — Gen.jl's `categorical(probs)`: a
      probability vector, non-negative and summing to 1 within
      1.5e-8 in f64 (numbers and lists are f64) and 3.5e-4 in f32
      (√ε of the type, the tolerance of Distributions.jl's `isprobvec`).
      The log-mass is `log probs[x]`, not renormalized, as in Gen.jl.
    * `Gen.Dist.categorical(logits: l)` — unnormalized log-probabilities,
      normalized here by `logsumexp`; a zero probability is a logit of `-Inf`.

  Unlike Gen.jl's, indices are 0-based (as `Mx.take/3` and `Enum.at/2`).
  Draws are `:s64` indices (Gumbel-max on the log-probabilities). Invalid
  probabilities follow `Gen.Dist`'s rule: raise for a constant (the message
  points to `logits:`, the form for log-weights), `-Inf` otherwise.

      iex> d = Gen.Dist.categorical(Mx.tensor([0.2, 0.3, 0.5], type: :f64))
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2, 3, -1])) |> Mx.to_list()
      [-1.6094379124341003, -0.6931471805599453, :neg_infinity, :neg_infinity]
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 4) |> Mx.describe()
      "s64[4]"
      iex> Gen.Dist.categorical([0.5, 0.2])
      ** (ArgumentError) Gen.Dist.categorical: probs must be non-negative and sum to 1 (within 1.5e-8 in f64, 3.5e-4 in f32) on the last axis; for log-weights or unnormalized weights use categorical(logits: ...), got [0.5, 0.2]
  """

  # `invalid` is the probability form's mask of invalid batch elements (nil for logits).
  defstruct [:logits, :normalized?, :invalid]
  @type t :: %__MODULE__{logits: Mx.t(), normalized?: boolean(), invalid: Mx.t() | nil}

  @doc """
  A categorical distribution with probabilities `probs` (`{..., k}`,
  non-negative, summing to 1; checked when constant).
  """
  @spec new(Mx.tensor_like()) :: t()
  def new(probs) do
    p = Gen.Dist.param!(probs, "categorical", "probs")
    categories!(p, "probs")

    bad = invalid(p)

    if Gen.Dist.known?([probs]) do
      Gen.Dist.known!(
        Mx.any(bad),
        p,
        "categorical",
        "probs must be non-negative and sum to 1 (within 1.5e-8 in f64, 3.5e-4 in f32) on the last axis; " <>
          "for log-weights or unnormalized weights use categorical(logits: ...)"
      )
    end

    %__MODULE__{logits: Mx.log(p), normalized?: true, invalid: bad}
  end

  @doc "A categorical distribution with log-weights `logits` (`{..., k}`, normalized here)."
  @spec with_logits(Mx.tensor_like()) :: t()
  def with_logits(logits) do
    l = Gen.Dist.param!(logits, "categorical", "logits")
    categories!(l, "logits")
    %__MODULE__{logits: l, normalized?: false}
  end

  defp categories!(a, name) do
    if Mx.rank(a) < 1 or elem(Mx.shape(a), Mx.rank(a) - 1) < 1 do
      raise ArgumentError,
            "Gen.Dist.categorical: #{name} must have the categories on a last axis of size >= 1, got #{Mx.describe(a)}"
    end
  end

  @doc false
  # Per batch element: a negative probability, or a sum off 1 by more than √ε of the type.
  @spec invalid(Mx.t()) :: Mx.t()
  def invalid(p) do
    tol = if Mx.type(p) == :f64, do: 1.5e-8, else: 3.5e-4
    off = Mx.greater(Mx.abs(Mx.subtract(Mx.sum(p, axes: [-1]), 1.0)), tol)
    Mx.logical_or(Mx.any(Mx.less(p, 0.0), axes: [-1]), off)
  end

  defimpl Gen.Distribution do
    def sample(%{logits: l}, key), do: Mx.Random.categorical(key, l)
    def sample_n(%{logits: l}, key, n), do: Mx.Random.categorical(key, l, num_samples: n)

    def logpdf(%{logits: l, normalized?: normalized?, invalid: invalid}, value) do
      k = elem(Mx.shape(l), Mx.rank(l) - 1)
      x = value |> Gen.Dist.value!("categorical") |> Mx.as_type(Mx.type(l))

      logp =
        if normalized?, do: l, else: Mx.subtract(l, Mx.logsumexp(l, axes: [-1], keep_axes: true))

      # One-hot against 0..k-1: values and batch broadcast, and a value off the grid matches nothing.
      hit = Mx.equal(Mx.new_axis(x, -1), Mx.iota({k}, type: Mx.type(l)))
      lp = Mx.sum(Mx.select(hit, logp, 0.0), axes: [-1])
      Gen.Dist.restrict(lp, inside: Mx.any(hit, axes: [-1]), invalid: invalid)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
