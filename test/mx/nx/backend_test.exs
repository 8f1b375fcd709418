if Code.ensure_loaded?(Mx.Nx.Backend) do
  defmodule Mx.Nx.BackendTest do
    # The backend's own contract: conversion, transfer, laziness, types, the composite callbacks
    # checked against Nx.BinaryBackend (Nx's reference implementation), and clear errors.
    use ExUnit.Case, async: true

    doctest Mx.Nx.Backend

    setup do
      Nx.default_backend(Mx.Nx.Backend)
      :ok
    end

    defp mx?(t), do: is_struct(t.data, Mx.Nx.Backend)

    # Start lists mixing integers and tensors: the nil holes take the tensors in order.
    defp fill([nil | rest], [t | ts]), do: [t | fill(rest, ts)]
    defp fill([s | rest], ts), do: [s | fill(rest, ts)]
    defp fill([], []), do: []

    # Runs `fun` on both backends from the same binary-backend inputs; the results must be equal.
    defp same_as_binary(inputs, fun) do
      expected = Nx.with_default_backend(Nx.BinaryBackend, fn -> fun.(inputs) end)
      got = fun.(Enum.map(inputs, &Nx.backend_copy(&1, Mx.Nx.Backend)))
      assert mx?(got)
      assert Nx.type(got) == Nx.type(expected)
      assert Nx.shape(got) == Nx.shape(expected)
      assert Nx.to_binary(got) == Nx.to_binary(expected)
    end

    describe "conversion and transfer" do
      test "Mx.to_nx/1 and Mx.from_nx/1 share the array" do
        a = Mx.tensor([[1.0, 2.0]])
        t = Mx.to_nx(a)
        assert mx?(t) and t.shape == {1, 2} and t.type == {:f, 32}
        assert Mx.from_nx(t) == a
        assert Mx.to_nx(Mx.tensor([true, false])).type == {:u, 8}
      end

      test "backend_transfer goes both ways and keeps the bytes" do
        b = Nx.tensor([[1, -2], [3, 4]], type: :s16, backend: Nx.BinaryBackend)
        m = Nx.backend_transfer(b, Mx.Nx.Backend)
        assert mx?(m)
        back = Nx.backend_transfer(m, Nx.BinaryBackend)
        assert back.data.__struct__ == Nx.BinaryBackend
        assert Nx.to_binary(back) == Nx.to_binary(b)
        assert Nx.backend_copy(m, Mx.Nx.Backend) |> Nx.to_binary() == Nx.to_binary(b)
      end

      test "every Nx type maps onto an Mx dtype and round-trips its bytes" do
        types = [
          s: 8,
          s: 16,
          s: 32,
          s: 64,
          u: 8,
          u: 16,
          u: 32,
          u: 64,
          f: 16,
          bf: 16,
          f: 32,
          f: 64,
          c: 64,
          c: 128
        ]

        for type <- types do
          b = Nx.tensor([0, 1, 2, 100], type: type, backend: Nx.BinaryBackend)
          m = Nx.backend_transfer(b, Mx.Nx.Backend)
          assert Mx.from_nx(m).type == Mx.Type.normalize!(type)
          assert Nx.to_binary(m) == Nx.to_binary(b), "type #{inspect(type)}"
        end
      end

      test "backend_deallocate frees the array once" do
        t = Nx.tensor([1.0, 2.0])
        assert Nx.backend_deallocate(t) == :ok
        assert Nx.backend_deallocate(t) == :already_deallocated
        assert_raise Mx.Error, ~r/disposed/, fn -> Nx.to_binary(t) end
      end

      test "init refuses options" do
        assert_raise ArgumentError, ~r/takes no backend options/, fn ->
          Nx.default_backend({Mx.Nx.Backend, device: :gpu})
        end
      end
    end

    describe "laziness" do
      test "a chain of Nx calls stays one lazy graph until read" do
        t = Nx.tensor([1.0, 2.0]) |> Nx.multiply(2) |> Nx.exp() |> Nx.sum()
        refute Mx.evaluated?(Mx.from_nx(t))
        assert_in_delta Nx.to_number(t), :math.exp(2) + :math.exp(4), 1.0e-3
        assert Mx.evaluated?(Mx.from_nx(t))
      end

      test "shape and type errors raise at the call" do
        assert_raise ArgumentError, fn -> Nx.add(Nx.iota({2, 3}), Nx.iota({4})) end
        assert_raise ArgumentError, fn -> Nx.dot(Nx.iota({2, 3}), Nx.iota({2, 3})) end
      end

      test "value errors raise Mx.Error when the result is read" do
        t = Nx.take(Nx.tensor([1, 2, 3]), Nx.tensor([5]))
        assert_raise Mx.Error, fn -> Nx.to_binary(t) end
        l = Nx.LinAlg.cholesky(Nx.tensor([[1.0, 2.0], [2.0, 1.0]]))
        assert_raise Mx.Error, ~r/not positive definite/, fn -> Nx.to_binary(l) end
      end
    end

    describe "composite callbacks match Nx.BinaryBackend" do
      setup do
        {:ok,
         a: Nx.iota({2, 3, 4}, backend: Nx.BinaryBackend),
         b: Nx.iota({2, 4, 5}, backend: Nx.BinaryBackend)}
      end

      test "dot with contracting and batch axes", %{a: a, b: b} do
        same_as_binary([a, b], fn [a, b] -> Nx.dot(a, [2], [0], b, [1], [0]) end)
        same_as_binary([a, b], fn [a, b] -> Nx.dot(a, [0, 2], [], b, [0, 1], []) end)
        same_as_binary([a, b], fn [a, b] -> Nx.dot(Nx.as_type(a, :f32), [2], b, [1]) end)
        same_as_binary([Nx.iota({3}, backend: Nx.BinaryBackend)], fn [v] -> Nx.dot(v, v) end)
      end

      test "dot with operands stored transposed (read through matmul's transpose flags)" do
        x = Nx.iota({2, 3, 4}, backend: Nx.BinaryBackend)
        w = Nx.iota({2, 5, 4}, backend: Nx.BinaryBackend)
        v = Nx.iota({2, 4, 3}, backend: Nx.BinaryBackend)
        same_as_binary([x, w], fn [x, w] -> Nx.dot(x, [2], [0], w, [2], [0]) end)
        same_as_binary([v, w], fn [v, w] -> Nx.dot(v, [1], [0], w, [2], [0]) end)
        same_as_binary([x, w], fn [x, w] -> Nx.dot(Nx.as_type(x, :f64), [2], [0], Nx.as_type(w, :f64), [2], [0]) end)
        same_as_binary([x, Nx.iota({5, 4}, backend: Nx.BinaryBackend)], fn [x, w] -> Nx.dot(x, [2], w, [1]) end)
      end

      test "put_slice and slice with tensor starts, in range and clamped as Nx does", %{a: a} do
        upd = Nx.iota({1, 2, 3}, backend: Nx.BinaryBackend) |> Nx.negate()

        # a is {2, 3, 4}: starts below 0 and past the end clamp to 0..(size - length).
        for s0 <- [-1, 0, 1, 5], s1 <- [0, 1, 2, 9], s2 <- [-3, 1, 3] do
          starts = [s0, s1, s2]
          tensors = Enum.map(starts, &Nx.tensor(&1, type: :s32, backend: Nx.BinaryBackend))
          mixed = [s0, Enum.at(tensors, 1), s2]

          for st <- [starts, tensors, mixed] do
            same_as_binary([a, upd | Enum.filter(st, &is_struct/1)], fn [a, u | ts] ->
              st = Enum.map(st, fn s -> if is_integer(s), do: s, else: nil end)
              st = fill(st, ts)
              Nx.put_slice(a, st, u)
            end)

            same_as_binary([a | Enum.filter(st, &is_struct/1)], fn [a | ts] ->
              st = fill(Enum.map(st, fn s -> if is_integer(s), do: s, else: nil end), ts)
              Nx.slice(a, st, [1, 2, 3], strides: [1, 2, 2])
            end)
          end
        end
      end

      test "gather and indexed ops over chosen axes", %{a: a} do
        idx = Nx.tensor([[1, 3], [0, 2], [1, 0]], backend: Nx.BinaryBackend)
        upd = Nx.tensor([[10, 20, 30], [40, 50, 60], [70, 80, 90]], backend: Nx.BinaryBackend)
        same_as_binary([a, idx], fn [a, i] -> Nx.gather(a, i, axes: [0, 2]) end)
        same_as_binary([a, idx, upd], fn [a, i, u] -> Nx.indexed_add(a, i, u, axes: [0, 2]) end)
        same_as_binary([a, idx, upd], fn [a, i, u] -> Nx.indexed_put(a, i, u, axes: [0, 2]) end)
      end

      test "argmax and argmin with both tie breaks" do
        t = Nx.tensor([[1, 3, 3, 0], [2, 2, 0, 0]], backend: Nx.BinaryBackend)

        for tie <- [:low, :high], fun <- [&Nx.argmax/2, &Nx.argmin/2], axis <- [nil, 1] do
          same_as_binary([t], fn [t] -> fun.(t, tie_break: tie, axis: axis) end)
        end
      end

      test "broadcast with axes, eye of a batch, to_batched with leftovers" do
        same_as_binary([Nx.tensor([1, 2], backend: Nx.BinaryBackend)], fn [t] ->
          Nx.broadcast(t, {2, 3}, axes: [0])
        end)

        assert Nx.eye({2, 2, 3}) |> Nx.to_binary() ==
                 Nx.eye({2, 2, 3}, backend: Nx.BinaryBackend) |> Nx.to_binary()

        batches =
          Nx.iota({5, 2}) |> Nx.to_batched(2, leftover: :repeat) |> Enum.map(&Nx.to_flat_list/1)

        assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
        assert Nx.iota({5}) |> Nx.to_batched(2, leftover: :discard) |> Enum.count() == 2
      end

      test "asinh, acosh, atanh and cbrt (composed) within 2 ulp of f64 math" do
        x = [0.001, 0.5, 3.0, 1.0e4]

        for {fun, ref, xs} <- [
              {&Nx.asinh/1, &:math.asinh/1, x ++ Enum.map(x, &(-&1))},
              {&Nx.acosh/1, &:math.acosh/1, [1.0, 1.001, 3.0, 1.0e4]},
              {&Nx.atanh/1, &:math.atanh/1, [0.001, -0.5, 0.9, 0.999]},
              {&Nx.cbrt/1, &(:math.pow(abs(&1), 1 / 3) * if(&1 < 0, do: -1, else: 1)),
               [8.0, -27.0, 0.001, 2.0]}
            ] do
          got = fun.(Nx.tensor(xs, type: :f64)) |> Nx.to_flat_list()

          Enum.zip_with([got, xs], fn [g, x] ->
            # 2 ulp of f64: the composed forms round a few times.
            assert_in_delta g, ref.(x), 4.5e-16 * abs(ref.(x)), "#{inspect(fun)} at #{x}"
          end)
        end
      end

      test "fft zeroes parts below eps as Nx does" do
        t = Nx.tensor([1.0, 0.0, -1.0, 0.0], backend: Nx.BinaryBackend)
        same_as_binary([t], fn [t] -> Nx.fft(t) end)
      end
    end

    describe "integer bit ops, quotient and bitcast match Nx.BinaryBackend" do
      test "every integer type, mixed types, shifts below the width, nonzero divisors" do
        for t <- [:s8, :s16, :s32, :s64, :u8, :u16, :u32, :u64] do
          {lo, hi} = if elem(Nx.Type.normalize!(t), 0) == :s, do: {-100, 100}, else: {0, 250}
          a = Nx.tensor(Enum.to_list(lo..hi//37), type: t, backend: Nx.BinaryBackend)
          n = Nx.size(a)
          b = Nx.tensor(Enum.map(1..n, &(rem(&1 * 5, 7) + 1)), type: t, backend: Nx.BinaryBackend)

          for f <-
                [&Nx.bitwise_and/2, &Nx.bitwise_or/2, &Nx.bitwise_xor/2, &Nx.left_shift/2] ++
                  [&Nx.right_shift/2, &Nx.quotient/2],
              do: same_as_binary([a, b], fn [x, y] -> f.(x, y) end)

          for f <- [&Nx.bitwise_not/1, &Nx.count_leading_zeros/1, &Nx.population_count/1],
              do: same_as_binary([a], fn [x] -> f.(x) end)
        end

        s8 = Nx.tensor([-128, -1, 5, 127], type: :s8, backend: Nx.BinaryBackend)
        u16 = Nx.tensor([1, 2, 3, 65535], type: :u16, backend: Nx.BinaryBackend)
        same_as_binary([s8, u16], fn [x, y] -> Nx.bitwise_xor(x, y) end)
        same_as_binary([s8, u16], fn [x, y] -> Nx.quotient(x, y) end)
        f = Nx.tensor([1.0, -0.0, :nan, :infinity], backend: Nx.BinaryBackend)
        same_as_binary([f], fn [x] -> x |> Nx.bitcast(:s32) |> Nx.bitcast(:u32) end)
      end

      test "Nx.Random's generator (threefry on the bitwise ops) gives Nx.BinaryBackend's draws" do
        key = Nx.Random.key(42) |> Nx.backend_transfer(Nx.BinaryBackend)
        same_as_binary([key], fn [k] -> Nx.Random.uniform(k, shape: {5}) |> elem(0) end)
        same_as_binary([key], fn [k] -> Nx.Random.randint(k, 0, 100, shape: {4}) |> elem(0) end)
      end

      test "inside defn with Mx.Nx.Compiler, as Nx.Defn.Evaluator on Nx.BinaryBackend" do
        f = fn a, b ->
          a |> Nx.bitwise_xor(b) |> Nx.left_shift(2) |> Nx.quotient(3) |> Nx.population_count()
        end

        a = Nx.tensor([1, 2, -7, 1000], type: :s32, backend: Nx.BinaryBackend)
        b = Nx.tensor([5, 6, 7, -3], type: :s32, backend: Nx.BinaryBackend)
        expected = Nx.Defn.jit(f, compiler: Nx.Defn.Evaluator).(a, b)
        got = Nx.Defn.jit(f, compiler: Mx.Nx.Compiler).(Nx.backend_copy(a), Nx.backend_copy(b))

        assert mx?(got) and Nx.to_binary(got) == Nx.to_binary(expected) and
                 got.type == expected.type
      end

      test "what Nx leaves undefined has Mx's documented result" do
        a = Nx.tensor([1, -16], type: :s32)
        assert Nx.left_shift(a, 40) |> Nx.to_flat_list() == [0, 0]
        assert Nx.right_shift(a, 40) |> Nx.to_flat_list() == [0, -1]
        assert Nx.right_shift(a, -1) |> Nx.to_flat_list() == [0, -1]
        assert Nx.quotient(a, 0) |> Nx.to_flat_list() == [0, 0]
      end
    end

    describe "linear algebra through Mx.Linalg" do
      test "lu gives Mx.Linalg.lu's factors with a = p l u; qr follows Nx's sign convention" do
        a = Nx.tensor([[2.0, 1.0, 1.0], [4.0, -6.0, 0.0], [-2.0, 7.0, 2.0]])
        {p, l, u} = Nx.LinAlg.lu(a)
        assert mx?(l) and mx?(u)
        {mp, ml, mu} = Mx.Linalg.lu(Mx.from_nx(a))
        assert {Nx.to_list(p), Nx.to_list(l), Nx.to_list(u)} == {Mx.to_list(mp), Mx.to_list(ml), Mx.to_list(mu)}
        assert Nx.all_close(Nx.dot(p, Nx.dot(l, u)), a) |> Nx.to_number() == 1
        # R's diagonal is positive where Nx's Householder step reflects (every column here)
        {q, r} = Nx.LinAlg.qr(Nx.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        assert Enum.all?(Nx.to_list(Nx.take_diagonal(r)), &(&1 > 0))
        assert Nx.all_close(Nx.dot(q, r), Nx.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])) |> Nx.to_number() == 1
      end
    end

    describe "host fallbacks and unsupported callbacks" do
      test "reduce, window_reduce and map run their Elixir function on the host" do
        t = Nx.tensor([[1, 2], [3, 4]])
        r = Nx.reduce(t, 0, [axes: [1]], &Nx.add/2)
        assert mx?(r) and Nx.to_flat_list(r) == [3, 7]
        assert Nx.map(t, &Nx.multiply(&1, 10)) |> Nx.to_flat_list() == [10, 20, 30, 40]
        w = Nx.window_reduce(t, 0, {1, 2}, &Nx.add/2)
        assert Nx.to_flat_list(w) == [3, 7]
      end

      test "callbacks without an Mx kernel raise ArgumentError naming the callback" do
        for {fun, name} <- [
              {fn -> Nx.asinh(Nx.complex(1.0, 1.0)) end, "asinh/2 of complex tensors"}
            ] do
          assert_raise ArgumentError,
                       ~r/Mx.Nx.Backend does not support Nx.Backend.#{Regex.escape(name)}/,
                       fun
        end
      end
    end
  end
end
