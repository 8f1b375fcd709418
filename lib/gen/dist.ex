defmodule Gen.Dist do
  @moduledoc """
  Gen's distributions: one constructor per distribution, each delegating to
  its own small module under `lib/gen/dist/` (STYLE.md 16), and the generic
  entry points that call the `Gen.Distribution` protocol.

      iex> d = Gen.Dist.normal(0.0, 1.0)
      iex> Gen.Dist.logpdf(d, 0.0) |> Mx.to_number()
      -0.9189385332046728
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 5) |> Mx.describe()
      "f64[5]"

  ## Parameters and values

  Parameters may be numbers or Mx arrays. Numbers become `f64` scalars
  (Gen scores in `f64`, DESIGN.md decision 5) and are checked at once: an
  out-of-range number raises `ArgumentError`. Array parameters keep their
  float type (integer arrays become `f64`) and are not inspected, since they
  may be lazy or traced: where they are out of range, `logpdf` gives NaN.
  Parameters and values broadcast; a draw has the broadcast shape of the
  parameters (the batch shape), `sample_n` puts `n` draws on a new leading axis.
  """

  alias Gen.Distribution
  alias Gen.Dist

  # ---- generic entry points ------------------------------------------------------

  @doc """
  The log-density (log-mass for discrete distributions) of `value`: `-Inf`
  outside the support.

      iex> Gen.Dist.logpdf(Gen.Dist.exponential(2.0), Mx.tensor([-1.0, 0.0])) |> Mx.to_list()
      [:neg_infinity, 0.6931471805599453]
  """
  @spec logpdf(Distribution.t(), Mx.tensor_like()) :: Mx.t()
  def logpdf(dist, value), do: Distribution.logpdf(dist, value)

  @doc """
  One draw with `key`, of the parameters' batch shape.

      iex> Gen.Dist.sample(Gen.Dist.normal(Mx.tensor([0.0, 10.0], type: :f64), 1.0), Mx.Random.key(1)) |> Mx.shape()
      {2}
  """
  @spec sample(Distribution.t(), Mx.t()) :: Mx.t()
  def sample(dist, key), do: Distribution.sample(dist, key)

  @doc """
  `n` independent draws with `key`, stacked on a new leading axis, in one graph.

      iex> Gen.Dist.sample_n(Gen.Dist.gamma(2.0, Mx.tensor([1.0, 3.0], type: :f64)), Mx.Random.key(2), 4) |> Mx.shape()
      {4, 2}
  """
  @spec sample_n(Distribution.t(), Mx.t(), pos_integer()) :: Mx.t()
  def sample_n(dist, key, n) when is_integer(n) and n >= 1,
    do: Distribution.sample_n(dist, key, n)

  def sample_n(_dist, _key, n) do
    raise ArgumentError,
          "Gen.Dist.sample_n/3 expects a positive integer number of draws, got #{inspect(n)}"
  end

  @doc """
  Whether draws are a differentiable function of the parameters (given the key).

      iex> {Gen.Dist.reparameterized?(Gen.Dist.normal(0.0, 1.0)), Gen.Dist.reparameterized?(Gen.Dist.beta(1.0, 2.0))}
      {true, false}
  """
  @spec reparameterized?(Distribution.t()) :: boolean()
  def reparameterized?(dist), do: Distribution.reparameterized?(dist)

  # ---- continuous (lib/gen/dist/*.ex) ----------------------------------------------

  @doc "Normal with mean `mu` and standard deviation `sigma`; see `Gen.Dist.Normal`."
  @spec normal(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Normal.t()
  def normal(mu, sigma), do: Dist.Normal.new(mu, sigma)

  @doc "Alias of `normal/2` (Gen.jl's name)."
  @spec gaussian(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Normal.t()
  def gaussian(mu, sigma), do: Dist.Normal.new(mu, sigma)

  @doc "Uniform on `[lo, hi]`; see `Gen.Dist.Uniform`."
  @spec uniform(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Uniform.t()
  def uniform(lo, hi), do: Dist.Uniform.new(lo, hi)

  @doc "Beta with shapes `alpha`, `beta` on `[0, 1]`; see `Gen.Dist.Beta`."
  @spec beta(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Beta.t()
  def beta(alpha, beta), do: Dist.Beta.new(alpha, beta)

  @doc "Gamma with `shape` and `rate`; see `Gen.Dist.Gamma`."
  @spec gamma(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Gamma.t()
  def gamma(shape, rate), do: Dist.Gamma.new(shape, rate)

  @doc "Inverse gamma with `shape` and `scale`; see `Gen.Dist.InvGamma`."
  @spec inv_gamma(Mx.tensor_like(), Mx.tensor_like()) :: Dist.InvGamma.t()
  def inv_gamma(shape, scale), do: Dist.InvGamma.new(shape, scale)

  @doc "Exponential with `rate`; see `Gen.Dist.Exponential`."
  @spec exponential(Mx.tensor_like()) :: Dist.Exponential.t()
  def exponential(rate), do: Dist.Exponential.new(rate)

  @doc "Laplace with location `loc` and scale `scale`; see `Gen.Dist.Laplace`."
  @spec laplace(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Laplace.t()
  def laplace(loc, scale), do: Dist.Laplace.new(loc, scale)

  @doc "Student's t with `df` degrees of freedom, location `loc`, scale `scale`; see `Gen.Dist.StudentT`."
  @spec student_t(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) :: Dist.StudentT.t()
  def student_t(df, loc, scale), do: Dist.StudentT.new(df, loc, scale)

  @doc "Log-normal: `exp` of a normal with mean `mu` and sd `sigma`; see `Gen.Dist.LogNormal`."
  @spec log_normal(Mx.tensor_like(), Mx.tensor_like()) :: Dist.LogNormal.t()
  def log_normal(mu, sigma), do: Dist.LogNormal.new(mu, sigma)

  @doc "Cauchy with location `loc` and scale `scale`; see `Gen.Dist.Cauchy`."
  @spec cauchy(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Cauchy.t()
  def cauchy(loc, scale), do: Dist.Cauchy.new(loc, scale)

  @doc "Normal(`mu`, `sigma`) restricted to `[lo, hi]`; see `Gen.Dist.TruncatedNormal`."
  @spec truncated_normal(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) ::
          Dist.TruncatedNormal.t()
  def truncated_normal(mu, sigma, lo, hi), do: Dist.TruncatedNormal.new(mu, sigma, lo, hi)

  @doc "Independent normals over a whole array, scored jointly; see `Gen.Dist.BroadcastedNormal`."
  @spec broadcasted_normal(Mx.tensor_like(), Mx.tensor_like()) :: Dist.BroadcastedNormal.t()
  def broadcasted_normal(mu, sigma), do: Dist.BroadcastedNormal.new(mu, sigma)

  # ---- discrete and multivariate (lib/gen/dist/*.ex by another engineer) ----

  @doc "Bernoulli: `true` with probability `p`; see `Gen.Dist.Bernoulli`."
  @spec bernoulli(Mx.tensor_like()) :: Dist.Bernoulli.t()
  def bernoulli(p), do: Dist.Bernoulli.new(p)

  @doc "Alias of `bernoulli/1` (Gen.jl's name)."
  @spec flip(Mx.tensor_like()) :: Dist.Bernoulli.t()
  def flip(p), do: Dist.Bernoulli.new(p)

  @doc "Categorical over `0..k-1` from `logits` (`{..., k}`); see `Gen.Dist.Categorical`."
  @spec categorical(Mx.tensor_like()) :: Dist.Categorical.t()
  def categorical(logits), do: Dist.Categorical.new(logits)

  @doc "Poisson with mean `rate`; see `Gen.Dist.Poisson`."
  @spec poisson(Mx.tensor_like()) :: Dist.Poisson.t()
  def poisson(rate), do: Dist.Poisson.new(rate)

  @doc "Failures before the first success, success probability `p`; see `Gen.Dist.Geometric`."
  @spec geometric(Mx.tensor_like()) :: Dist.Geometric.t()
  def geometric(p), do: Dist.Geometric.new(p)

  @doc "Failures before the `r`-th success, success probability `p`; see `Gen.Dist.NegBinomial`."
  @spec neg_binomial(Mx.tensor_like(), Mx.tensor_like()) :: Dist.NegBinomial.t()
  def neg_binomial(r, p), do: Dist.NegBinomial.new(r, p)

  @doc "Successes in `n` trials, success probability `p`; see `Gen.Dist.Binomial`."
  @spec binomial(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Binomial.t()
  def binomial(n, p), do: Dist.Binomial.new(n, p)

  @doc "Uniform on the integers `lo..hi` (inclusive); see `Gen.Dist.DiscreteUniform`."
  @spec discrete_uniform(Mx.tensor_like(), Mx.tensor_like()) :: Dist.DiscreteUniform.t()
  def discrete_uniform(lo, hi), do: Dist.DiscreteUniform.new(lo, hi)

  @doc "The point mass at `v`; see `Gen.Dist.Delta`."
  @spec delta(Mx.tensor_like()) :: Dist.Delta.t()
  def delta(v), do: Dist.Delta.new(v)

  @doc "Dirichlet with concentrations `alpha` (`{..., k}`); see `Gen.Dist.Dirichlet`."
  @spec dirichlet(Mx.tensor_like()) :: Dist.Dirichlet.t()
  def dirichlet(alpha), do: Dist.Dirichlet.new(alpha)

  @doc "Multivariate normal with `mean` (`{..., d}`) and `cov` (`{d, d}`); see `Gen.Dist.MultivariateNormal`."
  @spec multivariate_normal(Mx.tensor_like(), Mx.tensor_like()) :: Dist.MultivariateNormal.t()
  def multivariate_normal(mean, cov), do: Dist.MultivariateNormal.new(mean, cov)

  @doc "Wishart with `df` degrees of freedom and scale `scale` (`{p, p}`); see `Gen.Dist.Wishart`."
  @spec wishart(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Wishart.t()
  def wishart(df, scale), do: Dist.Wishart.new(df, scale)

  @doc "Inverse Wishart with `df` degrees of freedom and scale `scale` (`{p, p}`); see `Gen.Dist.InvWishart`."
  @spec inv_wishart(Mx.tensor_like(), Mx.tensor_like()) :: Dist.InvWishart.t()
  def inv_wishart(df, scale), do: Dist.InvWishart.new(df, scale)

  @doc "A mixture of `components` (one kind) with `log_weights`; see `Gen.Dist.Mixture`."
  @spec mixture([Distribution.t()], Mx.tensor_like()) :: Dist.Mixture.t()
  def mixture(components, log_weights), do: Dist.Mixture.new(components, log_weights)

  @doc "Bins between `bounds` with weights `probs`, uniform within each; see `Gen.Dist.PiecewiseUniform`."
  @spec piecewise_uniform(Mx.tensor_like(), Mx.tensor_like()) :: Dist.PiecewiseUniform.t()
  def piecewise_uniform(bounds, probs), do: Dist.PiecewiseUniform.new(bounds, probs)

  @doc "Beta(`alpha`, `beta`) with probability `theta`, else Uniform(0, 1); see `Gen.Dist.BetaUniformMixture`."
  @spec beta_uniform_mixture(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) ::
          Dist.BetaUniformMixture.t()
  def beta_uniform_mixture(theta, alpha, beta),
    do: Dist.BetaUniformMixture.new(theta, alpha, beta)

  # ---- improper priors and distributions defined in scripts --------------------------

  @doc "The improper flat prior on the reals, scored 0; it cannot be sampled. See `Gen.Dist.Flat`."
  @spec flat() :: Dist.Flat.t()
  def flat, do: Dist.Flat.flat()

  @doc "The improper flat prior on `[0, ∞)`, scored 0 there and −∞ below; it cannot be sampled. See `Gen.Dist.Flat`."
  @spec half_flat() :: Dist.Flat.t()
  def half_flat, do: Dist.Flat.half_flat()

  @doc """
  A distribution from functions: `logpdf:` (required), `sample:`,
  `sample_n:`, `reparameterized:`, `name:`, `params:`. Works in scripts
  under `mix run`, where a `defimpl Gen.Distribution` has no effect (the
  protocol is consolidated). See `Gen.Dist.Custom`.

      iex> d = Gen.Dist.custom(logpdf: fn x -> Mx.negate(Mx.abs(x)) end, name: "unnormalized")
      iex> Gen.Dist.logpdf(d, -2.0) |> Mx.to_number()
      -2.0
  """
  @spec custom(keyword()) :: Dist.Custom.t()
  def custom(opts), do: Dist.Custom.new(opts)

  @doc "A distribution from any module with `logpdf(params, value)` and `sample(params, key)`; see `Gen.Dist.Custom`."
  @spec custom(module(), term()) :: Dist.Custom.t()
  def custom(module, params), do: Dist.Custom.new(module, params)

  # ---- helpers shared by the distribution modules ------------------------------------

  @doc false
  # A parameter as a float array: numbers become f64 scalars, after `check` (a predicate on
  # the number, with a phrase for the message); integer arrays become f64.
  @spec param!(term(), String.t(), String.t(), {(number() -> boolean()), String.t()} | nil) ::
          Mx.t()
  def param!(x, dist, name, check \\ nil)

  def param!(x, dist, name, check) when is_number(x) or x in [:infinity, :neg_infinity, :nan] do
    case check do
      {ok?, phrase} ->
        unless is_number(x) and ok?.(x) do
          raise ArgumentError, "Gen.Dist.#{dist}: #{name} must be #{phrase}, got #{inspect(x)}"
        end

      nil ->
        :ok
    end

    Mx.tensor(x, type: :f64)
  end

  def param!(%Mx.Array{} = x, dist, name, _check) do
    t = Mx.type(x)

    cond do
      Mx.Type.float?(t) ->
        x

      Mx.Type.complex?(t) ->
        raise ArgumentError, "Gen.Dist.#{dist}: #{name} must be real, got #{Mx.describe(x)}"

      true ->
        Mx.as_type(x, :f64)
    end
  end

  def param!(x, dist, name, _check) when is_list(x),
    do: param!(Mx.tensor(x, type: :f64), dist, name, nil)

  def param!(x, dist, name, _check) do
    raise ArgumentError,
          "Gen.Dist.#{dist}: #{name} must be a number or an Mx array, got #{inspect(x)}"
  end

  @doc false
  # A value to score: numbers and lists as f64, integer arrays cast to f64.
  @spec value!(term(), String.t()) :: Mx.t()
  def value!(x, dist), do: param!(x, dist, "the value", nil)

  @doc false
  # The float type of the parameters (the widest) and their broadcast (batch) shape.
  @spec batch(String.t(), [Mx.t()]) :: {atom(), tuple()}
  def batch(dist, [_ | _] = params) do
    unless Enum.all?(params, &is_struct(&1, Mx.Array)) do
      raise ArgumentError, "Gen.Dist.batch/2 (#{dist}): parameters must be Mx arrays, got #{inspect(params)}"
    end

    type = params |> Enum.map(&Mx.type/1) |> Enum.reduce(&Mx.Type.merge/2)
    shapes = Enum.map(params, &Mx.shape/1)
    {type, Enum.reduce(shapes, {}, &broadcast_shape!(&1, &2, dist, shapes))}
  end

  def batch(dist, params) do
    raise ArgumentError, "Gen.Dist.batch/2 (#{dist}): expects a non-empty list of parameter arrays, got #{inspect(params)}"
  end

  defp broadcast_shape!(a, b, dist, all) do
    Mx.broadcast_shape(a, b) ||
      raise ArgumentError, "Gen.Dist.#{dist}: parameter shapes #{inspect(all)} do not broadcast"
  end

  @doc false
  # -Inf where `inside` is false, NaN where the parameters are invalid, else `lp`.
  @spec restrict(Mx.t(), Mx.t() | nil, Mx.t() | nil) :: Mx.t()
  def restrict(lp, inside, valid) do
    lp = if inside, do: Mx.select(inside, lp, :neg_infinity), else: lp
    if valid, do: Mx.select(valid, lp, :nan), else: lp
  end
end
