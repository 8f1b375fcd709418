defmodule Gen.EditTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.{Edit, Selection}

  doctest Gen.Edit

  # b decides which normal is traced; z depends on the branch's value.
  defp branchy do
    gen fn ->
      b = trace(:b, Gen.Dist.bernoulli(0.3))
      m = if Mx.to_number(b), do: trace(:x, Gen.Dist.normal(0.0, 1.0)), else: trace(:y, Gen.Dist.normal(2.0, 3.0))
      trace(:z, Gen.Dist.normal(m, 1.0))
    end
  end

  defp chain do
    gen fn ->
      x = trace(:x, Gen.Dist.normal(0.0, 1.0))
      trace(:y, Gen.Dist.normal(x, 2.0))
    end
  end

  defp vals(cm), do: cm |> Enum.map(fn {p, v} -> {p, num(v)} end) |> Enum.sort()
  defp v(t, addr), do: num(t[addr])

  describe "constraint requests are update" do
    test "same new trace, weight and discard as update/3 with the same key, both branches" do
      for {b, seed} <- [{true, 0}, {false, 1}, {true, 2}] do
        t = simulate(branchy(), [], key: Mx.Random.key(seed))
        cm = Gen.choicemap(%{b: b, z: 0.7})
        {u, uw, _, ud} = update(t, cm, key: Mx.Random.key(10 + seed))
        {e, ew, ed} = edit(t, Edit.constraint(cm), key: Mx.Random.key(10 + seed))

        assert num(ew) == num(uw)
        assert vals(ed) == vals(ud)
        assert vals(e.choices) == vals(u.choices)
        assert num(e.score) == num(u.score)
      end
    end

    test "hand-checked weight and discard on x ~ N(0,1), y ~ N(x,2)" do
      {t, _} = generate(chain(), [], %{x: 1.0, y: 0.5})
      {t2, w, d} = edit(t, Edit.constraint(%{x: 0.0}))

      expected = ln_normal(0.0, 0.0, 1.0) + ln_normal(0.5, 0.0, 2.0) - ln_normal(1.0, 0.0, 1.0) - ln_normal(0.5, 1.0, 2.0)
      assert_close(w, expected)
      assert vals(d) == [{[:x], 1.0}]
      assert {v(t2, :x), v(t2, :y)} == {0.0, 0.5}
    end
  end

  describe "selection requests are regenerate" do
    test "same new trace and weight as regenerate/3 with the same key" do
      for seed <- 0..5 do
        t = simulate(branchy(), [], key: Mx.Random.key(seed))
        {r, rw, _} = regenerate(t, Selection.new(:b), key: Mx.Random.key(20 + seed))
        {e, ew, _} = edit(t, Edit.selection(Selection.new(:b)), key: Mx.Random.key(20 + seed))

        assert num(ew) == num(rw)
        assert vals(e.choices) == vals(r.choices)
      end
    end

    test "discard holds the selected choices and the removed ones" do
      # Find a seed whose regenerate flips b, so the old branch's choice is removed.
      t = simulate(branchy(), [], key: Mx.Random.key(3))
      old_b = v(t, :b)
      gone = if old_b, do: :x, else: :y

      {e, _, d} =
        Enum.find_value(0..200, fn s ->
          {e, _, _} = res = edit(t, Edit.selection(:b), key: Mx.Random.key(s))
          if v(e, :b) != old_b, do: res
        end)

      assert vals(d) == Enum.sort([{[:b], old_b}, {[gone], v(t, gone)}])
      assert v(e, :z) == v(t, :z)
    end

    test "hand-checked weight when resampling x of x ~ N(0,1), y ~ N(x,2)" do
      {t, _} = generate(chain(), [], %{x: 1.0, y: 0.5})
      {t2, w, d} = edit(t, Edit.selection(:x), key: Mx.Random.key(4))
      x2 = v(t2, :x)

      assert x2 != 1.0
      assert_close(w, ln_normal(0.5, x2, 2.0) - ln_normal(0.5, 1.0, 2.0))
      assert vals(d) == [{[:x], 1.0}]

      {_, w0, d0} = edit(t, Edit.selection(:y), key: Mx.Random.key(4))
      assert num(w0) == 0.0
      assert vals(d0) == [{[:y], 0.5}]
    end
  end

  describe "proposal requests are Metropolis-Hastings moves" do
    test "hand-checked weight: the log acceptance ratio of a random walk on x" do
      q = gen fn tr, s -> trace(:x, Gen.Dist.normal(tr[:x], s)) end
      {t, _} = generate(chain(), [], %{x: 1.0, y: 0.5})
      {t2, w, d} = edit(t, Edit.proposal(q, [0.5]), key: Mx.Random.key(6))
      x2 = v(t2, :x)

      expected =
        ln_normal(x2, 0.0, 1.0) + ln_normal(0.5, x2, 2.0) - ln_normal(1.0, 0.0, 1.0) - ln_normal(0.5, 1.0, 2.0) -
          ln_normal(x2, 1.0, 0.5) + ln_normal(1.0, x2, 0.5)

      assert x2 != 1.0
      assert v(t2, :y) == 0.5
      assert_close(w, expected)
      assert vals(d) == [{[:x], 1.0}]
      # The same key gives the same move.
      {t3, w3, _} = edit(t, Edit.proposal(q, [0.5]), key: Mx.Random.key(6))
      assert {v(t3, :x), num(w3)} == {x2, num(w)}
    end
  end

  describe "errors" do
    test "an unknown request and a proposal that is no generative function raise, naming the fix" do
      {t, _} = generate(chain(), [], %{x: 1.0, y: 0.5})
      assert_raise ArgumentError, ~r/unknown edit request.*Gen.Edit.constraint/, fn -> edit(t, {:update, %{x: 0.0}}) end
      assert_raise ArgumentError, ~r/expected a generative function/, fn -> Edit.proposal(fn x -> x end) end
      assert_raise ArgumentError, ~r/must be a list/, fn -> Edit.proposal(chain(), 0.5) end
    end
  end
end
