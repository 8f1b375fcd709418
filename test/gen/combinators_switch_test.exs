defmodule Gen.CombinatorsSwitchTest do
  # Issue 10 item 7: Switch and Mix moving to another branch keep the choices the new branch
  # shares with the old one (Gen.jl's switch update), with exact weights and discards; MH
  # over the index keeps observed values; Mix's list log-weights are f64, not rounded via f32.
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers

  # Branch 0: y ~ N(mu, 1), a ~ N(y, 1). Branch 1: y ~ N(mu, 2), z ~ N(y, 1). They share :y.
  defp branches do
    b0 =
      gen(fn mu ->
        y = trace(:y, Gen.Dist.normal(mu, 1.0))
        trace(:a, Gen.Dist.normal(y, 1.0))
      end)

    b1 =
      gen(fn mu ->
        y = trace(:y, Gen.Dist.normal(mu, 2.0))
        trace(:z, Gen.Dist.normal(y, 1.0))
      end)

    [b0, b1]
  end

  defp old_trace do
    {t, _} =
      Gen.generate(Gen.Combinators.switch(branches()), [0, 0.0], cm([{:y, 1.0}, {:a, 0.5}]))

    t
  end

  @old_score 0.0 - (0.5 + 0.125) - :math.log(2 * :math.pi())

  describe "Switch update to another index" do
    test "keeps the shared choice, takes the constraints, discards the old choices not kept" do
      t = old_trace()
      assert_close(t.score, ln_normal(1.0, 0.0, 1.0) + ln_normal(0.5, 1.0, 1.0))
      assert_close(t.score, @old_score)

      {t2, w, retdiff, discard} =
        Gen.update(t, [1, 0.0], [:unknown_change, :no_change], cm([{:z, 2.0}]))

      assert pairs(t2.choices) == [{[:y], 1.0}, {[:z], 2.0}]
      assert_close(w, ln_normal(1.0, 0.0, 2.0) + ln_normal(2.0, 1.0, 1.0) - @old_score)
      assert_close(t2.score, ln_normal(1.0, 0.0, 2.0) + ln_normal(2.0, 1.0, 1.0))
      assert pairs(discard) == [{[:a], 0.5}]
      assert retdiff == :unknown_change
    end

    test "with nothing constrained: the shared choice is kept, the new one drawn from its prior (weight 0)" do
      {t2, w, _, discard} =
        Gen.update(old_trace(), [1, 0.0], [:unknown_change, :no_change], cm([]),
          key: Mx.Random.key(4)
        )

      assert num(t2[:y]) == 1.0
      z = num(t2[:z])
      assert_close(w, ln_normal(1.0, 0.0, 2.0) - @old_score)
      assert_close(t2.score, ln_normal(1.0, 0.0, 2.0) + ln_normal(z, 1.0, 1.0))
      assert pairs(discard) == [{[:a], 0.5}]
    end

    test "a constrained shared address is overwritten and its old value discarded" do
      {t2, w, _, discard} =
        Gen.update(
          old_trace(),
          [1, 0.0],
          [:unknown_change, :no_change],
          cm([{:y, 3.0}, {:z, 2.0}])
        )

      assert pairs(t2.choices) == [{[:y], 3.0}, {[:z], 2.0}]
      assert_close(w, ln_normal(3.0, 0.0, 2.0) + ln_normal(2.0, 3.0, 1.0) - @old_score)
      assert pairs(discard) == [{[:a], 0.5}, {[:y], 1.0}]
    end

    test "updating back with the discard restores the old trace with the opposite weight" do
      t = old_trace()

      {t2, w, _, discard} =
        Gen.update(t, [1, 0.0], [:unknown_change, :no_change], cm([{:y, 3.0}, {:z, 2.0}]))

      {t3, w_back, _, discard_back} =
        Gen.update(t2, [0, 0.0], [:unknown_change, :no_change], discard)

      assert pairs(t3.choices) == pairs(t.choices)
      assert_close(t3.score, num(t.score))
      assert_close(w_back, -num(w))
      assert pairs(discard_back) == [{[:y], 3.0}, {[:z], 2.0}]
    end

    test "branches that share no address kind (a distribution and a gen function) share nothing" do
      s =
        Gen.Combinators.switch([
          Gen.Dist.normal(0.0, 1.0),
          gen(fn -> trace(:y, Gen.Dist.normal(0.0, 2.0)) end)
        ])

      {t, _} = Gen.generate(s, [0], Gen.Choicemap.leaf(0.5))
      {t2, w, _, discard} = Gen.update(t, [1], [:unknown_change], cm([{:y, 1.0}]))
      assert pairs(t2.choices) == [{[:y], 1.0}]
      assert_close(w, ln_normal(1.0, 0.0, 2.0) - ln_normal(0.5, 0.0, 1.0))
      assert pairs(discard) == [{[], 0.5}]
    end
  end

  describe "Switch regenerate to another index" do
    test "an unselected shared choice is kept and rescored; a selected one is redrawn with weight 0" do
      t = old_trace()

      {t2, w, _} =
        Gen.regenerate(t, [1, 0.0], [:unknown_change, :no_change], Gen.Selection.none(),
          key: Mx.Random.key(2)
        )

      assert num(t2[:y]) == 1.0
      assert_close(w, ln_normal(1.0, 0.0, 2.0) - ln_normal(1.0, 0.0, 1.0))
      assert_close(t2.score, ln_normal(1.0, 0.0, 2.0) + ln_normal(num(t2[:z]), 1.0, 1.0))

      {t3, w3, _} =
        Gen.regenerate(t, [1, 0.0], [:unknown_change, :no_change], Gen.select([:y]),
          key: Mx.Random.key(2)
        )

      assert num(t3[:y]) != 1.0
      assert num(w3) == 0.0
    end

    # k ~ categorical([0.4, 0.6]) picks the branch; y is observed at 1.5 under either branch.
    test "MH on the index keeps the observed shared choice and samples the exact posterior of the index" do
      s =
        Gen.Combinators.switch([
          gen(fn -> trace(:y, Gen.Dist.normal(0.0, 1.0)) end),
          gen(fn -> trace(:y, Gen.Dist.normal(2.0, 1.0)) end)
        ])

      model =
        gen(fn ->
          k = trace(:k, Gen.Dist.categorical([0.4, 0.6]))
          trace(:v, s, [k])
        end)

      {t0, _} = Gen.generate(model, [], cm([{:k, 0}, {[:v, :y], 1.5}]), key: Mx.Random.key(1))
      kernel = Gen.Inference.Kernel.mh(Gen.select(:k))

      ys =
        Gen.Inference.run(kernel, t0,
          samples: 3000,
          burn: 100,
          key: Mx.Random.key(2),
          select: &num(&1[[:v, :y]])
        )

      assert Enum.uniq(ys) == [1.5]

      ks =
        Gen.Inference.run(kernel, t0,
          samples: 3000,
          burn: 100,
          key: Mx.Random.key(2),
          select: &num(&1[:k])
        )

      a = 0.6 * :math.exp(ln_normal(1.5, 2.0, 1.0))
      p1 = a / (a + 0.4 * :math.exp(ln_normal(1.5, 0.0, 1.0)))
      Gen.ChainCheck.assert_posterior(ks, p1, p1 * (1 - p1))
    end
  end

  describe "Mix moving to another component" do
    defp mix do
      Gen.Combinators.mix([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(3.0, 1.0)], [
        :math.log(0.3),
        :math.log(0.7)
      ])
    end

    test "update of :component alone keeps the value: exact weight, only the index discarded" do
      {t, _} = Gen.generate(mix(), [], cm([{:component, 0}, {:value, 1.0}]))
      {t2, w, _, discard} = Gen.update(t, cm([{:component, 1}]))
      assert pairs(t2.choices) == [{[:component], 1}, {[:value], 1.0}]

      assert_close(
        w,
        :math.log(0.7) - :math.log(0.3) + ln_normal(1.0, 3.0, 1.0) - ln_normal(1.0, 0.0, 1.0)
      )

      assert pairs(discard) == [{[:component], 0}]
    end

    test "gen-function components share their addresses under :value" do
      comps = [
        gen(fn -> {trace(:x, Gen.Dist.normal(0.0, 1.0)), trace(:b, Gen.Dist.normal(0.0, 1.0))} end),
        gen(fn -> trace(:x, Gen.Dist.normal(1.0, 2.0)) end)
      ]

      m = Gen.Combinators.mix(comps, [0.0, 0.0])

      {t, _} =
        Gen.generate(m, [], cm([{:component, 0}, {[:value, :x], 0.5}, {[:value, :b], -1.0}]))

      {t2, w, _, discard} = Gen.update(t, cm([{:component, 1}]))
      assert pairs(t2.choices) == [{[:component], 1}, {[:value, :x], 0.5}]

      assert_close(
        w,
        ln_normal(0.5, 1.0, 2.0) - ln_normal(0.5, 0.0, 1.0) - ln_normal(-1.0, 0.0, 1.0)
      )

      assert pairs(discard) == [{[:component], 0}, {[:value, :b], -1.0}]
    end

    test "regenerate of :component keeps the unselected value: the weight is its change of log-density" do
      {t, _} = Gen.generate(mix(), [], cm([{:component, 0}, {:value, 1.0}]))

      results =
        for s <- 1..20, do: Gen.regenerate(t, Gen.select(:component), key: Mx.Random.key(s))

      assert Enum.any?(results, fn {t2, _, _} -> num(t2[:component]) == 1 end)

      for {t2, w, _} <- results do
        assert num(t2[:value]) == 1.0

        if num(t2[:component]) == 1,
          do: assert_close(w, ln_normal(1.0, 3.0, 1.0) - ln_normal(1.0, 0.0, 1.0)),
          else: assert(num(w) == 0.0)
      end
    end

    test "MH on :component with the value observed samples the exact posterior of the component" do
      {t0, _} =
        Gen.generate(mix(), [], cm([{:component, 0}, {:value, 1.0}]), key: Mx.Random.key(1))

      kernel = Gen.Inference.Kernel.mh(Gen.select(:component))

      out =
        Gen.Inference.run(kernel, t0,
          samples: 3000,
          burn: 100,
          key: Mx.Random.key(5),
          select: &{num(&1[:component]), num(&1[:value])}
        )

      assert out |> Enum.map(&elem(&1, 1)) |> Enum.uniq() == [1.0]
      a = 0.7 * :math.exp(ln_normal(1.0, 3.0, 1.0))
      p1 = a / (a + 0.3 * :math.exp(ln_normal(1.0, 0.0, 1.0)))
      Gen.ChainCheck.assert_posterior(Enum.map(out, &elem(&1, 0)), p1, p1 * (1 - p1))
    end

    test "list log-weights are taken in f64 (not rounded through f32): exact scores" do
      lw = [:math.log(0.3), :math.log(0.7)]
      m = Gen.Combinators.mix([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(3.0, 1.0)], lw)
      {w, _} = Gen.assess(m, [], cm([{:component, 0}, {:value, 1.0}]))
      # logsumexp(lw) = log(0.3 + 0.7) = 0 in f64; the f32 route is off by ~5e-9.
      assert_close(w, :math.log(0.3) + ln_normal(1.0, 0.0, 1.0), 1.0e-15)
      assert Mx.type(m.log_weights) == :f64 and Mx.to_flat_list(m.log_weights) == lw
    end
  end

  test "other lists of numbers become f64 arrays without passing through f32" do
    key = Mx.Random.key(3)
    list = Mx.Random.multivariate_normal(key, [0.1, 0.2], [[1.0, 0.3], [0.3, 2.0]], type: :f64)

    arrays =
      Mx.Random.multivariate_normal(
        key,
        Mx.tensor([0.1, 0.2], type: :f64),
        Mx.tensor([[1.0, 0.3], [0.3, 2.0]], type: :f64)
      )

    assert Mx.to_list(list) == Mx.to_list(arrays)

    list = Mx.Random.dirichlet(key, [0.3, 0.7, 1.1], type: :f64)
    arrays = Mx.Random.dirichlet(key, Mx.tensor([0.3, 0.7, 1.1], type: :f64))
    assert Mx.to_list(list) == Mx.to_list(arrays)

    # A branch returning a float next to one returning an f64 array keeps the float's digits.
    blended =
      Gen.Combinators.VSwitch.blend(
        Mx.tensor([true, false]),
        0.1,
        Mx.tensor([0.0, 0.0], type: :f64)
      )

    assert Mx.to_list(blended) == [0.1, 0.0]
  end
end
