defmodule Mx.BitwiseTest do
  # Integer bit ops, quotient and bitcast: Python-integer references cross-checked with numpy
  # (test/reference/generate_bitwise.py), errors for float inputs, zero gradients, vmap, and
  # both compile tiers (the generated C fuses the INT_ expressions of prim/elementwise.h;
  # bitcast and bool inputs call back into their kernels).
  use ExUnit.Case, async: false
  alias Mx.ReferenceCase

  for c <- ReferenceCase.load!(["bitwise"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end

  @unary [:bitwise_not, :count_leading_zeros, :population_count]
  @binary [:bitwise_and, :bitwise_or, :bitwise_xor, :left_shift, :right_shift, :quotient]

  describe "float and complex inputs raise, naming the op and the fix" do
    test "unary ops" do
      for op <- @unary,
          x <- [Mx.tensor([1.5]), Mx.tensor([1.0], type: :f64), Mx.tensor([1.0], type: :bf16)] do
        assert_raise Mx.Error,
                     ~r/\[#{op}\] works on the bits of integer .* as_type .* bitcast/,
                     fn ->
                       apply(Mx, op, [x])
                     end
      end
    end

    test "binary ops, either side, numbers included" do
      i = Mx.tensor([3])

      for op <- @binary -- [:quotient],
          {a, b} <- [{Mx.tensor([1.5]), i}, {i, Mx.tensor([2.0])}, {i, 2.0}] do
        assert_raise Mx.Error, ~r/\[#{op}\] works on the bits of integer .*got f32/, fn ->
          apply(Mx, op, [a, b])
        end
      end

      assert_raise Mx.Error,
                   ~r/\[quotient\] is integer division truncating toward zero .* use divide/,
                   fn ->
                     Mx.quotient(Mx.tensor([7.0]), 2)
                   end

      assert_raise Mx.Error, ~r/\[bitwise_xor\] .*got c64/, fn ->
        Mx.bitwise_xor(Mx.complex(Mx.tensor([1.0]), Mx.tensor([0.0])), i)
      end
    end

    test "bitcast needs one width and no bool or complex" do
      assert_raise Mx.Error,
                   ~r/\[bitcast\] cannot reinterpret f32\[2\] as s64: 32-bit and 64-bit/,
                   fn ->
                     Mx.bitcast(Mx.tensor([1.0, 2.0]), :s64)
                   end

      assert_raise Mx.Error,
                   ~r/\[bitcast\] .*bool holds only 0 and 1; convert with as_type/,
                   fn ->
                     Mx.bitcast(Mx.tensor([1], type: :u8), :bool)
                   end

      assert_raise Mx.Error, ~r/\[bitcast\] .*complex/, fn ->
        Mx.bitcast(Mx.tensor([1], type: :s64), :c64)
      end

      assert_raise ArgumentError, fn -> Mx.bitcast(Mx.tensor([1]), :s65) end
      x = Mx.tensor([1, 2], type: :s32)
      assert Mx.bitcast(x, :s32) |> Mx.to_list() == [1, 2]
    end
  end

  test "quotient by zero is 0 and MIN quotient -1 wraps, in every integer type, without trapping" do
    for {t, bits} <- [s8: 8, s16: 16, s32: 32, s64: 64] do
      min = -Integer.pow(2, bits - 1)
      x = Mx.tensor([min, 5, -5, min], type: t)
      assert Mx.quotient(x, Mx.tensor([0, 0, 0, -1], type: t)) |> Mx.to_list() == [0, 0, 0, min]
    end

    for t <- [:u8, :u16, :u32, :u64] do
      assert Mx.quotient(Mx.tensor([7, 0], type: t), 0) |> Mx.to_list() == [0, 0]
    end
  end

  test "gradients through the integer ops are zero" do
    x = Mx.tensor([1.0, 3.0, 7.5], type: :f64)

    g =
      Mx.grad(fn x ->
        bits =
          x |> Mx.as_type(:s32) |> Mx.population_count() |> Mx.left_shift(1) |> Mx.as_type(:f64)

        Mx.sum(Mx.add(Mx.multiply(x, bits), bits))
      end).(x)

    # d/dx (x * bits + bits) = bits = 2 * popcount(trunc x): popcount(1, 3, 7) = 1, 2, 3.
    assert Mx.to_list(g) == [2.0, 4.0, 6.0]
  end

  describe "vmap matches a loop over examples" do
    defp ints(t, seed),
      do: Mx.Random.randint(Mx.Random.key(seed), -100, 100, shape: {3, 4}, type: t)

    for op <- [:bitwise_not, :count_leading_zeros, :population_count] do
      test "#{op}" do
        x = ints(:s16, 1)
        check_vmap(&apply(Mx, unquote(op), [&1]), [x])
      end
    end

    for op <- [:bitwise_and, :bitwise_or, :bitwise_xor, :left_shift, :right_shift, :quotient] do
      test "#{op}, one side shared" do
        x = ints(:s32, 2)
        y = Mx.tensor([1, 0, 3, 33], type: :s32)
        check_vmap(&apply(Mx, unquote(op), [&1, y]), [x])
        check_vmap(&apply(Mx, unquote(op), [&1, &2]), [x, Mx.abs(ints(:s32, 3))])
      end
    end

    test "bitcast" do
      check_vmap(&Mx.bitcast(&1, :u32), [Mx.Random.normal(Mx.Random.key(4), shape: {3, 2})])
    end
  end

  defp check_vmap(f, inputs) do
    got = apply(Mx.vmap(f), inputs)

    expected =
      for b <- 0..(elem(hd(inputs).shape, 0) - 1),
          do: apply(f, Enum.map(inputs, & &1[b])) |> Mx.to_list()

    assert Mx.to_list(got) == expected
  end

  describe "compiled" do
    defp reference_cases do
      for c <- ReferenceCase.load!(["bitwise"]) do
        {f, ins} = ReferenceCase.as_function("bitwise", c)
        {c.name, f, ins}
      end
    end

    defp same!(what, x, y) do
      for {a, b} <- Enum.zip(ReferenceCase.leaves(x), ReferenceCase.leaves(y)) do
        assert {a.type, a.shape, Mx.to_binary(a)} == {b.type, b.shape, Mx.to_binary(b)}, what
      end
    end

    test "the interpreter and the generated C equal uncompiled bit for bit on every case" do
      cases = reference_cases()
      run = fn all -> Enum.zip_with(cases, all, fn {_, f, _}, i -> f.(i) end) end
      ins = Enum.map(cases, &elem(&1, 2))
      plain = run.(ins)
      compiled = Mx.compile(run, jit: true, cache_size: 1)
      interp = compiled.(ins)
      info = Mx.Compile.await_native(compiled, [ins], 300_000)
      assert info.tier == :native, "tier #{inspect(info.tier)}"
      native = compiled.(ins)

      for {{name, _, _}, p, i, n} <- Enum.zip([cases, plain, interp, native]) do
        same!("#{name}: interpreter", i, p)
        same!("#{name}: generated C", n, p)
      end

      ops = Mx.Compile.tape_info(compiled, [ins]).ops
      for op <- @unary ++ @binary ++ [:bitcast], do: assert(op in ops, "#{op} ran in the tape")
    end

    test "generated C computes integer ops inline and calls back for bitcast" do
      f = fn [x, y] ->
        s = x |> Mx.left_shift(y) |> Mx.bitwise_xor(Mx.right_shift(x, 3)) |> Mx.quotient(y)
        {Mx.population_count(s), Mx.bitcast(s, :f32)}
      end

      args = [Mx.tensor([1, -8, 1000, 7], type: :s32), Mx.tensor([1, 2, 40, 0], type: :s32)]
      tape = Mx.Compile.tape!(Mx.compile(f, jit: false), [args])
      src = Mx.NIF.tape_jit_source(tape)

      assert src =~ "MX_SHL(T, a, b)" and src =~ "MX_SHR(T, a, b)" and
               src =~ "__builtin_popcountll"

      assert length(Regex.scan(~r/call\(ctx,/, src)) == 1,
             "only bitcast calls its kernel:\n#{src}"
    end
  end
end
