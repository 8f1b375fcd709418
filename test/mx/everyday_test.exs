defmodule Mx.EverydayTest do
  @moduledoc """
  Mx's everyday functions and the Mx.Linalg additions against numpy/scipy/mpmath
  (test/reference/everyday.exs, written by test/reference/generate_everyday.py),
  then gradients, the linear recurrence, and the error paths.

  ## Tolerances

  u is the unit roundoff (2^-24 f32, 2^-53 f64), γ(n) = n·u/(1 - n·u).

    * asinh, acosh, atanh, log2, log10: glibc's documented ulps (Mx.ReferenceCase).
    * softmax: rounding x - max moves each exponent by u·|x - max| ≤ u·spread, exp
      adds 2u, the sum γ(n), the division u and the reference's rounding u: each
      element within (u·(2·spread + 5) + γ(n))·|ref|.
    * log_softmax: (x - max) - log s; the same errors in s become absolute after
      the log: u·(2·spread + 2 + 2·log n + 2·|ref|) + γ(n).
    * var: the mean is off by δ = γ(n+1)·Σ|x|/n, which adds n·δ² to Σ(x - mean)²
      (the cross term vanishes); squaring and summing add γ(n+4) of that:
      (γ(n+4)·(Σd² + nδ²) + nδ²)/(n - ddof) + 2u·|ref|. std = sqrt(var):
      half var's relative error plus 2u.
    * tensordot, einsum: sums of products of p operands over k terms: γ(k + p)·Σ|products|.
    * associative_scan :add: any summation order of n terms, γ(n + 1)·Σ|x| over the prefix.
    * topk, split, tile, roll, associative_scan :max: bit for bit.
    * lu: P equals scipy's; L is unit lower and U upper triangular exactly; the backward
      error ‖P L U − A‖ is within `@c`·n·u·‖A‖ (LU with partial pivoting is backward stable).
    * eig: a backward-stable eigensolver (geev) perturbs A by c·n·u·‖A‖; by Bauer-Fike each
      eigenvalue moves by at most κ(V) times that (κ(V): the eigenvector matrix's condition
      number, aux). Residuals ‖A v − λ v‖ within `@c`·n·u·‖A‖ and ‖v‖ = 1 within `@c`·n·u.
    * pinv: through a backward-stable SVD, ‖ΔA⁺‖ ≤ c·κ·‖A⁺‖·(backward error)/‖A‖: within
      `@c`·m·n·κ·u·‖A⁺‖ elementwise (‖A⁺‖ = κ/‖A‖).
    * qr complete: ‖Q R − A‖ ≤ `@c`·m·n·u·‖A‖, ‖QᵀQ − I‖ ≤ `@c`·m²·u, |R| within
      `@c`·m·n·κ·u·‖A‖ of numpy's |R|, zero below the diagonal.

  `@c` = 32 as in Mx.LinalgTest.
  """
  use ExUnit.Case, async: true
  import Mx.GradCheck
  alias Mx.ReferenceCase

  @c 32
  @unary [:asinh, :acosh, :atanh, :log2, :log10]

  for c <- ReferenceCase.load!(["everyday"]) do
    @case c
    test c.name, do: check!(@case)
  end

  defp check!(%{fun: fun} = c) when fun in @unary, do: ReferenceCase.check!(c)

  defp check!(%{fun: fun, args: args, opts: opts} = c) do
    module = Map.get(c, :module, Mx)
    inputs = ReferenceCase.decode(args)
    result = apply(module, fun, if(opts == [], do: inputs, else: inputs ++ [opts]))
    check_result!(fun, c, inputs, result)
  end

  defp unit(t) when t in [:f32, :c64], do: :math.pow(2, -24)
  defp unit(t) when t in [:f64, :c128], do: :math.pow(2, -53)

  defp gamma(n, t), do: n * unit(t) / (1 - n * unit(t))

  defp flat(%Mx.Array{} = a), do: Mx.to_flat_list(a)
  defp flat({:array, _, _, _} = a), do: a |> ReferenceCase.decode() |> flat()

  defp type_of({:array, t, _, _}), do: t

  # Elementwise |got - want| <= atol (a number or one per element); NaN where want is NaN.
  defp assert_close!(name, %Mx.Array{} = got, want, atol) do
    assert {Mx.type(got), Mx.shape(got)} == {type_of(want), elem(want, 2)},
           "#{name}: got #{Mx.describe(got)}"

    atol = if is_list(atol), do: atol, else: Stream.cycle([atol])

    Enum.zip([flat(got), flat(want), atol])
    |> Enum.with_index()
    |> Enum.each(fn {{g, w, a}, i} ->
      assert close?(g, w, a),
             "#{name}: element #{i}: got #{inspect(g)}, expected #{inspect(w)} (allowed #{inspect(a)})"
    end)
  end

  defp close?(g, w, _a) when g == w, do: true
  defp close?({gr, gi}, {wr, wi}, a), do: close?(gr, wr, a) and close?(gi, wi, a)
  defp close?(g, w, a) when is_number(g) and is_number(w), do: abs(g - w) <= a
  defp close?(_, _, _), do: false

  defp assert_exact!(name, %Mx.Array{} = got, want) do
    assert {Mx.type(got), Mx.shape(got)} == {type_of(want), elem(want, 2)},
           "#{name}: got #{Mx.describe(got)}"

    assert Mx.to_binary(got) == Mx.to_binary(ReferenceCase.decode(want)), "#{name}: values differ"
  end

  defp check_result!(fun, c, _inputs, result) when fun in [:tile, :roll] do
    assert_exact!(c.name, result, c.expected)
  end

  defp check_result!(:split, c, _inputs, result) do
    assert length(result) == length(c.expected)
    Enum.zip(result, c.expected) |> Enum.each(fn {g, w} -> assert_exact!(c.name, g, w) end)
  end

  defp check_result!(:topk, c, _inputs, {values, indices}) do
    [v, i] = c.expected
    assert_exact!(c.name <> " values", values, v)
    assert_exact!(c.name <> " indices", indices, i)
  end

  defp check_result!(:softmax, %{aux: %{n: n, spread: spread}, expected: e} = c, _inputs, result) do
    t = type_of(e)
    tiny = if t == :f32, do: :math.pow(2, -146), else: :math.pow(2, -1071)

    atol =
      Enum.zip_with(flat(spread), flat(e), fn s, r ->
        (unit(t) * (2 * s + 5) + gamma(n, t)) * abs(r) + tiny
      end)

    assert_close!(c.name, result, e, atol)
  end

  defp check_result!(
         :log_softmax,
         %{aux: %{n: n, spread: spread}, expected: e} = c,
         _inputs,
         result
       ) do
    t = type_of(e)

    atol =
      Enum.zip_with(flat(spread), flat(e), fn s, r ->
        unit(t) * (2 * s + 2 + 2 * :math.log(n) + 2 * abs(r)) + gamma(n, t)
      end)

    assert_close!(c.name, result, e, atol)
  end

  defp check_result!(
         fun,
         %{aux: %{n: n, ddof: ddof, abs_sum: abs_sum, sq_sum: sq_sum}, expected: e} = c,
         _,
         result
       )
       when fun in [:var, :std] do
    t = type_of(e)

    var_atol =
      Enum.zip_with(flat(abs_sum), flat(sq_sum), fn a, sq ->
        delta = gamma(n + 1, t) * a / n

        (gamma(n + 4, t) * (sq + n * delta * delta) + n * delta * delta) / (n - ddof) +
          2 * unit(t) * sq / (n - ddof)
      end)

    atol =
      if fun == :var,
        do: var_atol,
        else:
          Enum.zip_with(var_atol, flat(e), fn a, s ->
            a / (2 * Kernel.max(s, 1.0e-300)) + 2 * unit(t) * s
          end)

    assert_close!(c.name, result, e, atol)
  end

  defp check_result!(fun, %{aux: %{k: k, abs_product: p} = aux, expected: e} = c, _inputs, result)
       when fun in [:tensordot, :einsum] do
    t = type_of(e)
    ops = Map.get(aux, :operands, 2)
    assert_close!(c.name, result, e, Enum.map(flat(p), &(gamma(k + ops, t) * &1)))
  end

  defp check_result!(
         :associative_scan,
         %{aux: %{n: n, abs_scan: s}, expected: e} = c,
         _inputs,
         result
       ) do
    assert_close!(c.name, result, e, Enum.map(flat(s), &(gamma(n + 1, type_of(e)) * &1)))
  end

  defp check_result!(:associative_scan, c, _inputs, result),
    do: assert_exact!(c.name, result, c.expected)

  defp check_result!(
         :lu,
         %{aux: %{n: n, anorm: anorm}, expected: [p_ref, _l, _u]} = c,
         [a],
         {p, l, u}
       ) do
    t = type_of(p_ref)
    wide = if t in [:c64, :c128], do: :c128, else: :f64
    assert_exact!(c.name <> " P", p, p_ref)
    {rows, cols} = {Mx.iota({n, 1}), Mx.iota({1, n})}
    {lf, uf} = {Mx.as_type(l, wide), Mx.as_type(u, wide)}
    assert Mx.all(Mx.equal(Mx.select(Mx.less(rows, cols), lf, 0.0), 0.0)) |> Mx.to_number()
    assert Mx.all(Mx.equal(Mx.select(Mx.equal(rows, cols), lf, 1.0), 1.0)) |> Mx.to_number()
    assert Mx.all(Mx.equal(Mx.select(Mx.greater(rows, cols), uf, 0.0), 0.0)) |> Mx.to_number()
    # partial pivoting bounds |L| by 1; complex LAPACK pivots on |re| + |im|, which is within
    # a factor √2 of the modulus, so |L| <= √2
    bound = if wide == :c128, do: :math.sqrt(2) * (1 + 4 * unit(t)), else: 1.0

    assert Mx.all(Mx.less_equal(Mx.abs(lf), bound)) |> Mx.to_number(),
           "#{c.name}: |L| > #{bound} (pivoting)"

    plu = Mx.matmul(Mx.as_type(p, wide), Mx.matmul(lf, uf))
    err = Mx.reduce_max(Mx.abs(Mx.subtract(plu, Mx.as_type(a, wide)))) |> Mx.to_number()
    assert err <= @c * n * unit(t) * anorm, "#{c.name}: ‖PLU − A‖ = #{err}"
  end

  defp check_result!(:eigvals, %{aux: aux, expected: w_ref} = c, _inputs, w) do
    assert_eigenvalues!(c.name, w, w_ref, aux)
  end

  defp check_result!(
         :eig,
         %{aux: %{n: n, anorm: anorm} = aux, expected: [w_ref]} = c,
         [a],
         {w, v}
       ) do
    t = type_of(w_ref)
    assert_eigenvalues!(c.name, w, w_ref, aux)
    assert Mx.type(v) == t
    ac = Mx.complex(Mx.as_type(a, :f64), 0.0)
    vc = Mx.as_type(v, :c128)
    wc = Mx.as_type(w, :c128)
    # A v_j − λ_j v_j, column by column
    resid = Mx.subtract(Mx.matmul(ac, vc), Mx.multiply(vc, Mx.new_axis(wc, -2)))
    r = Mx.reduce_max(Mx.abs(resid)) |> Mx.to_number()
    assert r <= @c * n * unit(t) * anorm, "#{c.name}: eigenvector residual #{r}"
    norms = Mx.sqrt(Mx.sum(Mx.square(Mx.abs(vc)), axes: [-2])) |> flat()
    for x <- norms, do: assert(abs(x - 1) <= @c * n * unit(t), "#{c.name}: eigenvector norm #{x}")
  end

  defp check_result!(
         :pinv,
         %{aux: %{m: m, n: n, cond: k, anorm: anorm}, expected: e} = c,
         _inputs,
         result
       ) do
    t = type_of(e)
    assert_close!(c.name, result, e, @c * m * n * k * unit(t) * (k / anorm))
  end

  defp check_result!(
         :qr,
         %{aux: %{m: m, n: n, anorm: anorm, cond: k}, expected: [r_abs]} = c,
         [a],
         {q, r}
       ) do
    t = type_of(r_abs)

    batch =
      a.shape
      |> Tuple.delete_at(tuple_size(a.shape) - 1)
      |> Tuple.delete_at(tuple_size(a.shape) - 2)

    assert Mx.shape(q) == Tuple.append(Tuple.append(batch, m), m)
    assert_close!(c.name <> " |R|", Mx.abs(r), r_abs, @c * m * n * k * unit(t) * anorm)
    {qf, rf, af} = {Mx.as_type(q, :f64), Mx.as_type(r, :f64), Mx.as_type(a, :f64)}

    swap = fn x ->
      Mx.transpose(x,
        axes: Enum.to_list(0..(Mx.rank(x) - 3)//1) ++ [Mx.rank(x) - 1, Mx.rank(x) - 2]
      )
    end

    qr_err = Mx.reduce_max(Mx.abs(Mx.subtract(Mx.matmul(qf, rf), af))) |> Mx.to_number()
    assert qr_err <= @c * m * n * unit(t) * anorm, "#{c.name}: ‖QR − A‖ = #{qr_err}"

    orth =
      Mx.reduce_max(Mx.abs(Mx.subtract(Mx.matmul(swap.(qf), qf), Mx.eye(m, type: :f64))))
      |> Mx.to_number()

    assert orth <= @c * m * m * unit(t), "#{c.name}: ‖QᵀQ − I‖ = #{orth}"
    {rows, cols} = {Mx.iota({m, 1}), Mx.iota({1, n})}
    assert Mx.all(Mx.equal(Mx.select(Mx.greater(rows, cols), rf, 0.0), 0.0)) |> Mx.to_number()
  end

  # Each reference eigenvalue has a computed one within κ(V)·@c·n·u·‖A‖, matched one to one.
  defp assert_eigenvalues!(name, w, w_ref, %{n: n, anorm: anorm, kappa_v: kv}) do
    t = type_of(w_ref)
    assert {Mx.type(w), Mx.shape(w)} == {t, elem(w_ref, 2)}
    tol = kv * @c * n * unit(t) * anorm
    got = w |> flat() |> Enum.chunk_every(n)
    want = w_ref |> flat() |> Enum.chunk_every(n)

    for {g, wv} <- Enum.zip(got, want) do
      Enum.reduce(wv, g, fn {re, im}, left ->
        {best, d} =
          left
          |> Enum.map(fn {a, b} = z -> {z, :math.sqrt((a - re) ** 2 + (b - im) ** 2)} end)
          |> Enum.min_by(&elem(&1, 1))

        assert d <= tol,
               "#{name}: eigenvalue #{inspect({re, im})} has no match within #{tol} (nearest #{inspect(best)})"

        List.delete(left, best)
      end)
    end
  end

  # ---- the linear recurrence against a sequential loop --------------------------------------------

  test "associative_scan solves x_t = a_t x_{t-1} + b_t as a sequential loop does" do
    key = Mx.Random.key(7)
    [k1, k2] = Mx.Random.split(key, 2) |> then(&[&1[0], &1[1]])
    n = 200
    a = Mx.Random.uniform(k1, -1.0, 1.0, shape: {n, 3}, type: :f64)
    b = Mx.Random.normal(k2, shape: {n, 3}, type: :f64)
    step = fn {a1, b1}, {a2, b2} -> {Mx.multiply(a1, a2), Mx.add(Mx.multiply(a2, b1), b2)} end
    {_, x} = Mx.associative_scan(step, {a, b})

    loop = fn as, bs ->
      Enum.zip(as, bs)
      |> Enum.scan(nil, fn
        {_a, b}, nil -> b
        {a, b}, prev -> Enum.zip_with([a, prev, b], fn [ai, pi, bi] -> ai * pi + bi end)
      end)
    end

    want = loop.(Mx.to_list(a), Mx.to_list(b))
    # Both sum the same terms Π a · b in different orders: each is within γ(2n) of the
    # sum of their magnitudes, which the loop on |a|, |b| computes.
    scale = loop.(Mx.to_list(Mx.abs(a)), Mx.to_list(Mx.abs(b)))
    g2n = 2 * n * :math.pow(2, -53) / (1 - 2 * n * :math.pow(2, -53))

    for {gr, wr, sr} <- Enum.zip([Mx.to_list(x), want, scale]),
        {g, w, s} <- Enum.zip([gr, wr, sr]) do
      assert abs(g - w) <= 2 * g2n * s
    end
  end

  test "associative_scan along an axis other than 0, and the sum of an odd length" do
    x = Mx.iota({2, 7}, type: :f64)

    assert Mx.associative_scan(:add, x, axis: 1) |> Mx.to_list() ==
             Mx.cumulative_sum(x, axis: 1) |> Mx.to_list()

    assert Mx.associative_scan(&Mx.max/2, Mx.tensor([3, 1, 4, 1, 5])) |> Mx.to_list() == [
             3,
             3,
             4,
             4,
             5
           ]
  end

  # ---- gradients (the composites differentiate through their parts) --------------------------------

  test "gradients of the composites match finite differences" do
    x = random_f64({3, 4}, 140)
    y = random_f64({4, 2}, 141)
    check_grads!(&Mx.softmax(&1, axis: 0), [x])
    check_grads!(&Mx.log_softmax/1, [x])
    check_grads!(&Mx.var(&1, axes: [1], ddof: 1), [x])
    check_grads!(&Mx.std/1, [x])
    check_grads!(fn a -> elem(Mx.topk(a, 2), 0) end, [x])
    check_grads!(&Mx.tile(&1, [2, 1]), [x])
    check_grads!(&Mx.roll(&1, 1, axis: 1), [x])
    check_grads!(fn a -> Mx.split(a, [1], axis: 1) |> List.last() end, [x])
    check_grads!(&Mx.tensordot(&1, &2, 1), [x, y])
    check_grads!(&Mx.einsum("ij,jk,ij->ik", [&1, &2, &1]), [x, y])
    check_grads!(&Mx.einsum("...ij,jk->...ik", [&1, &2]), [random_f64({2, 1, 3, 4}, 145), y])
    check_grads!(&Mx.associative_scan(:multiply, &1, axis: 1), [Mx.add(Mx.abs(x), 0.5)])
  end

  test "asinh and acosh gradients stay right where x^2 overflows" do
    for {t, x} <- [{:f32, 1.0e30}, {:f64, 1.0e200}] do
      g = Mx.grad(&Mx.sum(Mx.asinh(&1))).(Mx.tensor([x, -x, 0.5], type: t)) |> Mx.to_list()
      h = Mx.grad(&Mx.sum(Mx.acosh(&1))).(Mx.tensor([x, 1.5], type: t)) |> Mx.to_list()
      # 1/sqrt(x^2 + 1) = 1/|x| to rounding for these x; 1/sqrt(1.25), 1/sqrt(1.25) at 0.5 and 1.5
      for {got, want} <-
            Enum.zip(g ++ h, [1 / x, 1 / x, 1 / :math.sqrt(1.25), 1 / x, 1 / :math.sqrt(1.25)]) do
        assert_in_delta got, want, 4 * if(t == :f32, do: 1.2e-7, else: 2.3e-16) * want
      end
    end
  end

  test "Mx.Linalg.lu's factors are differentiable" do
    a = random_f64({3, 3}, 142)

    check_grads!(
      fn a ->
        {_p, l, u} = Mx.Linalg.lu(a)
        Mx.add(Mx.sum(Mx.square(l)), Mx.sum(Mx.multiply(u, u)))
      end,
      [a]
    )
  end

  test "the new rows replay bit for bit under Mx.compile" do
    f = fn x ->
      y = Mx.multiply(x, 0.1)

      Mx.stack([
        Mx.asinh(x),
        Mx.acosh(Mx.add(Mx.abs(x), 1.0)),
        Mx.atanh(y),
        Mx.log2(Mx.abs(x)),
        Mx.log10(Mx.abs(x))
      ])
    end

    x = random_f64({7}, 146) |> Mx.multiply(5.0)
    assert Mx.to_binary(Mx.compile(f, jit: false).(x)) == Mx.to_binary(f.(x))
  end

  test "the composites work under vmap" do
    x = random_f64({2, 3, 4}, 143)
    f = fn m -> Mx.add(Mx.softmax(m), Mx.var(m, axes: [0], keep_axes: true)) end
    assert_in_delta max_diff(Mx.vmap(f).(x), Mx.stack([f.(x[0]), f.(x[1])])), 0.0, 1.0e-14
    g = &Mx.einsum("ij,kj->ik", [&1, &1])
    assert_in_delta max_diff(Mx.vmap(g).(x), Mx.stack([g.(x[0]), g.(x[1])])), 0.0, 1.0e-14
  end

  test "eig, eigvals and complex lu under vmap match the batched calls" do
    x = random_f64({3, 4, 4}, 144)
    {w, v} = Mx.vmap(&Mx.Linalg.eig/1).(x)
    {wb, vb} = Mx.Linalg.eig(x)
    assert Mx.to_list(w) == Mx.to_list(wb) and Mx.to_list(v) == Mx.to_list(vb)
    assert Mx.to_list(Mx.vmap(&Mx.Linalg.eigvals/1).(x)) == Mx.to_list(Mx.Linalg.eigvals(x))
    z = Mx.complex(x, Mx.reverse(x, axes: [0]))
    {_p, l, _u} = Mx.vmap(&Mx.Linalg.lu/1).(z)
    assert Mx.to_list(l) == Mx.to_list(elem(Mx.Linalg.lu(z), 1))
  end

  defp max_diff(a, b), do: Mx.reduce_max(Mx.abs(Mx.subtract(a, b))) |> Mx.to_number()

  # ---- errors ----------------------------------------------------------------------------------------

  test "malformed einsum subscripts raise, saying what is wrong" do
    a = Mx.ones({2, 3})

    for {sub, ops, msg} <- [
          {"ij,jk", [a], "names 2 operand(s) but 1 were given"},
          {"ijk", [a], "has 3 letter(s) for f32[2][3]"},
          {"ij->k", [a], "output letter k is not in any operand"},
          {"ij->ii", [a], "the output repeats a letter"},
          {"i1", [a], "\"1\" is not a letter"},
          {"...i...", [a], "more than one ..."},
          {"i.j", [a], "\".\" is not a letter"},
          {"...ijk", [a], "names 3 axes of f32[2][3], which has fewer"},
          {"...j->j", [a], "the output needs ..."},
          {"...i,...i", [a, Mx.ones({3, 3})],
           "the axes under ... do not broadcast (sizes 2 and 3)"},
          {"ij->i->j", [a], "more than one ->"},
          {"ij,ij", [a, Mx.ones({3, 2})], "index i has sizes 2 and 3"}
        ] do
      e = assert_raise ArgumentError, fn -> Mx.einsum(sub, ops) end
      assert e.message =~ "[einsum]"
      assert e.message =~ msg
    end
  end

  test "invalid arguments raise ArgumentError naming the function" do
    a = Mx.ones({4, 6})

    assert_raise ArgumentError, ~r/\[softmax\] axis 2 is out of range/, fn ->
      Mx.softmax(a, axis: 2)
    end

    assert_raise ArgumentError, ~r/unknown option axes/, fn -> Mx.softmax(a, axes: [0]) end

    assert_raise ArgumentError, ~r/\[var\] ddof: 4 leaves no degrees of freedom/, fn ->
      Mx.var(a, axes: [0], ddof: 4)
    end

    assert_raise ArgumentError, ~r/\[std\] ddof must be a non-negative integer/, fn ->
      Mx.std(a, ddof: -1)
    end

    assert_raise ArgumentError, ~r/\[topk\] k must be an integer in 0..6/, fn -> Mx.topk(a, 7) end

    assert_raise ArgumentError, ~r/\[split\] cannot split axis 1 of length 6 into 4/, fn ->
      Mx.split(a, 4, axis: 1)
    end

    assert_raise ArgumentError, ~r/\[split\] expects/, fn -> Mx.split(a, [3, 1]) end
    assert_raise ArgumentError, ~r/\[tile\] reps/, fn -> Mx.tile(a, [-1]) end
    assert_raise ArgumentError, ~r/\[roll\] shift/, fn -> Mx.roll(a, [1, 2], axis: 0) end

    assert_raise ArgumentError,
                 ~r/\[tensordot\] axis 1 of f32\[4\]\[6\] \(6\) does not match/,
                 fn -> Mx.tensordot(a, a, 1) end

    assert_raise ArgumentError, ~r/\[tensordot\] axes must be/, fn -> Mx.tensordot(a, a, 3) end

    assert_raise ArgumentError, ~r/\[associative_scan\] fun must be/, fn ->
      Mx.associative_scan(:subtract, a)
    end

    assert_raise ArgumentError,
                 ~r/\[associative_scan\] every array needs axis 0 of length 4/,
                 fn ->
                   Mx.associative_scan(fn x, _ -> x end, {a, Mx.ones({3})})
                 end

    assert_raise ArgumentError, ~r/\[qr\] mode must be :reduced or :complete/, fn ->
      Mx.Linalg.qr(a, mode: :r)
    end

    assert_raise ArgumentError, ~r/\[pinv\] rtol/, fn -> Mx.Linalg.pinv(a, rtol: -1) end
    assert_raise Mx.Error, ~r/\[lu\] expects square matrices/, fn -> Mx.Linalg.lu(a) end
    assert_raise Mx.Error, ~r/\[eig\] expects square matrices/, fn -> Mx.Linalg.eig(a) end

    assert_raise Mx.Error, ~r/\[eigvals\] does not support complex/, fn ->
      Mx.Linalg.eigvals(Mx.complex(Mx.eye(2), 0.0))
    end

    assert_raise Mx.Error, ~r/\[asinh\]/, fn -> Mx.asinh(Mx.complex(Mx.ones({2}), 0.0)) end
  end

  test "eig has no gradient yet: differentiating raises, naming it" do
    assert_raise Mx.Error, ~r/eig/, fn ->
      Mx.grad(fn a -> a |> Mx.Linalg.eigvals() |> Mx.real() |> Mx.sum() end).(
        Mx.eye(2, type: :f64)
      )
    end
  end

  test "a matrix with NaN gives NaN eigenvalues, not a failure" do
    w = Mx.Linalg.eigvals(Mx.tensor([[1.0, :nan], [0.0, 1.0]])) |> Mx.to_list()
    assert Enum.all?(w, fn {re, im} -> re == :nan and im == :nan end)
  end
end
