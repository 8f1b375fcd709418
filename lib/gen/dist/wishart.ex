defmodule Gen.Dist.Wishart do
  @moduledoc """
  Wishart distribution over symmetric positive-definite `{p, p}` matrices,
  with `df` degrees of freedom (`> p - 1`; any shape, a batch) and scale
  `scale` (`{p, p}`, symmetric positive definite). The log-density is

      (df - p - 1)/2 · log|X| - tr(scale⁻¹ X)/2 - df·p/2 · log 2
        - df/2 · log|scale| - log Γ_p(df/2)

  with `Γ_p` the multivariate gamma function, the log-determinants from
  Cholesky factors and the trace as `‖L_scale⁻¹ L_X‖²` (a triangular solve).
  A value that is not symmetric (within `1e-10` of its largest entry in f64,
  `1e-5` in f32) or not positive definite (smallest eigenvalue `<= 0`) scores
  `-Inf` rather than raising. Draws use the Bartlett decomposition
  `L A Aᵀ Lᵀ`, `A` lower triangular with `√χ²(df - i)` on the diagonal and
  standard normals below it, so they are not reparameterized.

  Invalid parameters follow `Gen.Dist`'s rule: `df <= p - 1` or a `scale`
  that is not symmetric positive definite raises when constant; another `df`
  out of range gives `-Inf`, and another `scale` that is not positive definite
  makes its Cholesky factor raise `Mx.Error` on evaluation, which MH, HMC,
  MALA and NUTS take as a rejected move.

      iex> d = Gen.Dist.wishart(3.0, [[1.0, 0.0], [0.0, 1.0]])
      iex> Gen.Dist.logpdf(d, [[[2.0, 0.5], [0.5, 1.0]], [[1.0, 2.0], [2.0, 1.0]]]) |> Mx.to_list()
      [-4.031024246969291, :neg_infinity]
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 5) |> Mx.describe()
      "f64[5][2][2]"
  """

  defstruct [:df, :scale]
  @type t :: %__MODULE__{df: Mx.t(), scale: Mx.t()}

  @doc "A Wishart distribution with `df > p - 1` degrees of freedom and scale `scale` (`{p, p}`)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(df, scale) do
    {df, scale} = params!("wishart", df, scale)
    %__MODULE__{df: df, scale: scale}
  end

  @doc false
  # Shared with Gen.Dist.InvWishart: df and a {p, p} symmetric positive-definite scale,
  # checked at once where they are numbers or evaluated arrays.
  @spec params!(String.t(), Mx.tensor_like(), Mx.tensor_like()) :: {Mx.t(), Mx.t()}
  def params!(name, df, scale_given) do
    scale = Gen.Dist.param!(scale_given, name, "scale")

    p =
      case Mx.shape(scale) do
        {p, p} when p >= 1 ->
          p

        _ ->
          raise ArgumentError,
                "Gen.Dist.#{name}: scale must be a square {p, p} matrix, got #{Mx.describe(scale)}"
      end

    df_given = df
    df = Gen.Dist.param!(df, name, "df", {&(&1 > p - 1), "> p - 1 = #{p - 1}"})

    if Gen.Dist.known?([df_given]),
      do:
        Gen.Dist.known!(
          Mx.any(Mx.less_equal(df, p - 1.0)),
          df,
          name,
          "df must be > p - 1 = #{p - 1}"
        )

    if Gen.Dist.known?([scale_given]),
      do:
        Gen.Dist.known!(
          Mx.logical_not(Mx.all(spd?(scale))),
          scale,
          name,
          "scale must be symmetric positive definite"
        )

    {df, scale}
  end

  @doc false
  # Whether each matrix in the last two axes is symmetric (relative to its largest entry)
  # and positive definite (smallest eigenvalue > 0); eigvalsh never raises, unlike cholesky.
  @spec spd?(Mx.t()) :: Mx.t()
  def spd?(x) do
    tol = if Mx.type(x) == :f64, do: 1.0e-10, else: 1.0e-5
    r = Mx.rank(x)
    xt = Mx.transpose(x, axes: Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2])
    big = Mx.reduce_max(Mx.abs(x), axes: [-2, -1], keep_axes: true)
    sym = Mx.all(Mx.less_equal(Mx.abs(Mx.subtract(x, xt)), Mx.multiply(big, tol)), axes: [-2, -1])
    pd = Mx.greater(Mx.reduce_min(Mx.Linalg.eigvalsh(x), axes: [-1]), 0.0)
    Mx.logical_and(sym, pd)
  end

  @doc false
  # The value as {..., p, p} of type `t`, a mask of the symmetric positive-definite ones
  # and their Cholesky factors (the identity's in place of the others, so nothing raises).
  @spec value_factor!(term(), String.t(), pos_integer(), atom()) :: {Mx.t(), Mx.t(), Mx.t()}
  def value_factor!(value, name, p, t) do
    x = value |> Gen.Dist.value!(name) |> Mx.as_type(t)
    s = Mx.shape(x)

    unless tuple_size(s) >= 2 and elem(s, tuple_size(s) - 1) == p and
             elem(s, tuple_size(s) - 2) == p do
      raise ArgumentError,
            "Gen.Dist.#{name}: the value must be {..., #{p}, #{p}} matrices, got #{Mx.describe(x)}"
    end

    inside = spd?(x)
    mask = Mx.reshape(inside, Tuple.append(Tuple.append(Mx.shape(inside), 1), 1))
    l = Mx.Linalg.cholesky(Mx.select(mask, x, Mx.eye(p, type: t)))
    {x, inside, l}
  end

  @doc false
  # log|A| from A's Cholesky factor, per matrix in the last two axes.
  @spec logdet(Mx.t()) :: Mx.t()
  def logdet(l),
    do: l |> Mx.Linalg.diagonal() |> Mx.log() |> Mx.sum(axes: [-1]) |> Mx.multiply(2.0)

  @doc false
  # The log of the multivariate gamma function, Γ_p(a) = π^(p(p-1)/4) Π_j Γ(a - j/2).
  @spec lmvgamma(Mx.t(), pos_integer()) :: Mx.t()
  def lmvgamma(a, p) do
    half_j = Mx.tensor(Enum.map(0..(p - 1), &(&1 / 2)), type: Mx.type(a))

    Mx.new_axis(a, -1)
    |> Mx.subtract(half_j)
    |> Mx.lgamma()
    |> Mx.sum(axes: [-1])
    |> Mx.add(p * (p - 1) / 4 * :math.log(:math.pi()))
  end

  @doc false
  # Bartlett factors A (batch ++ {p, p}): √(2·Gamma((df - i)/2)) = √χ²(df - i) on the
  # diagonal, standard normals strictly below it, zeros above.
  @spec bartlett(Mx.t(), Mx.t(), tuple(), pos_integer(), atom()) :: Mx.t()
  def bartlett(key, df, batch, p, t) do
    keys = Mx.Random.split(key, 2)
    i = Mx.tensor(Enum.to_list(0..(p - 1)), type: t)
    alpha = df |> Mx.as_type(t) |> Mx.new_axis(-1) |> Mx.subtract(i) |> Mx.divide(2.0)
    chi = Mx.Random.gamma(keys[0], alpha, shape: Tuple.append(batch, p), type: t)

    diag =
      chi |> Mx.multiply(2.0) |> Mx.sqrt() |> Mx.new_axis(-1) |> Mx.multiply(Mx.eye(p, type: t))

    lower =
      Mx.tensor(for(r <- 0..(p - 1), do: for(c <- 0..(p - 1), do: if(r > c, do: 1.0, else: 0.0))),
        type: t
      )

    z = Mx.Random.normal(keys[1], shape: Tuple.append(Tuple.append(batch, p), p), type: t)
    Mx.add(diag, Mx.multiply(z, lower))
  end

  @doc false
  # Swaps the last two axes.
  @spec mt(Mx.t()) :: Mx.t()
  def mt(x) do
    r = Mx.rank(x)
    Mx.transpose(x, axes: Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2])
  end

  defimpl Gen.Distribution do
    alias Gen.Dist.Wishart, as: W

    def sample(d, key), do: draw(d, key, Mx.shape(d.df))
    def sample_n(d, key, n), do: draw(d, key, Tuple.insert_at(Mx.shape(d.df), 0, n))

    # W = (L A)(L A)ᵀ with scale = L Lᵀ.
    defp draw(%{df: df, scale: s}, key, batch) do
      t = Mx.Type.merge(Mx.type(df), Mx.type(s))
      {p, p} = Mx.shape(s)
      df = Mx.broadcast(Mx.as_type(df, t), batch)
      la = Mx.matmul(Mx.Linalg.cholesky(Mx.as_type(s, t)), W.bartlett(key, df, batch, p, t))
      Mx.matmul(la, W.mt(la))
    end

    def logpdf(%{df: df, scale: s}, value) do
      t = Mx.Type.merge(Mx.type(df), Mx.type(s))
      {p, p} = Mx.shape(s)
      df = Mx.as_type(df, t)
      lv = Mx.Linalg.cholesky(Mx.as_type(s, t))
      {_x, inside, lx} = W.value_factor!(value, "wishart", p, t)
      # tr(scale⁻¹ X) = ‖Lv⁻¹ Lx‖²_F.
      tr = lv |> Mx.Linalg.triangular_solve(lx) |> Mx.square() |> Mx.sum(axes: [-2, -1])

      lp =
        Mx.multiply(Mx.subtract(df, p + 1.0), W.logdet(lx))
        |> Mx.subtract(tr)
        |> Mx.subtract(Mx.multiply(df, Mx.add(W.logdet(lv), p * :math.log(2.0))))
        |> Mx.multiply(0.5)
        |> Mx.subtract(W.lmvgamma(Mx.multiply(df, 0.5), p))

      Gen.Dist.restrict(lp, inside: inside, invalid: Mx.less_equal(df, p - 1.0))
    end

    def reparameterized?(_), do: false

    def support(_d), do: :positive_definite
  end
end
