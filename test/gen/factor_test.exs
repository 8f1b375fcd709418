defmodule Gen.FactorTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Inference.NUTS

  doctest Gen.Factor

  # x ~ N(0, 1) with the likelihood of y ~ N(x, 1) written as a factor: the posterior is N(y/2, 1/2),
  # the evidence N(y; 0, 2).
  @y 1.2
  defp factor_model do
    gen(fn y ->
      x = trace(:x, Gen.Dist.normal(0.0, 1.0))
      z = Mx.subtract(y, x)

      Gen.factor(
        Mx.subtract(Mx.multiply(Mx.multiply(z, z), -0.5), 0.5 * :math.log(2 * :math.pi()))
      )

      x
    end)
  end

  defp lik(x), do: ln_normal(@y, x, 1.0)

  describe "every GFI method scores a factor" do
    test "simulate, generate, assess, propose" do
      t = simulate(factor_model(), [@y], key: Mx.Random.key(0))
      x = num(t[:x])
      assert_close(num(t.score), ln_normal(x, 0.0, 1.0) + lik(x))
      assert Enum.map(t.choices, &elem(&1, 0)) == [[:x]]

      {t, w} = generate(factor_model(), [@y], %{x: 0.3})
      assert_close(num(w), ln_normal(0.3, 0.0, 1.0) + lik(0.3))
      assert_close(num(t.score), num(w))

      # Nothing constrained: the weight is the factor alone.
      {t, w} = generate(factor_model(), [@y], %{}, key: Mx.Random.key(1))
      assert_close(num(w), lik(num(t[:x])))

      {w, x} = assess(factor_model(), [@y], %{x: 0.3})
      assert_close(num(w), ln_normal(0.3, 0.0, 1.0) + lik(0.3))
      assert num(x) == 0.3

      {cm, w, _} = propose(factor_model(), [@y], key: Mx.Random.key(2))
      x = num(cm[:x])
      assert_close(num(w), ln_normal(x, 0.0, 1.0) + lik(x))
    end

    test "update and regenerate weights include the change of the factor" do
      {t, _} = generate(factor_model(), [@y], %{x: 0.3})
      {t2, w, _, discard} = update(t, %{x: -0.4})

      assert_close(
        num(w),
        ln_normal(-0.4, 0.0, 1.0) + lik(-0.4) - ln_normal(0.3, 0.0, 1.0) - lik(0.3)
      )

      assert num(discard[:x]) == 0.3
      assert Enum.count(discard) == 1

      # New arguments change only the factor.
      {_t3, w, _, _} = update(t2, [2.0], [:unknown_change], %{})
      assert_close(num(w), ln_normal(2.0, -0.4, 1.0) - lik(-0.4))

      # x resampled from its prior: the MH weight is the factor's ratio.
      {t4, w, _} = regenerate(t, select(:x), key: Mx.Random.key(3))
      assert_close(num(w), lik(num(t4[:x])) - lik(0.3))
    end

    test "a factor that appears or disappears with control flow" do
      m =
        gen(fn ->
          b = trace(:b, Gen.Dist.bernoulli(0.5))
          if b, do: Gen.factor(-1.0)
          b
        end)

      {tf, _} = generate(m, [], %{b: false})
      {tt, w} = generate(m, [], %{b: true})
      assert_close(num(w), :math.log(0.5) - 1.0)

      # update: new score − old score.
      {_, w, _, _} = update(tf, %{b: true})
      assert_close(num(w), -1.0)
      {_, w, _, _} = update(tt, %{b: false})
      assert_close(num(w), 1.0)

      # regenerate of b: the choice's density cancels, the factor's does not.
      for {t, seeds} <- [{tf, 0..20}, {tt, 0..20}], seed <- seeds do
        {t2, w, _} = regenerate(t, select(:b), key: Mx.Random.key(seed))
        f = fn tr -> if num(tr[:b]), do: -1.0, else: 0.0 end
        assert_close(num(w), f.(t2) - f.(t))
      end
    end

    test "project counts a factor when its address is selected" do
      m =
        gen(fn ->
          x = trace(:x, Gen.Dist.normal(0.0, 1.0))
          Gen.factor(-0.25)
          Gen.factor(:named, Mx.multiply(x, 0.0) |> Mx.add(-2.0))
          x
        end)

      {t, _} = generate(m, [], %{x: 0.0})
      assert_close(num(project(t, Gen.Selection.all())), num(t.score))
      assert_close(num(t.score), ln_normal(0.0, 0.0, 1.0) - 2.25)
      assert_close(num(project(t, select(:x))), ln_normal(0.0, 0.0, 1.0))
      assert_close(num(project(t, select({:factor, 0}))), -0.25)
      assert_close(num(project(t, select(:named))), -2.0)
      assert_close(num(project(t, Gen.Selection.complement(select(:x)))), -2.25)
    end

    test "a factor of an array is summed; nested calls and vectorized runs score it" do
      inner = gen(fn v -> Gen.factor(Mx.tensor([v, 2.0 * v], type: :f64)) end)

      m =
        gen(fn ->
          trace(:sub, inner, [0.5])
          trace(:x, Gen.Dist.normal(0.0, 1.0))
        end)

      {_t, w} = generate(m, [], %{x: 0.0})
      assert_close(num(w), 1.5 + ln_normal(0.0, 0.0, 1.0))

      {vt, vw} = vgenerate(factor_model(), [@y], %{}, 4, key: Mx.Random.key(5))
      xs = Mx.to_list(vt[:x])
      for {x, wi} <- Enum.zip(xs, Mx.to_list(vw)), do: assert_close(wi, lik(x))

      for {x, s} <- Enum.zip(xs, Mx.to_list(vt.score)),
          do: assert_close(s, ln_normal(x, 0.0, 1.0) + lik(x))
    end

    test "errors: outside a body, a constraint at a factor, a bad log factor" do
      assert_raise RuntimeError, ~r/Gen.factor was called outside a generative function/, fn ->
        Gen.factor(1.0)
      end

      m = gen(fn -> Gen.factor(-1.0) end)

      assert_raise ArgumentError,
                   ~r/name a factor \(Gen.factor\), which has no random choices/,
                   fn -> generate(m, [], %{{:factor, 0} => 1.0}) end

      bad = gen(fn -> Gen.factor("x") end)

      assert_raise ArgumentError,
                   ~r/Gen.factor: the log factor must be a number or an Mx array/,
                   fn -> simulate(bad, []) end
    end
  end

  describe "inference sees a factor" do
    test "importance sampling: the log-ML estimate is near log N(y; 0, 2)" do
      {_traces, log_nw, lml} =
        Gen.Inference.importance_sampling(factor_model(), [@y], %{}, 2000, key: Mx.Random.key(7))

      exact = ln_normal(@y, 0.0, :math.sqrt(2.0))

      # The log of a mean of n weights: its SE is (sd of w / mean of w) / √n, estimated from the normalized weights.
      nw = Enum.map(Mx.to_list(log_nw), &:math.exp/1)
      n = length(nw)
      rel_var = n * Enum.sum(Enum.map(nw, &(&1 * &1))) - 1.0
      assert abs(num(lml) - exact) < 4 * :math.sqrt(rel_var / n)
    end

    test "MH and NUTS: the posterior of x is N(y/2, 1/2)" do
      {t, _} = generate(factor_model(), [@y], %{x: 0.0})
      k = Gen.Inference.Kernel.mh(select(:x))

      xs =
        Gen.Inference.run(k, t,
          samples: 4000,
          burn: 200,
          key: Mx.Random.key(8),
          select: &num(&1[:x])
        )

      Gen.ChainCheck.assert_posterior(xs, @y / 2, 0.5)

      r = NUTS.sample(t, select(:x), warmup: 300, samples: 1500, key: Mx.Random.key(9))
      Gen.ChainCheck.assert_posterior(r.draws[[:x]], @y / 2, 0.5)
    end
  end
end
