defmodule Gen.Transform do
  @moduledoc """
  Constraining transforms: bijections from an unconstrained space ℝⁿ onto
  the support of a continuous choice, with the log |det| of their Jacobian,
  as Stan, PyMC and NumPyro use them. The gradient-based algorithms (NUTS,
  HMC, MALA, MAP, ADVI) move a selected choice on the unconstrained scale:
  each distribution declares its support (`Gen.Distribution.support/1`),
  `default/1` picks the transform for it, and the algorithms add the
  log-Jacobian to the log joint (not for MAP, whose optimum is the mode of
  the constrained density, as Stan's optimizer finds it).

  ## Supports (what a distribution declares)

    * `:real` — the whole line (normal, cauchy, laplace, student_t, multivariate normal …);
    * `:positive` — x > 0 (gamma, inv_gamma, exponential, log_normal);
    * `:unit_interval` — 0 < x < 1 (beta, beta_uniform_mixture);
    * `{:interval, lo, hi}` — lo < x < hi elementwise, the bounds numbers,
      `:neg_infinity`/`:infinity` or Mx arrays, an infinite bound leaving that
      side open (uniform, truncated_normal, piecewise_uniform); the bounds are
      the distribution's current parameters, so where they are computed from
      other choices the transform follows them;
    * `:simplex` — the last axis non-negative and summing to 1 (dirichlet);
    * `:positive_definite` — the last two axes a symmetric positive-definite
      matrix (wishart, inv_wishart);
    * `:cholesky_factor` — lower triangular with a positive diagonal;
    * `:corr_cholesky` — the Cholesky factor of a correlation matrix (unit rows);
    * `:ordered` — the last axis strictly increasing;
    * `:discrete` — not a continuous support: gradient-based algorithms refuse it.

  ## Transforms (what `default/1` picks; also the `transforms:` overrides)

  | transform | x from u | log-Jacobian |
  |---|---|---|
  | `:identity` | x = u | 0 |
  | `:log` | x = eᵘ | Σ u |
  | `:logit` | x = σ(u) | Σ log σ(u) + log σ(−u) |
  | `{:lower, a}` | x = a + eᵘ | Σ u |
  | `{:upper, b}` | x = b − eᵘ | Σ u |
  | `{:interval, a, b}` | x = a + (b − a)σ(u) | Σ log(b − a) + log σ(u) + log σ(−u) |
  | `:ordered` | x₁ = u₁, xₖ = xₖ₋₁ + e^(uₖ) | Σₖ₌₂ uₖ |
  | `:simplex` | stick-breaking (K − 1 → K) | see below |
  | `:positive_definite` | X = L Lᵀ, L lower with e^(u) on the diagonal | p log 2 + Σₖ (p − k + 1) uₖₖ, k from 0 |
  | `:cholesky_factor` | L lower with e^(u) on the diagonal | Σₖ uₖₖ |
  | `:corr_cholesky` | tanh partial correlations (p(p−1)/2 → p×p) | see below |

  Elementwise transforms keep the shape. `:simplex` maps `{..., K - 1}` to
  `{..., K}` as Stan does: zₖ = σ(uₖ − log(K − k)), xₖ = rₖ zₖ with rₖ the
  stick left, and log-Jacobian Σ log zₖ + log(1 − zₖ) + log rₖ.
  `:positive_definite` and `:cholesky_factor` map `{..., p(p+1)/2}` (the
  lower triangle, row by row) to `{..., p, p}`; `:corr_cholesky` maps
  `{..., p(p−1)/2}` (the strict lower triangle) to `{..., p, p}` with Lᵢⱼ =
  zᵢⱼ √(1 − Σ_{k<j} Lᵢₖ²), z = tanh(u), and log-Jacobian Σ log(1 − zᵢⱼ²) +
  ½ log(1 − Σ_{k<j} Lᵢₖ²) (Stan's `cholesky_corr_constrain`). The density of a
  matrix choice is taken with respect to its free entries (the lower
  triangle, or the strict lower triangle of a correlation factor), as the
  Wishart's is.

  In a `transforms:` override a bound may also be a function of one
  argument: it receives a `Gen.Choicemap` of the current values of the
  model's choices (a selected choice on its constrained scale, once the
  model has visited it; one it visits later is absent, and
  `Gen.Choicemap.get/2` raises a KeyError for it) and returns the bound, so
  a bound may depend on other parameters as in Stan's `real<lower=a> b;`.

      iex> {x, lj} = Gen.Transform.constrain(:log, Mx.tensor([0.0, 1.0], type: :f64))
      iex> {Mx.to_list(x), Mx.to_number(lj)}
      {[1.0, 2.718281828459045], 1.0}
      iex> Gen.Transform.unconstrain(:log, x) |> Mx.to_list()
      [0.0, 1.0]
      iex> Gen.Transform.default(Gen.Distribution.support(Gen.Dist.gamma(2.0, rate: 1.0)))
      :log
  """

  @type bound ::
          number() | :infinity | :neg_infinity | Mx.t() | (Gen.Choicemap.t() -> Mx.tensor_like())

  @type support ::
          :real
          | :positive
          | :unit_interval
          | {:interval, bound(), bound()}
          | :simplex
          | :positive_definite
          | :cholesky_factor
          | :corr_cholesky
          | :ordered
          | :discrete

  @type t ::
          :identity
          | :log
          | :logit
          | {:lower, bound()}
          | {:upper, bound()}
          | {:interval, bound(), bound()}
          | :ordered
          | :simplex
          | :positive_definite
          | :cholesky_factor
          | :corr_cholesky

  @structured [:ordered, :simplex, :positive_definite, :cholesky_factor, :corr_cholesky]

  @doc """
  The transform for a support (Stan's choice for each constrained type).

      iex> Enum.map([:real, :positive, :unit_interval, :simplex], &Gen.Transform.default/1)
      [:identity, :log, :logit, :simplex]
  """
  @spec default(support()) :: t() | nil
  def default(:real), do: :identity
  def default(:positive), do: :log
  def default(:unit_interval), do: :logit
  def default({:interval, lo, hi}), do: {:interval, lo, hi}
  def default(s) when s in @structured, do: s
  def default(:discrete), do: nil

  @doc """
  A `transforms:` override checked: the transform itself, or an
  ArgumentError naming `where` (the calling function) and the address.

      iex> Gen.Transform.validate!({:interval, 0, 1}, :p, "Gen.Inference.NUTS.sample")
      {:interval, 0, 1}
  """
  @spec validate!(term(), term(), String.t()) :: t()
  def validate!(t, _addr, _where) when t in [:identity, :log, :logit] or t in @structured, do: t

  def validate!({:interval, a, b} = t, addr, where) do
    if bound?(a) and bound?(b) and not (is_number(a) and is_number(b) and a >= b),
      do: t,
      else: invalid!(t, addr, where)
  end

  def validate!({side, a} = t, addr, where) when side in [:lower, :upper],
    do: if(bound?(a), do: t, else: invalid!(t, addr, where))

  def validate!(t, addr, where), do: invalid!(t, addr, where)

  defp bound?(a),
    do:
      is_number(a) or a in [:infinity, :neg_infinity] or match?(%Mx.Array{}, a) or
        is_function(a, 1)

  defp invalid!(t, addr, where) do
    raise ArgumentError,
          "#{where}: transforms: #{inspect(t)} at #{inspect(addr)} is not a transform; use :identity, :log, :logit, " <>
            "{:interval, a, b} with a < b, {:lower, a}, {:upper, b} (a bound a number, an Mx array or a function of the " <>
            "current choicemap), :ordered, :simplex, :positive_definite, :cholesky_factor or :corr_cholesky"
  end

  @doc """
  Whether a transform has a bound given as a function (resolved with
  `resolve/2` against the current values before use).
  """
  @spec dependent?(t()) :: boolean()
  def dependent?({:interval, a, b}), do: is_function(a, 1) or is_function(b, 1)
  def dependent?({side, a}) when side in [:lower, :upper], do: is_function(a, 1)
  def dependent?(_t), do: false

  @doc """
  The transform with its function bounds evaluated on `values` (a
  `Gen.Choicemap`); `where` names the caller in the error for a bad bound.

      iex> cm = Gen.choicemap(%{a: 2.0})
      iex> {:lower, b} = Gen.Transform.resolve({:lower, fn c -> c[:a] end}, cm, "example")
      iex> Mx.to_number(b)
      2.0
  """
  @spec resolve(t(), Gen.Choicemap.t(), String.t()) :: t()
  def resolve({:interval, a, b}, values, where),
    do: {:interval, call_bound(a, values, where), call_bound(b, values, where)}

  def resolve({side, a}, values, where) when side in [:lower, :upper],
    do: {side, call_bound(a, values, where)}

  def resolve(t, _values, _where), do: t

  defp call_bound(f, values, where) when is_function(f, 1) do
    case f.(values) do
      x when is_number(x) or x in [:infinity, :neg_infinity] ->
        x

      %Mx.Array{} = x ->
        x

      other ->
        raise ArgumentError,
              "#{where}: a transforms: bound function returned #{inspect(other)}; it must return a number or an Mx array " <>
                "(it gets a choicemap of the current values: a selected choice the model visits later has no value there yet)"
    end
  end

  defp call_bound(x, _values, _where), do: x

  @doc """
  The unconstrained shape for a value of shape `shape`.

      iex> Gen.Transform.unconstrained_shape(:simplex, {2, 4})
      {2, 3}
      iex> Gen.Transform.unconstrained_shape(:positive_definite, {3, 3})
      {6}
  """
  @spec unconstrained_shape(t(), tuple()) :: tuple()
  def unconstrained_shape(:simplex, shape), do: put_last(shape, 1, last_dim(shape, :simplex) - 1)

  def unconstrained_shape(t, shape)
      when t in [:positive_definite, :cholesky_factor, :corr_cholesky] do
    p = square_dim(shape, t)
    m = if t == :corr_cholesky, do: div(p * (p - 1), 2), else: div(p * (p + 1), 2)
    put_last(shape, 2, m)
  end

  def unconstrained_shape(:ordered, shape) do
    _ = last_dim(shape, :ordered)
    shape
  end

  def unconstrained_shape(_t, shape), do: shape

  defp last_dim(shape, t) do
    case Tuple.to_list(shape) do
      [] ->
        raise ArgumentError,
              "Gen.Transform: #{inspect(t)} needs a value with a last axis, got shape #{inspect(shape)}"

      dims ->
        List.last(dims)
    end
  end

  defp square_dim(shape, t) do
    case Tuple.to_list(shape) |> Enum.take(-2) do
      [p, p] when p >= 1 ->
        p

      _ ->
        raise ArgumentError,
              "Gen.Transform: #{inspect(t)} needs {..., p, p} matrices, got shape #{inspect(shape)}"
    end
  end

  # `shape` with its last `k` axes replaced by one axis of size `m`.
  defp put_last(shape, k, m), do: List.to_tuple(Enum.drop(Tuple.to_list(shape), -k) ++ [m])

  # ---- constrain: u -> {x, log |det J|} --------------------------------------------------

  @doc """
  The constrained value x for the unconstrained `u` and the log |det| of
  the Jacobian dx/du (an f64-or-`u`-typed scalar, summed over the whole array).
  Differentiable in `u` (and in array bounds).

      iex> {x, lj} = Gen.Transform.constrain(:simplex, Mx.tensor([0.0, 0.0], type: :f64))
      iex> {Enum.map(Mx.to_list(x), &Float.round(&1, 12)), Float.round(Mx.to_number(lj), 12)}
      {[0.333333333333, 0.333333333333, 0.333333333333], Float.round(:math.log(1 / 3) + 2 * :math.log(2 / 3) + 2 * :math.log(0.5), 12)}
  """
  @spec constrain(t(), Mx.t()) :: {Mx.t(), Mx.t()}
  def constrain(:identity, u), do: {u, Mx.tensor(0.0, type: Mx.type(u))}
  def constrain(:log, u), do: {Mx.exp(u), Mx.sum(u)}

  def constrain(:logit, u),
    do: {Mx.sigmoid(u), Mx.sum(Mx.add(log_sigmoid(u), log_sigmoid(Mx.negate(u))))}

  def constrain({:lower, a}, u) when is_number(a), do: {Mx.add(Mx.exp(u), a * 1.0), Mx.sum(u)}

  def constrain({:upper, b}, u) when is_number(b),
    do: {Mx.subtract(b * 1.0, Mx.exp(u)), Mx.sum(u)}

  def constrain({:lower, a}, u), do: constrain({:interval, a, :infinity}, u)
  def constrain({:upper, b}, u), do: constrain({:interval, :neg_infinity, b}, u)

  def constrain({:interval, a, b}, u) when is_number(a) and is_number(b) do
    x = Mx.add(Mx.multiply(Mx.sigmoid(u), (b - a) * 1.0), a * 1.0)

    lj =
      Mx.add(
        Mx.sum(Mx.add(log_sigmoid(u), log_sigmoid(Mx.negate(u)))),
        Mx.size(u) * :math.log(b - a)
      )

    {x, lj}
  end

  def constrain({:interval, a, b}, u) do
    # Array (or infinite) bounds, elementwise: both finite, one side, or neither. The unused
    # branches see safe inputs, so no inf or NaN reaches the gradient through them.
    %{lo: lo, hi: hi, both: both, lower: lower, upper: upper} = sides(a, b, u)
    one = Mx.logical_or(lower, upper)
    e = Mx.exp(Mx.select(one, u, 0.0))
    width = Mx.select(both, Mx.subtract(hi, lo), 1.0)
    x2 = Mx.add(lo, Mx.multiply(width, Mx.sigmoid(u)))

    x =
      Mx.select(
        both,
        x2,
        Mx.select(lower, Mx.add(lo, e), Mx.select(upper, Mx.subtract(hi, e), u))
      )

    lj2 = Mx.add(Mx.log(width), Mx.add(log_sigmoid(u), log_sigmoid(Mx.negate(u))))
    lj = Mx.select(both, lj2, Mx.select(one, u, 0.0))
    {x, Mx.sum(Mx.broadcast(lj, Mx.shape(x)))}
  end

  def constrain(:ordered, u) do
    k = last_dim(Mx.shape(u), :ordered)
    first = Mx.slice_axis(u, 0, 1, Mx.rank(u) - 1)
    rest = Mx.slice_axis(u, 1, k - 1, Mx.rank(u) - 1)
    x = Mx.cumulative_sum(Mx.concatenate([first, Mx.exp(rest)], axis: -1), axis: Mx.rank(u) - 1)
    {x, Mx.sum(rest)}
  end

  def constrain(:simplex, u) do
    ax = Mx.rank(u) - 1
    km = last_dim(Mx.shape(u), :simplex)
    # zₖ = σ(uₖ − log(K − k)): u = 0 is the uniform point.
    v = Mx.subtract(u, Mx.tensor(for(k <- 1..km//1, do: :math.log(km + 1 - k)), type: Mx.type(u)))
    log_z = log_sigmoid(v)
    log_1mz = log_sigmoid(Mx.negate(v))
    cum = Mx.cumulative_sum(log_1mz, axis: ax)
    # log rₖ: the log of the stick left before piece k.
    log_r = Mx.subtract(cum, log_1mz)
    head = Mx.exp(Mx.add(log_r, log_z))
    last = Mx.exp(Mx.slice_axis(cum, km - 1, 1, ax))
    x = Mx.concatenate([head, last], axis: ax)
    {x, Mx.sum(Mx.add(Mx.add(log_z, log_1mz), log_r))}
  end

  def constrain(:cholesky_factor, u) do
    {l, raw, p} = lower_factor(u, :cholesky_factor)
    {l, Mx.sum(Mx.multiply(raw, diag_mask(p, Mx.type(u))))}
  end

  def constrain(:positive_definite, u) do
    {l, raw, p} = lower_factor(u, :positive_definite)
    x = Mx.matmul(l, mt(l))

    # L ↦ L Lᵀ has |det| 2ᵖ Π Lₖₖ^(p−k) (0-based k); the exp on the diagonal adds one more power.
    w =
      Mx.tensor(
        for(
          r <- 0..(p - 1),
          do: for(c <- 0..(p - 1), do: if(r == c, do: p - r + 1.0, else: 0.0))
        ),
        type: Mx.type(u)
      )

    batch = div(Mx.size(u), elem(Mx.shape(u), Mx.rank(u) - 1))
    {x, Mx.add(Mx.sum(Mx.multiply(raw, w)), batch * p * :math.log(2.0))}
  end

  def constrain(:corr_cholesky, u) do
    m = last_dim(Mx.shape(u), :corr_cholesky)
    p = corr_dim(m)
    t = Mx.type(u)
    y = unpack(u, strict_lower_embedding(p, t), p)
    z = Mx.tanh(y)

    # log(1 − tanh²y) = 2(log 2 − |y| − log1p(e^(−2|y|))), finite for every y; 0 where y = 0.
    ay = Mx.abs(y)

    l1mz2 =
      Mx.multiply(
        Mx.subtract(Mx.subtract(:math.log(2.0), ay), Mx.log1p(Mx.exp(Mx.multiply(ay, -2.0)))),
        2.0
      )

    ax = Mx.rank(y) - 1
    # log of the squared length left in row i before column j: Σ_{k<j} log(1 − zᵢₖ²).
    log_rem = Mx.subtract(Mx.cumulative_sum(l1mz2, axis: ax), l1mz2)
    s = Mx.exp(Mx.multiply(log_rem, 0.5))
    strict = strict_mask(p, t)
    l = Mx.add(Mx.multiply(z, s), Mx.multiply(diag_mask(p, t), s))
    lj = Mx.add(Mx.sum(l1mz2), Mx.sum(Mx.multiply(Mx.multiply(log_rem, 0.5), strict)))
    {Mx.multiply(l, lower_mask(p, t)), lj}
  end

  # ---- unconstrain: x -> u ----------------------------------------------------------------

  @doc """
  The unconstrained `u` for a value `x` inside the support (the inverse of
  `constrain/2`); check with `inside?/2` first.

      iex> Gen.Transform.unconstrain({:interval, 0.0, 4.0}, Mx.tensor(2.0, type: :f64)) |> Mx.to_number()
      0.0
  """
  @spec unconstrain(t(), Mx.t()) :: Mx.t()
  def unconstrain(:identity, x), do: x
  def unconstrain(:log, x), do: Mx.log(x)
  def unconstrain(:logit, x), do: Mx.subtract(Mx.log(x), Mx.log1p(Mx.negate(x)))
  def unconstrain({:lower, a}, x) when is_number(a), do: Mx.log(Mx.subtract(x, a * 1.0))
  def unconstrain({:upper, b}, x) when is_number(b), do: Mx.log(Mx.subtract(b * 1.0, x))
  def unconstrain({:lower, a}, x), do: unconstrain({:interval, a, :infinity}, x)
  def unconstrain({:upper, b}, x), do: unconstrain({:interval, :neg_infinity, b}, x)

  def unconstrain({:interval, a, b}, x) do
    %{lo: lo, hi: hi, both: both, lower: lower, upper: upper} = sides(a, b, x)
    # log((x − lo)/(hi − x)), log(x − lo), log(hi − x) or x, by the sides present.
    dl = Mx.log(Mx.subtract(x, lo))
    dh = Mx.log(Mx.subtract(hi, x))
    Mx.select(both, Mx.subtract(dl, dh), Mx.select(lower, dl, Mx.select(upper, dh, x)))
  end

  def unconstrain(:ordered, x) do
    ax = Mx.rank(x) - 1
    k = last_dim(Mx.shape(x), :ordered)
    first = Mx.slice_axis(x, 0, 1, ax)
    gaps = Mx.subtract(Mx.slice_axis(x, 1, k - 1, ax), Mx.slice_axis(x, 0, k - 1, ax))
    Mx.concatenate([first, Mx.log(gaps)], axis: ax)
  end

  def unconstrain(:simplex, x) do
    ax = Mx.rank(x) - 1
    k = last_dim(Mx.shape(x), :simplex)

    # uₖ = log xₖ − log Σ_{j>k} xⱼ + log(K − k); the tail sums run from the end (no cancellation).
    tail = Mx.cumulative_sum(x, axis: ax, reverse: true)
    head = Mx.slice_axis(x, 0, k - 1, ax)
    after_k = Mx.slice_axis(tail, 1, k - 1, ax)
    offs = Mx.tensor(for(j <- 1..(k - 1)//1, do: :math.log(k - j)), type: Mx.type(x))
    Mx.add(Mx.subtract(Mx.log(head), Mx.log(after_k)), offs)
  end

  def unconstrain(:cholesky_factor, x), do: pack_factor(x, :cholesky_factor)

  def unconstrain(:positive_definite, x),
    do: pack_factor(Mx.Linalg.cholesky(x), :positive_definite)

  def unconstrain(:corr_cholesky, x) do
    p = square_dim(Mx.shape(x), :corr_cholesky)
    t = Mx.type(x)
    ax = Mx.rank(x) - 1
    sq = Mx.square(Mx.multiply(x, strict_mask(p, t)))
    rem = Mx.subtract(1.0, Mx.subtract(Mx.cumulative_sum(sq, axis: ax), sq))
    z = Mx.divide(Mx.multiply(x, strict_mask(p, t)), Mx.sqrt(rem))
    y = Mx.multiply(Mx.subtract(Mx.log1p(z), Mx.log1p(Mx.negate(z))), 0.5)
    pack(y, strict_lower_embedding(p, t))
  end

  # ---- support checks ----------------------------------------------------------------------

  @doc """
  Whether every element of `x` lies inside the open support of the transform
  (so that `unconstrain/2` is finite): a boolean.

      iex> Gen.Transform.inside?(:log, Mx.tensor([1.0, 0.0]))
      false
      iex> Gen.Transform.inside?(:simplex, Mx.tensor([0.25, 0.75], type: :f64))
      true
  """
  @spec inside?(t(), Mx.t()) :: boolean()
  def inside?(t, x), do: t |> inside(x) |> Mx.to_number()

  @doc """
  `inside?/2` as a lazy boolean scalar, to check many values in one evaluation.

      iex> Gen.Transform.inside(:logit, Mx.tensor([0.5, 1.5])) |> Mx.to_number()
      false
  """
  @spec inside(t(), Mx.t()) :: Mx.t()
  def inside(t, x), do: t |> inside_mask(x) |> Mx.all()

  defp inside_mask(:identity, x), do: Mx.logical_not(Mx.is_nan(x))
  defp inside_mask(:log, x), do: Mx.logical_and(Mx.greater(x, 0.0), Mx.less(x, :infinity))
  defp inside_mask(:logit, x), do: Mx.logical_and(Mx.greater(x, 0.0), Mx.less(x, 1.0))
  defp inside_mask({:lower, a}, x), do: inside_mask({:interval, a, :infinity}, x)
  defp inside_mask({:upper, b}, x), do: inside_mask({:interval, :neg_infinity, b}, x)

  defp inside_mask({:interval, a, b}, x) do
    finite = Mx.logical_not(Mx.logical_or(Mx.is_nan(x), Mx.is_infinity(x)))
    Mx.logical_and(finite, Mx.logical_and(Mx.greater(x, bound(a, x)), Mx.less(x, bound(b, x))))
  end

  defp inside_mask(:ordered, x) do
    ax = Mx.rank(x) - 1
    k = last_dim(Mx.shape(x), :ordered)
    Mx.greater(Mx.slice_axis(x, 1, k - 1, ax), Mx.slice_axis(x, 0, k - 1, ax))
  end

  defp inside_mask(:simplex, x) do
    tol = if Mx.type(x) == :f64, do: 1.0e-10, else: 1.0e-5
    sums = Mx.less_equal(Mx.abs(Mx.subtract(Mx.sum(x, axes: [-1]), 1.0)), tol)
    Mx.logical_and(Mx.all(Mx.greater(x, 0.0)), Mx.all(sums))
  end

  defp inside_mask(:positive_definite, x), do: Gen.Dist.Wishart.spd?(x)

  defp inside_mask(:cholesky_factor, x) do
    p = square_dim(Mx.shape(x), :cholesky_factor)
    t = Mx.type(x)
    upper_zero = Mx.all(Mx.equal(Mx.multiply(x, Mx.subtract(1.0, lower_mask(p, t))), 0.0))
    diag_pos = Mx.all(Mx.greater(Mx.Linalg.diagonal(x), 0.0))
    Mx.logical_and(upper_zero, diag_pos)
  end

  defp inside_mask(:corr_cholesky, x) do
    tol = if Mx.type(x) == :f64, do: 1.0e-10, else: 1.0e-5
    unit_rows = Mx.less_equal(Mx.abs(Mx.subtract(Mx.sum(Mx.square(x), axes: [-1]), 1.0)), tol)
    Mx.logical_and(inside_mask(:cholesky_factor, x), Mx.all(unit_rows))
  end

  # ---- helpers -------------------------------------------------------------------------------

  # log σ(u) = min(u, 0) − log1p(e^−|u|), finite for every finite u.
  defp log_sigmoid(u), do: Mx.subtract(Mx.min(u, 0.0), Mx.log1p(Mx.exp(Mx.negate(Mx.abs(u)))))

  defp bound(:infinity, x), do: Mx.tensor(:infinity, type: Mx.type(x))
  defp bound(:neg_infinity, x), do: Mx.tensor(:neg_infinity, type: Mx.type(x))
  defp bound(a, x) when is_number(a), do: Mx.tensor(a * 1.0, type: Mx.type(x))
  defp bound(%Mx.Array{} = a, _x), do: a

  # Finite bounds (infinite ones replaced by harmless finite values) and which sides each element has.
  defp sides(a, b, u) do
    lo = bound(a, u)
    hi = bound(b, u)
    lo_f = Mx.logical_not(Mx.is_infinity(lo))
    hi_f = Mx.logical_not(Mx.is_infinity(hi))

    %{
      lo: Mx.select(lo_f, lo, 0.0),
      hi: Mx.select(hi_f, hi, 1.0),
      both: Mx.logical_and(lo_f, hi_f),
      lower: Mx.logical_and(lo_f, Mx.logical_not(hi_f)),
      upper: Mx.logical_and(hi_f, Mx.logical_not(lo_f))
    }
  end

  # A {p, p} 0/1 mask.
  defp mask(p, t, keep?),
    do:
      Mx.tensor(
        for(r <- 0..(p - 1), do: for(c <- 0..(p - 1), do: if(keep?.(r, c), do: 1.0, else: 0.0))),
        type: t
      )

  defp diag_mask(p, t), do: mask(p, t, &(&1 == &2))
  defp lower_mask(p, t), do: mask(p, t, &(&1 >= &2))
  defp strict_mask(p, t), do: mask(p, t, &(&1 > &2))

  # The {m, p·p} 0/1 matrix that places the packed entries (row by row) into a flattened p×p matrix.
  defp embedding(p, t, keep?) do
    cells = for r <- 0..(p - 1), c <- 0..(p - 1), keep?.(r, c), do: r * p + c

    Mx.tensor(
      for(cell <- cells, do: for(j <- 0..(p * p - 1), do: if(j == cell, do: 1.0, else: 0.0))),
      type: t
    )
  end

  defp lower_embedding(p, t), do: embedding(p, t, &(&1 >= &2))
  defp strict_lower_embedding(p, t), do: embedding(p, t, &(&1 > &2))

  # {..., m} -> {..., p, p} through the embedding (a matmul: differentiable, batched).
  defp unpack(u, e, p) do
    flat = Mx.matmul(u, e)
    Mx.reshape(flat, List.to_tuple(Enum.drop(Tuple.to_list(Mx.shape(u)), -1) ++ [p, p]))
  end

  # {..., p, p} -> {..., m}: the embedded entries, row by row.
  defp pack(x, e) do
    s = Tuple.to_list(Mx.shape(x))
    flat = Mx.reshape(x, List.to_tuple(Enum.drop(s, -2) ++ [Enum.at(s, -1) * Enum.at(s, -2)]))
    Mx.matmul(flat, mt(e))
  end

  # L from the packed lower triangle with e^(raw) on the diagonal: {L, raw, p}.
  defp lower_factor(u, t) do
    m = last_dim(Mx.shape(u), t)
    p = tri_dim(m, t)
    ty = Mx.type(u)
    raw = unpack(u, lower_embedding(p, ty), p)
    d = diag_mask(p, ty)
    # exp only on the diagonal (off it the argument is 0), so a large entry below cannot overflow.
    l = Mx.add(Mx.multiply(raw, strict_mask(p, ty)), Mx.multiply(Mx.exp(Mx.multiply(raw, d)), d))
    {l, raw, p}
  end

  defp pack_factor(l, t) do
    p = square_dim(Mx.shape(l), t)
    ty = Mx.type(l)
    d = diag_mask(p, ty)

    raw =
      Mx.add(
        Mx.multiply(l, strict_mask(p, ty)),
        Mx.multiply(Mx.log(Mx.add(Mx.multiply(l, d), Mx.subtract(1.0, d))), d)
      )

    pack(raw, lower_embedding(p, ty))
  end

  defp tri_dim(m, t) do
    p = round((:math.sqrt(8 * m + 1) - 1) / 2)

    unless div(p * (p + 1), 2) == m and p >= 1 do
      raise ArgumentError,
            "Gen.Transform: #{inspect(t)} needs p(p+1)/2 unconstrained entries, got #{m}"
    end

    p
  end

  defp corr_dim(m) do
    p = round((:math.sqrt(8 * m + 1) + 1) / 2)

    unless div(p * (p - 1), 2) == m and p >= 2 do
      raise ArgumentError,
            "Gen.Transform: :corr_cholesky needs p(p-1)/2 unconstrained entries (p >= 2), got #{m}"
    end

    p
  end

  defp mt(x) do
    r = Mx.rank(x)
    Mx.transpose(x, axes: Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2])
  end
end
