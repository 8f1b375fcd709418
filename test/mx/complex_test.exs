defmodule Mx.ComplexReferenceTest do
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  # numpy/mpmath references (test/reference/generate_complex.py), tolerances in ReferenceCase.
  for c <- ReferenceCase.load!(["complex"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end
end

defmodule Mx.ComplexTest do
  use ExUnit.Case, async: true
  import Mx.GradCheck, only: [random_f64: 2]

  defp z(re, im, type \\ :f32), do: Mx.complex(Mx.tensor(re, type: type), Mx.tensor(im, type: type))

  describe "dtypes" do
    test "names, sizes and Nx tuples" do
      assert :c64 in Mx.Type.names() and :c128 in Mx.Type.names()
      assert Mx.Type.byte_size(:c64) == 8 and Mx.Type.byte_size(:c128) == 16
      assert Mx.Type.normalize!({:c, 128}) == :c128
      assert Mx.Type.to_nx(:c64) == {:c, 64}
      refute Mx.Type.float?(:c64)
      assert Mx.Type.complex?(:c128)
    end

    test "complex/2 types its result by the parts" do
      assert z([1.0], [2.0]).type == :c64
      assert z([1.0], [2.0], :f64).type == :c128
      assert Mx.complex(Mx.tensor([1.0], type: :f64), Mx.tensor([2.0])).type == :c128
      assert Mx.complex(Mx.tensor([1, 2]), 0).type == :c64
      assert Mx.complex(Mx.tensor([1.0], type: :f16), 1.0).type == :c64
    end

    test "binaries are interleaved (re, im) parts, little-endian floats" do
      a = z([1.5, -2.0], [0.25, 3.0])
      assert Mx.to_binary(a) == <<1.5::float-32-little, 0.25::float-32-little, -2.0::float-32-little, 3.0::float-32-little>>
      b = Mx.from_binary(<<1.0::float-64-native, -1.0::float-64-native>>, :c128)
      assert Mx.shape(b) == {1} and Mx.to_list(b) == [{1.0, -1.0}]
    end

    test "to_list and to_number give {re, im}; non-finite parts as atoms" do
      a = Mx.complex(Mx.tensor([:nan, 1.0]), Mx.tensor([:infinity, :neg_infinity]))
      assert Mx.to_list(a) == [{:nan, :infinity}, {1.0, :neg_infinity}]
      assert Mx.to_number(Mx.sum(z([1.0, 2.0], [3.0, 4.0]))) == {3.0, 7.0}
    end

    test "tensor with a complex type takes real numbers as real parts" do
      assert Mx.tensor([1, 2.5], type: :c128) |> Mx.to_list() == [{1.0, 0.0}, {2.5, 0.0}]
      assert Mx.tensor(3, type: :c64) |> Mx.to_list() == {3.0, 0.0}
      assert Mx.full({2}, -1, type: :c128) |> Mx.to_list() == [{-1.0, 0.0}, {-1.0, 0.0}]
      assert Mx.eye(2, type: :c64) |> Mx.to_list() == [[{1.0, 0.0}, {0.0, 0.0}], [{0.0, 0.0}, {1.0, 0.0}]]
      assert Mx.iota({3}, type: :c64) |> Mx.to_list() == [{0.0, 0.0}, {1.0, 0.0}, {2.0, 0.0}]
      assert_raise ArgumentError, ~r/Mx.complex/, fn -> Mx.tensor([{1.0, 2.0}]) end
    end

    test "inspect shows {re, im} pairs" do
      assert inspect(Mx.eval(z([1.0], [2.0]))) =~ "{1.0, 2.0}"
    end
  end

  describe "arithmetic" do
    test "Elixir numbers combine with complex arrays" do
      a = z([1.0, 2.0], [1.0, -1.0])
      assert Mx.add(a, 1) |> Mx.to_list() == [{2.0, 1.0}, {3.0, -1.0}]
      assert Mx.multiply(2.5, a) |> Mx.to_list() == [{2.5, 2.5}, {5.0, -2.5}]
      assert Mx.add(a, 1).type == :c64
      assert Mx.divide(a, 2) |> Mx.to_list() == [{0.5, 0.5}, {1.0, -0.5}]
    end

    test "division by zero follows numpy (inf or nan per part) and never traps" do
      assert Mx.divide(z([1.0, 0.0], [0.0, 0.0]), z([0.0, 0.0], [0.0, 0.0])) |> Mx.to_list() ==
               [{:infinity, :nan}, {:nan, :nan}]
    end

    test "Smith's division does not overflow where |b|^2 would" do
      a = z([1.0e300], [1.0e300], :f64)
      assert Mx.divide(a, a) |> Mx.to_list() == [{1.0, 0.0}]
      b = z([1.0e30], [1.0e30])
      assert Mx.divide(b, b) |> Mx.to_list() == [{1.0, 0.0}]
    end

    test "reciprocal, square, sqrt of -1 and log of -1" do
      i = z([0.0], [1.0], :f64)
      assert Mx.reciprocal(i) |> Mx.to_list() == [{0.0, -1.0}]
      assert Mx.square(i) |> Mx.to_list() == [{-1.0, 0.0}]
      assert Mx.sqrt(z([-1.0], [0.0], :f64)) |> Mx.to_list() == [{0.0, 1.0}]
      assert Mx.log(z([-1.0], [0.0], :f64)) |> Mx.to_list() == [{0.0, :math.pi()}]
    end

    test "abs, real, imag, angle give the parts' float type" do
      a = z([3.0], [-4.0], :f64)
      assert Mx.abs(a) |> Mx.to_list() == [5.0]
      assert Mx.abs(a).type == :f64
      assert Mx.real(a).type == :f64 and Mx.imag(a).type == :f64
      assert Mx.angle(a) |> Mx.to_list() == [:math.atan2(-4.0, 3.0)]
      assert Mx.abs(z([3.0], [4.0])).type == :f32
    end

    test "real, imag, conjugate and angle of real input" do
      r = Mx.tensor([1.5, -2.0])
      assert Mx.real(r) |> Mx.to_list() == [1.5, -2.0]
      assert Mx.imag(r) |> Mx.to_list() == [0.0, 0.0]
      assert Mx.conjugate(r) |> Mx.to_list() == [1.5, -2.0]
      assert Mx.angle(r) |> Mx.to_list() == [0.0, 3.1415927410125732]
      assert Mx.real(Mx.tensor([1, 2])).type == :f32
      assert Mx.conjugate(Mx.tensor([1, 2])).type == :s64
    end

    test "equality compares both parts; ops on bools and truthiness" do
      a = z([1.0, 1.0, 0.0], [2.0, 3.0, 0.0])
      b = z([1.0, 1.0, 0.0], [2.0, 2.0, -0.0])
      assert Mx.equal(a, b) |> Mx.to_list() == [true, false, true]
      assert Mx.not_equal(a, b) |> Mx.to_list() == [false, true, false]
      assert Mx.logical_not(a) |> Mx.to_list() == [false, false, true]
      assert Mx.all(a) |> Mx.to_number() == false
      assert Mx.any(a, axes: [0]) |> Mx.to_number() == true
      assert Mx.select(a, 1, 0) |> Mx.to_list() == [1, 1, 0]
    end

    test "sum, product and mean, also of long rows that fold in parallel" do
      n = 100_000
      a = Mx.complex(Mx.ones({n}, type: :f64), Mx.multiply(Mx.ones({n}, type: :f64), -0.5))
      assert Mx.sum(a) |> Mx.to_number() == {1.0 * n, -0.5 * n}
      assert Mx.mean(a) |> Mx.to_number() == {1.0, -0.5}
      assert Mx.mean(a).type == :c128
      assert Mx.product(z([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0])) |> Mx.to_number() == {1.0, 0.0}
      assert Mx.cumulative_sum(z([1.0, 2.0], [1.0, 1.0])) |> Mx.to_list() == [{1.0, 1.0}, {3.0, 2.0}]
      assert Mx.cumulative_product(z([0.0, 0.0], [1.0, 1.0])) |> Mx.to_list() == [{0.0, 1.0}, {-1.0, 0.0}]
    end

    test "matmul goes through cgemm/zgemm, batched and with vectors" do
      a = Mx.reshape(z([1.0, 0.0, 2.0, 1.0], [0.0, 1.0, 0.0, -1.0]), {2, 2})
      # [[1, i], [2, 1 - i]]^2 = [[1 + 2i, 1 + 2i], [4 - 2i, 0]]
      assert Mx.matmul(a, a) |> Mx.to_list() == [[{1.0, 2.0}, {1.0, 2.0}], [{4.0, -2.0}, {0.0, 0.0}]]
      b = Mx.stack([a, a, a])
      assert Mx.shape(Mx.matmul(b, Mx.tensor([1.0, 1.0]))) == {3, 2}
      assert Mx.matmul(b, Mx.tensor([1.0, 1.0])) |> Mx.to_list() |> hd() == [{1.0, 1.0}, {3.0, -1.0}]
    end
  end

  describe "conversions" do
    test "as_type to a real type keeps the real part (numpy's astype)" do
      a = z([1.7, -2.5], [9.0, 9.0])
      assert Mx.as_type(a, :f64) |> Mx.to_list() == [1.7000000476837158, -2.5]
      assert Mx.as_type(a, :s32) |> Mx.to_list() == [1, -2]
      assert Mx.as_type(a, :f16) |> Mx.to_list() == [1.7001953125, -2.5]
      assert Mx.as_type(a, :c128) |> Mx.to_list() == [{1.7000000476837158, 9.0}, {-2.5, 9.0}]
      assert Mx.as_type(Mx.tensor([1.5], type: :bf16), :c64) |> Mx.to_list() == [{1.5, 0.0}]
    end

    test "indexing, slicing and joining move complex elements whole" do
      a = Mx.reshape(z(Enum.map(0..11, &(&1 * 1.0)), Enum.map(0..11, &(-&1 * 1.0)), :f64), {3, 4})
      assert a[1][2] |> Mx.to_number() == {6.0, -6.0}
      assert a[[.., 1..2]] |> Mx.to_list() |> hd() == [{1.0, -1.0}, {2.0, -2.0}]
      assert Mx.transpose(a) |> Mx.to_list() |> hd() == [{0.0, 0.0}, {4.0, -4.0}, {8.0, -8.0}]
      assert Mx.take(a, Mx.tensor([2, 0]), axis: 1)[0] |> Mx.to_list() == [{2.0, -2.0}, {0.0, 0.0}]
      assert Mx.concatenate([a, a], axis: 1) |> Mx.shape() == {3, 8}
      assert Mx.pad(Mx.tensor([1.0], type: :c128), Mx.complex(0.0, 1.0) |> Mx.as_type(:c128), [{1, 0, 0}]) |> Mx.to_list() ==
               [{0.0, 1.0}, {1.0, 0.0}]
      assert Mx.sum(Mx.indexed_add(Mx.zeros({2}, type: :c128), Mx.tensor([[1], [1]]), a[0][0..1])) |> Mx.to_number() ==
               {1.0, -1.0}
    end
  end

  describe "ops that complex numbers do not support raise when the graph is built" do
    setup do
      %{a: Mx.complex(Mx.tensor([1.0, 2.0]), Mx.tensor([0.5, -1.0]))}
    end

    # {op, how to call it on the complex array a}
    @unordered [less: {:binary, :self}, greater_equal: {:binary, 1.0}, max: {:binary, :self}, min: {:binary, 0},
                remainder: {:binary, :self}, floor: :unary, round: :unary, sign: :unary, reduce_max: :unary,
                argmin: :unary, cumulative_max: :unary, sort: :unary, argsort: :unary]
    @no_kernel [sin: :unary, tanh: :unary, lgamma: :unary, pow: {:binary, 2}, atan2: {:binary, :self},
                logaddexp: {:binary, :self}]

    defp call(name, :unary, a), do: apply(Mx, name, [a])
    defp call(name, {:binary, :self}, a), do: apply(Mx, name, [a, a])
    defp call(name, {:binary, b}, a), do: apply(Mx, name, [a, b])

    for {name, how} <- @unordered do
      test "#{name} (no order)", %{a: a} do
        assert_raise Mx.Error, ~r/^\[#{unquote(name)}\] is not defined for complex input c64\[2\]: complex numbers have no order/,
                     fn -> call(unquote(name), unquote(Macro.escape(how)), a) end
      end
    end

    test "clip, an order composite, names max", %{a: a} do
      assert_raise Mx.Error, ~r/^\[max\] is not defined for complex input/, fn -> Mx.clip(a, 0, 1) end
    end

    for {name, how} <- @no_kernel do
      test "#{name} (no complex kernel)", %{a: a} do
        assert_raise Mx.Error, ~r/^\[#{unquote(name)}\] does not support complex input c64\[2\]/, fn ->
          call(unquote(name), unquote(Macro.escape(how)), a)
        end
      end
    end

    test "linear algebra and random parameters are real-only", %{a: a} do
      m = Mx.reshape(Mx.concatenate([a, a]), {2, 2})
      assert_raise Mx.Error, ~r/^\[inv\] does not support complex matrices/, fn -> Mx.Linalg.inv(m) end
      assert_raise Mx.Error, ~r/^\[solve\] does not support complex/, fn -> Mx.Linalg.solve(m, a) end
      assert_raise Mx.Error, ~r/^\[norm\] does not support complex/, fn -> Mx.Linalg.norm(a) end
      assert_raise Mx.Error, ~r/^\[random_gamma\] parameter 1 is complex/, fn ->
        Mx.NIF.random(:random_gamma, Mx.Random.key(1).ref, [a.ref], :f32, {2}, [])
      end
    end

    test "complex/2 takes real parts; pad keeps a real array real", %{a: a} do
      assert_raise Mx.Error, ~r/^\[complex\] builds a complex array from real and imaginary parts/, fn ->
        Mx.complex(a, 1.0)
      end

      assert_raise Mx.Error, ~r/^\[pad\] the pad value is complex/, fn ->
        Mx.pad(Mx.tensor([1.0]), a[0], [{1, 0, 0}])
      end
    end
  end

  describe "gradients (JAX's convention: grad of a real f(z) is df/dx - i df/dy)" do
    test "of |z|^2 = x^2 + y^2 is 2x - 2iy = 2 conj(z)" do
      zz = z([3.0, -1.0], [4.0, 2.0], :f64)
      g = Mx.grad(fn w -> Mx.sum(Mx.square(Mx.abs(w))) end).(zz)
      assert g.type == :c128

      for {{gr, gi}, {er, ei}} <- Enum.zip(Mx.to_list(g), [{6.0, -8.0}, {-2.0, -4.0}]) do
        assert_in_delta gr, er, 1.0e-14
        assert_in_delta gi, ei, 1.0e-14
      end

      assert Mx.grad(fn w -> Mx.sum(Mx.real(Mx.multiply(w, Mx.conjugate(w)))) end).(zz) |> Mx.to_list() ==
               [{6.0, -8.0}, {-2.0, -4.0}]
    end

    test "of Re(z^2) = x^2 - y^2 is 2x + 2iy = 2z (holomorphic inside)" do
      zz = z([1.5], [0.5], :f64)
      assert Mx.grad(fn w -> Mx.sum(Mx.real(Mx.multiply(w, w))) end).(zz) |> Mx.to_list() == [{3.0, 1.0}]
    end

    test "flows from real inputs through complex intermediates" do
      # f(x) = |e^(ix)|^2 + Re(e^(ix)) has derivative -sin(x)
      f = fn x -> Mx.sum(Mx.add(Mx.square(Mx.abs(Mx.exp(Mx.complex(0.0, x)))), Mx.real(Mx.exp(Mx.complex(0.0, x))))) end
      x = random_f64({4}, 3)
      g = Mx.grad(f).(x) |> Mx.to_list()
      for {gi, xi} <- Enum.zip(g, Mx.to_list(x)), do: assert_in_delta(gi, -:math.sin(xi), 1.0e-12)
    end

    test "as_type between real and complex passes the real part" do
      x = Mx.tensor([2.0], type: :f64)
      g = Mx.grad(fn x -> Mx.sum(Mx.real(Mx.square(Mx.as_type(x, :c128)))) end).(x)
      assert Mx.to_list(g) == [4.0]
      w = z([1.0], [5.0], :f64)
      assert Mx.grad(fn w -> Mx.sum(Mx.as_type(w, :f64)) end).(w) |> Mx.to_list() == [{1.0, 0.0}]
    end
  end
end
