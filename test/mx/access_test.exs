defmodule Mx.AccessTest do
  # Indexing with Access: integers drop an axis, ranges keep it (inclusive, with
  # steps, negative positions from the end), `..` takes an axis whole, and
  # integer arrays take positions along an axis.
  use ExUnit.Case, async: true

  setup do
    %{a: Mx.tensor([[1, 2, 3], [4, 5, 6]]), v: Mx.iota({10}), cube: Mx.iota({2, 3, 4})}
  end

  test "integer positions, from the front and from the back", %{a: a} do
    assert Mx.to_list(a[0]) == [1, 2, 3]
    assert Mx.to_list(a[-1]) == [4, 5, 6]
    assert Mx.to_list(a[1][0]) == 4
    assert Mx.to_number(a[[0, 2]]) == 3
    assert Mx.to_number(a[[-1, -3]]) == 4
    assert a[[1, 1]].shape == {}
    assert a[0].type == :s64
  end

  test "ranges keep their axis", %{a: a, v: v} do
    assert Mx.to_list(a[0..1]) == [[1, 2, 3], [4, 5, 6]]
    assert Mx.to_list(a[1..1]) == [[4, 5, 6]]
    assert Mx.to_list(a[[.., 1..2]]) == [[2, 3], [5, 6]]
    assert Mx.to_list(a[[.., -2..-1]]) == [[2, 3], [5, 6]]
    assert Mx.to_list(v[7..-1//1]) == [7, 8, 9]
    # an empty range gives an empty axis
    assert a[[.., 2..1//1]].shape == {2, 0}
    assert Mx.to_list(v[5..4//1]) == []
  end

  test "the full range and steps", %{a: a, v: v, cube: cube} do
    assert Mx.to_list(a[[.., 1]]) == [2, 5]
    assert Mx.to_list(a[..]) == Mx.to_list(a)
    assert Mx.to_list(a[[.., 0..2//2]]) == [[1, 3], [4, 6]]
    assert Mx.to_list(v[1..8//3]) == [1, 4, 7]
    assert Mx.to_list(v[0..9//4]) == [0, 4, 8]
    assert Mx.to_list(v[-3..-1//2]) == [7, 9]
    # a step past the end of the range stops at the range
    assert Mx.to_list(v[2..3//5]) == [2]
    assert Mx.to_list(cube[[.., 1..2, 1..3//2]]) == [[[5, 7], [9, 11]], [[17, 19], [21, 23]]]
  end

  test "integer arrays take positions along an axis", %{a: a, cube: cube} do
    assert Mx.to_list(a[Mx.tensor([1, 0, 1])]) == [[4, 5, 6], [1, 2, 3], [4, 5, 6]]
    assert Mx.to_list(a[[.., Mx.tensor([2, 0])]]) == [[3, 1], [6, 4]]
    # a 2-d index array adds its axes in place of the indexed one
    idx = a[[.., Mx.tensor([[2, 0]])]]
    assert idx.shape == {2, 1, 2}
    assert Mx.to_list(idx) == [[[3, 1]], [[6, 4]]]
    # after an index array, the next index applies to the axis after its axes
    assert Mx.to_list(a[[Mx.tensor([1]), 0]]) == [4]
    assert Mx.to_list(cube[[1, Mx.tensor([2, 0]), -1]]) == [23, 15]
    # any integer dtype works as indices
    assert Mx.to_list(a[[0, Mx.tensor([2, 1], type: :u8)]]) == [3, 2]
  end

  test "indexing is lazy and composes with get_in", %{a: a} do
    lazy = Mx.add(a, 10)
    row = lazy[1]
    refute Mx.evaluated?(row)
    assert Mx.to_list(row) == [14, 15, 16]
    assert Mx.to_number(get_in(a, [1, 2])) == 6
    assert Mx.to_list(Mx.tensor([1.5, 2.5], type: :f64)[-1..-1//1]) == [2.5]
  end

  test "out-of-range positions and ranges raise ArgumentError", %{a: a, v: v} do
    assert_raise ArgumentError, ~r/index 2 is out of bounds for an axis of size 2/, fn -> a[2] end
    assert_raise ArgumentError, ~r/index -3 is out of bounds/, fn -> a[-3] end
    assert_raise ArgumentError, ~r/index 3 is out of bounds for an axis of size 3/, fn -> a[[0, 3]] end
    assert_raise ArgumentError, ~r/range 0..2 is out of bounds for an axis of size 2/, fn -> a[0..2] end
    assert_raise ArgumentError, ~r/out of bounds for an axis of size 10/, fn -> v[-11..0//1] end
    assert_raise ArgumentError, ~r/too many indices \(3\) for an array of rank 2/, fn -> a[[0, 0, 0]] end
    assert_raise ArgumentError, ~r/range steps must be positive/, fn -> v[5..1//-1] end
    assert_raise ArgumentError, ~r/cannot index s64\[2\]\[3\] with 1.0/, fn -> a[1.0] end
    assert_raise ArgumentError, ~r/too many indices \(1\) for an array of rank 0/, fn -> Mx.tensor(1)[0] end
  end

  test "out-of-range integer arrays raise Mx.Error when evaluated", %{a: a} do
    bad = a[Mx.tensor([0, 2])]
    assert bad.shape == {2, 3}
    assert_raise Mx.Error, ~r/^\[take\] index 2 is out of bounds for axis 0 of size 2/, fn -> Mx.to_list(bad) end
    assert_raise Mx.Error, ~r/^\[take\] index -1 is out of bounds/, fn -> Mx.to_list(a[[.., Mx.tensor([-1])]]) end
    assert_raise Mx.Error, ~r/^\[take\] indices must have an integer dtype/, fn -> a[Mx.tensor([0.0])] end
  end

  test "arrays are immutable through Access", %{a: a} do
    assert_raise ArgumentError, ~r/immutable/, fn -> put_in(a[0], 1) end
    assert_raise ArgumentError, ~r/immutable/, fn -> pop_in(a[0]) end
  end
end
