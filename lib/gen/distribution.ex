defprotocol Gen.Distribution do
  @moduledoc """
  The contract every distribution fills (STYLE.md 16): one small module per
  distribution under `lib/gen/dist/`, a struct holding its parameters as Mx
  arrays, and an implementation of this protocol. `Gen.Dist` holds the
  constructors (`Gen.Dist.normal(mu, sigma)`) and the generic entry points
  (`Gen.Dist.logpdf/2`, `Gen.Dist.sample/2`, `Gen.Dist.sample_n/3`).

  Parameters and values broadcast. Log-densities are f64 by default
  (DESIGN.md decision 5), `-Inf` outside the support and never NaN for valid
  parameters. Randomness takes explicit keys (`Mx.Random`). `support/1`
  declares where the values live, so that gradient-based inference moves a
  choice on the unconstrained scale of `Gen.Transform`.
  """

  @doc "One draw (the batch shape of the parameters) with `key`."
  @spec sample(t(), Mx.t()) :: Mx.t()
  def sample(dist, key)

  @doc "`n` independent draws stacked on a new leading axis: `[n | batch shape]`, in one graph."
  @spec sample_n(t(), Mx.t(), pos_integer()) :: Mx.t()
  def sample_n(dist, key, n)

  @doc "The log-density (or log-mass) of `value`, broadcast against the parameters."
  @spec logpdf(t(), Mx.tensor_like()) :: Mx.t()
  def logpdf(dist, value)

  @doc "Whether samples are a differentiable function of the parameters and the key."
  @spec reparameterized?(t()) :: boolean()
  def reparameterized?(dist)

  @doc """
  The support of the distribution at its current parameters (see
  `Gen.Transform` for the forms): `:real`, `:positive`, `:unit_interval`,
  `{:interval, lo, hi}`, `:simplex`, `:positive_definite`,
  `:cholesky_factor`, `:corr_cholesky`, `:ordered`, or `:discrete`. The
  gradient-based algorithms move a choice on the unconstrained scale of
  `Gen.Transform.default/1` of its support.

      iex> Gen.Distribution.support(Gen.Dist.uniform(0.0, 2.0)) |> elem(0)
      :interval
  """
  @spec support(t()) :: Gen.Transform.support()
  def support(dist)
end
