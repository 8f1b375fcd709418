defmodule Mx.TypeTest do
  # Type promotion: Mx.Type.merge/2 is the documented rule (Nx's), and the
  # engine's C promotion (mx_promote) must agree with it for all 15 x 15 pairs.
  use ExUnit.Case, async: true

  @types Mx.Type.names()

  # Representative pairs and their promoted type under Nx's rules (Nx.Type.merge/2,
  # with :bool standing in for Nx's {:u, 8} predicates); see Mx.Type's moduledoc.
  @expected [
    # integers of one signedness: the wider
    {:u8, :u32, :u32},
    {:s8, :s64, :s64},
    {:u16, :u16, :u16},
    # signed with unsigned: a signed type wide enough for both, at most s64
    {:u8, :s8, :s16},
    {:u8, :s16, :s16},
    {:u8, :s32, :s32},
    {:u16, :s8, :s32},
    {:u16, :s16, :s32},
    {:u32, :s32, :s64},
    {:u32, :s8, :s64},
    {:u64, :s8, :s64},
    {:u64, :s64, :s64},
    # floats beat integers and keep their own width
    {:s64, :f32, :f32},
    {:u64, :f16, :f16},
    {:s8, :bf16, :bf16},
    {:u8, :f64, :f64},
    # of two floats the wider; f16 with bf16 needs f32
    {:f16, :bf16, :f32},
    {:f16, :f32, :f32},
    {:bf16, :f64, :f64},
    {:f32, :f64, :f64},
    # bool gives way to anything
    {:bool, :u8, :u8},
    {:bool, :s8, :s8},
    {:bool, :f16, :f16},
    {:bool, :bool, :bool},
    # complex beats floats and integers; its parts are as wide as the wider float
    {:c64, :f32, :c64},
    {:c64, :f16, :c64},
    {:c64, :f64, :c128},
    {:c64, :c128, :c128},
    {:s64, :c64, :c64},
    {:u8, :c128, :c128},
    {:bool, :c64, :c64}
  ]

  test "merge follows the documented table, in both orders" do
    for {a, b, want} <- @expected do
      assert Mx.Type.merge(a, b) == want, "merge(#{a}, #{b})"
      assert Mx.Type.merge(b, a) == want, "merge(#{b}, #{a})"
    end
  end

  test "merge accepts Nx-style tuples and rejects unknown types" do
    assert Mx.Type.merge({:f, 32}, {:s, 64}) == :f32
    assert Mx.Type.merge({:u, 8}, {:s, 8}) == :s16
    assert Mx.Type.merge({:pred, 1}, {:bf, 16}) == :bf16
    assert_raise ArgumentError, ~r/unknown type \{:f, 8\}/, fn -> Mx.Type.merge({:f, 8}, :f32) end
    assert Mx.Type.merge({:c, 64}, {:f, 64}) == :c128
    assert_raise ArgumentError, ~r/unknown type :c32/, fn -> Mx.Type.merge(:f32, :c32) end
  end

  test "merge is symmetric, idempotent and closed over the 15 types" do
    for a <- @types, b <- @types do
      m = Mx.Type.merge(a, b)
      assert m in @types
      assert Mx.Type.merge(b, a) == m
      assert Mx.Type.merge(m, m) == m
      # the promoted type is complex if either is, else a float if either is
      cond do
        Mx.Type.complex?(a) or Mx.Type.complex?(b) -> assert Mx.Type.complex?(m)
        Mx.Type.float?(a) or Mx.Type.float?(b) -> assert Mx.Type.float?(m)
        true -> :ok
      end
    end
  end

  test "the engine promotes every pair as merge/2 says" do
    for a <- @types, b <- @types do
      want = Mx.Type.merge(a, b)
      x = Mx.ones({2}, type: a)
      y = Mx.ones({2}, type: b)

      # concatenate and select promote their operands and nothing else
      assert Mx.concatenate([x, y]).type == want, "concatenate #{a} #{b}"
      assert Mx.select(Mx.tensor([1, 0]), x, y).type == want, "select #{a} #{b}"

      # add computes in the promoted type, except that two bools add as u8
      sum = Mx.add(x, y)
      assert sum.type == if(want == :bool, do: :u8, else: want), "add #{a} #{b}"
      assert byte_size(Mx.to_binary(sum)) == 2 * Mx.Type.byte_size(sum.type)
      two = cond do
        Mx.Type.complex?(sum.type) -> {2.0, 0.0}
        Mx.Type.float?(sum.type) -> 2.0
        true -> 2
      end

      assert Mx.to_list(sum) == [two, two], "add #{a} #{b}"
    end
  end

  test "comparisons promote their operands and return bool" do
    for a <- @types, b <- @types do
      x = Mx.full({2}, 1, type: a)
      y = Mx.full({2}, 1, type: b)
      eq = Mx.equal(x, y)
      assert eq.type == :bool
      assert Mx.to_list(eq) == [true, true], "equal #{a} #{b}"
    end
  end

  test "Elixir numbers are weak" do
    assert Mx.add(Mx.tensor([1], type: :u8), 1).type == :u8
    assert Mx.add(Mx.tensor([1], type: :s16), 1000).type == :s16
    assert Mx.add(Mx.tensor([1], type: :u8), 1.5).type == :f32
    assert Mx.add(Mx.tensor([1.0], type: :f16), 1.5).type == :f16
    assert Mx.add(Mx.tensor([1.0], type: :f64), 1).type == :f64
    assert Mx.multiply(2, Mx.tensor([1], type: :s8)).type == :s8
    assert Mx.add(1, 2).type == :s64
    assert Mx.add(1, 2.0).type == :f32
  end

  test "division and transcendental functions give floats; integer sums widen" do
    assert Mx.divide(Mx.tensor([1], type: :s32), Mx.tensor([2], type: :s32)).type == :f32
    assert Mx.divide(Mx.tensor([1.0], type: :f64), Mx.tensor([2], type: :s8)).type == :f64
    assert Mx.exp(Mx.tensor([1], type: :u8)).type == :f32
    assert Mx.exp(Mx.tensor([1.0], type: :f16)).type == :f16
    assert Mx.sqrt(Mx.tensor([4.0], type: :bf16)).type == :bf16
    assert Mx.sum(Mx.tensor([1], type: :u8)).type == :u64
    assert Mx.sum(Mx.tensor([1], type: :s8)).type == :s64
    assert Mx.sum(Mx.tensor([true, true])).type == :s64
    assert Mx.to_number(Mx.sum(Mx.tensor([true, true]))) == 2
    assert Mx.sum(Mx.tensor([1.0], type: :f16)).type == :f16
    assert Mx.product(Mx.tensor([3], type: :u16)).type == :u64
  end

  test "normalize!, to_nx and byte_size agree for every type" do
    for t <- @types do
      assert Mx.Type.normalize!(t) == t
      assert Mx.Type.normalize!(Mx.Type.to_nx(t)) == t
      assert Mx.Type.byte_size(t) == byte_size(Mx.to_binary(Mx.zeros({}, type: t)))
    end

    assert_raise ArgumentError, ~r/unknown type/, fn -> Mx.Type.normalize!({:u, 7}) end
  end
end
