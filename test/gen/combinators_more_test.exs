defmodule Gen.CombinatorsMoreTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Choicemap

  doctest Gen.Combinators.Switch
  doctest Gen.Combinators.Mask
  doctest Gen.Combinators.Mix

  # Branch 0: x ~ N(mu, 1). Branch 1: y ~ N(mu, 2), z ~ N(y, 1).
  defp branches do
    [
      gen(fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end),
      gen fn mu ->
        y = trace(:y, Gen.Dist.normal(mu, 2.0))
        trace(:z, Gen.Dist.normal(y, 1.0))
      end
    ]
  end

  describe "Switch" do
    test "simulate, generate, assess, project, propose: the branch's choices at the top level" do
      s = Gen.Combinators.switch(branches())
      {t, w} = Gen.generate(s, [1, 0.5], cm([{:y, 1.0}, {:z, 2.0}]))
      full = ln_normal(1.0, 0.5, 2.0) + ln_normal(2.0, 1.0, 1.0)
      assert_close(w, full)
      assert_close(t.score, full)
      assert pairs(t.choices) == [{[:y], 1.0}, {[:z], 2.0}]
      assert num(Gen.get_retval(t)) == 2.0

      # An Mx integer index, and a partial constraint: weight is the constrained choice's density.
      {t1, w1} = Gen.generate(s, [Mx.tensor(1), 0.5], cm([{:z, 2.0}]), key: Mx.Random.key(3))
      y = num(t1[:y])
      assert_close(w1, ln_normal(2.0, y, 1.0))
      assert_close(t1.score, ln_normal(y, 0.5, 2.0) + ln_normal(2.0, y, 1.0))

      assert_close(Gen.project(t, Gen.select([:z])), ln_normal(2.0, 1.0, 1.0))
      {aw, r} = Gen.assess(s, [1, 0.5], t.choices)
      assert_close(aw, full)
      assert num(r) == 2.0

      ts = Gen.simulate(s, [0, 3.0], key: Mx.Random.key(1))
      assert [{[:x], x}] = pairs(ts.choices)
      assert_close(ts.score, ln_normal(x, 3.0, 1.0))
      {pc, pw, _} = Gen.propose(s, [0, 3.0], key: Mx.Random.key(1))
      assert pairs(pc) == [{[:x], x}]
      assert_close(pw, ln_normal(x, 3.0, 1.0))
    end

    test "update: same branch updates in place; a branch switch discards the old branch's choices" do
      s = Gen.Combinators.switch(branches())
      {t, _} = Gen.generate(s, [1, 0.0], cm([{:y, 1.0}, {:z, 2.0}]))

      {t2, w, _, discard} = Gen.update(t, [1, 0.5], [:no_change, :unknown_change], cm([{:z, 1.5}]))
      assert_close(w, ln_normal(1.0, 0.5, 2.0) - ln_normal(1.0, 0.0, 2.0) + ln_normal(1.5, 1.0, 1.0) - ln_normal(2.0, 1.0, 1.0))
      assert pairs(discard) == [{[:z], 2.0}]
      assert pairs(t2.choices) == [{[:y], 1.0}, {[:z], 1.5}]

      # Switch to branch 0: weight = generate weight of the new branch - old score (Gen.jl).
      {t3, w3, retdiff, discard3} = Gen.update(t, [0, 0.0], [:unknown_change, :no_change], cm([{:x, -0.5}]))
      assert_close(w3, ln_normal(-0.5, 0.0, 1.0) - (ln_normal(1.0, 0.0, 2.0) + ln_normal(2.0, 1.0, 1.0)))
      assert pairs(discard3) == [{[:y], 1.0}, {[:z], 2.0}]
      assert pairs(t3.choices) == [{[:x], -0.5}]
      assert_close(t3.score, ln_normal(-0.5, 0.0, 1.0))
      assert retdiff == :unknown_change

      # Switching with nothing constrained: the new branch is drawn, weight minus the old score only.
      {t4, w4, _, _} = Gen.update(t, [0, 0.0], [:unknown_change, :no_change], cm([]))
      assert_close(w4, -(ln_normal(1.0, 0.0, 2.0) + ln_normal(2.0, 1.0, 1.0)))
      assert [{[:x], _}] = pairs(t4.choices)
    end

    test "regenerate: same branch via its own regenerate; a branch switch draws the new branch, weight 0" do
      s = Gen.Combinators.switch(branches())
      {t, _} = Gen.generate(s, [1, 0.0], cm([{:y, 1.0}, {:z, 2.0}]))
      {t2, w, _} = Gen.regenerate(t, [1, 0.0], :no_change, Gen.select([:y]), key: Mx.Random.key(5))
      y = num(t2[:y])
      assert y != 1.0
      assert num(t2[:z]) == 2.0
      assert_close(w, ln_normal(2.0, y, 1.0) - ln_normal(2.0, 1.0, 1.0), 1.0e-10)

      {t3, w3, _} = Gen.regenerate(t, [0, 0.0], [:unknown_change, :no_change], Gen.Selection.none(), key: Mx.Random.key(5))
      assert num(w3) == 0.0
      assert [{[:x], x}] = pairs(t3.choices)
      assert_close(t3.score, ln_normal(x, 0.0, 1.0))
    end

    test "traced inside a gen body: changing the index upstream switches the branch" do
      s = Gen.Combinators.switch(branches())
      lw = Mx.log(Mx.tensor([0.3, 0.7], type: :f64))

      model =
        gen fn ->
          k = trace(:k, Gen.Dist.categorical(logits: lw))
          trace(:v, s, [k, 0.0])
        end

      {t, w} = Gen.generate(model, [], cm([{:k, 0}, {[:v, :x], 1.0}]))
      assert_close(w, :math.log(0.3) + ln_normal(1.0, 0.0, 1.0))

      {t2, w2, _, discard} = Gen.update(t, cm([{:k, 1}, {[:v, :y], 0.5}, {[:v, :z], 0.0}]))
      expected = :math.log(0.7) - :math.log(0.3) + ln_normal(0.5, 0.0, 2.0) + ln_normal(0.0, 0.5, 1.0) - ln_normal(1.0, 0.0, 1.0)
      assert_close(w2, expected)
      assert pairs(discard) == [{[:k], 0}, {[:v, :x], 1.0}]
      assert num(t2[[:v, :y]]) == 0.5
    end

    test "errors: an out-of-range or malformed index, a wrong arity, no branches" do
      s = Gen.Combinators.switch(branches())
      assert_raise ArgumentError, ~r/branch index 2 is out of range .* 2 branch\(es\): use 0..1/, fn -> Gen.simulate(s, [2, 0.0]) end
      assert_raise ArgumentError, ~r/branch index -1 is out of range/, fn -> Gen.generate(s, [-1, 0.0], cm([])) end
      assert_raise ArgumentError, ~r/branch index 5 is out of range/, fn -> Gen.simulate(s, [Mx.tensor(5), 0.0]) end
      assert_raise ArgumentError, ~r/must be an integer or an integer Mx scalar, got 1.0/, fn -> Gen.simulate(s, [1.0, 0.0]) end
      assert_raise ArgumentError, ~r/integer Mx scalar/, fn -> Gen.simulate(s, [Mx.tensor(1.0), 0.0]) end
      assert_raise ArgumentError, ~r/index first/, fn -> Gen.simulate(s, []) end
      assert_raise ArgumentError, ~r/takes 1 argument\(s\) but the 2 argument\(s\) after the index give 2/, fn -> Gen.simulate(s, [0, 0.0, 1.0]) end
      assert_raise ArgumentError, ~r/non-empty list of branches/, fn -> Gen.Combinators.switch([]) end
      assert_raise ArgumentError, ~r/must be a generative function/, fn -> Gen.Combinators.switch([:nope]) end

      {t, _} = Gen.generate(s, [0, 0.0], cm([{:x, 0.0}]))
      assert_raise ArgumentError, ~r/branch index 3 is out of range/, fn -> Gen.update(t, [3, 0.0], :unknown_change, cm([])) end
      assert_raise ArgumentError, ~r/Gen.regenerate: branch index 3/, fn -> Gen.regenerate(t, [3, 0.0], :unknown_change, Gen.select([:x])) end
    end
  end

  describe "Mask" do
    defp inner, do: gen(fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end)

    test "false makes no choices (score 0, retval nil); true runs the function" do
      m = Gen.Combinators.mask(inner())
      t = Gen.simulate(m, [false, 0.0])
      assert {Gen.get_retval(t), num(t.score), Choicemap.empty?(t.choices)} == {nil, 0.0, true}
      {aw, r} = Gen.assess(m, [false, 0.0], cm([]))
      assert {num(aw), r} == {0.0, nil}

      {t2, w2} = Gen.generate(m, [Mx.tensor(true), 1.0], cm([{:x, 0.5}]))
      assert_close(w2, ln_normal(0.5, 1.0, 1.0))
      assert pairs(t2.choices) == [{[:x], 0.5}]
      assert num(Gen.get_retval(t2)) == 0.5
      assert_close(Gen.project(t2, Gen.select([:x])), ln_normal(0.5, 1.0, 1.0))
      {aw2, _} = Gen.assess(m, [true, 1.0], t2.choices)
      assert_close(aw2, ln_normal(0.5, 1.0, 1.0))
    end

    test "update toggles false -> true -> false; true -> true updates the inner trace" do
      m = Gen.Combinators.mask(inner())
      {t, _} = Gen.generate(m, [false, 0.0], cm([]))

      {t2, w2, _, d2} = Gen.update(t, [true, 0.0], [:unknown_change, :no_change], cm([{:x, 0.7}]))
      assert_close(w2, ln_normal(0.7, 0.0, 1.0))
      assert Choicemap.empty?(d2)
      assert num(t2[:x]) == 0.7

      {t3, w3, _, d3} = Gen.update(t2, [true, 1.0], [:no_change, :unknown_change], cm([{:x, 0.2}]))
      assert_close(w3, ln_normal(0.2, 1.0, 1.0) - ln_normal(0.7, 0.0, 1.0))
      assert pairs(d3) == [{[:x], 0.7}]

      {t4, w4, _, d4} = Gen.update(t3, [false, 1.0], [:unknown_change, :no_change], cm([]))
      assert_close(w4, -ln_normal(0.2, 1.0, 1.0))
      assert pairs(d4) == [{[:x], 0.2}]
      assert {Gen.get_retval(t4), num(t4.score)} == {nil, 0.0}

      {_, w5, rd5, _} = Gen.update(t4, [false, 2.0], [:no_change, :unknown_change], cm([]))
      assert {num(w5), rd5} == {0.0, :no_change}
    end

    test "regenerate: false -> true draws from the prior, weight 0; true -> true regenerates the inner trace" do
      m = Gen.Combinators.mask(inner())
      {t, _} = Gen.generate(m, [false, 0.0], cm([]))
      {t2, w2, _} = Gen.regenerate(t, [true, 0.0], [:unknown_change, :no_change], Gen.Selection.none(), key: Mx.Random.key(2))
      assert num(w2) == 0.0
      x = num(t2[:x])
      assert_close(t2.score, ln_normal(x, 0.0, 1.0))

      {_, w3, _} = Gen.regenerate(t2, [true, 1.0], [:no_change, :unknown_change], Gen.Selection.none())
      assert_close(w3, ln_normal(x, 1.0, 1.0) - ln_normal(x, 0.0, 1.0), 1.0e-12)
      {t4, w4, _} = Gen.regenerate(t2, [false, 0.0], [:unknown_change, :no_change], Gen.Selection.all())
      assert {num(w4), Gen.get_retval(t4)} == {0.0, nil}
    end

    test "errors: constraints while false, a malformed flag" do
      m = Gen.Combinators.mask(inner())
      assert_raise ArgumentError, ~r/constraints \[\[:x\]\] name choices .* whose flag is false/, fn -> Gen.generate(m, [false, 0.0], cm([{:x, 1.0}])) end
      assert_raise ArgumentError, ~r/must be a boolean or an Mx scalar, got :yes/, fn -> Gen.simulate(m, [:yes, 0.0]) end
      assert_raise ArgumentError, ~r/a boolean first/, fn -> Gen.simulate(m, []) end
      {t, _} = Gen.generate(m, [true, 0.0], cm([{:x, 1.0}]))
      assert_raise ArgumentError, ~r/Gen.update: constraints/, fn -> Gen.update(t, [false, 0.0], :unknown_change, cm([{:x, 1.0}])) end
    end
  end

  describe "Mix" do
    defp mixture do
      comps = [Gen.Dist.normal(0.0, 1.0), gen(fn -> trace(:u, Gen.Dist.normal(5.0, 2.0)) end)]
      Gen.Combinators.mix(comps, Mx.log(Mx.tensor([0.25, 0.75], type: :f64)))
    end

    test "generate with :component and :value constrained; the weight is their log joint" do
      m = mixture()
      {t, w} = Gen.generate(m, [], cm([{:component, 1}, {[:value, :u], 4.0}]))
      assert_close(w, :math.log(0.75) + ln_normal(4.0, 5.0, 2.0))
      assert pairs(t.choices) == [{[:component], 1}, {[:value, :u], 4.0}]
      assert num(Gen.get_retval(t)) == 4.0

      {t0, w0} = Gen.generate(m, [], cm([{:component, 0}, {:value, 0.5}]))
      assert_close(w0, :math.log(0.25) + ln_normal(0.5, 0.0, 1.0))
      assert_close(Gen.project(t0, Gen.select([:value])), ln_normal(0.5, 0.0, 1.0))
      {aw, r} = Gen.assess(m, [], t0.choices)
      assert_close(aw, :math.log(0.25) + ln_normal(0.5, 0.0, 1.0))
      assert num(r) == 0.5

      # Only :component constrained: the component is drawn from its prior, so the weight is log 0.75.
      {tc, wc} = Gen.generate(m, [], cm([{:component, 1}]), key: Mx.Random.key(8))
      assert_close(wc, :math.log(0.75))
      u = num(tc[[:value, :u]])
      assert_close(tc.score, :math.log(0.75) + ln_normal(u, 5.0, 2.0))

      ts = Gen.simulate(m, [], key: Mx.Random.key(4))
      {_, pw, _} = Gen.propose(m, [], key: Mx.Random.key(4))
      assert_close(pw, num(ts.score))
    end

    test "update: a new :component switches the component and discards the old one under :value" do
      m = mixture()
      {t, _} = Gen.generate(m, [], cm([{:component, 0}, {:value, 0.5}]))
      {t2, w, _, discard} = Gen.update(t, cm([{:component, 1}, {[:value, :u], 4.0}]))
      assert_close(w, :math.log(0.75) - :math.log(0.25) + ln_normal(4.0, 5.0, 2.0) - ln_normal(0.5, 0.0, 1.0))
      assert pairs(discard) == [{[:component], 0}, {[:value], 0.5}]
      assert pairs(t2.choices) == [{[:component], 1}, {[:value, :u], 4.0}]

      {_, w3, _, d3} = Gen.update(t2, cm([{[:value, :u], 6.0}]))
      assert_close(w3, ln_normal(6.0, 5.0, 2.0) - ln_normal(4.0, 5.0, 2.0))
      assert pairs(d3) == [{[:value, :u], 4.0}]
    end

    test "regenerate: selecting :value redraws it with weight 0; a changed index draws the new component" do
      m = mixture()
      {t, _} = Gen.generate(m, [], cm([{:component, 0}, {:value, 0.5}]))
      {t2, w, _} = Gen.regenerate(t, Gen.select([:value]), key: Mx.Random.key(3))
      assert num(w) == 0.0
      assert num(t2[:component]) == 0
      assert num(t2[:value]) != 0.5

      # Over several keys the index is redrawn; whenever it changes the weight is still 0.
      results = for s <- 1..20, do: Gen.regenerate(t, Gen.select([:component]), key: Mx.Random.key(s))
      assert Enum.any?(results, fn {t3, _, _} -> num(t3[:component]) == 1 end)

      for {t3, w3, _} <- results do
        assert num(w3) == 0.0
        if num(t3[:component]) == 1, do: assert(Choicemap.has_value?(t3.choices, [:value, :u]))
      end
    end

    test "errors: an out-of-range constrained component, unknown addresses, mismatched log-weights" do
      m = mixture()
      assert_raise ArgumentError, ~r/component index 2 is out of range .* 2 component\(s\): use 0..1/, fn ->
        Gen.generate(m, [], cm([{:component, 2}]))
      end

      assert_raise ArgumentError, ~r/component index -1 is out of range/, fn -> Gen.assess(m, [], cm([{:component, -1}, {:value, 0.0}])) end
      assert_raise ArgumentError, ~r/constraint at :x names no choice/, fn -> Gen.generate(m, [], cm([{:x, 1.0}])) end
      assert_raise ArgumentError, ~r/one entry per component \(2\), got shape \{3\}/, fn ->
        Gen.Combinators.mix([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(1.0, 1.0)], [0.0, 0.0, 0.0])
      end

      {t, _} = Gen.generate(m, [], cm([{:component, 0}, {:value, 0.5}]))
      assert_raise ArgumentError, ~r/Gen.update: component index 7 is out of range/, fn -> Gen.update(t, cm([{:component, 7}])) end
    end
  end
end
