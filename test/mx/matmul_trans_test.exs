defmodule Mx.MatmulTransTest do
  # Mx.matmul on Mx.transpose of the last two axes reads the transpose's input with a BLAS
  # transpose flag (c_src/ops.c, prim/matmul.c; test_matmul_trans.c checks every dtype and
  # shape in C). Here: the copy path (the transpose hidden behind a reshape, so it is
  # materialized) gives the same values, gradients, vmap and compiled results. Floats agree
  # within the matmul rounding bound 4 k u sum|a||b| (gemm is bit-identical here; gemv's trans
  # and no-trans kernels sum in different orders); integers exactly.
  use ExUnit.Case, async: false
  import Mx.GradCheck

  # generated-C objects go to a private cache of this run
  setup_all do
    Mx.PrivateJitCache.setup("matmul_trans_cache")
  end

  defp rand(shape, seed, type \\ :f64),
    do: Mx.Random.uniform(Mx.Random.key(seed), -1.0, 1.0, shape: shape, type: type)

  defp swap(x),
    do:
      Mx.transpose(x,
        axes: Enum.to_list(0..(Mx.rank(x) - 3)//1) ++ [Mx.rank(x) - 1, Mx.rank(x) - 2]
      )

  # The same transpose, materialized: matmul sees a reshape, not a transpose.
  defp swap_copy(x), do: x |> swap() |> then(&Mx.reshape(&1, Mx.shape(&1)))

  defp u(:f32), do: 5.960464477539063e-8
  defp u(:c64), do: 5.960464477539063e-8
  defp u(_), do: 1.1102230246251565e-16

  # |fused - copied| <= 4 k u (|a| @ |b|), elementwise (complex: 4x for the four real products).
  defp assert_close!(fused, copied, a_abs, b_abs, k, type) do
    assert Mx.shape(fused) == Mx.shape(copied) and Mx.type(fused) == Mx.type(copied)

    bound =
      Mx.matmul(a_abs, b_abs)
      |> Mx.multiply(4 * k * u(type) * if(Mx.Type.complex?(type), do: 4, else: 1))

    excess =
      Mx.subtract(Mx.abs(Mx.subtract(fused, copied)), bound) |> Mx.reduce_max() |> Mx.to_number()

    assert excess <= 0,
           "#{type}: fused and copied matmuls differ beyond the rounding bound by #{excess}"
  end

  defp operand(shape, seed, type) do
    cond do
      Mx.Type.complex?(type) ->
        Mx.complex(rand(shape, seed, :f32), rand(shape, seed + 100, :f32)) |> Mx.as_type(type)

      Mx.Type.float?(type) ->
        rand(shape, seed, type)

      true ->
        rand(shape, seed, :f32) |> Mx.multiply(4.0) |> Mx.round() |> Mx.as_type(type)
    end
  end

  for type <- [:f32, :f64, :c64, :s32, :u8],
      {ta, tb} <- [{true, false}, {false, true}, {true, true}],
      {desc, sa, sb} <- [
        {"one row", {1, 6}, {6, 5}},
        {"matrix", {7, 6}, {6, 5}},
        {"batched, broadcast", {3, 4, 6}, {6, 5}},
        {"broadcast both", {2, 1, 4, 6}, {3, 6, 1}}
      ] do
    test "#{type} #{desc}: a#{if ta, do: "ᵀ"} @ b#{if tb, do: "ᵀ"} equals the copy path" do
      {type, ta, tb, sa, sb} =
        {unquote(type), unquote(ta), unquote(tb), unquote(Macro.escape(sa)),
         unquote(Macro.escape(sb))}

      # stored operands: transposed where the product reads them transposed
      a = operand(if(ta, do: swap_shape(sa), else: sa), 1, type)
      b = operand(if(tb, do: swap_shape(sb), else: sb), 2, type)
      fused = Mx.matmul(if(ta, do: swap(a), else: a), if(tb, do: swap(b), else: b))
      copied = Mx.matmul(if(ta, do: swap_copy(a), else: a), if(tb, do: swap_copy(b), else: b))

      if Mx.Type.float?(type) or Mx.Type.complex?(type) do
        abs_of = fn x, t -> if t, do: swap_copy(Mx.abs(x)), else: Mx.abs(x) end

        assert_close!(
          fused,
          copied,
          abs_of.(a, ta),
          abs_of.(b, tb),
          elem(sa, tuple_size(sa) - 1),
          type
        )
      else
        assert Mx.to_list(fused) == Mx.to_list(copied)
      end
    end
  end

  defp swap_shape(s) do
    n = tuple_size(s)
    s |> put_elem(n - 1, elem(s, n - 2)) |> put_elem(n - 2, elem(s, n - 1))
  end

  describe "gradients" do
    test "finite differences, each operand transposed, batched and broadcast" do
      check_grads!(fn a, b -> Mx.matmul(a, swap(b)) end, [rand({2, 3, 4}, 3), rand({5, 4}, 4)])
      check_grads!(fn a, b -> Mx.matmul(swap(a), b) end, [rand({2, 4, 3}, 5), rand({4, 5}, 6)])

      check_grads!(fn a, b -> Mx.matmul(swap(a), swap(b)) end, [
        rand({4, 3}, 7),
        rand({2, 5, 4}, 8)
      ])

      check_grads!(fn a, b -> Mx.matmul(a, swap(b)) end, [rand({1, 4}, 9), rand({5, 4}, 10)])

      check_vjp_jvp!(fn a, b -> Mx.matmul(swap(a), swap(b)) end, [
        rand({2, 4, 3}, 11),
        rand({5, 4}, 12)
      ])
    end

    test "equal the copy path's gradients" do
      for {ta, tb} <- [{true, false}, {false, true}, {true, true}] do
        a = rand(if(ta, do: {2, 4, 3}, else: {2, 3, 4}), 13)
        b = rand(if(tb, do: {5, 4}, else: {4, 5}), 14)

        loss = fn sw ->
          fn a, b ->
            Mx.matmul(if(ta, do: sw.(a), else: a), if(tb, do: sw.(b), else: b))
            |> Mx.sin()
            |> Mx.sum()
          end
        end

        [ga, gb] = Mx.grad(loss.(&swap/1), [0, 1]).(a, b)
        [ca, cb] = Mx.grad(loss.(&swap_copy/1), [0, 1]).(a, b)

        for {g, c} <- [{ga, ca}, {gb, cb}] do
          assert Mx.shape(g) == Mx.shape(c)
          diff = Mx.subtract(g, c) |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number()
          # each gradient element is a sum of at most 2 * 5 products of magnitude <= 1
          assert diff <= 4 * 10 * u(:f64), "ta=#{ta} tb=#{tb}: gradients differ by #{diff}"
        end
      end
    end
  end

  test "vmap over either operand equals the per-example products" do
    xs = rand({3, 2, 4}, 15)
    w = rand({5, 4}, 16)
    ws = rand({3, 4, 5}, 17)
    batched = Mx.vmap(fn x -> Mx.matmul(x, swap(w)) end).(xs)
    both = Mx.vmap(fn x, v -> Mx.matmul(swap(v), swap(x)) end).(xs, ws)

    for i <- 0..2 do
      x = Mx.take(xs, Mx.tensor(i), axis: 0)
      v = Mx.take(ws, Mx.tensor(i), axis: 0)

      assert_close!(
        Mx.take(batched, Mx.tensor(i), axis: 0),
        Mx.matmul(x, swap_copy(w)),
        Mx.abs(x),
        swap_copy(Mx.abs(w)),
        4,
        :f64
      )

      assert_close!(
        Mx.take(both, Mx.tensor(i), axis: 0),
        Mx.matmul(swap_copy(v), swap_copy(x)),
        swap_copy(Mx.abs(v)),
        swap_copy(Mx.abs(x)),
        4,
        :f64
      )
    end
  end

  test "compiled (interpreter and generated C) equals uncompiled, with no transpose in the tape" do
    f = fn x, w, v ->
      {Mx.matmul(x, swap(w)), Mx.matmul(swap(v), x) |> Mx.exp(),
       Mx.grad(fn w -> Mx.sum(Mx.matmul(x, swap(w))) end).(w)}
    end

    args = [rand({6, 4}, 18), rand({5, 4}, 19), rand({6, 3}, 20)]
    eager = apply(f, args)
    interp = Mx.compile(fn [x, w, v] -> f.(x, w, v) end, jit: false)
    assert :transpose not in Mx.Compile.tape_info(interp, [args]).ops
    # the same kernel calls in the same order: bit for bit
    assert Enum.map(Tuple.to_list(interp.(args)), &Mx.to_list/1) ==
             Enum.map(Tuple.to_list(eager), &Mx.to_list/1)

    native = Mx.compile(fn [x, w, v] -> f.(x, w, v) end, jit: true, cache_size: 1)
    native.(args)
    assert Mx.Compile.await_native(native, [args], 300_000).tier == :native

    # flagged matmuls call the kernel; exp is generated code (within 2 ulps of the kernel's, jit_test.exs)
    for {n, e} <- Enum.zip(Tuple.to_list(native.(args)), Tuple.to_list(eager)) do
      assert Mx.subtract(n, e)
             |> Mx.abs()
             |> Mx.subtract(Mx.multiply(Mx.abs(e), 4 * u(:f64)))
             |> Mx.reduce_max()
             |> Mx.to_number() <= 0
    end
  end
end
