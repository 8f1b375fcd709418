defmodule Gen.Dist.Bernoulli do
  @moduledoc """
  Bernoulli distribution with probability `p` of `true` (Gen.jl's
  `bernoulli`, alias `flip`), or with log-odds `logits` (`Gen.Dist.bernoulli(logits: eta)`,
  `p = 1 / (1 + e^-eta)`, Stan's `bernoulli_logit`). Draws are `:bool` arrays;
  `logpdf` accepts `true`/`false` and `1`/`0` (as numbers or arrays) and gives
  `-Inf` for any other value.

  The logit form scores `log p = -log(1 + e^-eta)` and `log(1 - p) = -log(1 + e^eta)`
  with `Mx.logaddexp/2`, so neither rounds to `log 0` in the tails
  (`bernoulli(Mx.sigmoid(eta))` gives `-Inf` for `true` at `eta = -800` and a
  zero gradient far earlier) and the gradient in `eta` is `1 - p` or `-p` exactly.

  `p` must lie in [0, 1] (`logits` may be any real, ±Inf included); invalid
  parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise.

      iex> d = Gen.Dist.bernoulli(0.25)
      iex> Gen.Dist.logpdf(d, true) |> Mx.to_number()
      -1.3862943611198906
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2])) |> Mx.to_list()
      [-0.2876820724517809, :neg_infinity]
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 3) |> Mx.describe()
      "bool[3]"
      iex> Gen.Dist.logpdf(Gen.Dist.bernoulli(logits: 40.0), [1, 0]) |> Mx.to_list()
      [-4.248354255291589e-18, -40.0]
  """

  defstruct [:p, :logits]
  @type t :: %__MODULE__{p: Mx.t() | nil, logits: Mx.t() | nil}

  @doc "A Bernoulli distribution with success probability `p` in [0, 1] (checked when constant)."
  @spec new(Mx.tensor_like()) :: t()
  def new(p), do: %__MODULE__{p: Gen.Dist.param!(p, "bernoulli", "p", :probability)}

  @doc "A Bernoulli distribution with log-odds `logits` (any real)."
  @spec with_logits(Mx.tensor_like()) :: t()
  def with_logits(logits), do: %__MODULE__{logits: Gen.Dist.param!(logits, "bernoulli", "logits")}

  @doc false
  # log p and log(1 - p) from the log-odds, without forming p.
  @spec log_probs(Mx.t()) :: {Mx.t(), Mx.t()}
  def log_probs(eta),
    do: {Mx.negate(Mx.logaddexp(0.0, Mx.negate(eta))), Mx.negate(Mx.logaddexp(0.0, eta))}

  defimpl Gen.Distribution do
    alias Gen.Dist.Bernoulli, as: B

    def sample(d, key), do: draw(d, key, Mx.shape(param(d)))
    def sample_n(d, key, n), do: draw(d, key, Tuple.insert_at(Mx.shape(param(d)), 0, n))

    defp draw(%{p: nil, logits: eta}, key, shape),
      do: Mx.Random.bernoulli(key, Mx.sigmoid(eta), shape: shape)

    defp draw(%{p: p}, key, shape), do: Mx.Random.bernoulli(key, p, shape: shape)

    defp param(%{p: nil, logits: eta}), do: eta
    defp param(%{p: p}), do: p

    def logpdf(d, value) do
      x = value |> bool_to_int() |> Gen.Dist.value!("bernoulli") |> Mx.as_type(Mx.type(param(d)))
      one = Mx.equal(x, 1.0)

      {lp1, lp0, invalid} =
        case d do
          %{p: nil, logits: eta} -> Tuple.append(B.log_probs(eta), nil)
          %{p: p} -> {Mx.log(p), Mx.log1p(Mx.negate(p)), Gen.Dist.invalid(p, :probability)}
        end

      lp = Mx.select(one, lp1, lp0)
      Gen.Dist.restrict(lp, inside: Mx.logical_or(one, Mx.equal(x, 0.0)), invalid: invalid)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete

    defp bool_to_int(true), do: 1
    defp bool_to_int(false), do: 0
    defp bool_to_int(x), do: x
  end
end
