defmodule Gen.CombinatorsRecurseTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Choicemap

  doctest Gen.Combinators.Recurse

  defp truthy?(v), do: num(v) in [true, 1]

  # Stops with probability p at each level; returns the depth.
  defp geometric do
    Gen.Combinators.recurse(fn self ->
      gen fn p ->
        if truthy?(trace(:stop, Gen.Dist.bernoulli(p))), do: 0, else: 1 + trace(:next, self, [p])
      end
    end)
  end

  # The path of the stop choice at level d: [:next, ..., :next, :stop].
  defp stop_at(d), do: List.duplicate(:next, d) ++ [:stop]

  defp chain(depth), do: cm(for(d <- 0..depth, do: {stop_at(d), d == depth}))

  defp lp_geom(depth, p), do: depth * :math.log(1 - p) + :math.log(p)

  # A random expression tree; each body run reports its path depth to the test process.
  defp expr(me) do
    Gen.Combinators.recurse(fn self ->
      gen fn mu ->
        send(me, {:node, mu})

        if truthy?(trace(:leaf, Gen.Dist.bernoulli(0.6))) do
          trace(:value, Gen.Dist.normal(mu, 1.0))
        else
          Mx.add(trace(:left, self, [mu - 1.0]), trace(:right, self, [mu + 1.0]))
        end
      end
    end)
  end

  describe "geometric recursion" do
    test "generate, assess, project: weights and depth by hand" do
      g = geometric()
      {t, w} = Gen.generate(g, [0.3], chain(3))
      assert_close(w, lp_geom(3, 0.3))
      assert_close(t.score, lp_geom(3, 0.3))
      assert Gen.get_retval(t) == 3
      assert Enum.count(t.choices) == 4
      assert num(t[stop_at(3)]) == true

      {aw, d} = Gen.assess(g, [0.3], chain(2))
      assert {Float.round(num(aw) - lp_geom(2, 0.3), 12), d} == {0.0, 2}
      assert_close(Gen.project(t, Gen.select([[:next, :next]])), :math.log(0.7) + :math.log(0.3))
      assert_raise ArgumentError, ~r/no value for the choice/, fn -> Gen.assess(g, [0.3], cm([{[:stop], false}])) end
    end

    test "simulate: score is depth·log(1-p) + log p; the mean depth is (1-p)/p" do
      g = geometric()
      p = 0.4
      n = 1500

      depths =
        for i <- 1..n do
          t = Gen.simulate(g, [p], key: Mx.Random.key(i))
          d = Gen.get_retval(t)
          if i <= 20, do: assert_close(t.score, lp_geom(d, p), 1.0e-6)
          d
        end

      {pc, pw, pd} = Gen.propose(g, [p], key: Mx.Random.key(1))
      assert Enum.count(pc) == pd + 1
      assert_close(pw, lp_geom(pd, p), 1.0e-6)

      # Independent draws: the standard error of the mean is sqrt(var / n), var = (1-p)/p² exactly.
      mean = Enum.sum(depths) / n
      se = :math.sqrt((1 - p) / (p * p) / n)
      assert abs(mean - (1 - p) / p) < 4 * se, "mean depth #{mean}, expected #{(1 - p) / p} ± #{4 * se}"
    end

    test "update: stopping earlier discards the deeper levels; going on draws new ones; a new p rescores all" do
      g = geometric()
      {t, _} = Gen.generate(g, [0.3], chain(3))

      {t2, w2, _, d2} = Gen.update(t, cm([{stop_at(1), true}]))
      # Level 1 flips false -> true; levels 2 and 3 are removed (minus their log-density).
      assert_close(w2, :math.log(0.3) - :math.log(0.7) - (:math.log(0.7) + :math.log(0.3)))
      assert pairs(d2) == [{[:next, :next, :next, :stop], true}, {[:next, :next, :stop], false}, {[:next, :stop], false}]
      assert Gen.get_retval(t2) == 1
      assert_close(t2.score, lp_geom(1, 0.3))

      # Level 3 flips true -> false: level 4 onwards is drawn from the prior and adds nothing to the weight.
      {t3, w3, _, d3} = Gen.update(t, cm([{stop_at(3), false}]), key: Mx.Random.key(5))
      assert_close(w3, :math.log(0.7) - :math.log(0.3))
      assert pairs(d3) == [{stop_at(3), true}]
      assert Gen.get_retval(t3) >= 4
      assert_close(t3.score, lp_geom(Gen.get_retval(t3), 0.3), 1.0e-6)

      {_, w4, _, _} = Gen.update(t, [0.5], [:unknown_change], cm([]))
      assert_close(w4, lp_geom(3, 0.5) - lp_geom(3, 0.3))
    end

    test "max_depth stops a recursion that never ends" do
      forever = Gen.Combinators.recurse(fn self -> gen(fn -> _ = trace(:x, Gen.Dist.normal(0.0, 1.0)); trace(:next, self, []) end) end, max_depth: 40)
      assert_raise ArgumentError, ~r/went deeper than max_depth: 40 nested calls/, fn -> Gen.simulate(forever, []) end
      # The depth count is restored after the raise.
      assert Gen.get_retval(Gen.generate(geometric(), [0.3], chain(2)) |> elem(0)) == 2
    end
  end

  describe "expression tree" do
    @tree [
      {[:leaf], false},
      {[:left, :leaf], true},
      {[:left, :value], 1.0},
      {[:right, :leaf], false},
      {[:right, :left, :leaf], true},
      {[:right, :left, :value], 0.5},
      {[:right, :right, :leaf], true},
      {[:right, :right, :value], 3.0}
    ]

    # The tree above at root mean 0: leaves at means -1 (left), 0 (right.left), 2 (right.right).
    defp tree_lp do
      3 * :math.log(0.6) + 2 * :math.log(0.4) + ln_normal(1.0, -1.0, 1.0) + ln_normal(0.5, 0.0, 1.0) + ln_normal(3.0, 2.0, 1.0)
    end

    test "generate and assess by hand; regenerate re-runs only the nodes on the path to the selection" do
      me = self()
      e = expr(me)
      {t, w} = Gen.generate(e, [0.0], cm(@tree))
      assert_close(w, tree_lp())
      assert num(Gen.get_retval(t)) == 4.5
      assert Enum.sort(calls(:node)) == [-1.0, 0.0, 0.0, 1.0, 2.0]
      {aw, r} = Gen.assess(e, [0.0], t.choices)
      assert_close(aw, tree_lp())
      assert num(r) == 4.5
      calls(:node)

      {t2, w2, _} = Gen.regenerate(t, Gen.select([[:right, :left, :value]]), key: Mx.Random.key(2))
      # The root, the right subtree and its left leaf run; the root's left and the right's right are kept.
      assert Enum.sort(calls(:node)) == [0.0, 0.0, 1.0]
      assert num(w2) == 0.0
      v = num(t2[[:right, :left, :value]])
      assert v != 0.5
      assert_close(Gen.get_retval(t2), 1.0 + v + 3.0, 1.0e-6)
      assert t2.subtraces[[]].subtraces[[:left]] === t.subtraces[[]].subtraces[[:left]]

      # Turning a leaf into an operator grows two subtrees from the prior; the old value goes to the discard.
      {t3, w3, _, d3} = Gen.update(t, cm([{[:left, :leaf], false}]), key: Mx.Random.key(3))
      assert_close(w3, :math.log(0.4) - :math.log(0.6) - ln_normal(1.0, -1.0, 1.0))
      assert pairs(d3) == [{[:left, :leaf], true}, {[:left, :value], 1.0}]
      assert Choicemap.has_value?(t3.choices, [:left, :left, :leaf])

      # edit with a selection is regenerate; its discard holds the old value of the selected leaf.
      {t4, w4, d4} = Gen.edit(t, Gen.Edit.selection([[:left, :value]]), key: Mx.Random.key(4))
      assert num(w4) == 0.0
      assert pairs(d4) == [{[:left, :value], 1.0}]
      assert_close(t4.score, tree_lp() - ln_normal(1.0, -1.0, 1.0) + ln_normal(num(t4[[:left, :value]]), -1.0, 1.0), 1.0e-10)
    end

    test "MH inside a recursive model: the leaf values' posterior given their noisy sum" do
      e = expr(self())

      model =
        gen fn ->
          v = trace(:tree, e, [0.0])
          trace(:obs, Gen.Dist.normal(v, 1.0))
        end

      # Fix the shape: root = left leaf + right leaf, leaf values a ~ N(-1, 1), b ~ N(1, 1), obs = 2.
      shape = cm([{[:tree, :leaf], false}, {[:tree, :left, :leaf], true}, {[:tree, :right, :leaf], true}, {:obs, 2.0}])
      {t0, _} = Gen.generate(model, [], shape, key: Mx.Random.key(1))
      sel = Gen.select([[:tree, :left, :value], [:tree, :right, :value]])
      k = Gen.Inference.Kernel.mh(sel)
      xs = Gen.Inference.run(k, t0, samples: 2000, burn: 100, key: Mx.Random.key(2), select: &num(&1[[:tree, :left, :value]]))
      calls(:node)
      # a | a + b + noise = 2: Gaussian conditioning, s = a + b + e has variance 3, cov(a, s) = 1:
      # E[a | s] = -1 + (2 - 0) / 3, Var[a | s] = 1 - 1/3. Tolerance: 4 batch-means standard errors.
      Gen.ChainCheck.assert_posterior(xs, -1.0 + 2.0 / 3.0, 2.0 / 3.0)
    end
  end

  test "errors name what is wrong" do
    assert_raise ArgumentError, ~r/expected a function fn self -> generative function end/, fn -> Gen.Combinators.recurse(:nope) end
    assert_raise ArgumentError, ~r/max_depth: must be a positive integer, got 0/, fn -> Gen.Combinators.recurse(fn s -> s end, max_depth: 0) end
    bad = Gen.Combinators.recurse(fn _self -> :not_a_gen_fn end)
    assert_raise ArgumentError, ~r/Gen.simulate: the body of .* must return a generative function/, fn -> Gen.simulate(bad, []) end
  end
end
