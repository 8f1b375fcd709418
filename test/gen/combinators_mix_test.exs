defmodule Gen.CombinatorsMixLogitsTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers

  # Mix with its log-weights from a generative function (GenJAX's mix); the fixed form is in combinators_more_test.exs.

  # log Beta(x; a, b) for integer a, b (Γ(n) = (n-1)!).
  defp ln_beta(x, a, b) do
    lg = fn z -> :math.log(Enum.reduce(1..(round(z) - 1)//1, 1, &*/2)) end
    (a - 1) * :math.log(x) + (b - 1) * :math.log(1 - x) - (lg.(a) + lg.(b) - lg.(a + b))
  end

  # p ~ Beta(a, 2); logits [log p, log(1 - p)]. Components: x ~ N(-mu, 1) or x ~ N(mu, 2).
  defp mixture do
    logits =
      gen fn a, _mu ->
        p = trace(:p, Gen.Dist.beta(a, 2.0))
        Mx.log(Mx.stack([p, Mx.subtract(1.0, p)]))
      end

    comps = [
      gen(fn _a, mu -> trace(:x, Gen.Dist.normal(Mx.negate(Mx.tensor(mu, type: :f64)), 1.0)) end),
      gen(fn _a, mu -> trace(:x, Gen.Dist.normal(mu, 2.0)) end)
    ]

    Gen.Combinators.mix(comps, logits)
  end

  defp lp(p, k, x, a, mu) do
    comp = if k == 0, do: ln_normal(x, -mu, 1.0), else: ln_normal(x, mu, 2.0)
    ln_beta(p, a, 2.0) + :math.log(if k == 0, do: p, else: 1 - p) + comp
  end

  test "generate, assess, project, simulate: the logits function's choices are traced under :logits" do
    m = mixture()
    full = cm([{[:logits, :p], 0.3}, {:component, 1}, {[:value, :x], 2.5}])
    {t, w} = Gen.generate(m, [3.0, 1.0], full)
    assert_close(w, lp(0.3, 1, 2.5, 3.0, 1.0), 1.0e-12)
    assert_close(t.score, lp(0.3, 1, 2.5, 3.0, 1.0), 1.0e-12)
    assert pairs(t.choices) == [{[:component], 1}, {[:logits, :p], 0.3}, {[:value, :x], 2.5}]
    assert num(Gen.get_retval(t)) == 2.5

    {aw, r} = Gen.assess(m, [3.0, 1.0], full)
    assert_close(aw, lp(0.3, 1, 2.5, 3.0, 1.0), 1.0e-12)
    assert num(r) == 2.5
    assert_close(Gen.project(t, Gen.select([:logits])), ln_beta(0.3, 3.0, 2.0), 1.0e-12)
    assert_close(Gen.project(t, Gen.select([:component])), :math.log(0.7), 1.0e-12)

    # Only p constrained: weight is its density; the index and value are drawn.
    {t2, w2} = Gen.generate(m, [3.0, 1.0], cm([{[:logits, :p], 0.3}]), key: Mx.Random.key(2))
    assert_close(w2, ln_beta(0.3, 3.0, 2.0), 1.0e-12)
    k = num(t2[:component])
    assert_close(t2.score, lp(0.3, k, num(t2[[:value, :x]]), 3.0, 1.0), 1.0e-6)

    ts = Gen.simulate(m, [3.0, 1.0], key: Mx.Random.key(5))
    assert_close(ts.score, lp(num(ts[[:logits, :p]]), num(ts[:component]), num(ts[[:value, :x]]), 3.0, 1.0), 1.0e-6)
    {_, pw, _} = Gen.propose(m, [3.0, 1.0], key: Mx.Random.key(5))
    assert_close(pw, num(ts.score))
  end

  test "update: a new p rescores the kept index; new arguments rescore all three parts; a new index switches" do
    m = mixture()
    {t, _} = Gen.generate(m, [3.0, 1.0], cm([{[:logits, :p], 0.3}, {:component, 1}, {[:value, :x], 2.5}]))

    {t2, w, _, d} = Gen.update(t, cm([{[:logits, :p], 0.6}]))
    assert_close(w, lp(0.6, 1, 2.5, 3.0, 1.0) - lp(0.3, 1, 2.5, 3.0, 1.0), 1.0e-12)
    assert pairs(d) == [{[:logits, :p], 0.3}]
    assert num(t2[[:logits, :p]]) == 0.6

    {_, w2, _, _} = Gen.update(t, [2.0, 0.5], [:unknown_change, :unknown_change], cm([]))
    assert_close(w2, lp(0.3, 1, 2.5, 2.0, 0.5) - lp(0.3, 1, 2.5, 3.0, 1.0), 1.0e-12)

    {t3, w3, _, d3} = Gen.update(t, cm([{:component, 0}, {[:value, :x], -1.0}]))
    assert_close(w3, lp(0.3, 0, -1.0, 3.0, 1.0) - lp(0.3, 1, 2.5, 3.0, 1.0), 1.0e-12)
    assert pairs(d3) == [{[:component], 1}, {[:value, :x], 2.5}]
    assert num(t3[:component]) == 0
  end

  test "regenerate p: the weight is the kept index's change of log-probability" do
    m = mixture()
    {t, _} = Gen.generate(m, [3.0, 1.0], cm([{[:logits, :p], 0.3}, {:component, 1}, {[:value, :x], 2.5}]))
    {t2, w, _} = Gen.regenerate(t, Gen.select([[:logits, :p]]), key: Mx.Random.key(9))
    p = num(t2[[:logits, :p]])
    assert p != 0.3
    assert_close(w, :math.log(1 - p) - :math.log(0.7), 1.0e-6)
    assert {num(t2[:component]), num(t2[[:value, :x]])} == {1, 2.5}
  end

  test "MH on the mixture weight: p | component 0 is Beta(a + 1, 2)" do
    m = mixture()
    {t0, _} = Gen.generate(m, [3.0, 1.0], cm([{:component, 0}, {[:value, :x], 0.0}]), key: Mx.Random.key(1))
    k = Gen.Inference.Kernel.mh(Gen.select([[:logits, :p]]))
    ps = Gen.Inference.run(k, t0, samples: 2000, burn: 50, key: Mx.Random.key(3), select: &num(&1[[:logits, :p]]))
    # Beta(4, 2): mean 4/6, variance 4·2/(6²·7); tolerance 4 batch-means standard errors (ChainCheck).
    Gen.ChainCheck.assert_posterior(ps, 4.0 / 6.0, 8.0 / (36.0 * 7.0))
  end

  test "errors name what is wrong" do
    comps = [Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(1.0, 1.0)]
    three = Gen.Combinators.mix(comps, gen(fn -> Mx.tensor([0.0, 0.0, 0.0], type: :f64) end))
    assert_raise ArgumentError, ~r/logits function .* must return an Mx vector with one entry per component \(2\)/, fn -> Gen.simulate(three, []) end
    assert_raise ArgumentError, ~r/must be a list or an Mx vector \(fixed\) or a generative function/, fn -> Gen.Combinators.mix(comps, :nope) end
    assert_raise ArgumentError, ~r/constraint at :logits names no choice/, fn ->
      Gen.generate(Gen.Combinators.mix(comps, [0.0, 0.0]), [], cm([{[:logits, :p], 0.5}]))
    end

    assert_raise ArgumentError, ~r/constraint at :oops names no choice .* its choices are :logits, :component and those under :value/, fn ->
      Gen.generate(mixture(), [3.0, 1.0], cm([{:oops, 1.0}]))
    end
  end
end
