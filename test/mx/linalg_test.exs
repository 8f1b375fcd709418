defmodule Mx.LinalgTest do
  @moduledoc """
  Mx.Linalg against numpy (test/reference/linalg.exs, written by
  test/reference/generate_linalg.py), then the failure paths.

  ## Tolerances

  u is the unit roundoff (2^-24 for f32, 2^-53 for f64), n the order of the
  matrices (m × n for rectangular ones), κ their 2-norm condition number and
  ‖A‖ their 2-norm (`aux` of each case; the largest over a batch). The
  references solve the same (already rounded) problem in float64.

    * LU with partial pivoting, Cholesky, Householder QR and the triangular
      solves are backward stable: the computed result is exact for an input
      perturbed by ‖ΔA‖ ≤ c(n)·u·‖A‖, with c(n) a small multiple of n (growth
      factor included; Higham, "Accuracy and Stability of Numerical
      Algorithms", ch. 8, 9, 10, 19). The forward error is then at most κ
      times that: solve, inv, cholesky, triangular_solve and |R| of qr must be
      within `@c`·n·κ·u of the reference, relative to its largest element.
    * det: d(det)/det = tr(A⁻¹ dA), so a backward error of c·n·u·‖A‖ moves
      it by a relative n·κ·c·n·u: `@c`·n²·κ·u relative; log|det| by that
      much in absolute terms; the sign must be exact.
    * Symmetric eigenvalues and singular values move by at most ‖ΔA‖
      (Weyl): `@c`·n²·u·‖A‖ (eigh: n² covers the tridiagonal reduction) and
      `@c`·m·n·u·‖A‖.
    * Eigenvectors and singular vectors are unique only up to sign, so they
      are checked through the identities instead: ‖V diag(w) Vᵀ − A‖,
      ‖U S Vt − A‖, ‖Q R − A‖ within `@c`·m·n·u·‖A‖ (the products here add
      γ(n)·‖A‖), and ‖QᵀQ − I‖ within `@c`·m·n·u.
    * Norms are sums of N = m·n (or n) terms: γ(N) relative, plus sqrt's
      half ulp; the singular-value ones follow the SVD bound.
    * cross: each element is a·b − c·d with three roundings, ≤ 3u(|ab| + |cd|)
      ≤ 6u·max|a|·max|b| (`aux.scale`). trace: a sum of n terms, γ(n)·Σ|dᵢᵢ|.
      outer, diag and diagonal only multiply once or move values: bit-exact.

  `@c` = 32 covers the constants of those bounds for the orders used here
  (n ≤ 8, plus one 40 × 40 slogdet) and the reference's own float64 error
  (at most the f64 bound itself). A wrong algorithm misses by orders of
  magnitude more: an f32 n = 5 solve with κ = 10 passes at 1e-4 relative.
  """
  use ExUnit.Case, async: true
  alias Mx.{Linalg, ReferenceCase}

  doctest Mx.Linalg

  @c 32

  for c <- ReferenceCase.load!(["linalg"]) do
    @case c
    test c.name, do: check!(@case)
  end

  # ---- checking a reference case ------------------------------------------------------------

  defp check!(%{fun: fun, args: args, opts: opts} = c) do
    inputs = ReferenceCase.decode(args)
    result = apply(Linalg, fun, if(opts == [], do: inputs, else: inputs ++ [opts]))
    check_result!(fun, c, inputs, result)
  end

  defp check_result!(fun, c, _inputs, result) when fun in [:cholesky, :solve, :inv, :triangular_solve] do
    assert_shape!(c, result)
    assert_close!(c, result, c.expected, @c * c.aux.n * c.aux.cond * u(c), :relative)
  end

  defp check_result!(:det, c, _inputs, result) do
    assert_shape!(c, result)
    tol = @c * c.aux.n * c.aux.n * c.aux.cond * u(c)
    got = floats(result)
    want = floats(ReferenceCase.decode(c.expected))

    for {g, w} <- Enum.zip(got, want) do
      assert abs(g - w) <= tol * abs(w), "#{c.name}: det #{g}, expected #{w} (relative bound #{tol})"
    end
  end

  defp check_result!(:slogdet, c, _inputs, {sign, logabs}) do
    [want_sign, want_log] = ReferenceCase.decode(c.expected)

    assert floats(sign) == floats(want_sign),
           "#{c.name}: signs #{inspect(floats(sign))}, expected #{inspect(floats(want_sign))}"

    assert_close!(c, logabs, c.expected |> Enum.at(1), @c * c.aux.n * c.aux.n * c.aux.cond * u(c), :absolute)
    assert Mx.shape(logabs) == Mx.shape(want_log)
  end

  defp check_result!(:qr, c, [a], {q, r}) do
    %{m: m, n: n} = c.aux
    k = min(m, n)
    batch = a.shape |> Tuple.delete_at(tuple_size(a.shape) - 1) |> Tuple.delete_at(tuple_size(a.shape) - 2)
    assert Mx.shape(q) == Tuple.append(Tuple.append(batch, m), k)
    assert Mx.shape(r) == Tuple.append(Tuple.append(batch, k), n)
    assert_close!(c, Mx.abs(r), c.expected, @c * m * n * c.aux.cond * u(c), :relative)
    assert max_abs(Mx.multiply(r, lower_mask(k, n, -1))) == 0.0, "#{c.name}: R has nonzeros below its diagonal"

    identities!(
      c,
      [{"Q R - A", Mx.subtract(Mx.matmul(q, r), a), c.aux.anorm}, {"QᵀQ - I", gram(q, :cols, k), 1.0}],
      m * n
    )
  end

  defp check_result!(:svd, c, [a], {uu, s, vt}) do
    %{m: m, n: n} = c.aux
    k = min(m, n)
    full = Keyword.get(c.opts, :full_matrices, false)
    {p, q} = if full, do: {m, n}, else: {k, k}

    assert elem(Mx.shape(uu), tuple_size(Mx.shape(uu)) - 1) == p and
             elem(Mx.shape(vt), tuple_size(Mx.shape(vt)) - 2) == q

    assert_close!(c, s, c.expected, @c * m * n * u(c) * c.aux.anorm, :absolute)
    # U[:, :k] diag(s) Vt[:k, :] = A
    u_k = slice_last(uu, 1, k)
    vt_k = slice_last(vt, 2, k)
    rec = Mx.matmul(Mx.multiply(u_k, Mx.new_axis(s, -2)), vt_k)

    identities!(
      c,
      [
        {"U S Vt - A", Mx.subtract(rec, a), c.aux.anorm},
        {"UᵀU - I", gram(uu, :cols, p), 1.0},
        {"Vt Vtᵀ - I", gram(vt, :rows, q), 1.0}
      ],
      m * n
    )
  end

  defp check_result!(:svdvals, c, _inputs, s) do
    assert_shape!(c, s)
    assert_close!(c, s, c.expected, @c * c.aux.m * c.aux.n * u(c) * c.aux.anorm, :absolute)
  end

  defp check_result!(:eigh, c, [a], {w, v}) do
    n = c.aux.n
    assert_close!(c, w, c.expected, @c * n * n * u(c) * c.aux.anorm, :absolute)
    # The symmetric matrix eigh reads: a's lower triangle mirrored.
    sym = Mx.select(lower_mask(n, n, 0), a, swap_last(a))
    rec = Mx.matmul(Mx.multiply(v, Mx.new_axis(w, -2)), swap_last(v))

    identities!(
      c,
      [{"V diag(w) Vᵀ - A", Mx.subtract(rec, sym), c.aux.anorm}, {"VᵀV - I", gram(v, :cols, n), 1.0}],
      n * n
    )
  end

  defp check_result!(:eigvalsh, c, _inputs, w) do
    assert_shape!(c, w)
    assert_close!(c, w, c.expected, @c * c.aux.n * c.aux.n * u(c) * c.aux.anorm, :absolute)
  end

  defp check_result!(:norm, c, _inputs, result) do
    assert_shape!(c, result)
    terms = Map.get(c.aux, :m, 1) * c.aux.n
    # Relative to the result for sums; the SVD-based orders are bounded by the SVD's absolute error.
    scale =
      if Keyword.get(c.opts, :ord) in [2, -2, :nuc],
        do: c.aux.anorm * Kernel.min(c.aux.n, Map.get(c.aux, :m, c.aux.n)),
        else: 0.0

    tol = @c * terms * u(c)

    for {g, w} <- Enum.zip(floats(result), floats(ReferenceCase.decode(c.expected))) do
      assert abs(g - w) <= tol * Kernel.max(abs(w), scale), "#{c.name}: norm #{g}, expected #{w}"
    end
  end

  defp check_result!(:cross, c, _inputs, result) do
    assert_shape!(c, result)

    if float?(c),
      do: assert_close!(c, result, c.expected, 6 * u(c) * c.aux.scale, :absolute),
      else: assert_bits!(c, result)
  end

  defp check_result!(:trace, c, _inputs, result) do
    assert_shape!(c, result)

    if float?(c) do
      n = c.aux.n
      gamma = n * u(c) / (1 - n * u(c))
      assert_close!(c, result, c.expected, gamma * c.aux.abs_sum + u(c) * c.aux.abs_sum, :absolute)
    else
      assert_bits!(c, result)
    end
  end

  defp check_result!(fun, c, _inputs, result) when fun in [:outer, :diag, :diagonal] do
    assert_shape!(c, result)
    assert_bits!(c, result)
  end

  # ---- helpers ----------------------------------------------------------------------------------

  defp u(%{expected: expected}) do
    type =
      case expected do
        [{:array, t, _, _} | _] -> t
        {:array, t, _, _} -> t
      end

    if type == :f64, do: :math.pow(2, -53), else: :math.pow(2, -24)
  end

  defp float?(%{expected: {:array, t, _, _}}), do: t in [:f32, :f64]

  defp assert_shape!(c, result) do
    {:array, type, shape, _} = c.expected
    assert {Mx.type(result), Mx.shape(result)} == {type, shape}, "#{c.name}: got #{Mx.describe(result)}"
  end

  defp assert_bits!(c, result) do
    {:array, _, _, hex} = c.expected
    assert Mx.to_binary(result) == Base.decode16!(hex), "#{c.name}: #{inspect(Mx.to_list(result))}"
  end

  # max|got - want| <= tol (absolute) or tol * max|want| (relative); infinities must match exactly.
  defp assert_close!(c, got, expected, tol, mode) do
    want = ReferenceCase.decode(expected)
    g = floats(got)
    w = floats(want)
    assert length(g) == length(w)
    {finite_g, finite_w} = Enum.zip(g, w) |> Enum.filter(fn {_, x} -> is_float(x) end) |> Enum.unzip()

    assert Enum.reject(Enum.zip(g, w), fn {_, x} -> is_float(x) end) |> Enum.all?(fn {a, b} -> a == b end),
           "#{c.name}: non-finite values differ: #{inspect(g)} vs #{inspect(w)}"

    err = Enum.zip(finite_g, finite_w) |> Enum.map(fn {a, b} -> if is_float(a), do: abs(a - b), else: :infinity end)
    scale = if mode == :relative, do: Enum.reduce(finite_w, 0.0, &Kernel.max(abs(&1), &2)), else: 1.0
    worst = Enum.max([0.0 | err])

    assert worst != :infinity and worst <= tol * scale,
           "#{c.name}: max error #{inspect(worst)} exceeds #{tol * scale} (#{mode} bound #{tol})"
  end

  defp identities!(c, checks, size) do
    for {what, diff, scale} <- checks do
      err = max_abs(diff)
      bound = @c * size * u(c) * scale
      assert err <= bound, "#{c.name}: |#{what}| = #{err} exceeds #{bound}"
    end
  end

  # Floats of an array (widened to f64 bits first); non-finite values as atoms.
  defp floats(a) do
    a
    |> Mx.as_type(:f64)
    |> Mx.to_binary()
    |> ReferenceCase.elements(:f64)
    |> Enum.map(fn
      {:finite, _, v} -> v
      {kind, _, _} -> kind
    end)
  end

  defp max_abs(a) do
    if Mx.size(a) == 0, do: 0.0, else: a |> Mx.as_type(:f64) |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number()
  end

  defp swap_last(a) do
    r = Mx.rank(a)
    Mx.transpose(a, axes: Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2])
  end

  # QᵀQ - I (cols) or Q Qᵀ - I (rows) for the trailing k × k Gram matrix.
  defp gram(q, :cols, k), do: Mx.subtract(Mx.matmul(swap_last(q), q), Mx.eye(k, type: Mx.type(q)))
  defp gram(q, :rows, k), do: Mx.subtract(Mx.matmul(q, swap_last(q)), Mx.eye(k, type: Mx.type(q)))

  # 1 where row - col >= -offset... i.e. on and below diagonal `offset` (0: the lower triangle).
  defp lower_mask(rows, cols, offset) do
    i = Mx.iota({rows, cols}, axis: 0)
    j = Mx.iota({rows, cols}, axis: 1)
    Mx.less_equal(Mx.subtract(j, i), offset)
  end

  # The first k entries of axis (rank - from).
  defp slice_last(a, from, k) do
    r = Mx.rank(a)
    ax = r - from
    Mx.slice(a, List.duplicate(0, r), a.shape |> Tuple.to_list() |> List.replace_at(ax, k))
  end

  # ---- failures ---------------------------------------------------------------------------------

  defp message(fun) do
    try do
      fun.() |> Mx.eval()
      flunk("expected Mx.Error")
    rescue
      e in Mx.Error -> e.message
    end
  end

  test "cholesky names the first matrix of the batch that is not positive definite" do
    good = [[4.0, 2.0, 0.0], [2.0, 5.0, 1.0], [0.0, 1.0, 3.0]]
    bad = [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    a = Mx.tensor([good, good, good, bad, good, bad], type: :f64)
    msg = message(fn -> Linalg.cholesky(a) end)
    assert msg =~ "[cholesky] matrix 3 of the batch f64[6][3][3] is not positive definite"
    assert msg =~ "its leading minor of order 2 is not positive"
    # Evaluating again raises again: a failed node stays pending, it is never a garbage result.
    l = Linalg.cholesky(a)
    assert_raise Mx.Error, fn -> Mx.eval(l) end
    assert_raise Mx.Error, fn -> Mx.to_list(l) end
  end

  test "solve and inv name the singular matrix and its zero pivot" do
    a = Mx.tensor([[1.0, 2.0], [2.0, 4.0]])

    assert message(fn -> Linalg.solve(a, Mx.tensor([1.0, 2.0])) end) =~
             "[solve] the matrix f32[2][2] is singular (pivot 1 of its LU factorization is exactly zero)"

    batch = Mx.stack([Mx.eye(2), a])
    assert message(fn -> Linalg.inv(batch) end) =~ "[inv] matrix 1 of the batch f32[2][2][2] is singular (pivot 1"
  end

  test "triangular_solve rejects a zero on the diagonal unless it is taken as one" do
    l = Mx.tensor([[2.0, 0.0], [1.0, 0.0]])

    assert message(fn -> Linalg.triangular_solve(l, Mx.tensor([1.0, 1.0])) end) =~
             "[triangular_solve] the matrix f32[2][2] is singular (a[1][1] is exactly zero)"

    assert Linalg.triangular_solve(l, Mx.tensor([2.0, 3.0]), unit_diagonal: true) |> Mx.to_list() == [2.0, 1.0]
  end

  test "shape errors raise at once, naming the op and the shapes" do
    assert_raise Mx.Error, ~r/\[cholesky\] expects square matrices \[\.\.\., n, n\], got f32\[2\]\[3\]/, fn ->
      Linalg.cholesky(Mx.zeros({2, 3}))
    end

    assert_raise Mx.Error, ~r/\[eigh\] expects a matrix or a batch of matrices/, fn -> Linalg.eigh(Mx.zeros({3})) end
    assert_raise Mx.Error, ~r/\[det\] expects square matrices/, fn -> Linalg.det(Mx.zeros({2, 3})) end

    assert_raise Mx.Error, ~r/\[solve\] b f32\[4\] does not fit a f32\[3\]\[3\]/, fn ->
      Linalg.solve(Mx.eye(3), Mx.zeros({4}))
    end

    assert_raise Mx.Error,
                 ~r/\[solve\] batch axes of a f32\[2\]\[3\]\[3\] and b f32\[4\]\[3\]\[1\] cannot be broadcast/,
                 fn ->
                   Linalg.solve(Mx.zeros({2, 3, 3}), Mx.zeros({4, 3, 1}))
                 end

    assert_raise Mx.Error, ~r/\[triangular_solve\] b f32\[2\]\[3\] does not fit a f32\[3\]\[3\]/, fn ->
      Linalg.triangular_solve(Mx.eye(3), Mx.zeros({2, 3}))
    end

    assert_raise Mx.Error, ~r/\[cross\] axis -1 must have 3 components/, fn ->
      Linalg.cross(Mx.zeros({2}), Mx.zeros({2}))
    end

    assert_raise Mx.Error, ~r/\[norm\] ord :fro is a matrix norm/, fn -> Linalg.norm(Mx.zeros({3}), ord: :fro) end
    assert_raise Mx.Error, ~r/\[norm\] ord 3 is not a matrix norm/, fn -> Linalg.norm(Mx.zeros({3, 3}), ord: 3) end
    assert_raise Mx.Error, ~r/\[norm\] ord needs axes/, fn -> Linalg.norm(Mx.zeros({2, 2, 2}), ord: 1) end
  end

  test "bad options raise ArgumentError" do
    assert_raise ArgumentError, ~r/transform_a must be :none or :transpose/, fn ->
      Linalg.triangular_solve(Mx.eye(2), Mx.ones({2}), transform_a: :conjugate)
    end

    assert_raise ArgumentError, fn -> Linalg.svd(Mx.eye(2), full: true) end
    assert_raise ArgumentError, ~r/\[qr\] mode must be :reduced or :complete/, fn -> Linalg.qr(Mx.eye(2), mode: :full) end
    assert_raise ArgumentError, ~r/\[norm\] ord must be/, fn -> Linalg.norm(Mx.eye(2), ord: :max) end
    assert_raise ArgumentError, ~r/\[diag\] offset must be an integer/, fn -> Linalg.diag(Mx.ones({2}), offset: 1.5) end
    assert_raise ArgumentError, ~r/\[linalg\] unknown function/, fn -> Mx.NIF.linalg(:lq, [Mx.eye(2).ref], []) end

    assert_raise ArgumentError, ~r/\[svd\] full_matrices must be 0 or 1/, fn ->
      Mx.NIF.linalg(:svd, [Mx.eye(2).ref], [2])
    end
  end

  test "a matrix holding NaN gives NaN, not an error" do
    a = Mx.tensor([[[1.0, 0.0], [0.0, 1.0]], [[:nan, 0.0], [0.0, 1.0]]])
    [ok, bad] = Linalg.cholesky(a) |> Mx.to_list()
    assert ok == [[1.0, 0.0], [0.0, 1.0]]
    assert bad == [[:nan, :nan], [:nan, :nan]]
    assert Linalg.eigvalsh(a) |> Mx.to_list() == [[1.0, 1.0], [:nan, :nan]]
  end

  test "a large factorization runs on a dirty scheduler and stays accurate" do
    n = 300
    m = Mx.iota({n, n}) |> Mx.as_type(:f64) |> Mx.multiply(0.7) |> Mx.sin()
    a = Mx.add(Mx.matmul(m, Mx.transpose(m)), Mx.multiply(Mx.eye(n, type: :f64), n))
    l = Linalg.cholesky(a)
    err = max_abs(Mx.subtract(Mx.matmul(l, Mx.transpose(l)), a))
    norm = Linalg.norm(a, ord: 2) |> Mx.to_number()
    assert err <= @c * n * :math.pow(2, -53) * norm
  end

  test "concurrent callers get the same bits as a lone caller" do
    a =
      Mx.tensor(
        for(
          i <- 0..63,
          do: for(j <- 0..3, do: for(k <- 0..3, do: :math.sin(i * 16 + j * 4 + k) + if(j == k, do: 4.0, else: 0.0)))
        ),
        type: :f64
      )

    b = Mx.ones({64, 4, 2}, type: :f64)
    want = Linalg.solve(a, b) |> Mx.to_binary()

    results =
      1..8
      |> Task.async_stream(fn _ -> Linalg.solve(a, b) |> Mx.to_binary() end, max_concurrency: 8)
      |> Enum.map(fn {:ok, bin} -> bin end)

    assert Enum.all?(results, &(&1 == want))
  end
end
