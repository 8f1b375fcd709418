defmodule Gen.CombinatorsDimapTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Choicemap

  doctest Gen.Combinators.Dimap

  defp step(me) do
    gen fn t, x, s ->
      send(me, {:step, t})
      trace(:x, Gen.Dist.normal(x, s))
    end
  end

  defp chain_lp(xs, s) do
    {lp, _} = Enum.reduce(xs, {0.0, 0.0}, fn x, {lp, prev} -> {lp + ln_normal(x, prev, s), x} end)
    lp
  end

  # An Unfold whose init state and scale pre computes afresh (new terms) from [n, s].
  defp chain(me) do
    Gen.Combinators.dimap(Gen.Combinators.unfold(step(me)),
      pre: fn [n, s] -> [n, Mx.tensor(0.0, type: :f64), Mx.multiply(Mx.tensor(s, type: :f64), 2.0)] end,
      post: fn states ->
        send(me, {:post, length(states)})
        Enum.reduce(states, Mx.tensor(0.0, type: :f64), &Mx.add/2)
      end
    )
  end

  test "simulate, generate, assess, propose, project: the inner function's choices and weights, transformed retval" do
    me = self()
    d = chain(me)
    {t, w} = Gen.generate(d, [2, 0.5], cm([{[0, :x], 0.5}, {[1, :x], 1.5}]))
    assert_close(w, chain_lp([0.5, 1.5], 1.0))
    assert_close(t.score, chain_lp([0.5, 1.5], 1.0))
    assert num(Gen.get_retval(t)) == 2.0
    assert pairs(t.choices) == [{[0, :x], 0.5}, {[1, :x], 1.5}]
    assert Gen.get_args(t) == [2, 0.5]

    {aw, r} = Gen.assess(d, [2, 0.5], t.choices)
    assert {Float.round(num(aw) - chain_lp([0.5, 1.5], 1.0), 12), num(r)} == {0.0, 2.0}
    assert_close(Gen.project(t, Gen.select([[1, :x]])), ln_normal(1.5, 0.5, 1.0))

    ts = Gen.simulate(d, [3, 1.0], key: Mx.Random.key(4))
    xs = for i <- 0..2, do: num(ts[[i, :x]])
    assert_close(ts.score, chain_lp(xs, 2.0), 1.0e-10)
    assert_close(Gen.get_retval(ts), Enum.sum(xs), 1.0e-10)
    {pc, pw, pr} = Gen.propose(d, [3, 1.0], key: Mx.Random.key(4))
    assert pairs(pc) == pairs(ts.choices)
    assert_close(pw, num(ts.score))
    assert_close(pr, Enum.sum(xs), 1.0e-10)
  end

  test "update: inner argdiffs come from comparing the transformed arguments, so the inner Unfold stays incremental" do
    me = self()
    d = chain(me)
    {t, _} = Gen.generate(d, [2, 0.5], cm([{[0, :x], 0.5}, {[1, :x], 1.5}]))
    calls(:step)
    calls(:post)

    # Only n changes; pre recomputes init and scale as new terms with the same values: only the new step runs.
    {t2, w, _, discard} = Gen.update(t, [3, 0.5], [:unknown_change, :no_change], cm([{[2, :x], 2.0}]))
    assert calls(:step) == [2]
    assert_close(w, ln_normal(2.0, 1.5, 1.0))
    assert Choicemap.empty?(discard)
    assert num(Gen.get_retval(t2)) == 4.0
    assert t2.subtraces[[]].subtraces[[0]] === t.subtraces[[]].subtraces[[0]]

    # The scale changes: the inner parameter changed, every step re-runs.
    {_, w2, _, _} = Gen.update(t, [2, 1.0], [:no_change, :unknown_change], cm([]))
    assert Enum.sort(calls(:step)) == [0, 1]
    assert_close(w2, chain_lp([0.5, 1.5], 2.0) - chain_lp([0.5, 1.5], 1.0))

    # All argdiffs :no_change: pre is not re-run, the inner args are the old ones; only the constrained step runs.
    {t3, w3, _, d3} = Gen.update(t, cm([{[1, :x], 1.0}]))
    assert calls(:step) == [1]
    assert_close(w3, ln_normal(1.0, 0.5, 1.0) - ln_normal(1.5, 0.5, 1.0))
    assert pairs(d3) == [{[1, :x], 1.5}]
    assert num(Gen.get_retval(t3)) == 1.5
    assert t3.subtraces[[]].args === t.subtraces[[]].args
  end

  test "an unchanged inner return value keeps the old transformed one without calling post" do
    me = self()

    d =
      Gen.Combinators.map_retval(Gen.Combinators.unfold(step(me)), fn states ->
        send(me, {:post, 1})
        length(states)
      end)

    {t, _} = Gen.generate(d, [2, 0.0, 1.0], cm([{[0, :x], 0.5}, {[1, :x], 1.5}]))
    calls(:post)
    # A new scale rescores both steps, which return their kept states: the same retval terms.
    {t2, w, retdiff, _} = Gen.update(t, [2, 0.0, 2.0], [:no_change, :no_change, :unknown_change], cm([]))
    assert calls(:post) == []
    assert retdiff == :no_change
    assert Gen.get_retval(t2) == 2
    assert_close(w, chain_lp([0.5, 1.5], 2.0) - chain_lp([0.5, 1.5], 1.0))
  end

  test "regenerate and edit pass through; traced inside a gen body" do
    me = self()
    d = chain(me)

    model =
      gen fn n ->
        s = trace(:s, Gen.Dist.gamma(2.0, rate: 1.0))
        total = trace(:chain, d, [n, s])
        trace(:obs, Gen.Dist.normal(total, 1.0))
      end

    obs = cm([{:s, 0.5}, {[:chain, 0, :x], 0.5}, {[:chain, 1, :x], 1.5}, {:obs, 2.5}])
    {t, w} = Gen.generate(model, [2], obs)
    lp_s = num(Gen.Dist.logpdf(Gen.Dist.gamma(2.0, rate: 1.0), 0.5))
    assert_close(w, lp_s + chain_lp([0.5, 1.5], 1.0) + ln_normal(2.5, 2.0, 1.0), 1.0e-12)
    calls(:step)

    {t2, w2, _} = Gen.regenerate(t, Gen.select([[:chain, 1, :x]]), key: Mx.Random.key(3))
    assert calls(:step) == [1]
    x1 = num(t2[[:chain, 1, :x]])
    assert_close(w2, ln_normal(2.5, 0.5 + x1, 1.0) - ln_normal(2.5, 2.0, 1.0), 1.0e-10)

    {t3, w3, d3} = Gen.edit(t, Gen.Edit.constraint(%{s: 1.0}))
    lp_s1 = num(Gen.Dist.logpdf(Gen.Dist.gamma(2.0, rate: 1.0), 1.0))
    assert_close(w3, lp_s1 - lp_s + chain_lp([0.5, 1.5], 2.0) - chain_lp([0.5, 1.5], 1.0), 1.0e-12)
    assert pairs(d3) == [{[:s], 0.5}]
    assert num(t3[[:chain, 1, :x]]) == 1.5
  end

  test "contramap and map_retval are dimap with one side" do
    inner = gen(fn mu, sigma -> trace(:x, Gen.Dist.normal(mu, sigma)) end)
    c = Gen.Combinators.contramap(inner, fn [mu] -> [mu, 2.0] end)
    {t, w} = Gen.generate(c, [1.0], cm([{:x, 0.0}]))
    assert_close(w, ln_normal(0.0, 1.0, 2.0))
    assert num(Gen.get_retval(t)) == 0.0
    {_, w2, _, _} = Gen.update(t, [3.0], [:unknown_change], cm([]))
    assert_close(w2, ln_normal(0.0, 3.0, 2.0) - ln_normal(0.0, 1.0, 2.0))
  end

  test "errors name what is wrong" do
    n = Gen.Dist.normal(0.0, 1.0)
    assert_raise ArgumentError, ~r/pre: must be a function of one argument, got 3/, fn -> Gen.Combinators.dimap(n, pre: 3) end
    assert_raise ArgumentError, ~r/Gen.Combinators.dimap: unknown option after:/, fn -> Gen.Combinators.dimap(n, after: & &1) end
    assert_raise ArgumentError, ~r/contramap: pre must be a function of one argument, got nil/, fn -> Gen.Combinators.contramap(n, nil) end
    assert_raise ArgumentError, ~r/map_retval: post must be a function/, fn -> Gen.Combinators.map_retval(n, fn a, b -> {a, b} end) end
    assert_raise ArgumentError, ~r/kernel must be a generative function/, fn -> Gen.Combinators.contramap(:nope, & &1) end

    d = Gen.Combinators.contramap(gen(fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end), fn [mu] -> mu end)
    assert_raise ArgumentError, ~r/pre function .* must return the inner function's argument list, got 1.0/, fn -> Gen.simulate(d, [1.0]) end
  end
end
