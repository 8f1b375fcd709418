defmodule Gen.TraceTest do
  use ExUnit.Case, async: true
  import Gen

  defp model do
    inner = gen(fn -> trace(:a, Gen.Dist.normal(0.0, 1.0)) end)

    gen(fn ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
      sigma = trace(:sigma, Gen.Dist.exponential(1.0))
      trace(:sub, inner, [])
      trace(:y, Gen.Dist.normal(mu, sigma))
    end)
  end

  describe "trace[addr]" do
    test "is the value of the choice at an address or path" do
      t = Gen.simulate(model(), [], key: Mx.Random.key(0))
      assert Mx.to_number(t[:mu]) == Mx.to_number(Gen.Choicemap.get(t.choices, :mu))
      assert Mx.to_number(t[[:sub, :a]]) == Mx.to_number(Gen.Choicemap.get(t.choices, [:sub, :a]))
    end

    test "raises KeyError for a missing address, naming it, the closest and the addresses the trace has" do
      t = Gen.simulate(model(), [], key: Mx.Random.key(0))
      e = assert_raise KeyError, fn -> t[:sigam] end
      assert e.key == :sigam
      assert e.message =~ "no random choice at address :sigam"
      assert e.message =~ "did you mean :sigma?"
      assert e.message =~ "its choices are at [:mu, :sigma, [:sub, :a], :y]"
      assert_raise KeyError, ~r/no random choice at address \[:sub, :b\]/, fn -> t[[:sub, :b]] end
    end

    test "raises KeyError for an address holding a submap" do
      t = Gen.simulate(model(), [], key: Mx.Random.key(0))

      assert_raise KeyError,
                   ~r/address :sub holds a submap of choices, not one value.*get_submap/,
                   fn -> t[:sub] end
    end

    test "raises for a vectorized trace too" do
      t = Gen.vsimulate(model(), [], 3, key: Mx.Random.key(0))
      assert Mx.shape(t[:mu]) == {3}
      assert_raise KeyError, ~r/:nu/, fn -> t[:nu] end
    end

    test "a typo inside an inference helper's select: raises instead of passing nil" do
      {t, _} = Gen.generate(model(), [], %{y: 1.0, sigma: 1.0}, key: Mx.Random.key(0))
      k = Gen.Inference.Kernel.mh(Gen.select(:mu))

      for chains <- [1, 2] do
        assert_raise KeyError, ~r/:sigam.*did you mean :sigma\?/, fn ->
          Gen.Inference.run(k, t,
            samples: 3,
            key: Mx.Random.key(1),
            select: &Mx.to_number(&1[:sigam]),
            chains: chains
          )
        end
      end
    end

    test "a choicemap's Access stays nil-returning (a choicemap is often partial)" do
      assert Gen.choicemap(%{x: 1.0})[:y] == nil
    end
  end
end
