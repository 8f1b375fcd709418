defmodule Gen.Dist.InvWishart do
  @moduledoc """
  Inverse Wishart distribution over symmetric positive-definite `{p, p}`
  matrices, with `df` degrees of freedom (`> p - 1`; any shape, a batch) and
  scale `scale` (`{p, p}`, symmetric positive definite): `X` is inverse
  Wishart when `X⁻¹` is Wishart with `df` and `scale⁻¹`. The log-density is

      df/2 · log|scale| - df·p/2 · log 2 - log Γ_p(df/2)
        - (df + p + 1)/2 · log|X| - tr(scale X⁻¹)/2

  with the trace as `‖L_X⁻¹ L_scale‖²` (a triangular solve). Values that are
  not symmetric positive definite score `-Inf` (see `Gen.Dist.Wishart`).
  Draws invert a Bartlett draw in factored form: with `scale = L Lᵀ` and
  the Bartlett factor `A`, `X = Cᵀ C` for `C = A⁻¹ Lᵀ`, the inverse of the
  Wishart(`df`, `scale⁻¹`) draw `L⁻ᵀ A Aᵀ L⁻¹`, so no general inverse is
  formed and `X` is symmetric. Not reparameterized. Invalid parameters follow
  `Gen.Dist`'s rule as for `Gen.Dist.Wishart`.

      iex> d = Gen.Dist.inv_wishart(3.0, [[1.0, 0.0], [0.0, 1.0]])
      iex> Gen.Dist.logpdf(d, [[[2.0, 0.5], [0.5, 1.0]], [[1.0, 2.0], [2.0, 1.0]]]) |> Mx.to_list()
      [-5.067014467918416, :neg_infinity]
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 5) |> Mx.describe()
      "f64[5][2][2]"
  """

  alias Gen.Dist.Wishart, as: W

  defstruct [:df, :scale]
  @type t :: %__MODULE__{df: Mx.t(), scale: Mx.t()}

  @doc "An inverse Wishart distribution with `df > p - 1` degrees of freedom and scale `scale` (`{p, p}`)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(df, scale) do
    {df, scale} = W.params!("inv_wishart", df, scale)
    %__MODULE__{df: df, scale: scale}
  end

  defimpl Gen.Distribution do
    alias Gen.Dist.Wishart, as: W

    def sample(d, key), do: draw(d, key, Mx.shape(d.df))
    def sample_n(d, key, n), do: draw(d, key, Tuple.insert_at(Mx.shape(d.df), 0, n))

    defp draw(%{df: df, scale: s}, key, batch) do
      t = Mx.Type.merge(Mx.type(df), Mx.type(s))
      {p, p} = Mx.shape(s)
      df = Mx.broadcast(Mx.as_type(df, t), batch)
      a = W.bartlett(key, df, batch, p, t)
      lt = s |> Mx.as_type(t) |> Mx.Linalg.cholesky() |> Mx.transpose()
      # Broadcast explicitly: an unbatched {p, p} right-hand side would read as p vectors.
      c = Mx.Linalg.triangular_solve(a, Mx.broadcast(lt, Mx.shape(a)))
      Mx.matmul(W.mt(c), c)
    end

    def logpdf(%{df: df, scale: s}, value) do
      t = Mx.Type.merge(Mx.type(df), Mx.type(s))
      {p, p} = Mx.shape(s)
      df = Mx.as_type(df, t)
      ls = Mx.Linalg.cholesky(Mx.as_type(s, t))
      {_x, inside, lx} = W.value_factor!(value, "inv_wishart", p, t)
      # tr(scale X⁻¹) = ‖Lx⁻¹ Ls‖²_F.
      tr =
        lx
        |> Mx.Linalg.triangular_solve(Mx.broadcast(ls, Mx.shape(lx)))
        |> Mx.square()
        |> Mx.sum(axes: [-2, -1])

      lp =
        Mx.multiply(df, Mx.subtract(W.logdet(ls), p * :math.log(2.0)))
        |> Mx.subtract(Mx.multiply(Mx.add(df, p + 1.0), W.logdet(lx)))
        |> Mx.subtract(tr)
        |> Mx.multiply(0.5)
        |> Mx.subtract(W.lmvgamma(Mx.multiply(df, 0.5), p))

      Gen.Dist.restrict(lp, inside: inside, invalid: Mx.less_equal(df, p - 1.0))
    end

    def reparameterized?(_), do: false

    def support(_d), do: :positive_definite
  end
end
