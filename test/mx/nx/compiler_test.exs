if Code.ensure_loaded?(Mx.Nx.Compiler) do
  defmodule Mx.Nx.CompilerTest.Defns do
    import Nx.Defn

    defn affine(x, w, b) do
      Nx.dot(x, w) + b
    end

    defn doubling(x) do
      {_, x} =
        while {i = 0, x}, i < 3 do
          {i + 1, x * 2}
        end

      x
    end

    defn flip(x) do
      if(Nx.sum(x) > 0, do: x * 2, else: -x)
    end

    defn hooked(x) do
      hook(x * 2, :seen)
    end

    defn window(x, i) do
      Nx.slice(x, [i], [2]) * 2
    end
  end

  defmodule Mx.Nx.CompilerTest do
    # Not async: the tape counts in Mx.Memory.report/0 are global.
    use ExUnit.Case, async: false
    alias Mx.Nx.CompilerTest.Defns

    setup do
      Nx.default_backend(Mx.Nx.Backend)
      :ok
    end

    defp jit(fun), do: Nx.Defn.jit(fun, compiler: Mx.Nx.Compiler)
    defp tapes, do: Mx.Memory.report().tapes
    defp on_binary(t), do: Nx.backend_copy(t, Nx.BinaryBackend)

    test "one tape per input template, replayed on later calls" do
      f = jit(&Defns.affine/3)

      {x, w, b} =
        {Nx.iota({2, 3}, type: :f32), Nx.iota({3, 2}, type: :f32), Nx.tensor([1.0, -1.0])}

      before = tapes()
      r1 = f.(x, w, b)
      assert tapes() == before + 1
      r2 = f.(Nx.add(x, 1), w, b)
      assert tapes() == before + 1
      assert is_struct(r2.data, Mx.Nx.Backend)
      assert Nx.to_flat_list(r1) == [11.0, 12.0, 29.0, 39.0]
      assert Nx.to_flat_list(r2) == [17.0, 21.0, 35.0, 48.0]
      f.(Nx.iota({4, 3}, type: :f32), w, b)
      assert tapes() == before + 2
    end

    test "static arguments and vectorized inputs are part of the cached template" do
      sum = jit(&Nx.sum/2)
      t = Nx.iota({2, 3})
      assert Nx.to_flat_list(sum.(t, axes: [0])) == [3, 5, 7]
      assert Nx.to_flat_list(sum.(t, axes: [1])) == [3, 12]
      double = jit(&Nx.multiply(&1, 2))
      v = double.(Nx.vectorize(t, :x))

      assert v.vectorized_axes == [x: 2] and
               Nx.to_flat_list(Nx.devectorize(v)) == [0, 2, 4, 6, 8, 10]

      assert double.(t).vectorized_axes == []
    end

    test "inputs of another backend are accepted; results live on Mx.Nx.Backend" do
      r = jit(&Nx.multiply/2).(Nx.tensor([1, 2], backend: Nx.BinaryBackend), 3)
      assert is_struct(r.data, Mx.Nx.Backend) and Nx.to_flat_list(r) == [3, 6]
    end

    test "while and cond run host-driven with the same results as Nx.Defn.Evaluator" do
      for {fun, input} <- [
            {&Defns.doubling/1, Nx.tensor([1, 2])},
            {&Defns.flip/1, Nx.tensor([1.5, 2.0])},
            {&Defns.flip/1, Nx.tensor([-1.5, 0.5])}
          ] do
        expected = Nx.with_default_backend(Nx.BinaryBackend, fn -> fun.(on_binary(input)) end)
        assert jit(fun).(input) |> Nx.to_binary() == Nx.to_binary(expected)
      end
    end

    test "a tensor slice start stays in the tape (clamped as Nx does)" do
      f = jit(&Defns.window/2)
      x = Nx.tensor([1, 2, 3, 4])
      before = tapes()
      assert Nx.to_flat_list(f.(x, 1)) == [4, 6]
      assert Nx.to_flat_list(f.(x, 2)) == [6, 8]
      assert Nx.to_flat_list(f.(x, 7)) == [6, 8]
      assert Nx.to_flat_list(f.(x, -3)) == [2, 4]
      assert tapes() == before + 1
    end

    test "hooks see every call's values" do
      me = self()

      f =
        Nx.Defn.jit(&Defns.hooked/1,
          compiler: Mx.Nx.Compiler,
          hooks: %{seen: &send(me, {:seen, Nx.to_flat_list(&1)})}
        )

      f.(Nx.tensor([1]))
      f.(Nx.tensor([5]))
      assert_received {:seen, [2]}
      assert_received {:seen, [10]}
    end

    test "ahead-of-time compile and streams" do
      templates = [Nx.template({2}, :f32), Nx.template({2}, :f32)]
      f = Nx.Defn.compile(&Nx.add/2, templates, compiler: Mx.Nx.Compiler)
      assert Nx.to_flat_list(f.(Nx.tensor([1.0, 2.0]), Nx.tensor([3.0, 4.0]))) == [4.0, 6.0]
      assert Nx.to_flat_list(f.(Nx.tensor([5.0, 2.0]), Nx.tensor([3.0, 4.0]))) == [8.0, 6.0]

      s =
        Nx.Defn.stream(fn x, acc -> {acc, Nx.add(x, acc)} end, [Nx.tensor(0), Nx.tensor(0)],
          compiler: Mx.Nx.Compiler
        )

      Nx.Stream.send(s, Nx.tensor(1))
      assert Nx.to_number(Nx.Stream.recv(s)) == 0
      Nx.Stream.send(s, Nx.tensor(2))
      assert Nx.to_number(Nx.Stream.recv(s)) == 1
      assert Nx.to_number(Nx.Stream.done(s)) == 3
    end

    # Resource destructors run shortly after the GC that dropped the last reference: read the
    # counters once two reads 20 ms apart agree (as test/gen/memory_long_test.exs does).
    defp settled(tries \\ 50) do
      :erlang.garbage_collect()
      a = Map.take(Mx.Memory.report(), [:live_arrays, :active_bytes])
      Process.sleep(20)
      b = Map.take(Mx.Memory.report(), [:live_arrays, :active_bytes])
      if a == b or tries == 0, do: b, else: settled(tries - 1)
    end

    test "memory stays flat over long loops of compiled steps and of backend ops" do
      x = Nx.iota({16, 1}, type: :f32) |> Nx.divide(16)
      y = Nx.sin(x)

      params =
        {Nx.broadcast(0.5, {1, 4}), Nx.broadcast(0.0, {4}), Nx.broadcast(0.1, {4, 1}),
         Nx.tensor([0.0])}

      step = jit(&Mx.NxMLP.step/3)
      train = fn p, n -> Enum.reduce(1..n, p, fn _, p -> step.(p, x, y) end) end
      # Backend ops outside defn, read every iteration as eager Nx code does.
      decay = fn t, n ->
        Enum.reduce(1..n, t, fn _, t ->
          t |> Nx.multiply(0.5) |> Nx.add(1.0) |> tap(&Nx.to_binary/1)
        end)
      end

      {p, t} = {train.(params, 100), decay.(x, 100)}
      at_100 = settled()
      {p, t} = {train.(p, 1000), decay.(t, 1000)}
      at_1100 = settled()

      # The same arrays are alive at both checkpoints (p's four, t, x, y and the cached tape's);
      # a leak of one array per 100 iterations would add 10.
      assert at_1100 == at_100,
             "#{inspect(at_100)} after 100 iterations, #{inspect(at_1100)} after 1100"

      # (x, y, p and t are used below, so they are alive at both checkpoints.)
      assert Nx.to_flat_list(t) |> hd() == 2.0 and tuple_size(p) == 4
      assert Nx.to_flat_list(Nx.add(x, y)) |> length() == 16
    end

    test "unknown options raise" do
      assert_raise ArgumentError, ~r/Mx.Nx.Compiler: unknown option tape:/, fn ->
        Nx.Defn.jit(&Nx.negate/1, compiler: Mx.Nx.Compiler, tape: true).(Nx.tensor(1))
      end
    end

    test "an MLP trained in defn matches the same run on Nx.BinaryBackend with the evaluator" do
      # Generated data: y = sin(3 x) on 32 points in [-1, 1]; 4 hidden units; 30 gradient steps.
      {x, y, params} =
        Nx.with_default_backend(Nx.BinaryBackend, fn ->
          x = Nx.linspace(-1.0, 1.0, n: 32, type: :f64) |> Nx.reshape({32, 1})
          w1 = Nx.tensor([[0.5, -0.3, 0.8, 0.1]], type: :f64)
          w2 = Nx.tensor([[0.2], [-0.6], [0.4], [0.9]], type: :f64)
          b1 = Nx.broadcast(Nx.tensor(0.0, type: :f64), {4})
          {x, Nx.sin(Nx.multiply(x, 3)), {w1, b1, w2, Nx.tensor([0.0], type: :f64)}}
        end)

      train = fn step, params, x, y ->
        Enum.reduce(1..30, params, fn _, p -> step.(p, x, y) end)
      end

      expected =
        Nx.with_default_backend(Nx.BinaryBackend, fn ->
          train.(Nx.Defn.jit(&Mx.NxMLP.step/3, compiler: Nx.Defn.Evaluator), params, x, y)
        end)

      got = train.(jit(&Mx.NxMLP.step/3), params, x, y)

      loss0 = Mx.NxMLP.loss(params, x, y) |> Nx.to_number()
      loss30 = jit(&Mx.NxMLP.loss/3).(got, x, y) |> Nx.to_number()
      assert loss30 < loss0

      # f64 throughout: the two runs differ only by rounding (~1e-16 per op), far below 1e-10.
      for {e, g} <- Enum.zip(Tuple.to_list(expected), Tuple.to_list(got)) do
        assert is_struct(g.data, Mx.Nx.Backend)
        assert Nx.all_close(e, on_binary(g), rtol: 1.0e-10, atol: 1.0e-12) |> Nx.to_number() == 1
      end
    end
  end
end
