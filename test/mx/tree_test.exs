defmodule Mx.TreeTest do
  use ExUnit.Case, async: true

  defp nums(tree), do: tree |> Mx.Tree.leaves() |> Enum.map(&Mx.to_number/1)

  defp tree do
    %{
      "layers" => [%{"w" => Mx.tensor(1.0), "b" => Mx.tensor(2.0)}, {Mx.tensor(3.0), :relu}],
      "head" => Mx.tensor(4.0),
      "meta" => %{"name" => "mlp", "n" => 3}
    }
  end

  test "leaves walk maps by sorted key and lists/tuples by position; other terms are kept, not visited" do
    assert nums(tree()) == [4.0, 2.0, 1.0, 3.0]
    out = Mx.Tree.map(tree(), &Mx.negate/1)
    assert out["meta"] == %{"name" => "mlp", "n" => 3}
    assert elem(Enum.at(out["layers"], 1), 1) == :relu
    assert nums(out) == [-4.0, -2.0, -1.0, -3.0]
  end

  test "structs are leaves-of-nothing: kept whole, never walked" do
    s = %Range{first: 1, last: 2, step: 1}
    assert Mx.Tree.map(%{r: s, a: Mx.tensor(1)}, fn _ -> :x end) == %{r: s, a: :x}
  end

  test "improper lists keep their tail" do
    {out, n} = Mx.Tree.map_reduce([Mx.tensor(1) | Mx.tensor(2)], 0, fn _, n -> {n, n + 1} end)
    assert {out, n} == {[0 | 1], 2}
    assert Mx.Tree.map_with_path([Mx.tensor(1) | Mx.tensor(2)], fn p, _ -> p end) == [[0] | [1]]
    assert Mx.Tree.flatten([Mx.tensor(1) | Mx.tensor(2)]) |> Enum.map(&elem(&1, 0)) == [[0], [1]]
  end

  test "map_with_path and flatten name the same paths in the same order" do
    paths = Mx.Tree.flatten(tree()) |> Enum.map(&elem(&1, 0))
    assert paths == [["head"], ["layers", 0, "b"], ["layers", 0, "w"], ["layers", 1, 0]]
    with_path = Mx.Tree.map_with_path(tree(), fn p, _ -> p end)

    assert Mx.Tree.leaves(with_path, leaf?: &(is_list(&1) and &1 != [] and is_binary(hd(&1)))) ==
             paths
  end

  test "flatten(join:) then unflatten round-trips (tuples come back as lists)" do
    flat = Mx.Tree.flatten(tree(), join: ".")
    assert Enum.map(flat, &elem(&1, 0)) == ["head", "layers.0.b", "layers.0.w", "layers.1.0"]
    back = Mx.Tree.unflatten(flat)
    assert back["layers"] |> Enum.at(1) |> is_list()
    assert nums(back) == nums(tree())
    # From a map (as Mx.IO.load returns), order does not matter.
    assert nums(Mx.Tree.unflatten(Map.new(flat))) == nums(tree())
  end

  test "unflatten keeps non-contiguous or leading-zero integer keys as map keys" do
    assert Mx.Tree.unflatten([{"a.1", 1}, {"a.2", 2}]) == %{"a" => %{1 => 1, 2 => 2}}
    assert Mx.Tree.unflatten([{"a.01", 1}]) == %{"a" => %{"01" => 1}}
    assert Mx.Tree.unflatten([{"a/0", 1}], split: "/") == %{"a" => [1]}
  end

  test "unflatten rejects duplicate paths, leaf/container clashes and bad entries" do
    assert_raise ArgumentError, ~r/\["a"\] appears twice/, fn ->
      Mx.Tree.unflatten([{"a", 1}, {"a", 2}])
    end

    assert_raise ArgumentError, ~r/both a leaf and a container/, fn ->
      Mx.Tree.unflatten([{"a", 1}, {"a.b", 2}])
    end

    assert_raise ArgumentError, ~r/non-empty list or string path/, fn ->
      Mx.Tree.unflatten([{[], 1}])
    end

    assert_raise ArgumentError, ~r/unknown option/, fn -> Mx.Tree.unflatten([], sep: ".") end
  end

  test "replace_leaves is the inverse of leaves and checks the count" do
    vals = [:a, :b, :c, :d]
    out = Mx.Tree.replace_leaves(tree(), vals)
    assert Mx.Tree.leaves(out, leaf?: &is_atom/1) |> Enum.reject(&(&1 == :relu)) == vals

    assert_raise ArgumentError, ~r/got 3 values for a tree with more leaves/, fn ->
      Mx.Tree.replace_leaves(tree(), [1, 2, 3])
    end

    assert_raise ArgumentError, ~r/got 5 values for a tree of 4 leaves/, fn ->
      Mx.Tree.replace_leaves(tree(), [1, 2, 3, 4, 5])
    end
  end

  test "zip_with combines leaves position by position" do
    twice = Mx.Tree.map(tree(), &Mx.multiply(&1, 2))
    out = Mx.Tree.zip_with([tree(), twice], fn [a, b] -> Mx.add(a, b) end)
    assert nums(out) == [12.0, 6.0, 3.0, 9.0]
    assert out["meta"] == tree()["meta"]
  end

  test "zip_with names the path where structures differ" do
    other = put_in(tree(), ["layers"], [%{"w" => Mx.tensor(1.0)}, {Mx.tensor(3.0), :relu}])

    assert_raise ArgumentError,
                 ~r/differ at path \["layers", 0\]: tree 1 has a map with keys \["b", "w"\], tree 2 a map with keys \["w"\]/,
                 fn ->
                   Mx.Tree.zip_with([tree(), other], &hd/1)
                 end

    assert_raise ArgumentError,
                 ~r/differ at path \["head"\]: tree 1 has an array .*, tree 3 a list of 1 elements/,
                 fn ->
                   Mx.Tree.zip_with([tree(), tree(), %{tree() | "head" => [1]}], &hd/1)
                 end

    assert_raise ArgumentError,
                 ~r/differ at path \["layers", 1\]: tree 1 has a tuple of 2 elements, tree 2 a tuple of 1/,
                 fn ->
                   Mx.Tree.zip_with(
                     [tree(), put_in(tree(), ["layers"], [hd(tree()["layers"]), {Mx.tensor(1)}])],
                     &hd/1
                   )
                 end
  end

  test "zip_with with a custom leaf? names the tree whose node is no leaf" do
    leaf? = &match?({:slot, _}, &1)

    assert_raise ArgumentError, ~r/differ at path \[:a\]: tree 1 has \{:slot, 1\}, tree 2 a tuple of 2 elements/, fn ->
      Mx.Tree.zip_with([%{a: {:slot, 1}}, %{a: {:other, 1}}], & &1, leaf?: leaf?)
    end

    assert Mx.Tree.zip_with([%{a: {:slot, 1}}, %{a: {:slot, 2}}], fn [{_, x}, {_, y}] -> x + y end, leaf?: leaf?) == %{a: 3}
    assert_raise ArgumentError, ~r/an improper list at path \[\]/, fn -> Mx.Tree.zip_with([[1 | 2], [1 | 2]], & &1) end
  end

  test "options are checked" do
    assert_raise ArgumentError, ~r/Mx.Tree.map: unknown option/, fn ->
      Mx.Tree.map(tree(), & &1, is_leaf: & &1)
    end

    assert_raise ArgumentError, ~r/leaf\?: must be a function/, fn ->
      Mx.Tree.leaves(tree(), leaf?: 3)
    end

    assert_raise ArgumentError, ~r/join: must be a string/, fn ->
      Mx.Tree.flatten(tree(), join: 1)
    end

    assert_raise ArgumentError, ~r/cannot join the path segment \{1\}/, fn ->
      Mx.Tree.flatten(%{{1} => Mx.tensor(1)}, join: ".")
    end
  end
end
