defmodule Gen.SelectionTest do
  use ExUnit.Case, async: true
  doctest Gen.Selection

  alias Gen.Selection

  test "select: addresses, paths and everything under them" do
    s = Gen.select([:a, [:b, :c], {:y, 1}])
    assert Selection.member?(s, :a)
    assert Selection.member?(s, [:a, :deep, :er])
    assert Selection.member?(s, [:b, :c])
    assert Selection.member?(s, {:y, 1})
    refute Selection.member?(s, :b)
    refute Selection.member?(s, [:b, :d])
    refute Selection.member?(s, {:y, 2})
    assert Selection.member?(Gen.select(:a), :a)
  end

  test "all, none and complement" do
    assert Selection.member?(Selection.all(), [:x, :y])
    refute Selection.member?(Selection.none(), :x)
    c = Selection.complement(Gen.select([[:b, :c]]))
    refute Selection.member?(c, [:b, :c])
    assert Selection.member?(c, [:b, :d])
    assert Selection.member?(c, :a)
    assert Selection.complement(c) == Gen.select([[:b, :c]])
  end

  test "subselection follows Gen.jl's selection[addr]" do
    s = Gen.select([:a, [:b, :c]])
    assert Selection.subselection(s, :a) == Selection.all()
    assert Selection.member?(Selection.subselection(s, :b), :c)
    assert Selection.subselection(s, :zzz) |> Selection.empty?()
    c = Selection.complement(s)
    assert Selection.member?(Selection.subselection(c, :zzz), [])
    refute Selection.member?(Selection.subselection(c, :a), [])
  end

  test "empty? and inspect" do
    assert Selection.empty?(Gen.select([]))
    refute Selection.empty?(Gen.select(:x))
    assert inspect(Gen.select([:a, [:b, :c]])) == "#Gen.Selection<[:a], [:b, :c]>"
    assert inspect(Selection.all()) == "#Gen.Selection<all>"
  end

  test "the empty path is rejected" do
    assert_raise ArgumentError, ~r/empty path/, fn -> Gen.select([[]]) end
  end
end
