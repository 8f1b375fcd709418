defmodule Mx.Linalg do
  @moduledoc """
  Linear algebra on batches of matrices, computed by LAPACK (through
  LAPACKE and OpenBLAS) in the engine's kernels.

  Matrices are the last two axes of an array; any leading axes are a batch,
  and each matrix is handled on its own: `cholesky` of a `{k, n, n}` array
  is `k` factorizations. In `solve/2` and `triangular_solve/3` the batch
  axes of `a` and `b` broadcast. Results are lazy like every other op.

  Inputs of type `:f32` and `:f64` compute in their own precision; integer
  and boolean inputs are converted to `:f32` (`:f16`/`:bf16` compute in
  `:f32` and round back). The functions are real-only except `lu/1`, which
  also factors `:c64`/`:c128` matrices, and `eig/1`/`eigvals/1`, whose
  results are complex.

  ## Failures

  A failure LAPACK reports raises `Mx.Error` when the result is evaluated,
  naming the op and the matrix of the batch:

      iex> a = Mx.tensor([[1.0, 2.0], [2.0, 1.0]])
      iex> try do
      ...>   Mx.Linalg.cholesky(a) |> Mx.eval()
      ...> rescue
      ...>   e in Mx.Error -> e.message |> String.split(";") |> hd()
      ...> end
      "[cholesky] the matrix f32[2][2] is not positive definite (its leading minor of order 2 is not positive)"

  A matrix that holds NaN or an infinity gives an all-NaN result instead
  (LAPACK's iterations are unspecified on them). `det/1` and `slogdet/1`
  return 0 and `{0, -inf}` for singular matrices, as numpy does.

  ## Several outputs

  `qr/2`, `svd/2`, `eigh/1`, `eig/1`, `lu/1` and `slogdet/1` return tuples. In the engine
  each is one node whose buffer packs the outputs (see `c_src/ops.def`),
  and the parts are views of it.
  """

  alias Mx.{Array, NIF}

  @type t :: Array.t()
  @type ord :: nil | :fro | :nuc | :infinity | :neg_infinity | number()

  defp call(fun, arrays, params \\ []) do
    case NIF.linalg(fun, Enum.map(arrays, &Mx.tensor(&1).ref), params) do
      {{_handle, _weight}, _shape, _type, _id} = single -> Array.wrap(single)
      parts -> parts |> Tuple.to_list() |> Enum.map(&Array.wrap/1) |> List.to_tuple()
    end
  end

  defp flag(true), do: 1
  defp flag(false), do: 0

  defp flag(other, name, fun) do
    if is_boolean(other),
      do: flag(other),
      else: raise(ArgumentError, "[#{fun}] #{name} must be a boolean, got #{inspect(other)}")
  end

  # ---- factorizations ------------------------------------------------------------------

  @doc """
  The Cholesky factor: the lower-triangular `l` with positive diagonal such
  that `a = l lᵀ`, for symmetric positive-definite `a` (`{..., n, n}`).
  Only the lower triangle of `a` is read. A matrix that is not positive
  definite raises `Mx.Error` on evaluation, naming it.

      iex> Mx.Linalg.cholesky(Mx.tensor([[4.0, 2.0], [2.0, 2.0]])) |> Mx.to_list()
      [[2.0, 0.0], [1.0, 1.0]]
  """
  @spec cholesky(Mx.tensor_like()) :: t()
  def cholesky(a), do: call(:cholesky, [a])

  @doc """
  The QR decomposition `{q, r}` of `a` (`{..., m, n}`) with `a = q r`, `q`
  with orthonormal columns and `r` upper triangular. `mode: :reduced` (the
  default): `q` is `{..., m, k}` and `r` `{..., k, n}`, `k = min(m, n)`;
  `mode: :complete`: `q` is `{..., m, m}` (an orthogonal matrix) and `r`
  `{..., m, n}`. Signs follow LAPACK (as numpy). No gradient yet.

      iex> {q, r} = Mx.Linalg.qr(Mx.tensor([[3.0, 0.0], [4.0, 5.0]]))
      iex> {Mx.to_list(q), Mx.to_list(r)}
      {[[-0.6000000238418579, -0.800000011920929], [-0.800000011920929, 0.6000000238418579]], [[-5.0, -4.0], [0.0, 3.0]]}
      iex> {q, r} = Mx.Linalg.qr(Mx.tensor([[3.0], [4.0]]), mode: :complete)
      iex> {Mx.shape(q), Mx.to_list(r)}
      {{2, 2}, [[-5.0], [0.0]]}
  """
  @spec qr(Mx.tensor_like(), keyword()) :: {t(), t()}
  def qr(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [mode: :reduced], "Mx.Linalg.qr")

    case opts[:mode] do
      :reduced ->
        call(:qr, [a])

      :complete ->
        call(:qr_complete, [a])

      other ->
        raise ArgumentError, "[qr] mode must be :reduced or :complete, got #{inspect(other)}"
    end
  end

  @doc """
  The singular value decomposition `{u, s, vt}` with `a = u · diag(s) · vt`
  and `s` descending. With `full_matrices: false` (the default) `u` is
  `{..., m, k}` and `vt` `{..., k, n}` (`k = min(m, n)`); with `true`, `u`
  is `{..., m, m}` and `vt` `{..., n, n}`. The singular vectors are unique
  only up to sign.

      iex> {_u, s, _vt} = Mx.Linalg.svd(Mx.tensor([[0.0, 2.0], [3.0, 0.0]]))
      iex> Mx.to_list(s)
      [3.0, 2.0]
  """
  @spec svd(Mx.tensor_like(), keyword()) :: {t(), t(), t()}
  def svd(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [full_matrices: false], "Mx.Linalg.svd")
    call(:svd, [a], [flag(opts[:full_matrices], :full_matrices, :svd)])
  end

  @doc """
  The singular values of `a` (`{..., m, n}` to `{..., min(m, n)}`),
  descending; cheaper than `svd/2` as no vectors are formed.

      iex> Mx.Linalg.svdvals(Mx.tensor([[0.0, 2.0], [3.0, 0.0]])) |> Mx.to_list()
      [3.0, 2.0]
  """
  @spec svdvals(Mx.tensor_like()) :: t()
  def svdvals(a), do: call(:svdvals, [a])

  @doc """
  Eigenvalues and eigenvectors `{w, v}` of symmetric `a` (`{..., n, n}`):
  `w` ascending, `v`'s columns the matching orthonormal eigenvectors (each
  unique up to sign for distinct eigenvalues), `a = v · diag(w) · vᵀ`. Only
  the lower triangle of `a` is read.

      iex> {w, v} = Mx.Linalg.eigh(Mx.tensor([[2.0, 0.0], [0.0, 1.0]]))
      iex> {Mx.to_list(w), Mx.to_list(Mx.abs(v))}
      {[1.0, 2.0], [[0.0, 1.0], [1.0, 0.0]]}
  """
  @spec eigh(Mx.tensor_like()) :: {t(), t()}
  def eigh(a), do: call(:eigh, [a])

  @doc """
  The eigenvalues of symmetric `a`, ascending (see `eigh/1`); cheaper, as
  no eigenvectors are formed.

      iex> Mx.Linalg.eigvalsh(Mx.tensor([[2.0, 1.0], [1.0, 2.0]])) |> Mx.to_list()
      [1.0, 3.0]
  """
  @spec eigvalsh(Mx.tensor_like()) :: t()
  def eigvalsh(a), do: call(:eigvalsh, [a])

  @doc """
  The LU decomposition with partial pivoting `{p, l, u}` of square `a`
  (`{..., n, n}`), with `a = p l u` as `Nx.LinAlg.lu/2` returns it: `p` a
  permutation matrix, `l` unit lower triangular, `u` upper triangular
  (LAPACK's getrf, the factorization behind `solve/2` and `det/1`; complex
  matrices too, through cgetrf/zgetrf). A singular matrix gives a zero on
  `u`'s diagonal, not an error. Differentiable in `l` and `u` for real
  matrices (`p` is piecewise constant).

      iex> {p, l, u} = Mx.Linalg.lu(Mx.tensor([[1.0, 2.0], [3.0, 4.0]]))
      iex> {Mx.to_list(p), Mx.to_list(l), Mx.to_list(u)}
      {[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.3333333432674408, 1.0]], [[3.0, 4.0], [0.0, 0.6666666269302368]]}
  """
  @spec lu(Mx.tensor_like()) :: {t(), t(), t()}
  def lu(a) do
    {factors, perm} = call(:lu, [a])
    n = elem(factors.shape, tuple_size(factors.shape) - 1)
    rows = Mx.iota({n, 1})
    cols = Mx.iota({1, n})
    zero = Mx.tensor(0, type: factors.type)

    l =
      Mx.select(
        Mx.greater(rows, cols),
        factors,
        Mx.select(Mx.equal(rows, cols), Mx.tensor(1, type: factors.type), zero)
      )

    u = Mx.select(Mx.less_equal(rows, cols), factors, zero)
    # (P_lapack a)[i] = a[perm[i]], so a = P_lapackᵀ l u: p[r][c] = 1 where perm[c] == r.
    p =
      Mx.equal(Mx.new_axis(perm, -2), Mx.reshape(Mx.iota({n}), {n, 1}))
      |> Mx.as_type(factors.type)

    {p, l, u}
  end

  @doc """
  Eigenvalues and right eigenvectors `{w, v}` of a general real square
  matrix `a` (`{..., n, n}`), as complex arrays (`:c64` for `f32` input,
  `:c128` for `f64`), with `a v = v diag(w)`: LAPACK's geev, as
  `numpy.linalg.eig`. Each eigenvector (a column of `v`) has unit 2-norm
  and its largest component real; complex eigenvalues come in conjugate
  pairs, the one with positive imaginary part first. The order is LAPACK's
  (not sorted). No gradient yet (differentiating raises, naming `eig`). For
  symmetric matrices `eigh/1` is faster and real.

      iex> {w, _v} = Mx.Linalg.eig(Mx.tensor([[0.0, -1.0], [1.0, 0.0]], type: :f64))
      iex> Mx.to_list(w)
      [{0.0, 1.0}, {0.0, -1.0}]
  """
  @spec eig(Mx.tensor_like()) :: {t(), t()}
  def eig(a), do: call(:eig, [a])

  @doc """
  The eigenvalues of a general real square matrix (see `eig/1`), complex,
  without forming the eigenvectors.

      iex> Mx.Linalg.eigvals(Mx.tensor([[2.0, 1.0], [0.0, 3.0]])) |> Mx.to_list()
      [{2.0, 0.0}, {3.0, 0.0}]
  """
  @spec eigvals(Mx.tensor_like()) :: t()
  def eigvals(a), do: call(:eigvals, [a])

  @doc """
  The Moore-Penrose pseudo-inverse of `a` (`{..., m, n}` to `{..., n, m}`),
  through the SVD: `v diag(1/s) uᵀ`, with singular values at most
  `rtol · max(s)` treated as zero. `rtol:` defaults to `max(m, n) · eps` of
  the type (as `numpy.linalg.pinv`'s `rtol` in numpy 2 and torch). No
  gradient yet (the SVD has none).

      iex> Mx.Linalg.pinv(Mx.tensor([[1.0, 0.0], [0.0, 0.0]])) |> Mx.to_list()
      [[1.0, 0.0], [0.0, 0.0]]
      iex> Mx.Linalg.pinv(Mx.tensor([[2.0], [0.0]])) |> Mx.to_list()
      [[0.5, 0.0]]
  """
  @spec pinv(Mx.tensor_like(), keyword()) :: t()
  def pinv(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [rtol: nil], "Mx.Linalg.pinv")
    {u, s, vt} = svd(a)
    {m, n} = {elem(u.shape, tuple_size(u.shape) - 2), elem(vt.shape, tuple_size(vt.shape) - 1)}

    rtol =
      case opts[:rtol] do
        nil ->
          Kernel.max(m, n) *
            if(s.type == :f64, do: 2.220446049250313e-16, else: 1.1920928955078125e-07)

        x when is_number(x) and x >= 0 ->
          x * 1.0

        other ->
          raise ArgumentError, "[pinv] rtol must be a non-negative number, got #{inspect(other)}"
      end

    cutoff = Mx.multiply(Mx.reduce_max(s, axes: [-1], keep_axes: true), rtol)
    big = Mx.greater(s, cutoff)
    s_inv = Mx.select(big, Mx.reciprocal(Mx.select(big, s, 1.0)), 0.0)

    swap = fn x ->
      Mx.transpose(x,
        axes:
          Enum.to_list(0..(tuple_size(x.shape) - 3)//1) ++
            [tuple_size(x.shape) - 1, tuple_size(x.shape) - 2]
      )
    end

    Mx.matmul(Mx.multiply(swap.(vt), Mx.new_axis(s_inv, -2)), swap.(u))
  end

  # ---- solving ---------------------------------------------------------------------------

  @doc """
  Solves `a x = b` by LU decomposition with partial pivoting. `a` is
  `{..., n, n}`; `b` is a vector `{n}`, a batch of vectors with `a`'s
  shape minus its last axis (`{..., n}`), or otherwise a matrix of
  right-hand sides `{..., n, k}`, as `torch.linalg.solve` decides. Batch
  axes broadcast. A singular `a` raises `Mx.Error` on evaluation.

      iex> a = Mx.tensor([[2.0, 1.0], [1.0, 3.0]])
      iex> Mx.Linalg.solve(a, Mx.tensor([3.0, 5.0])) |> Mx.to_list()
      [0.800000011920929, 1.399999976158142]
  """
  @spec solve(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def solve(a, b), do: call(:solve, [a, b])

  @doc """
  Solves a triangular system: `op(a) x = b` (`left_side: true`, the
  default) or `x op(a) = b`, where `op(a)` is `a` or, with
  `transform_a: :transpose`, `aᵀ`. Only the `lower: true` (default) or
  upper triangle of `a` is read; `unit_diagonal: true` takes its diagonal
  as ones without reading it. `b` is a vector or a batch of them (as in
  `solve/2`), or `{..., n, k}` (left) / `{..., k, n}` (right); batch axes
  broadcast. A zero on the diagonal raises `Mx.Error` on evaluation.

      iex> l = Mx.tensor([[2.0, 0.0], [1.0, 4.0]])
      iex> Mx.Linalg.triangular_solve(l, Mx.tensor([2.0, 9.0])) |> Mx.to_list()
      [1.0, 2.0]
      iex> Mx.Linalg.triangular_solve(l, Mx.tensor([4.0, 4.0]), transform_a: :transpose) |> Mx.to_list()
      [1.5, 1.0]
  """
  @spec triangular_solve(Mx.tensor_like(), Mx.tensor_like(), keyword()) :: t()
  def triangular_solve(a, b, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [lower: true, left_side: true, transform_a: :none, unit_diagonal: false], "Mx.Linalg.triangular_solve")

    trans =
      case opts[:transform_a] do
        :none ->
          0

        :transpose ->
          1

        other ->
          raise ArgumentError, "[triangular_solve] transform_a must be :none or :transpose, got #{inspect(other)}"
      end

    params = [
      flag(opts[:lower], :lower, :triangular_solve),
      flag(opts[:left_side], :left_side, :triangular_solve),
      trans,
      flag(opts[:unit_diagonal], :unit_diagonal, :triangular_solve)
    ]

    call(:triangular_solve, [a, b], params)
  end

  @doc """
  The inverse of `a` (`{..., n, n}`), computed as `solve(a, I)`. A singular
  matrix raises `Mx.Error` on evaluation; prefer `solve/2` to multiplying
  by an inverse.

      iex> Mx.Linalg.inv(Mx.tensor([[2.0, 0.0], [0.0, 4.0]])) |> Mx.to_list()
      [[0.5, 0.0], [0.0, 0.25]]
  """
  @spec inv(Mx.tensor_like()) :: t()
  def inv(a), do: call(:inv, [a])

  @doc """
  The determinant of `a` (`{..., n, n}` to `{...}`): the product of the
  diagonal of `U` in `P a = L U`, with the permutation's sign. 0 for a
  singular matrix. For large matrices `slogdet/1` avoids overflow.

      iex> Mx.Linalg.det(Mx.tensor([[1.0, 3.0], [2.0, 1.0]])) |> Mx.to_number()
      -5.0
  """
  @spec det(Mx.tensor_like()) :: t()
  def det(a), do: call(:det, [a])

  @doc """
  `{sign, logabsdet}` with `det(a) = sign · exp(logabsdet)`, computed
  without forming the determinant, so it neither overflows nor underflows.
  A singular matrix gives `{0, -inf}`.

      iex> {sign, logabsdet} = Mx.Linalg.slogdet(Mx.tensor([[0.0, 2.0], [1.0, 0.0]]))
      iex> {Mx.to_number(sign), Mx.to_number(logabsdet)}
      {-1.0, 0.6931471824645996}
  """
  @spec slogdet(Mx.tensor_like()) :: {t(), t()}
  def slogdet(a), do: call(:slogdet, [a])

  # ---- norms and products ----------------------------------------------------------------------

  @doc """
  Vector and matrix norms, as `numpy.linalg.norm`.

  Options: `:ord` (see below), `:axes` (`nil`, `[i]` for vector norms
  along an axis, `[i, j]` for matrix norms over two axes) and `:keep_axes`.
  With `axes: nil` and no `:ord`, the 2-norm of all the elements; with an
  `:ord`, `a` must be a vector or a matrix.

  Vector orders: `nil` or 2 (Euclidean), 1, `:infinity` (max |x|),
  `:neg_infinity` (min |x|), 0 (number of nonzeros), any other number p
  (`(Σ |x|^p)^(1/p)`). Matrix orders: `nil` or `:fro` (Frobenius), `:nuc`
  (sum of singular values), 2 and -2 (largest and smallest singular
  value), 1 and -1 (max and min column sum of |a|), `:infinity` and
  `:neg_infinity` (max and min row sum).

      iex> Mx.Linalg.norm(Mx.tensor([3.0, -4.0])) |> Mx.to_number()
      5.0
      iex> Mx.Linalg.norm(Mx.tensor([3.0, -4.0]), ord: 1) |> Mx.to_number()
      7.0
      iex> Mx.Linalg.norm(Mx.tensor([[1.0, -2.0], [3.0, 4.0]]), ord: :infinity) |> Mx.to_number()
      7.0
  """
  @spec norm(Mx.tensor_like(), keyword()) :: t()
  def norm(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [ord: nil, axes: nil, keep_axes: false], "Mx.Linalg.norm")

    {kind, p} =
      case opts[:ord] do
        nil ->
          {0, 2}

        :fro ->
          {1, 2}

        :nuc ->
          {2, 2}

        x when is_number(x) or x in [:infinity, :neg_infinity] ->
          {3, x}

        other ->
          raise ArgumentError,
                "[norm] ord must be nil, :fro, :nuc, a number, :infinity or :neg_infinity, got #{inspect(other)}"
      end

    axes =
      case opts[:axes] do
        nil -> []
        axes when is_list(axes) and length(axes) in [1, 2] -> axes
        other -> raise ArgumentError, "[norm] axes must be nil, [i] or [i, j], got #{inspect(other)}"
      end

    call(:norm, [a], [kind, p, flag(opts[:keep_axes], :keep_axes, :norm) | axes])
  end

  @doc """
  The cross product of 3-vectors along `axis:` (default -1); the other axes
  broadcast.

      iex> Mx.Linalg.cross(Mx.tensor([1, 0, 0]), Mx.tensor([0, 1, 0])) |> Mx.to_list()
      [0, 0, 1]
  """
  @spec cross(Mx.tensor_like(), Mx.tensor_like(), keyword()) :: t()
  def cross(a, b, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: -1], "Mx.Linalg.cross")
    call(:cross, [a, b], [opts[:axis]])
  end

  @doc """
  The outer product of the flattened inputs: `{size(a), size(b)}`.

      iex> Mx.Linalg.outer(Mx.tensor([1, 2]), Mx.tensor([1, 10, 100])) |> Mx.to_list()
      [[1, 10, 100], [2, 20, 200]]
  """
  @spec outer(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def outer(a, b), do: call(:outer, [a, b])

  # ---- diagonals --------------------------------------------------------------------------------

  @doc """
  The sum of the diagonal (`offset:` above it if positive, below if
  negative) of each matrix in the last two axes. Integers sum to `:s64`
  or `:u64`, as `Mx.sum/2`.

      iex> Mx.Linalg.trace(Mx.tensor([[1, 2], [3, 4]])) |> Mx.to_number()
      5
  """
  @spec trace(Mx.tensor_like(), keyword()) :: t()
  def trace(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [offset: 0], "Mx.Linalg.trace")
    call(:trace, [a], [offset!(opts[:offset], :trace)])
  end

  @doc """
  The diagonal of each matrix in the last two axes (`{..., m, n}` to
  `{..., d}`); `offset:` picks a diagonal above (positive) or below
  (negative) the main one.

      iex> m = Mx.tensor([[1, 2, 3], [4, 5, 6]])
      iex> {Mx.Linalg.diagonal(m) |> Mx.to_list(), Mx.Linalg.diagonal(m, offset: 1) |> Mx.to_list()}
      {[1, 5], [2, 6]}
  """
  @spec diagonal(Mx.tensor_like(), keyword()) :: t()
  def diagonal(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [offset: 0], "Mx.Linalg.diagonal")
    call(:diagonal, [a], [offset!(opts[:offset], :diagonal)])
  end

  @doc """
  A square matrix with the vector `v` on a diagonal (`offset:`) and zeros
  elsewhere: `{..., n}` to `{..., n + |offset|, n + |offset|}`, one matrix
  per vector of a batch.

      iex> Mx.Linalg.diag(Mx.tensor([1, 2])) |> Mx.to_list()
      [[1, 0], [0, 2]]
      iex> Mx.Linalg.diag(Mx.tensor([7]), offset: 1) |> Mx.to_list()
      [[0, 7], [0, 0]]
  """
  @spec diag(Mx.tensor_like(), keyword()) :: t()
  def diag(v, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [offset: 0], "Mx.Linalg.diag")
    call(:diag, [v], [offset!(opts[:offset], :diag)])
  end

  defp offset!(k, _fun) when is_integer(k), do: k
  defp offset!(k, fun), do: raise(ArgumentError, "[#{fun}] offset must be an integer, got #{inspect(k)}")
end
