defmodule Gen.NaNTest do
  use ExUnit.Case, async: true
  import Gen
  import ExUnit.CaptureLog
  alias Gen.Inference.NUTS

  # mu = log(x + 1) is NaN for x < -1, so the normal at :y has a NaN mean there.
  defp model do
    gen(fn ->
      x = trace(:x, Gen.Dist.normal(0.0, 1.0))
      trace(:y, Gen.Dist.normal(Mx.log(Mx.add(x, 1.0)), 1.0))
    end)
  end

  defp nested do
    m = model()

    gen(fn ->
      trace(:a, Gen.Dist.normal(0.0, 1.0))
      trace(:sub, m, [])
    end)
  end

  @y_nan ~r/the log density at address :y is NaN: Gen.Dist.Normal\(mu: :nan, sigma: 1.0\) at the value 0.5; check the parameters/

  describe "every GFI method raises Gen.NaNError, naming the first NaN site and its parameters" do
    test "generate, assess, simulate, propose" do
      e = assert_raise Gen.NaNError, fn -> generate(model(), [], %{x: -2.0, y: 0.5}) end
      assert e.message =~ "Gen.generate: "
      assert e.message =~ @y_nan
      assert e.address == [:y]
      assert e.method == "Gen.generate"
      assert %Gen.Dist.Normal{} = e.dist

      assert_raise Gen.NaNError, ~r/^Gen.assess: .*address :y is NaN/, fn ->
        assess(model(), [], %{x: -2.0, y: 0.5})
      end

      # From the prior, x < -1 happens: the first such key raises from simulate and propose.
      seed =
        Enum.find(0..200, fn s ->
          Mx.to_number(
            simulate(gen(fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end), [],
              key: Mx.Random.key(s)
            )[:x]
          ) < -1
        end)

      # The model's :x is its first site, drawn with the same key as in the one-site model.
      assert_raise Gen.NaNError,
                   ~r/^Gen.simulate: the log density at address :y is NaN: Gen.Dist.Normal\(mu: :nan/,
                   fn ->
                     simulate(model(), [], key: Mx.Random.key(seed))
                   end

      assert_raise Gen.NaNError, ~r/^Gen.propose: the log density at address :y/, fn ->
        propose(model(), [], key: Mx.Random.key(seed))
      end
    end

    test "update and regenerate" do
      {t, _} = generate(model(), [], %{x: 0.5, y: 0.5})

      assert_raise Gen.NaNError, ~r/^Gen.update: .*address :y is NaN/, fn ->
        update(t, %{x: -3.0})
      end

      assert_raise Gen.NaNError,
                   ~r/^Gen.update: the log density at address :x is NaN: Gen.Dist.Normal\(mu: 0.0, sigma: 1.0\) at the value :nan/,
                   fn ->
                     update(t, %{x: Mx.tensor(:nan, type: :f64)})
                   end

      e =
        Enum.find_value(0..200, fn s ->
          try do
            regenerate(t, select(:x), key: Mx.Random.key(s)) && nil
          rescue
            e in Gen.NaNError -> e
          end
        end)

      assert e.message =~ ~r/^Gen.regenerate: the log density at address :y is NaN/
    end

    test "the first site in execution order, under its full path" do
      # :a is fine, [:sub, :x] is NaN, and [:sub, :y] (whose mean comes from it) is NaN too: :x is named.
      e =
        assert_raise Gen.NaNError, fn ->
          generate(nested(), [], %{
            :a => 0.0,
            [:sub, :x] => Mx.tensor(:nan, type: :f64),
            [:sub, :y] => 0.5
          })
        end

      assert e.message =~ "address [:sub, :x] is NaN"
      assert e.address == [:sub, :x]
    end

    test "a NaN factor, and a weight that is an infinite log density minus itself" do
      m =
        gen(fn ->
          x = trace(:x, Gen.Dist.normal(0.0, 1.0))
          Gen.factor(Mx.log(x))
        end)

      assert_raise Gen.NaNError,
                   ~r/^Gen.generate: the factor at address \{:factor, 0\} is NaN \(Gen.factor of :nan\)/,
                   fn -> generate(m, [], %{x: -1.0}) end

      u =
        gen(fn ->
          x = trace(:x, Gen.Dist.uniform(0.0, 1.0))
          trace(:y, Gen.Dist.uniform(x, Mx.add(x, 1.0)))
        end)

      {t, w} = generate(u, [], %{x: 0.5, y: 5.0})
      assert Mx.to_number(w) == :neg_infinity

      assert_raise Gen.NaNError,
                   ~r/^Gen.update: the weight at address :y is NaN, an infinite log density minus itself .*Uniform\(hi: 1.6, lo: 0.6\) at the value 5.0/,
                   fn ->
                     update(t, %{x: 0.6})
                   end
    end

    test "vectorized calls name the particle" do
      xs = Mx.tensor([0.5, 0.2, -2.0, 1.0], type: :f64)

      e =
        assert_raise Gen.NaNError, fn ->
          Gen.Vectorized.assess(model(), [], %{x: xs, y: 0.5}, 4)
        end

      assert e.message =~
               "Gen.Vectorized.assess: the log density at address :y is NaN (particle 2): Gen.Dist.Normal(mu: :nan, sigma: 1.0) at the value 0.5"

      assert_raise Gen.NaNError,
                   ~r/^Gen.vgenerate: the log density at address :y is NaN \(particle \d+\)/,
                   fn ->
                     vgenerate(model(), [], %{y: 0.5}, 200, key: Mx.Random.key(0))
                   end
    end

    test "no raise inside a gradient: the algorithm gets the NaN" do
      f = fn x -> Gen.assess(model(), [], Gen.choicemap(%{x: x, y: 0.5})) |> elem(0) end
      {lp, _g} = Mx.value_and_grad(f).(Mx.tensor(-2.0, type: :f64))
      assert Mx.to_number(lp) == :nan
    end
  end

  describe "inference" do
    test "importance sampling and SMC raise instead of returning NaN weights and log-ML" do
      assert_raise Gen.NaNError, ~r/address :y is NaN/, fn ->
        Gen.Inference.importance_sampling(model(), [], %{y: 0.5}, 200, key: Mx.Random.key(1))
      end

      assert_raise Gen.NaNError, ~r/address :y is NaN \(particle \d+\)/, fn ->
        Gen.Inference.vimportance_sampling(model(), [], %{y: 0.5}, 200, key: Mx.Random.key(1))
      end

      steps =
        gen(fn t ->
          x = trace(:x, Gen.Dist.normal(0.0, 1.0))
          for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(Mx.log(Mx.add(x, 1.0)), 1.0))
        end)

      obs = fn t -> %{{:y, t} => 0.5} end

      assert_raise Gen.NaNError, ~r/address \{:y, 0\} is NaN/, fn ->
        Gen.Inference.smc(steps, &[&1], Enum.map(0..1, obs), 100, key: Mx.Random.key(2))
      end
    end

    test "MH raises on a NaN proposal instead of rejecting it forever" do
      {t, _} = generate(model(), [], %{x: 0.5, y: 0.5})
      k = Gen.Inference.Kernel.mh(select(:x))

      assert_raise Gen.NaNError, ~r/^Gen.regenerate: the log density at address :y is NaN/, fn ->
        Gen.Inference.run(k, t, samples: 500, key: Mx.Random.key(3))
      end
    end

    test "a parameter moved out of range (not NaN) does not raise: the move is rejected and the chain goes on" do
      # s below 0 makes the normal's scale invalid; that is issue 10 item 6's rule, not a NaN input.
      m =
        gen(fn ->
          s = trace(:s, Gen.Dist.normal(1.0, 1.0))
          trace(:y, Gen.Dist.normal(0.0, s))
        end)

      {t, _} = generate(m, [], %{s: 1.0, y: 0.5})
      q = gen(fn tr -> trace(:s, Gen.Dist.normal(tr[:s], 1.5)) end)

      ss =
        Gen.Inference.run(Gen.Inference.Kernel.mh(q, []), t,
          samples: 300,
          key: Mx.Random.key(6),
          select: &Mx.to_number(&1[:s])
        )

      assert length(ss) == 300
      assert Enum.all?(ss, &(&1 > 0))
    end

    test "NUTS reports NaN energies apart from divergences, and warns" do
      {t, _} = generate(model(), [], %{x: 0.5, y: 0.5})

      log =
        capture_log(fn ->
          r = NUTS.sample(t, select(:x), warmup: 100, samples: 300, key: Mx.Random.key(4))
          send(self(), {:stats, r.warmup_stats ++ r.stats})
          send(self(), {:draws, r.draws[[:x]]})
        end)

      assert_received {:stats, stats}
      nans = Enum.filter(stats, & &1.nan_energy)
      assert nans != []
      assert Enum.all?(stats, &is_boolean(&1.nan_energy))

      assert log =~
               "#{length(nans)} of #{length(stats)} iterations met a NaN log density or gradient"

      # A trajectory stops at its first NaN: that iteration is not counted as a divergence.
      assert Enum.all?(nans, &(not &1.divergent))
      # The draws never enter the NaN region.
      assert_received {:draws, xs}
      assert Enum.all?(xs, &(&1 > -1.0))
    end
  end
end
