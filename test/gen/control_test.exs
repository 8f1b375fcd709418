defmodule Gen.ControlTest.Models do
  import Gen

  # The mixture of issue 10 item 1, as a named model.
  defgen mixture() do
    z = trace(:z, Gen.Dist.bernoulli(0.5))
    mu = if z, do: 3.0, else: 0.0
    trace(:y, Gen.Dist.normal(mu, 1.0))
  end

  defgen tests_arg(v) do
    if v, do: :yes, else: :no
  end
end

defmodule Gen.ControlTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.ControlTest.Models

  doctest Gen.Control

  defp mixture do
    gen(fn ->
      z = trace(:z, Gen.Dist.bernoulli(0.5))
      mu = if z, do: 3.0, else: 0.0
      trace(:y, Gen.Dist.normal(mu, 1.0))
    end)
  end

  # P(z | y = 2) for z ~ Bernoulli(1/2), y ~ N(3z, 1): exp(-1/2) / (exp(-1/2) + exp(-2)) = 1 / (1 + e^-1.5).
  @posterior 1.0 / (1.0 + :math.exp(-1.5))

  describe "the mixture z ~ bernoulli(0.5); mu = if z, do: 3.0, else: 0.0" do
    test "enumeration over z gives the exact posterior, with gen fn and with defgen" do
      for model <- [mixture(), Models.mixture()] do
        [lt, lf] =
          for z <- [true, false] do
            {_t, w} = Gen.generate(model, [], %{z: z, y: 2.0})
            num(w)
          end

        # Each weight is log p(z, y) = log 1/2 + log N(2; mu(z), 1).
        assert_close(lt, :math.log(0.5) + ln_normal(2.0, 3.0, 1.0))
        assert_close(lf, :math.log(0.5) + ln_normal(2.0, 0.0, 1.0))
        assert_close(1.0 / (1.0 + :math.exp(lf - lt)), @posterior)
      end
    end

    test "importance sampling from the prior agrees within 4 Monte-Carlo standard errors" do
      {traces, log_nw, _lml} =
        Gen.Inference.importance_sampling(mixture(), [], %{y: 2.0}, 2000, key: Mx.Random.key(11))

      w = Enum.map(Mx.to_list(log_nw), &:math.exp/1)
      f = Enum.map(traces, &if(num(&1[:z]), do: 1.0, else: 0.0))
      est = Enum.zip_with(w, f, &(&1 * &2)) |> Enum.sum()
      # Self-normalized IS (delta method): Var ≈ Σ w̃ᵢ² (fᵢ − est)².
      se =
        Enum.zip_with(w, f, fn wi, fi -> wi * wi * (fi - est) * (fi - est) end)
        |> Enum.sum()
        |> :math.sqrt()

      assert abs(est - @posterior) < 4 * se, "estimate #{est}, exact #{@posterior}, SE #{se}"
    end

    test "each branch is taken by its own value of z" do
      for seed <- 0..15 do
        t = Gen.simulate(mixture(), [], key: Mx.Random.key(seed))
        y = num(t[:y])
        # The score is that of the branch z chose.
        mu = if num(t[:z]), do: 3.0, else: 0.0
        assert_close(num(Gen.get_score(t)), :math.log(0.5) + ln_normal(y, mu, 1.0))
      end
    end

    test "under a particle batch it raises, naming the address and the way out" do
      e =
        assert_raise ArgumentError, fn ->
          Gen.vsimulate(mixture(), [], 4, key: Mx.Random.key(0))
        end

      assert e.message =~ "`if z`"
      assert e.message =~ "particle batch"
      assert e.message =~ "address :z"
      assert e.message =~ "Mx.where"
      assert e.message =~ "switch"

      assert_raise ArgumentError, ~r/particle batch/, fn ->
        Gen.vgenerate(Models.mixture(), [], %{y: 2.0}, 3)
      end
    end
  end

  # One model per form; `expect` maps the tested boolean to the model's return value.
  defp forms do
    [
      {"if", gen(fn v -> if v, do: :t, else: :f end), &if(&1, do: :t, else: :f)},
      {"unless", gen(fn v -> unless v, do: :t, else: :f end), &if(&1, do: :f, else: :t)},
      {"cond",
       gen(fn v ->
         cond do
           v -> :t
           true -> :f
         end
       end), &if(&1, do: :t, else: :f)},
      {"case",
       gen(fn v ->
         case v do
           true -> :t
           false -> :f
         end
       end), &if(&1, do: :t, else: :f)},
      {"&&", gen(fn v -> v && :t end), &(&1 && :t)},
      {"||", gen(fn v -> v || :f end), &(&1 || :f)},
      {"!", gen(fn v -> !v end), &(!&1)},
      {"and", gen(fn v -> v and :t end), &(&1 and :t)},
      {"or", gen(fn v -> v or :f end), &(&1 or :f)},
      {"not", gen(fn v -> not v end), &(not &1)}
    ]
  end

  describe "each form" do
    test "reads a rank-0 boolean array (and an integer 0/1) as its value" do
      for {name, g, expect} <- forms(),
          {v, b} <- [{Mx.tensor(true), true}, {Mx.tensor(false), false}] do
        assert Gen.simulate(g, [v]).retval == expect.(b), "#{name} on #{b}"
      end

      for {name, g, expect} <- forms(),
          name != "case",
          {v, b} <- [{Mx.tensor(1), true}, {Mx.tensor(0), false}] do
        assert Gen.simulate(g, [v]).retval == expect.(b), "#{name} on #{b} as an integer"
      end
    end

    test "leaves Elixir values alone" do
      for {name, g, expect} <- forms(), b <- [true, false] do
        assert Gen.simulate(g, [b]).retval == expect.(b), name
      end

      assert Gen.simulate(gen(fn v -> v || :default end), [nil]).retval == :default
    end

    test "raises for a non-scalar array, a float, an integer other than 0/1, and any array under a batch" do
      bad = [
        {Mx.tensor([true, false]), "bool[2]"},
        {Mx.tensor(0.5, type: :f64), "f64"},
        {Mx.tensor(1.0), "f32"},
        {Mx.tensor(2), "2"}
      ]

      for {name, g, _} <- forms(),
          {v, shown} <- bad,
          not (name == "case" and Mx.rank(v) == 0 and shown == "2") do
        e = assert_raise ArgumentError, fn -> Gen.simulate(g, [v]) end
        assert e.message =~ "`#{name}", "#{name}: #{e.message}"
        assert e.message =~ shown
        assert e.message =~ "control_test.exs:"
        assert e.message =~ "Mx.where"
      end

      for {name, g, _} <- forms() do
        e = assert_raise ArgumentError, fn -> Gen.vsimulate(g, [Mx.tensor(true)], 2) end
        assert e.message =~ "`#{name}", name
        assert e.message =~ "particle batch", name
      end
    end

    test "with defgen as with gen fn" do
      assert Gen.simulate(Models.tests_arg(), [Mx.tensor(false)]).retval == :no
      assert Gen.simulate(Models.tests_arg(), [Mx.tensor(true)]).retval == :yes

      assert_raise ArgumentError, ~r/`if v`.*not a single value/, fn ->
        Gen.simulate(Models.tests_arg(), [Mx.tensor([true])])
      end
    end

    test "a non-scalar choice is named by its address" do
      m =
        gen(fn ->
          v = trace(:v, Gen.Dist.normal(Mx.zeros({2}, type: :f64), 1.0))
          if v, do: 1, else: 2
        end)

      assert_raise ArgumentError, ~r/`if v`.*f64\[2\].*address :v.*Mx\.where.*switch/, fn ->
        Gen.simulate(m, [])
      end
    end
  end

  describe "comparisons and case" do
    test "a comparison with a sampled float reads its value" do
      m =
        gen(fn ->
          x = trace(:x, Gen.Dist.normal(0.0, 1.0))
          {x > 0, x <= 0.0, 0 < x, x == 1.0, x != nil}
        end)

      for seed <- 0..9 do
        t = Gen.simulate(m, [], key: Mx.Random.key(seed))
        x = num(t[:x])
        assert t.retval == {x > 0, x <= 0.0, 0 < x, x == 1.0, true}
      end
    end

    test "a comparison with NaN or a non-scalar raises" do
      m = gen(fn v -> v > 0 end)
      assert_raise ArgumentError, ~r/`v > 0`.*NaN/, fn -> Gen.simulate(m, [Mx.tensor(:nan)]) end

      assert_raise ArgumentError, ~r/`v > 0`.*f32\[2\]/, fn ->
        Gen.simulate(m, [Mx.tensor([1.0, 2.0])])
      end

      assert Gen.simulate(m, [Mx.tensor(:infinity)]).retval == true
      assert Gen.simulate(m, [Mx.tensor(:neg_infinity)]).retval == false
    end

    test "case on a categorical choice matches the drawn index" do
      m =
        gen(fn ->
          k = trace(:k, Gen.Dist.categorical(Mx.tensor([0.0, 0.0, 0.0], type: :f64)))

          case k do
            0 -> :a
            1 -> :b
            2 -> :c
          end
        end)

      for seed <- 0..11 do
        t = Gen.simulate(m, [], key: Mx.Random.key(seed))
        assert t.retval == Enum.at([:a, :b, :c], num(t[:k]))
      end
    end

    test "case binds a float or non-scalar array, and raises where a pattern or guard would test it" do
      m =
        gen(fn v ->
          case v do
            x -> Mx.sum(x)
          end
        end)

      assert num(Gen.simulate(m, [Mx.tensor([1.0, 2.0])]).retval) == 3.0

      guarded =
        gen(fn v ->
          case v do
            x when x > 0 -> :pos
            _ -> :other
          end
        end)

      assert_raise ArgumentError, ~r/`case v`.*f32.*patterns and guards compare terms/, fn ->
        Gen.simulate(guarded, [Mx.tensor(0.5)])
      end

      tuple =
        gen(fn a, b ->
          case {a, b} do
            {true, y} -> y
            {false, _} -> :none
          end
        end)

      y = Mx.tensor([1.0, 2.0])
      assert Gen.simulate(tuple, [Mx.tensor(true), y]).retval === y
      assert Gen.simulate(tuple, [Mx.tensor(false), y]).retval == :none
    end

    test "guards stay Elixir's" do
      m =
        gen(fn v ->
          f = fn
            x when is_number(x) and x > 0 -> :pos
            _ -> :other
          end

          f.(v)
        end)

      assert Gen.simulate(m, [2]).retval == :pos
      assert Gen.simulate(m, [Mx.tensor(2.0)]).retval == :other
    end
  end
end
