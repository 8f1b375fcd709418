defmodule Gen.ChoicemapTest do
  use ExUnit.Case, async: true
  doctest Gen.Choicemap

  alias Gen.Choicemap

  test "values come back as Mx arrays with f64 floats, s64 integers and bool booleans" do
    cm = Gen.choicemap(%{a: 1.5, b: 2, c: true, d: [1.0, 2.0], e: Mx.tensor(3.0)})
    assert Mx.type(Choicemap.get(cm, :a)) == :f64
    assert Mx.type(Choicemap.get(cm, :b)) == :s64
    assert Mx.type(Choicemap.get(cm, :c)) == :bool
    assert Mx.type(Choicemap.get(cm, :d)) == :f64
    assert Mx.to_list(Choicemap.get(cm, :d)) == [1.0, 2.0]
    assert Mx.type(Choicemap.get(cm, :e)) == :f32
  end

  test "nested maps, paths and list pairs build the same tree" do
    a = Gen.choicemap(%{x: %{y: 1.0, z: %{w: 2.0}}})
    b = Gen.choicemap([{[:x, :y], 1.0}, {[:x, :z, :w], 2.0}])
    c = Gen.choicemap(%{[:x, :y] => 1.0, x: %{}}) |> Choicemap.put([:x, :z, :w], 2.0)
    for cm <- [a, b, c], do: assert(Enum.map(cm, fn {p, v} -> {p, Mx.to_number(v)} end) == [{[:x, :y], 1.0}, {[:x, :z, :w], 2.0}])
  end

  test "get, has_value?, get_submap and Access" do
    cm = Gen.choicemap(%{{:t, 1} => 3.0, x: %{y: 1.0}})
    assert Choicemap.has_value?(cm, [:x, :y])
    refute Choicemap.has_value?(cm, :x)
    refute Choicemap.has_value?(cm, :nope)
    assert Choicemap.get_submap(cm, :x) |> Choicemap.get(:y) |> Mx.to_number() == 1.0
    assert Choicemap.get_submap(cm, :nope) |> Choicemap.empty?()
    assert Choicemap.get_submap(cm, {:t, 1}).value |> Mx.to_number() == 3.0
    assert Mx.to_number(cm[{:t, 1}]) == 3.0
    assert %Choicemap{} = cm[:x]
    assert cm[:nope] == nil
  end

  test "get raises KeyError naming the address" do
    cm = Gen.choicemap(%{x: %{y: 1.0}})
    assert_raise KeyError, ~r/no value at address :nope/, fn -> Choicemap.get(cm, :nope) end
    assert_raise KeyError, ~r/address \[:x, :q\]/, fn -> Choicemap.get(cm, [:x, :q]) end
    assert_raise KeyError, ~r/address :x holds a submap/, fn -> Choicemap.get(cm, :x) end
  end

  test "merge takes the union and raises on a shared address" do
    m = Choicemap.merge(Gen.choicemap(%{a: 1.0, s: %{x: 1.0}}), Gen.choicemap(%{b: 2.0, s: %{y: 2.0}}))
    assert Enum.map(m, &elem(&1, 0)) == [[:a], [:b], [:s, :x], [:s, :y]]
    assert_raise ArgumentError, ~r/address \[:s, :x\]/, fn ->
      Choicemap.merge(Gen.choicemap(%{s: %{x: 1.0}}), Gen.choicemap(%{s: %{x: 2.0}}))
    end
  end

  test "to_map gives nested plain maps" do
    m = Gen.choicemap(%{a: 1.0, s: %{x: 2.0}}) |> Choicemap.to_map()
    assert Map.keys(m) == [:a, :s]
    assert Mx.to_number(m.s.x) == 2.0
  end

  test "enumeration: count and pairs in address order" do
    cm = Gen.choicemap(%{{:y, 2} => 1.0, {:y, 0} => 2.0, {:y, 1} => 3.0})
    assert Enum.count(cm) == 3
    assert Enum.map(cm, &elem(&1, 0)) == [[{:y, 0}], [{:y, 1}], [{:y, 2}]]
  end

  test "inspect draws a tree" do
    cm = Gen.choicemap(%{a: 1.5, s: %{x: 2.0, y: true}})
    assert inspect(cm) == """
           #Gen.Choicemap<
             ├── :a: 1.5
             └── :s
                 ├── :x: 2.0
                 └── :y: true
           >\
           """

    assert inspect(Gen.choicemap()) == "#Gen.Choicemap<empty>"
  end

  test "malformed choicemaps raise naming the problem" do
    assert_raise ArgumentError, ~r/address :x must be a number/, fn -> Gen.choicemap(%{x: "one"}) end
    assert_raise ArgumentError, ~r/address \[:s, :x\] must be a number/, fn -> Gen.choicemap([{[:s, :x], :foo}]) end
    assert_raise ArgumentError, ~r/pairs in the list, got :x/, fn -> Gen.choicemap([:x]) end
    assert_raise ArgumentError, ~r/expects a map/, fn -> Gen.choicemap(:x) end
    assert_raise ArgumentError, ~r/address :x is given twice/, fn -> Gen.choicemap([{:x, 1.0}, {:x, 2.0}]) end
    assert_raise ArgumentError, ~r/empty path/, fn -> Gen.choicemap([{[], 1.0}]) end
    assert_raise ArgumentError, ~r/cannot put under address :x, which holds a value/, fn ->
      Gen.choicemap([{:x, 1.0}, {[:x, :y], 2.0}])
    end
  end
end
