defmodule Mx.Random do
  @moduledoc """
  Functional random numbers: explicit keys, no hidden state.

  A key is an `Mx` array of type `:u32` and shape `{2}`. Every sampler takes
  a key first, then the distribution's parameters (numbers or arrays that
  broadcast against `shape:`), then options `shape:` and `type:`. The same
  key and shape always give the same values, however the work is split
  across threads and in whatever order the graph is evaluated. Using a key
  twice gives the same draw twice: derive fresh keys with `split/2` or
  `fold_in/2`.

      iex> key = Mx.Random.key(42)
      iex> [k1, k2] = key |> Mx.Random.split() |> Mx.to_list()
      iex> k1 != k2
      true
      iex> a = Mx.Random.normal(key, shape: {3}, type: :f64)
      iex> b = Mx.Random.normal(key, shape: {3}, type: :f64)
      iex> Mx.to_list(a) == Mx.to_list(b)
      true

  ## The generator

  Threefry-2x32 with 20 rounds (Salmon, Moraes, Dror and Shaw, "Parallel
  random numbers: as easy as 1, 2, 3", SC 2011), a keyed bijection of a
  64-bit counter, checked against the Random123 known-answer vectors. It is
  used in counter mode, so element `i` of a draw reads counter blocks chosen
  by `i` alone:

    * `bits/2`: element `i` of a `:u32` draw is word `rem(i, 2)` of block
      `div(i, 2)`; a `:u64` element `i` is block `i` (word 0 in the low half).
    * `uniform/4`: `f32` uses the top 24 bits of a `:u32` word, `f64` the top
      53 of a `:u64` block, so values lie in `[0, 1)`.
    * `split(key, n)`: key `i` is block `i`.
    * `normal/4`: Box–Muller on pairs of elements.
    * `truncated_normal/4`: element `i` inverts the CDF at a uniform from block `i`.
    * `gamma/4`, `poisson/3`, `randint/4` run rejection loops: element `i`
      reads blocks `t + i·2³²` for tries `t = 0, 1, …`, its own stream.

  Samplers of different kinds read overlapping blocks, so draw each with its
  own key.

  ## Samplers

  Continuous: `uniform/4`, `normal/4`, `truncated_normal/4`, `gamma/4`,
  `beta/4`, `dirichlet/3`, `exponential/3`, `laplace/4`, `cauchy/4`,
  `gumbel/4`, `multivariate_normal/4` (`type:` default `:f32`; `:f64`,
  `:f16` and `:bf16` too). Discrete: `bernoulli/3`, `categorical/3`,
  `randint/4`, `poisson/3`, `permutation/3`; raw words: `bits/2`.

  ## Where the work happens

  Six engine primitives do the drawing (`random_bits`, `random_normal`,
  `random_truncated_normal`, `random_gamma`, `random_poisson`,
  `random_randint`); every other sampler is composed from them with
  ordinary `Mx` ops, lazily, like any other graph.
  """

  import Bitwise
  alias Mx.{Array, NIF, Type}

  @type key :: Array.t()
  @type param :: Mx.tensor_like()

  @u64 0xFFFF_FFFF_FFFF_FFFF

  # ---- keys -----------------------------------------------------------------------

  @doc """
  A key from an integer seed in `[-2⁶³, 2⁶⁴)`: the seed's high and low 32-bit
  words (negative seeds are taken modulo 2⁶⁴), as in JAX and Nx.

      iex> Mx.Random.key(42) |> Mx.to_list()
      [0, 42]
      iex> Mx.Random.key(-1) |> Mx.to_list()
      [4294967295, 4294967295]
  """
  @spec key(integer()) :: key()
  def key(seed) when is_integer(seed) and seed >= -0x8000_0000_0000_0000 and seed <= @u64 do
    s = seed &&& @u64
    Mx.tensor([s >>> 32, s &&& 0xFFFF_FFFF], type: :u32)
  end

  def key(seed) do
    raise ArgumentError, "Mx.Random.key/1 expects an integer seed in [-2^63, 2^64), got #{inspect(seed)}"
  end

  @doc """
  `n` new keys from `key`, as one `{n, 2}` array; key `i` is `keys[i]`.
  Draw with the new keys, never again with `key` itself: `split` reads the
  same counter blocks that a draw with `key` would.

      iex> keys = Mx.Random.split(Mx.Random.key(0), 3)
      iex> Mx.shape(keys)
      {3, 2}
      iex> keys[1] |> Mx.shape()
      {2}
  """
  @spec split(key(), pos_integer()) :: Array.t()
  def split(key, n \\ 2)

  def split(key, n) when is_integer(n) and n >= 1 do
    check_key!(key, "split/2")
    draw(:random_bits, key, [], :u32, {n, 2})
  end

  def split(_key, n), do: raise(ArgumentError, "Mx.Random.split/2 expects a positive number of keys, got #{inspect(n)}")

  @doc """
  A new key from `key` and `data`: an integer (taken modulo 2⁶⁴) or a scalar
  integer array, so keys can be derived inside a lazy graph. Distinct data
  give independent keys; `fold_in(key, i)` is not `split(key, n)[i]`.

      iex> key = Mx.Random.key(7)
      iex> a = Mx.Random.fold_in(key, 1) |> Mx.to_list()
      iex> b = Mx.Random.fold_in(key, Mx.tensor(1)) |> Mx.to_list()
      iex> {a == b, a == Mx.to_list(Mx.Random.fold_in(key, 2))}
      {true, false}
  """
  @spec fold_in(key(), integer() | Array.t()) :: key()
  def fold_in(key, data) do
    check_key!(key, "fold_in/2")
    # A subkey from the last block (never reached by split or a draw), then data as its counter.
    domain = draw(:random_bits, key, [Mx.tensor([0xFFFF_FFFF, 0xFFFF_FFFF], type: :u32)], :u32, {2})
    draw(:random_bits, domain, [counter(data)], :u32, {2})
  end

  defp counter(data) when is_integer(data) do
    d = data &&& @u64
    Mx.tensor([d &&& 0xFFFF_FFFF, d >>> 32], type: :u32)
  end

  defp counter(%Array{shape: {}, type: t} = data) do
    unless Type.integer?(t) do
      raise ArgumentError, "Mx.Random.fold_in/2 expects integer data, got an array of type #{t}"
    end

    d = Mx.as_type(data, :u64)
    lo = Mx.as_type(d, :u32)
    # d - lo is a multiple of 2^32 below 2^64: exact in f64, and so is its quotient.
    hi = d |> Mx.subtract(Mx.as_type(lo, :u64)) |> Mx.as_type(:f64) |> Mx.divide(4_294_967_296.0) |> Mx.as_type(:u32)
    Mx.stack([lo, hi])
  end

  defp counter(other) do
    raise ArgumentError, "Mx.Random.fold_in/2 expects an integer or a scalar integer array, got #{inspect(other)}"
  end

  # ---- bits and uniforms --------------------------------------------------------------

  @doc """
  Raw random bits: `type:` `:u32` (default) or `:u64`; `shape:` default `{}`.
  `Mx.Random.key(0)` reads Threefry's block 0 under the zero key, which is
  Random123's first known-answer vector:

      iex> Mx.Random.bits(Mx.Random.key(0), shape: {2}) |> Mx.to_list()
      [0x6B200159, 0x99BA4EFE]
  """
  @spec bits(key(), keyword()) :: Array.t()
  def bits(key, opts \\ []) do
    check_key!(key, "bits/2")
    Mx.Opts.validate!(opts, [:shape, :type], "Mx.Random.bits/2")
    type = Type.normalize!(opts[:type] || :u32)

    unless type in [:u32, :u64] do
      raise ArgumentError,
            "Mx.Random.bits/2: type: must be :u32 or :u64, got #{inspect(type)}; use uniform/4 for floats"
    end

    draw(:random_bits, key, [], type, shape_opt!(opts, [], "bits/2"))
  end

  @doc """
  Uniform values in `[min, max)` (default `[0, 1)`). The unit draw has 24
  random bits in `f32` and 53 in `f64`; `min + (max - min)·u` is then rounded
  once, so for a wide `[min, max)` a value can round to `max`.

      iex> u = Mx.Random.uniform(Mx.Random.key(1), shape: {1000})
      iex> {Mx.type(u), Mx.to_number(Mx.all(Mx.greater_equal(u, 0.0))), Mx.to_number(Mx.all(Mx.less(u, 1.0)))}
      {:f32, true, true}
      iex> u = Mx.Random.uniform(Mx.Random.key(1), -2, Mx.tensor([0.0, 10.0], type: :f64))
      iex> Mx.describe(u)
      "f64[2]"
  """
  @spec uniform(key(), keyword()) :: Array.t()
  @spec uniform(key(), param(), param(), keyword()) :: Array.t()
  def uniform(key, opts \\ []) when is_list(opts), do: uniform(key, 0.0, 1.0, opts)

  def uniform(key, min, max, opts \\ []) do
    {type, shape, [lo, hi]} = setup!(key, [min, max], opts, "uniform/4")
    u = unit_draw(key, type, shape)
    if unit?(min, 0) and unit?(max, 1), do: u, else: Mx.add(lo, Mx.multiply(Mx.subtract(hi, lo), u))
  end

  # Half types hold fewer bits than f32's 24: round down to their grid, so [0, 1) survives the cast.
  defp unit_draw(key, type, shape) when type in [:f16, :bf16] do
    scale = if type == :f16, do: 2048.0, else: 256.0
    draw(:random_bits, key, [], :f32, shape) |> Mx.multiply(scale) |> Mx.floor() |> Mx.divide(scale) |> Mx.as_type(type)
  end

  defp unit_draw(key, type, shape), do: draw(:random_bits, key, [], type, shape)

  # Unit draws in (0, 1), symmetric about 1/2, for inverse-CDF samplers; half types
  # compute in f32 (their own grid would reach 1) and round the result once.
  defp open_uniform(key, type, shape), do: draw(:random_bits, key, [], compute_type(type), shape, [:open])

  defp compute_type(type) when type in [:f16, :bf16], do: :f32
  defp compute_type(type), do: type

  defp finish(%Array{type: type} = x, type), do: x
  defp finish(x, type), do: Mx.as_type(x, type)

  @doc """
  Bernoulli draws: `true` with probability `p` (default 0.5), compared
  against a 53-bit uniform so small `p` keep their precision. `type:`
  defaults to `:bool`.

      iex> b = Mx.Random.bernoulli(Mx.Random.key(3), Mx.tensor([0.0, 1.0]))
      iex> Mx.to_list(b)
      [false, true]
  """
  @spec bernoulli(key(), param() | keyword(), keyword()) :: Array.t()
  def bernoulli(key, p_or_opts \\ [], opts \\ [])
  def bernoulli(key, opts, []) when is_list(opts), do: bernoulli(key, 0.5, opts)

  def bernoulli(key, p, opts) do
    check_key!(key, "bernoulli/3")
    Mx.Opts.validate!(opts, [:shape, :type], "Mx.Random.bernoulli/3")
    type = Type.normalize!(opts[:type] || :bool)
    shape = shape_opt!(opts, [p], "bernoulli/3")
    p = param!(p, :f64, shape, "bernoulli/3", "p")
    b = Mx.less(draw(:random_bits, key, [], :f64, shape), p)
    if type == :bool, do: b, else: Mx.as_type(b, type)
  end

  @doc """
  Uniform integers in `[low, high)`, exactly uniform (Lemire's
  multiply-and-reject, no modulo bias). `type:` defaults to `:s64` and must
  be an integer type; the bounds must fit it.

      iex> x = Mx.Random.randint(Mx.Random.key(4), 0, 6, shape: {10_000}, type: :u8)
      iex> {Mx.type(x), Mx.to_number(Mx.reduce_min(x)), Mx.to_number(Mx.reduce_max(x))}
      {:u8, 0, 5}
  """
  @spec randint(key(), param(), param(), keyword()) :: Array.t()
  def randint(key, low, high, opts \\ []) do
    fun = "randint/4"
    check_key!(key, fun)
    Mx.Opts.validate!(opts, [:shape, :type], "Mx.Random.#{fun}")
    type = Type.normalize!(opts[:type] || :s64)
    unless Type.integer?(type), do: raise(ArgumentError, "Mx.Random.#{fun}: type: must be an integer type, got #{type}")

    if is_integer(low) and is_integer(high) do
      {min, max} = int_range(type)

      if high <= low or low < min or high - 1 > max do
        raise ArgumentError,
              "Mx.Random.#{fun}: the range [#{low}, #{high}) must be non-empty and fit #{type} ([#{min}, #{max}])"
      end
    end

    shape = shape_opt!(opts, [low, high], fun)
    bound = if type == :u64, do: :u64, else: :s64
    [lo, hi] = Enum.map([{low, "low"}, {high, "high"}], fn {x, name} -> int_param!(x, bound, shape, fun, name) end)
    draw(:random_randint, key, [lo, hi], type, shape)
  end

  defp int_range(type) do
    {kind, bits} = Type.to_nx(type)
    if kind == :u, do: {0, (1 <<< bits) - 1}, else: {-(1 <<< (bits - 1)), (1 <<< (bits - 1)) - 1}
  end

  defp int_param!(x, bound, shape, fun, name) when is_integer(x), do: param!(x, bound, shape, fun, name)

  defp int_param!(%Array{type: t} = x, bound, shape, fun, name) do
    unless Type.integer?(t),
      do: raise(ArgumentError, "Mx.Random.#{fun}: #{name} must be integers, got an array of type #{t}")

    param!(x, bound, shape, fun, name)
  end

  defp int_param!(x, _bound, _shape, fun, name) do
    raise ArgumentError, "Mx.Random.#{fun}: #{name} must be an integer or an integer array, got #{inspect(x)}"
  end

  # ---- continuous distributions -------------------------------------------------------

  @doc """
  Normal draws with mean `mu` and standard deviation `sigma` (default 0, 1),
  by Box–Muller in the engine.

      iex> z = Mx.Random.normal(Mx.Random.key(5), shape: {2, 3}, type: :f64)
      iex> Mx.describe(z)
      "f64[2][3]"
      iex> Mx.Random.normal(Mx.Random.key(5), Mx.tensor([0.0, 100.0]), 1.0) |> Mx.shape()
      {2}
  """
  @spec normal(key(), keyword()) :: Array.t()
  @spec normal(key(), param(), param(), keyword()) :: Array.t()
  def normal(key, opts \\ []) when is_list(opts), do: normal(key, 0.0, 1.0, opts)

  def normal(key, mu, sigma, opts \\ []) do
    {type, shape, [m, s]} = setup!(key, [mu, sigma], opts, "normal/4")
    z = draw(:random_normal, key, [], type, shape)
    z = if unit?(sigma, 1), do: z, else: Mx.multiply(s, z)
    if unit?(mu, 0), do: z, else: Mx.add(m, z)
  end

  @doc """
  Standard normal draws restricted to `[lower, upper]` (use `:neg_infinity`
  and `:infinity` for open sides), by inverting the CDF in log space with
  Newton's method on log Φ: exact however far in a tail the interval lies.
  `lower < upper` is required; other elements are NaN.

      iex> x = Mx.Random.truncated_normal(Mx.Random.key(6), 8.0, :infinity, shape: {1000}, type: :f64)
      iex> Mx.to_number(Mx.reduce_min(x)) >= 8.0
      true
  """
  @spec truncated_normal(key(), param(), param(), keyword()) :: Array.t()
  def truncated_normal(key, lower, upper, opts \\ []) do
    {type, shape, params} = setup!(key, [lower, upper], opts, "truncated_normal/4")
    draw(:random_truncated_normal, key, params, type, shape)
  end

  @doc """
  Gamma draws with shape `alpha` and scale `scale` (default 1): Marsaglia and
  Tsang's method, with `u^(1/alpha)` boosting for `alpha < 1` (taken in logs,
  so tiny `alpha` underflow only at the very end). `alpha <= 0` gives NaN.

      iex> g = Mx.Random.gamma(Mx.Random.key(7), Mx.tensor([0.5, 2.0, 50.0]), shape: {4, 3})
      iex> Mx.describe(g)
      "f32[4][3]"
  """
  @spec gamma(key(), param(), param() | keyword(), keyword()) :: Array.t()
  def gamma(key, alpha, scale_or_opts \\ [], opts \\ [])
  def gamma(key, alpha, opts, []) when is_list(opts), do: gamma(key, alpha, 1.0, opts)

  def gamma(key, alpha, scale, opts) do
    {type, shape, [a, s]} = setup!(key, [alpha, scale], opts, "gamma/4")
    g = draw(:random_gamma, key, [a], type, shape)
    if unit?(scale, 1), do: g, else: Mx.multiply(g, s)
  end

  # log of a gamma draw, computed in logs throughout (for beta and dirichlet).
  defp log_gamma_draw(key, alpha, type, shape), do: draw(:random_gamma, key, [alpha], type, shape, [:log])

  @doc """
  Beta draws, `X / (X + Y)` for `X ~ Gamma(a)`, `Y ~ Gamma(b)`, formed from
  the gammas' logs as `sigmoid(log X - log Y)`, so small `a`, `b` do not
  make 0/0.

      iex> x = Mx.Random.beta(Mx.Random.key(8), 0.5, 0.5, shape: {1000}, type: :f64)
      iex> Mx.to_number(Mx.all(Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less_equal(x, 1.0))))
      true
  """
  @spec beta(key(), param(), param(), keyword()) :: Array.t()
  def beta(key, a, b, opts \\ []) do
    {type, shape, [pa, pb]} = setup!(key, [a, b], opts, "beta/4")
    keys = split(key)
    la = log_gamma_draw(keys[0], pa, type, shape)
    lb = log_gamma_draw(keys[1], pb, type, shape)
    Mx.sigmoid(Mx.subtract(la, lb))
  end

  @doc """
  Dirichlet draws: `alpha` has the categories on its last axis, `shape:` is
  the batch shape (default: `alpha`'s other axes), and the result has shape
  `shape` followed by the number of categories. Normalized gammas, formed in
  logs (a softmax of log-gamma draws).

      iex> x = Mx.Random.dirichlet(Mx.Random.key(9), Mx.tensor([1.0, 2.0, 3.0]), shape: {5})
      iex> Mx.shape(x)
      {5, 3}
      iex> x |> Mx.sum(axes: [1]) |> Mx.to_list() |> Enum.all?(&(abs(&1 - 1) < 1.0e-6))
      true
  """
  @spec dirichlet(key(), param(), keyword()) :: Array.t()
  def dirichlet(key, alpha, opts \\ []) do
    fun = "dirichlet/3"
    check_key!(key, fun)
    Mx.Opts.validate!(opts, [:shape, :type], "Mx.Random.#{fun}")
    # A list is built in the draw's type (not f32 then cast, which would round an f64 request).
    alpha = if is_list(alpha), do: Mx.tensor(alpha, type: float_type!([], opts, fun)), else: alpha

    unless match?(%Array{}, alpha) and tuple_size(alpha.shape) >= 1 do
      raise ArgumentError,
            "Mx.Random.#{fun}: alpha must be an array with the categories on its last axis, got #{inspect(alpha)}"
    end

    k = elem(alpha.shape, tuple_size(alpha.shape) - 1)
    batch = opts[:shape] || Tuple.delete_at(alpha.shape, tuple_size(alpha.shape) - 1)
    type = float_type!([alpha], opts, fun)
    shape = Tuple.append(batch, k)
    a = param!(alpha, type, shape, fun, "alpha")
    l = log_gamma_draw(key, a, type, shape)
    Mx.exp(Mx.subtract(l, Mx.logsumexp(l, axes: [-1], keep_axes: true)))
  end

  @doc """
  Exponential draws with rate `rate` (default 1): `-log(u) / rate` for `u`
  uniform in (0, 1).

      iex> x = Mx.Random.exponential(Mx.Random.key(10), shape: {100})
      iex> Mx.to_number(Mx.reduce_min(x)) > 0
      true
  """
  @spec exponential(key(), param() | keyword(), keyword()) :: Array.t()
  def exponential(key, rate_or_opts \\ [], opts \\ [])
  def exponential(key, opts, []) when is_list(opts), do: exponential(key, 1.0, opts)

  def exponential(key, rate, opts) do
    {type, shape, [r]} = setup!(key, [rate], opts, "exponential/3")
    e = key |> open_uniform(type, shape) |> Mx.log() |> Mx.negate()
    finish(if(unit?(rate, 1), do: e, else: Mx.divide(e, r)), type)
  end

  @doc """
  Laplace draws with location `loc` and scale `scale` (default 0, 1), by
  inverting the CDF at a uniform in (0, 1).

      iex> Mx.Random.laplace(Mx.Random.key(11), 5.0, 0.5, shape: {3}) |> Mx.shape()
      {3}
  """
  @spec laplace(key(), keyword()) :: Array.t()
  @spec laplace(key(), param(), param(), keyword()) :: Array.t()
  def laplace(key, opts \\ []) when is_list(opts), do: laplace(key, 0.0, 1.0, opts)

  def laplace(key, loc, scale, opts \\ []) do
    {type, shape, [l, s]} = setup!(key, [loc, scale], opts, "laplace/4")
    # v in (-1/2, 1/2), never 0; 1 - 2|v| is exact, so the tails reach the uniform's resolution.
    v = key |> open_uniform(type, shape) |> Mx.subtract(0.5)
    x = Mx.multiply(Mx.negate(Mx.sign(v)), Mx.log(Mx.subtract(1.0, Mx.multiply(2.0, Mx.abs(v)))))
    x |> locate(loc, scale, l, s) |> finish(type)
  end

  @doc """
  Cauchy draws with location `loc` and scale `scale` (default 0, 1):
  `tan(π(u - 1/2))`, computed in `f64` so the tails are not cut by the
  rounding of π/2.

      iex> Mx.Random.cauchy(Mx.Random.key(12), shape: {2, 2}, type: :f64) |> Mx.describe()
      "f64[2][2]"
  """
  @spec cauchy(key(), keyword()) :: Array.t()
  @spec cauchy(key(), param(), param(), keyword()) :: Array.t()
  def cauchy(key, opts \\ []) when is_list(opts), do: cauchy(key, 0.0, 1.0, opts)

  def cauchy(key, loc, scale, opts \\ []) do
    {type, shape, [l, s]} = setup!(key, [loc, scale], opts, "cauchy/4")
    x = key |> open_uniform(:f64, shape) |> Mx.subtract(0.5) |> Mx.multiply(:math.pi()) |> Mx.tan()
    x |> finish(compute_type(type)) |> locate(loc, scale, l, s) |> finish(type)
  end

  @doc """
  Gumbel draws with location `loc` and scale `scale` (default 0, 1):
  `-log(-log u)` for `u` uniform in (0, 1).

      iex> Mx.Random.gumbel(Mx.Random.key(13), shape: {4}) |> Mx.describe()
      "f32[4]"
  """
  @spec gumbel(key(), keyword()) :: Array.t()
  @spec gumbel(key(), param(), param(), keyword()) :: Array.t()
  def gumbel(key, opts \\ []) when is_list(opts), do: gumbel(key, 0.0, 1.0, opts)

  def gumbel(key, loc, scale, opts \\ []) do
    {type, shape, [l, s]} = setup!(key, [loc, scale], opts, "gumbel/4")
    x = key |> open_uniform(type, shape) |> Mx.log() |> Mx.negate() |> Mx.log() |> Mx.negate()
    x |> locate(loc, scale, l, s) |> finish(type)
  end

  defp locate(x, loc, scale, l, s) do
    x = if unit?(scale, 1), do: x, else: Mx.multiply(s, x)
    if unit?(loc, 0), do: x, else: Mx.add(l, x)
  end

  @doc """
  Multivariate normal draws with mean `mean` (`{..., d}`) and covariance
  `cov` (`{d, d}`, symmetric positive definite): `mean + z Lᵀ` with `L` the
  Cholesky factor of `cov` and `z` standard normal. `shape:` is the batch
  shape (default: `mean`'s leading axes); the result is `shape` followed by `d`.

      iex> cov = Mx.tensor([[1.0, 0.5], [0.5, 2.0]])
      iex> Mx.Random.multivariate_normal(Mx.Random.key(14), Mx.tensor([0.0, 1.0]), cov, shape: {10}) |> Mx.shape()
      {10, 2}
  """
  @spec multivariate_normal(key(), param(), param(), keyword()) :: Array.t()
  def multivariate_normal(key, mean, cov, opts \\ []) do
    fun = "multivariate_normal/4"
    check_key!(key, fun)
    Mx.Opts.validate!(opts, [:shape, :type], "Mx.Random.#{fun}")
    list_type = float_type!([], opts, fun)
    mean = if is_list(mean), do: Mx.tensor(mean, type: list_type), else: mean
    cov = if is_list(cov), do: Mx.tensor(cov, type: list_type), else: cov

    d =
      case {mean, cov} do
        {%Array{shape: ms}, %Array{shape: {d, d}}} when tuple_size(ms) >= 1 and elem(ms, tuple_size(ms) - 1) == d ->
          d

        _ ->
          raise ArgumentError,
                "Mx.Random.#{fun}: expects mean {..., d} and cov {d, d}, got #{desc(mean)} and #{desc(cov)}"
      end

    type = float_type!([mean, cov], opts, fun)
    batch = opts[:shape] || Tuple.delete_at(mean.shape, tuple_size(mean.shape) - 1)
    shape = Tuple.append(batch, d)
    m = param!(mean, type, shape, fun, "mean")
    l = cov |> Mx.as_type(type) |> Mx.Linalg.cholesky()
    z = draw(:random_normal, key, [], type, shape)
    Mx.add(m, Mx.matmul(z, Mx.transpose(l)))
  end

  # ---- discrete distributions ---------------------------------------------------------

  @doc """
  Poisson draws with rate `rate`: exact for every rate, by inversion below
  10 and Hörmann's transformed rejection (PTRS, 1993) above. `type:` defaults
  to `:s64`; with an integer type an invalid rate (negative, NaN or
  infinite) raises on evaluation, with a float type it gives NaN.

      iex> x = Mx.Random.poisson(Mx.Random.key(15), Mx.tensor([0.0, 3.0, 1000.0]))
      iex> {Mx.type(x), x |> Mx.to_list() |> hd()}
      {:s64, 0}
  """
  @spec poisson(key(), param(), keyword()) :: Array.t()
  def poisson(key, rate, opts \\ []) do
    fun = "poisson/3"
    check_key!(key, fun)
    Mx.Opts.validate!(opts, [:shape, :type], "Mx.Random.#{fun}")
    type = Type.normalize!(opts[:type] || :s64)
    shape = shape_opt!(opts, [rate], fun)
    draw(:random_poisson, key, [param!(rate, :f64, shape, fun, "rate")], type, shape)
  end

  @doc """
  Categorical draws from unnormalized log-probabilities `logits`, by the
  Gumbel-max trick (`argmax(logits + g)`, with `f64` Gumbel noise). The
  categories lie along `axis:` (default -1); the result has `logits`'
  other axes, preceded by `num_samples:` draws if given (or give the full
  `shape:`, which must end with those axes). Indices are `:s64` unless
  `type:` says otherwise.

      iex> logits = Mx.log(Mx.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
      iex> Mx.Random.categorical(Mx.Random.key(16), logits) |> Mx.to_list()
      [0, 2]
      iex> Mx.Random.categorical(Mx.Random.key(16), logits, num_samples: 5) |> Mx.shape()
      {5, 2}
  """
  @spec categorical(key(), param(), keyword()) :: Array.t()
  def categorical(key, logits, opts \\ []) do
    fun = "categorical/3"
    check_key!(key, fun)
    Mx.Opts.validate!(opts, [:axis, :shape, :num_samples, :type], "Mx.Random.#{fun}")
    # The draw works in f64: a list goes straight there, not through f32.
    logits = if is_list(logits), do: Mx.tensor(logits, type: :f64), else: logits

    unless match?(%Array{}, logits) and tuple_size(logits.shape) >= 1 do
      raise ArgumentError, "Mx.Random.#{fun}: logits must be an array of rank >= 1, got #{inspect(logits)}"
    end

    rank = tuple_size(logits.shape)
    axis = opts[:axis] || -1
    axis = if axis < 0, do: axis + rank, else: axis

    unless axis in 0..(rank - 1),
      do: raise(ArgumentError, "Mx.Random.#{fun}: axis #{opts[:axis]} is out of range for rank #{rank}")

    k = elem(logits.shape, axis)
    batch = Tuple.delete_at(logits.shape, axis)

    shape =
      cond do
        s = opts[:shape] ->
          n = tuple_size(s) - tuple_size(batch)

          unless n >= 0 and Tuple.to_list(s) |> Enum.drop(n) == Tuple.to_list(batch) do
            raise ArgumentError, "Mx.Random.#{fun}: shape: #{inspect(s)} must end with the batch axes #{inspect(batch)}"
          end

          s

        n = opts[:num_samples] ->
          Tuple.insert_at(batch, 0, n)

        true ->
          batch
      end

    perm = Enum.to_list(0..(rank - 1)) |> List.delete(axis) |> Kernel.++([axis])
    moved = logits |> Mx.as_type(:f64) |> Mx.transpose(axes: perm)
    noise = gumbel(key, shape: Tuple.append(shape, k), type: :f64)
    idx = Mx.argmax(Mx.add(moved, noise), axis: -1)
    type = Type.normalize!(opts[:type] || :s64)
    if type == :s64, do: idx, else: Mx.as_type(idx, type)
  end

  @doc """
  A random permutation: of `0..n-1` for an integer `n` (as `:s64`), or of an
  array's elements along `axis:` (default 0). Sorts 64 random bits per
  element, so ties, which would favour the original order, have
  probability below n²/2⁶⁵.

      iex> p = Mx.Random.permutation(Mx.Random.key(17), 5)
      iex> p |> Mx.to_list() |> Enum.sort()
      [0, 1, 2, 3, 4]
      iex> Mx.Random.permutation(Mx.Random.key(17), Mx.tensor([[1, 2], [3, 4]]), axis: 1) |> Mx.shape()
      {2, 2}
  """
  @spec permutation(key(), pos_integer() | Array.t(), keyword()) :: Array.t()
  def permutation(key, n_or_array, opts \\ [])

  def permutation(key, n, opts) when is_integer(n) and n >= 0 do
    check_key!(key, "permutation/3")
    Mx.Opts.validate!(opts, [:axis], "Mx.Random.permutation/3")
    draw(:random_bits, key, [], :u64, {n}) |> Mx.argsort()
  end

  def permutation(key, %Array{shape: s} = a, opts) when tuple_size(s) >= 1 do
    Mx.Opts.validate!(opts, [:axis], "Mx.Random.permutation/3")
    axis = opts[:axis] || 0
    axis = if axis < 0, do: axis + tuple_size(s), else: axis

    unless axis in 0..(tuple_size(s) - 1) do
      raise ArgumentError, "Mx.Random.permutation/3: axis #{opts[:axis]} is out of range for #{Mx.describe(a)}"
    end

    Mx.take(a, permutation(key, elem(s, axis)), axis: axis)
  end

  def permutation(_key, other, _opts) do
    raise ArgumentError,
          "Mx.Random.permutation/3 expects a non-negative integer or an array of rank >= 1, got #{inspect(other)}"
  end

  # ---- helpers ------------------------------------------------------------------------

  defp draw(op, key, params, type, shape, flags \\ []) do
    NIF.random(op, key.ref, Enum.map(params, & &1.ref), type, shape, flags) |> Array.wrap()
  end

  defp check_key!(%Array{type: :u32, shape: {2}}, _fun), do: :ok

  defp check_key!(other, fun) do
    raise ArgumentError,
          "Mx.Random.#{fun}: the key must be a u32 array of shape {2} " <>
            "(from Mx.Random.key/1, split/2 or fold_in/2), got #{desc(other)}"
  end

  defp desc(%Array{} = a), do: Mx.describe(a)
  defp desc(other), do: inspect(other)

  # The float type, shape and parameters (cast to the type) of a float sampler.
  defp setup!(key, params, opts, fun) do
    check_key!(key, fun)
    Mx.Opts.validate!(opts, [:shape, :type], "Mx.Random.#{fun}")
    type = float_type!(params, opts, fun)
    shape = shape_opt!(opts, params, fun)
    names = Enum.map(1..length(params), &"parameter #{&1}")
    {type, shape, Enum.zip_with(params, names, &param!(&1, type, shape, fun, &2))}
  end

  # type: if given (a float type), else the widest float type among array parameters, else f32.
  defp float_type!(params, opts, fun) do
    case opts[:type] do
      nil ->
        params
        |> Enum.flat_map(fn
          %Array{type: t} -> if Type.float?(t), do: [t], else: []
          _ -> []
        end)
        |> Enum.reduce(:f32, &Type.merge/2)

      t ->
        t = Type.normalize!(t)
        unless Type.float?(t), do: raise(ArgumentError, "Mx.Random.#{fun}: type: must be a float type, got #{t}")
        t
    end
  end

  # shape: if given, else the broadcast shape of the array parameters.
  defp shape_opt!(opts, params, fun) do
    case opts[:shape] do
      nil ->
        params
        |> Enum.flat_map(fn
          %Array{shape: s} -> [s]
          _ -> []
        end)
        |> Enum.reduce({}, &broadcast_shapes!(&1, &2, fun))

      s when is_tuple(s) ->
        unless Enum.all?(Tuple.to_list(s), &(is_integer(&1) and &1 >= 0)) do
          raise ArgumentError, "Mx.Random.#{fun}: shape: must be a tuple of non-negative integers, got #{inspect(s)}"
        end

        s

      s ->
        raise ArgumentError, "Mx.Random.#{fun}: shape: must be a tuple, got #{inspect(s)}"
    end
  end

  defp broadcast_shapes!(a, b, fun) do
    Mx.broadcast_shape(a, b) ||
      raise ArgumentError,
            "Mx.Random.#{fun}: parameter shapes #{inspect(a)} and #{inspect(b)} do not broadcast together"
  end

  # A parameter as an array of `type` that broadcasts to `shape`.
  defp param!(x, type, shape, fun, name) do
    a =
      case x do
        %Array{} -> if x.type == type, do: x, else: Mx.as_type(x, type)
        # Through a list, so u64 values past 2^63 encode exactly.
        n when is_integer(n) -> [n] |> Mx.tensor(type: type) |> Mx.reshape({})
        n when is_number(n) or n in [:nan, :infinity, :neg_infinity] -> Mx.tensor(n, type: type)
        list when is_list(list) -> Mx.tensor(list, type: type)
        other -> raise ArgumentError, "Mx.Random.#{fun}: #{name} must be a number or an array, got #{inspect(other)}"
      end

    {ps, s} = {Tuple.to_list(a.shape), Tuple.to_list(shape)}

    ok =
      length(ps) <= length(s) and
        Enum.zip(Enum.reverse(ps), Enum.reverse(s)) |> Enum.all?(fn {p, d} -> p == 1 or p == d end)

    unless ok do
      raise ArgumentError,
            "Mx.Random.#{fun}: #{name} has shape #{inspect(a.shape)}, " <>
              "which does not broadcast to shape: #{inspect(shape)}"
    end

    a
  end

  defp unit?(x, v) when is_number(x), do: x == v
  defp unit?(_x, _v), do: false
end
