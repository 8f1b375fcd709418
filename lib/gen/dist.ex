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

  Parameters may be numbers, lists or Mx arrays. Numbers and lists become
  `f64` (Gen scores in `f64`, DESIGN.md decision 5); array parameters keep
  their float type (integer arrays become `f64`). Parameters and values
  broadcast; a draw has the broadcast shape of the parameters (the batch
  shape), `sample_n` puts `n` draws on a new leading axis.

  ## Invalid parameters: an error when constant, -Inf when computed

  One rule for every distribution (each module lists its constraints):

    * A constant is checked when the distribution is built, and an invalid
      one raises `ArgumentError` naming the distribution, the parameter, the
      constraint and the value: a number or a list anywhere, and an
      evaluated array (`Mx.evaluated?/1`: made from a list or from data)
      given outside a generative function's body.
    * Any other array is not inspected: inside a model's body an array may
      be computed from the very choices a move proposes (evaluated or not),
      and outside one a lazy array may be traced. Where it is invalid,
      `logpdf` is `-Inf` (Gen.jl's convention), so MH, HMC, MALA and NUTS
      reject a move that takes a scale below zero and the chain goes on, as
      in Stan. Only a NaN parameter gives a NaN log-density, so that it is
      reported rather than silently rejected.

  So inside a model, give constant parameters as numbers or lists to have
  them checked (`Mx.tensor/2` of a single number is moreover a lazy fill);
  a number computed from a choice (`Mx.to_number/1`) is checked too, so keep
  computed parameters as arrays.

      iex> Gen.Dist.normal(0.0, -1.0)
      ** (ArgumentError) Gen.Dist.normal: sigma must be positive, got -1.0

      iex> Gen.Dist.dirichlet(Mx.tensor([-1.0, 1.0]))
      ** (ArgumentError) Gen.Dist.dirichlet: alpha must be > 0, got [-1.0, 1.0]

      iex> sigma = Mx.subtract(Mx.tensor([0.5], type: :f64), 1.0)
      iex> Gen.Dist.logpdf(Gen.Dist.normal(0.0, sigma), 0.0) |> Mx.to_list()
      [:neg_infinity]

  ## Gen.jl's names and parameterisations

  Every Gen.jl distribution has its Gen.jl name here with Gen.jl's
  parameters in Gen.jl's order (`normal(mu, std)`, `uniform(low, high)`,
  `uniform_discrete(low, high)`, `beta(alpha, beta)`, `inv_gamma(shape,
  scale)`, `exponential(rate)`, `laplace(loc, scale)`, `cauchy(loc, scale)`,
  `poisson(lambda)`, `bernoulli(p)`, `binom(n, p)`, `geometric(p)`,
  `neg_binom(r, p)`, `categorical(probs)`, `dirichlet(alpha)`,
  `mvnormal(mu, cov)`, `broadcasted_normal(mu, std)`, `beta_uniform(theta,
  alpha, beta)`, `piecewise_uniform(bounds, probs)`), with three differences
  that cannot pass unnoticed:

    * `gamma` takes its second parameter by name, `gamma(shape, scale: s)`
      (Gen.jl, scipy) or `gamma(shape, rate: r)` (Stan, PyMC, NumPyro): a
      bare second number raises, since the two conventions read it oppositely.
    * Discrete draws are 0-based: `categorical` draws `0..k-1` (Gen.jl:
      `1..k`), as `Enum.at/2` and `Mx.take/3` index.
    * `piecewise_uniform` normalizes `probs` (Gen.jl expects them to sum to 1).

  Logit and log-rate forms score in the tails without rounding a probability
  to 0 or 1 first (Stan's `bernoulli_logit`, `binomial_logit`,
  `poisson_log`): `bernoulli(logits: eta)`, `binomial(n, logits: eta)`,
  `poisson(log_rate: theta)`, `categorical(logits: l)`.
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

      iex> Gen.Dist.sample_n(Gen.Dist.gamma(2.0, rate: Mx.tensor([1.0, 3.0], type: :f64)), Mx.Random.key(2), 4) |> Mx.shape()
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

  @doc "Alias of `uniform/2` (Gen.jl's `uniform_continuous`)."
  @spec uniform_continuous(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Uniform.t()
  def uniform_continuous(lo, hi), do: Dist.Uniform.new(lo, hi)

  @doc "Beta with shapes `alpha`, `beta` on `[0, 1]`; see `Gen.Dist.Beta`."
  @spec beta(Mx.tensor_like(), Mx.tensor_like()) :: Dist.Beta.t()
  def beta(alpha, beta), do: Dist.Beta.new(alpha, beta)

  @doc """
  Gamma with `shape` and, by name, `scale:` (Gen.jl's and scipy's second
  parameter) or `rate:` (Stan's, PyMC's and NumPyro's), `rate = 1 / scale`;
  see `Gen.Dist.Gamma`. A bare second parameter raises: the two conventions
  read it oppositely.

      iex> a = Gen.Dist.logpdf(Gen.Dist.gamma(2.0, scale: 0.5), 1.0) |> Mx.to_number()
      iex> b = Gen.Dist.logpdf(Gen.Dist.gamma(2.0, rate: 2.0), 1.0) |> Mx.to_number()
      iex> {Float.round(a, 12), Float.round(b, 12)}
      {-0.613705638880, -0.613705638880}

      iex> Gen.Dist.gamma(2.0, 3.0)
      ** (ArgumentError) Gen.Dist.gamma: give the second parameter by name, gamma(shape, scale: s) as in Gen.jl and scipy, or gamma(shape, rate: r) as in Stan, PyMC and NumPyro (rate = 1 / scale); got gamma(2.0, 3.0)
  """
  @spec gamma(Mx.tensor_like(), [{:scale, Mx.tensor_like()}] | [{:rate, Mx.tensor_like()}]) ::
          Dist.Gamma.t()
  def gamma(shape, opts) do
    case one_form!(opts, "gamma", [:scale, :rate], "gamma(#{inspect(shape)}, #{inspect(opts)})") do
      {:rate, r} -> Dist.Gamma.new(shape, r)
      {:scale, s} -> Dist.Gamma.with_scale(shape, s)
    end
  end

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

  @doc """
  Bernoulli: `true` with probability `p`, or `bernoulli(logits: eta)` with
  `p = 1 / (1 + e^-eta)` scored without forming `p` (Stan's
  `bernoulli_logit`); see `Gen.Dist.Bernoulli`.

      iex> Gen.Dist.logpdf(Gen.Dist.bernoulli(logits: -800.0), true) |> Mx.to_number()
      -800.0
  """
  @spec bernoulli(Mx.tensor_like() | [{:logits, Mx.tensor_like()}]) :: Dist.Bernoulli.t()
  def bernoulli(p_or_opts) do
    case form!(p_or_opts, "bernoulli", [:p, :logits]) do
      {:logits, eta} -> Dist.Bernoulli.with_logits(eta)
      {:p, p} -> Dist.Bernoulli.new(p)
    end
  end

  @doc "Alias of `Gen.Dist.bernoulli/1` (Gen.jl's name)."
  @spec flip(Mx.tensor_like() | [{:logits, Mx.tensor_like()}]) :: Dist.Bernoulli.t()
  def flip(p_or_opts), do: bernoulli(p_or_opts)

  @doc """
  Categorical over `0..k-1` (0-based; Gen.jl's is 1-based) from a
  probability vector `probs` (`{..., k}`, non-negative, summing to 1 within
  1.5e-8 in f64 and 3.5e-4 in f32), as Gen.jl's `categorical(probs)`; or
  `categorical(logits: l)` from unnormalized log-probabilities. See
  `Gen.Dist.Categorical`.

      iex> Gen.Dist.logpdf(Gen.Dist.categorical([0.1, 0.9]), 1) |> Mx.to_number()
      -0.10536051565782628
      iex> Gen.Dist.logpdf(Gen.Dist.categorical(logits: [0.0, :math.log(9.0)]), 1) |> Mx.to_number() |> Float.round(14)
      -0.10536051565783
  """
  @spec categorical(Mx.tensor_like() | [{:logits | :probs, Mx.tensor_like()}]) ::
          Dist.Categorical.t()
  def categorical(probs_or_opts) do
    case form!(probs_or_opts, "categorical", [:probs, :logits]) do
      {:logits, l} -> Dist.Categorical.with_logits(l)
      {:probs, p} -> Dist.Categorical.new(p)
    end
  end

  @doc """
  Poisson with mean `rate`, or `poisson(log_rate: theta)` with mean `e^theta`
  scored as `k·theta - e^theta - log k!` (Stan's `poisson_log`); see
  `Gen.Dist.Poisson`.

      iex> Gen.Dist.logpdf(Gen.Dist.poisson(log_rate: 0.0), 0) |> Mx.to_number()
      -1.0
  """
  @spec poisson(Mx.tensor_like() | [{:log_rate, Mx.tensor_like()}]) :: Dist.Poisson.t()
  def poisson(rate_or_opts) do
    case form!(rate_or_opts, "poisson", [:rate, :log_rate]) do
      {:log_rate, theta} -> Dist.Poisson.with_log_rate(theta)
      {:rate, r} -> Dist.Poisson.new(r)
    end
  end

  @doc "Failures before the first success, success probability `p`; see `Gen.Dist.Geometric`."
  @spec geometric(Mx.tensor_like()) :: Dist.Geometric.t()
  def geometric(p), do: Dist.Geometric.new(p)

  @doc "Failures before the `r`-th success, success probability `p`; see `Gen.Dist.NegBinomial`."
  @spec neg_binomial(Mx.tensor_like(), Mx.tensor_like()) :: Dist.NegBinomial.t()
  def neg_binomial(r, p), do: Dist.NegBinomial.new(r, p)

  @doc "Alias of `neg_binomial/2` (Gen.jl's `neg_binom`)."
  @spec neg_binom(Mx.tensor_like(), Mx.tensor_like()) :: Dist.NegBinomial.t()
  def neg_binom(r, p), do: Dist.NegBinomial.new(r, p)

  @doc """
  Successes in `n` trials with success probability `p`, or
  `binomial(n, logits: eta)` with `p = 1 / (1 + e^-eta)` scored without
  forming `p` (Stan's `binomial_logit`); see `Gen.Dist.Binomial`.

      iex> Gen.Dist.logpdf(Gen.Dist.binomial(3, logits: 0.0), 3) |> Mx.to_number()
      -2.0794415416798357
  """
  @spec binomial(Mx.tensor_like(), Mx.tensor_like() | [{:logits, Mx.tensor_like()}]) ::
          Dist.Binomial.t()
  def binomial(n, p_or_opts) do
    case form!(p_or_opts, "binomial", [:p, :logits]) do
      {:logits, eta} -> Dist.Binomial.with_logits(n, eta)
      {:p, p} -> Dist.Binomial.new(n, p)
    end
  end

  @doc "Alias of `Gen.Dist.binomial/2` (Gen.jl's `binom`)."
  @spec binom(Mx.tensor_like(), Mx.tensor_like() | [{:logits, Mx.tensor_like()}]) ::
          Dist.Binomial.t()
  def binom(n, p_or_opts), do: binomial(n, p_or_opts)

  @doc "Uniform on the integers `lo..hi` (inclusive); see `Gen.Dist.DiscreteUniform`."
  @spec discrete_uniform(Mx.tensor_like(), Mx.tensor_like()) :: Dist.DiscreteUniform.t()
  def discrete_uniform(lo, hi), do: Dist.DiscreteUniform.new(lo, hi)

  @doc "Alias of `discrete_uniform/2` (Gen.jl's `uniform_discrete`, both ends inclusive)."
  @spec uniform_discrete(Mx.tensor_like(), Mx.tensor_like()) :: Dist.DiscreteUniform.t()
  def uniform_discrete(lo, hi), do: Dist.DiscreteUniform.new(lo, hi)

  @doc "The point mass at `v`; see `Gen.Dist.Delta`."
  @spec delta(Mx.tensor_like()) :: Dist.Delta.t()
  def delta(v), do: Dist.Delta.new(v)

  @doc "Dirichlet with concentrations `alpha` (`{..., k}`); see `Gen.Dist.Dirichlet`."
  @spec dirichlet(Mx.tensor_like()) :: Dist.Dirichlet.t()
  def dirichlet(alpha), do: Dist.Dirichlet.new(alpha)

  @doc "Multivariate normal with `mean` (`{..., d}`) and `cov` (`{d, d}`); see `Gen.Dist.MultivariateNormal`."
  @spec multivariate_normal(Mx.tensor_like(), Mx.tensor_like()) :: Dist.MultivariateNormal.t()
  def multivariate_normal(mean, cov), do: Dist.MultivariateNormal.new(mean, cov)

  @doc "Alias of `multivariate_normal/2` (Gen.jl's `mvnormal`)."
  @spec mvnormal(Mx.tensor_like(), Mx.tensor_like()) :: Dist.MultivariateNormal.t()
  def mvnormal(mean, cov), do: Dist.MultivariateNormal.new(mean, cov)

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

  @doc "Alias of `beta_uniform_mixture/3` (Gen.jl's `beta_uniform`)."
  @spec beta_uniform(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like()) ::
          Dist.BetaUniformMixture.t()
  def beta_uniform(theta, alpha, beta), do: Dist.BetaUniformMixture.new(theta, alpha, beta)

  # The parameter of a one-parameter form: positional (the first of `keys`) or exactly one
  # keyword among `keys`, e.g. categorical(probs) or categorical(logits: l).
  defp form!([{k, _} | _] = opts, dist, keys) when is_atom(k),
    do: one_form!(opts, dist, keys, "#{dist}(#{inspect(opts)})")

  defp form!(x, _dist, [positional | _]), do: {positional, x}

  defp one_form!(opts, dist, keys, call) do
    with true <- is_list(opts) and opts != [] and Keyword.keyword?(opts),
         [{k, v}] <- validate_form!(opts, dist, keys) do
      {k, v}
    else
      _ -> form_error!(dist, keys, call)
    end
  end

  # gamma's unknown keys also get the two conventions spelled out.
  defp validate_form!(opts, "gamma", keys) do
    Mx.Opts.validate!(opts, keys, "Gen.Dist.gamma")
  rescue
    e in ArgumentError -> raise ArgumentError, e.message <> "; " <> gamma_forms()
  end

  defp validate_form!(opts, dist, keys), do: Mx.Opts.validate!(opts, keys, "Gen.Dist.#{dist}")

  defp gamma_forms,
    do:
      "give the second parameter by name, gamma(shape, scale: s) as in Gen.jl and scipy, " <>
        "or gamma(shape, rate: r) as in Stan, PyMC and NumPyro (rate = 1 / scale)"

  defp form_error!("gamma", _keys, call) do
    raise ArgumentError, "Gen.Dist.gamma: #{gamma_forms()}; got #{call}"
  end

  defp form_error!(dist, keys, call) do
    raise ArgumentError,
          "Gen.Dist.#{dist}: expected one of the keywords #{Enum.map_join(keys, ", ", &"#{&1}:")}, got #{call}"
  end

  # ---- helpers shared by the distribution modules ------------------------------------

  @doc false
  # The constraints a parameter can carry: {phrase, a test of a number, the mask of an
  # array's invalid elements}. A NaN compares false, so no mask flags it: a NaN parameter
  # gives a NaN log-density, which inference reports, instead of a -Inf it would reject.
  @spec constraint(atom()) :: {String.t(), (number() -> boolean()), (Mx.t() -> Mx.t())}
  def constraint(:finite), do: {"finite", &is_number/1, &Mx.is_infinity/1}
  def constraint(:positive), do: {"positive", &(&1 > 0), &Mx.less_equal(&1, 0.0)}
  def constraint(:nonnegative), do: {">= 0", &(&1 >= 0), &Mx.less(&1, 0.0)}

  def constraint(:probability),
    do:
      {"in [0, 1]", &(&1 >= 0 and &1 <= 1), &Mx.logical_or(Mx.less(&1, 0.0), Mx.greater(&1, 1.0))}

  def constraint(:positive_probability),
    do:
      {"in (0, 1]", &(&1 > 0 and &1 <= 1),
       &Mx.logical_or(Mx.less_equal(&1, 0.0), Mx.greater(&1, 1.0))}

  def constraint(:integer), do: {"an integer", &integer?/1, &fractional/1}

  def constraint(:count),
    do:
      {"an integer >= 0", &(&1 >= 0 and integer?(&1)),
       &Mx.logical_or(Mx.less(&1, 0.0), fractional(&1))}

  defp integer?(x), do: x == Float.floor(x * 1.0)
  defp fractional(x), do: Mx.greater(Mx.abs(Mx.subtract(x, Mx.floor(x))), 0.0)

  @doc false
  # The mask of the elements of `x` that break `constraint` (see constraint/1).
  @spec invalid(Mx.t(), atom()) :: Mx.t()
  def invalid(x, constraint), do: elem(constraint(constraint), 2).(x)

  @doc false
  # A parameter as a float array: numbers become f64 scalars, lists f64 arrays, integer
  # arrays f64. `check` is a constraint (constraint/1), optionally with its own phrase
  # ({name, phrase}), or nil. Constants (known?/1) are checked and raise; other arrays are
  # not inspected (logpdf is -Inf where they are invalid).
  @spec param!(term(), String.t(), String.t(), atom() | {atom(), String.t()} | nil) :: Mx.t()
  def param!(x, dist, name, check \\ nil)

  def param!(x, dist, name, check) when is_number(x) or x in [:infinity, :neg_infinity, :nan] do
    with {phrase, ok?, _mask} <- spec(check),
         false <- is_number(x) and ok?.(x) do
      raise ArgumentError, "Gen.Dist.#{dist}: #{name} must be #{phrase}, got #{inspect(x)}"
    end

    Mx.tensor(x, type: :f64)
  end

  def param!(%Mx.Array{} = x, dist, name, check) do
    t = Mx.type(x)

    a =
      cond do
        Mx.Type.float?(t) ->
          x

        Mx.Type.complex?(t) ->
          raise ArgumentError, "Gen.Dist.#{dist}: #{name} must be real, got #{Mx.describe(x)}"

        true ->
          Mx.as_type(x, :f64)
      end

    if known?([x]), do: check!(a, dist, name, check)
    a
  end

  # A list is a constant wherever it is given.
  def param!(x, dist, name, check) when is_list(x) do
    a = Mx.tensor(x, type: :f64)
    check!(a, dist, name, check)
    a
  end

  def param!(x, dist, name, _check) do
    raise ArgumentError,
          "Gen.Dist.#{dist}: #{name} must be a number or an Mx array, got #{inspect(x)}"
  end

  defp check!(a, dist, name, check) do
    with {phrase, _ok?, mask} when mask != nil <- spec(check) do
      known!(Mx.any(mask.(a)), a, dist, "#{name} must be #{phrase}")
    end
  end

  defp spec(nil), do: nil
  defp spec({key, phrase}) when is_atom(key), do: put_elem(constraint(key), 0, phrase)
  # A bare number test (no array mask): arrays go unchecked.
  defp spec({ok?, phrase}) when is_function(ok?, 1), do: {phrase, ok?, nil}
  defp spec(key), do: constraint(key)

  @doc false
  # Raises when `bad` (a boolean scalar about parameters whose values are known) is true:
  # "Gen.Dist.<dist>: <what>, got <values>".
  @spec known!(Mx.t(), Mx.t() | [Mx.t()], String.t(), String.t()) :: :ok
  def known!(bad, shown, dist, what) do
    if Mx.to_number(bad) do
      got = shown |> List.wrap() |> Enum.map_join(" and ", &inspect(Mx.to_list(&1), limit: 20))
      raise ArgumentError, "Gen.Dist.#{dist}: #{what}, got #{got}"
    end

    :ok
  end

  @doc false
  # Whether every parameter as given is a constant to check now: numbers and lists always;
  # arrays when evaluated and given outside a generative function's body (inside one an array
  # may be computed from the very choices a move proposes, evaluated or not).
  @spec known?([term()]) :: boolean()
  def known?(given) do
    Enum.all?(given, fn
      %Mx.Array{} = a -> Mx.evaluated?(a) and not Gen.Handlers.running?()
      _ -> true
    end)
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
  # `lp` with -Inf where `inside:` (a mask of the support) is false and where `invalid:` (a
  # mask of invalid parameters, e.g. from invalid/2) is true; either may be nil.
  @spec restrict(Mx.t(), inside: Mx.t() | nil, invalid: Mx.t() | nil) :: Mx.t()
  def restrict(lp, masks) do
    lp = if m = masks[:inside], do: Mx.select(m, lp, :neg_infinity), else: lp
    if m = masks[:invalid], do: Mx.select(m, :neg_infinity, lp), else: lp
  end
end
