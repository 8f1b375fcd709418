defmodule Gen.Dist.Poisson do
  @moduledoc """
  Poisson distribution with mean `rate` on `0, 1, 2, ...` (Gen.jl's
  `poisson(lambda)`), or with `log_rate` (`Gen.Dist.poisson(log_rate: theta)`,
  mean `e^theta`, Stan's `poisson_log`). Log-mass `k log(rate) - rate - log k!`;
  the log-rate form scores `k·theta - e^theta - log k!`, so a rate that
  underflows or overflows as `e^theta` never becomes `log 0` or `log inf`, and the
  gradient in `theta` is `k - e^theta` exactly. `-Inf` at negative or
  non-integer `k`. Draws are `:s64` (`Mx.Random.poisson/3`, exact for every rate).

  `rate >= 0` (`log_rate` any real, `-Inf` included); invalid parameters follow
  `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise.

      iex> d = Gen.Dist.poisson(3.0)
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2, -1, 1.5])) |> Mx.to_list()
      [-3.0, -1.4959226032237259, :neg_infinity, :neg_infinity]
      iex> Gen.Dist.logpdf(Gen.Dist.poisson(log_rate: -800.0), 2) |> Mx.to_number()
      -1600.6931471805599
  """

  defstruct [:rate, :log_rate]
  @type t :: %__MODULE__{rate: Mx.t() | nil, log_rate: Mx.t() | nil}

  @doc "A Poisson distribution with mean `rate >= 0` (checked when constant)."
  @spec new(Mx.tensor_like()) :: t()
  def new(rate), do: %__MODULE__{rate: Gen.Dist.param!(rate, "poisson", "rate", :nonnegative)}

  @doc "A Poisson distribution with mean `e^log_rate` (`log_rate` any real)."
  @spec with_log_rate(Mx.tensor_like()) :: t()
  def with_log_rate(theta),
    do: %__MODULE__{log_rate: Gen.Dist.param!(theta, "poisson", "log_rate")}

  defimpl Gen.Distribution do
    def sample(d, key), do: Mx.Random.poisson(key, rate(d), shape: Mx.shape(rate(d)))

    def sample_n(d, key, n),
      do: Mx.Random.poisson(key, rate(d), shape: Tuple.insert_at(Mx.shape(rate(d)), 0, n))

    defp rate(%{rate: nil, log_rate: theta}), do: Mx.exp(theta)
    defp rate(%{rate: r}), do: r

    def logpdf(d, value) do
      r = rate(d)
      x = value |> Gen.Dist.value!("poisson") |> Mx.as_type(Mx.type(r))
      inside = Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.equal(Mx.floor(x), x))
      # Off the support the terms see k = 0, so neither value nor gradient meets lgamma's poles.
      k = Mx.select(inside, x, 0.0)

      {k_log_rate, invalid} =
        case d do
          # 0 · (-Inf) is 0 here: a zero rate gives k = 0 log-mass 0, as xlogy does below.
          %{rate: nil, log_rate: theta} ->
            {Mx.select(Mx.greater(k, 0.0), Mx.multiply(k, theta), 0.0), nil}

          %{rate: r} ->
            {Mx.xlogy(k, r), Gen.Dist.invalid(r, :nonnegative)}
        end

      lp = k_log_rate |> Mx.subtract(r) |> Mx.subtract(Mx.lgamma(Mx.add(k, 1.0)))
      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
