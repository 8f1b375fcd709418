defmodule Gen.GFITest.Models do
  import Gen

  # A recursive named model: counts flips until the first true, at most 5 deep.
  defgen flips(n) when is_integer(n) do
    b = trace({:flip, n}, Gen.Dist.bernoulli(0.5))
    if Mx.to_number(b) or n >= 4, do: n, else: splice(flips(), [n + 1])
  end
end

defmodule Gen.GFITest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.{Choicemap, Selection}

  doctest Gen
  doctest Gen.DynamicFunction

  # b decides which normal is traced; z depends on the branch's value.
  defp branchy do
    gen fn ->
      b = trace(:b, Gen.Dist.bernoulli(0.3))
      m = if Mx.to_number(b), do: trace(:x, Gen.Dist.normal(0.0, 1.0)), else: trace(:y, Gen.Dist.normal(2.0, 3.0))
      trace(:z, Gen.Dist.normal(m, 1.0))
    end
  end

  defp inner do
    gen fn mu ->
      a = trace(:a, Gen.Dist.normal(mu, 1.0))
      trace(:b, Gen.Dist.normal(a, 2.0))
    end
  end

  defp tail_fn do
    gen fn v -> trace(:s, Gen.Dist.normal(v, 0.5)) end
  end

  # A nested call under :sub and a splice of tail_fn at the top level.
  defp nested do
    inner = inner()
    tail = tail_fn()

    gen fn ->
      m = trace(:m, Gen.Dist.normal(0.0, 1.0))
      v = trace(:sub, inner, [m])
      splice(tail, [v])
    end
  end

  defp v(t, addr), do: num(t[addr])

  describe "simulate" do
    test "score is the log joint density of the choices, for both branches" do
      for seed <- 0..7 do
        t = simulate(branchy(), [], key: Mx.Random.key(seed))
        b = v(t, :b)

        expected =
          if b,
            do: ln_bernoulli(true, 0.3) + ln_normal(v(t, :x), 0.0, 1.0) + ln_normal(v(t, :z), v(t, :x), 1.0),
            else: ln_bernoulli(false, 0.3) + ln_normal(v(t, :y), 2.0, 3.0) + ln_normal(v(t, :z), v(t, :y), 1.0)

        assert_close(t.score, expected)
        assert Enum.count(t.choices) == 3
        assert Mx.type(t.score) == :f64
      end
    end

    test "nested calls land under their address, splices at the current level" do
      t = simulate(nested(), [], key: Mx.Random.key(3))
      assert Enum.map(t.choices, &elem(&1, 0)) == [[:m], [:s], [:sub, :a], [:sub, :b]]
      m = v(t, :m)
      a = v(t, [:sub, :a])
      b = v(t, [:sub, :b])
      s = v(t, :s)
      assert_close(t.score, ln_normal(m, 0, 1) + ln_normal(a, m, 1) + ln_normal(b, a, 2) + ln_normal(s, b, 0.5))
      assert num(get_retval(t)) == s
      assert get_args(t) == []
    end

    test "the same key gives the same trace; seed/1 makes keyless calls reproducible" do
      t1 = simulate(nested(), [], key: Mx.Random.key(11))
      t2 = simulate(nested(), [], key: Mx.Random.key(11))
      assert Enum.map(t1.choices, fn {p, x} -> {p, num(x)} end) == Enum.map(t2.choices, fn {p, x} -> {p, num(x)} end)
      Gen.seed(5)
      a = simulate(nested(), []) |> Map.get(:choices) |> Enum.map(fn {_, x} -> num(x) end)
      b = simulate(nested(), []) |> Map.get(:choices) |> Enum.map(fn {_, x} -> num(x) end)
      Gen.seed(5)
      a2 = simulate(nested(), []) |> Map.get(:choices) |> Enum.map(fn {_, x} -> num(x) end)
      assert a == a2
      assert a != b
    end

    test "defgen with recursion through splice" do
      t = simulate(Gen.GFITest.Models.flips(), [0], key: Mx.Random.key(2))
      n = get_retval(t)
      assert Enum.count(t.choices) == n + 1
      expected = (n + 1) * :math.log(0.5)
      assert_close(t.score, expected)
      assert inspect(Gen.GFITest.Models.flips()) == "#Gen.DynamicFunction<Gen.GFITest.Models.flips/1>"
    end

    test "a distribution is a generative function with its choice at the empty address" do
      d = Gen.Dist.normal(1.0, 2.0)
      t = simulate(d, [], key: Mx.Random.key(0))
      x = num(t.retval)
      assert num(Choicemap.get(t.choices, [])) == x
      assert_close(t.score, ln_normal(x, 1.0, 2.0))
      {tg, w} = generate(d, [], Choicemap.leaf(0.5))
      assert_close(w, ln_normal(0.5, 1.0, 2.0))
      assert_close(tg.score, ln_normal(0.5, 1.0, 2.0))
    end
  end

  describe "generate" do
    test "weight is the log-density of the constrained choices only" do
      {t, w} = generate(nested(), [], %{:m => 0.5, [:sub, :b] => 1.0}, key: Mx.Random.key(1))
      a = v(t, [:sub, :a])
      s = v(t, :s)
      assert v(t, :m) == 0.5 and v(t, [:sub, :b]) == 1.0
      assert_close(w, ln_normal(0.5, 0, 1) + ln_normal(1.0, a, 2))
      assert_close(t.score, ln_normal(0.5, 0, 1) + ln_normal(a, 0.5, 1) + ln_normal(1.0, a, 2) + ln_normal(s, 1.0, 0.5))
    end

    test "constraining the branch selects it; full constraints give weight = score" do
      {t, w} = generate(branchy(), [], %{b: false, y: 1.0, z: 0.5})
      expected = ln_bernoulli(false, 0.3) + ln_normal(1.0, 2, 3) + ln_normal(0.5, 1.0, 1)
      assert_close(w, expected)
      assert_close(t.score, expected)
      refute Choicemap.has_value?(t.choices, :x)
    end

    test "no constraints: weight 0" do
      {_t, w} = generate(nested(), [], Gen.choicemap(), key: Mx.Random.key(0))
      assert num(w) == 0.0
    end
  end

  describe "update" do
    setup do
      {t, _} = generate(branchy(), [], %{b: true, x: 0.7, z: 1.2})
      %{t: t}
    end

    test "a flipped branch: new score - old score - log-density of the newly sampled choice", %{t: t} do
      {t2, w, retdiff, discard} = update(t, %{b: false}, key: Mx.Random.key(4))
      y = v(t2, :y)
      old = ln_bernoulli(true, 0.3) + ln_normal(0.7, 0, 1) + ln_normal(1.2, 0.7, 1)
      new = ln_bernoulli(false, 0.3) + ln_normal(y, 2, 3) + ln_normal(1.2, y, 1)
      assert_close(t2.score, new)
      assert_close(w, new - old - ln_normal(y, 2, 3))
      assert retdiff == :unknown_change
      # The replaced :b and the removed :x, nothing else.
      assert Enum.map(discard, fn {p, x} -> {p, num(x)} end) == [{[:b], true}, {[:x], 0.7}]
      refute Choicemap.has_value?(t2.choices, :x)
      assert v(t2, :z) == 1.2
    end

    test "a flipped branch with the new choice constrained", %{t: t} do
      {t2, w, _, discard} = update(t, %{b: false, y: 1.5})
      old = ln_bernoulli(true, 0.3) + ln_normal(0.7, 0, 1) + ln_normal(1.2, 0.7, 1)
      new = ln_bernoulli(false, 0.3) + ln_normal(1.5, 2, 3) + ln_normal(1.2, 1.5, 1)
      assert_close(w, new - old)
      assert_close(t2.score, new)
      assert Enum.map(discard, &elem(&1, 0)) == [[:b], [:x]]
    end

    test "changing a kept choice's value", %{t: t} do
      {t2, w, _, discard} = update(t, %{x: -0.2})
      assert_close(w, ln_normal(-0.2, 0, 1) + ln_normal(1.2, -0.2, 1) - ln_normal(0.7, 0, 1) - ln_normal(1.2, 0.7, 1))
      assert Enum.map(discard, fn {p, x} -> {p, num(x)} end) == [{[:x], 0.7}]
      assert v(t2, :b) == true
    end

    test "changed arguments: kept choices rescored, discard empty" do
      m = gen fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end
      {t, _} = generate(m, [0.0], %{x: 0.4})
      {t2, w, _, discard} = update(t, [1.0], [:unknown_change], Gen.choicemap())
      assert_close(w, ln_normal(0.4, 1.0, 1) - ln_normal(0.4, 0.0, 1))
      assert_close(t2.score, ln_normal(0.4, 1.0, 1))
      assert Choicemap.empty?(discard)
      assert get_args(t2) == [1.0]
    end

    test "no change and no constraints returns the trace itself", %{t: t} do
      {t2, w, retdiff, discard} = update(t, [], [], Gen.choicemap())
      assert t2 === t and num(w) == 0.0 and retdiff == :no_change and Choicemap.empty?(discard)
    end

    test "nested: a constraint inside a call and its effect on the splice" do
      {t, _} = generate(nested(), [], %{:m => 0.1, [:sub, :a] => 0.2, [:sub, :b] => 0.3, :s => 0.4})
      {t2, w, _, discard} = update(t, %{[:sub, :b] => -1.0})
      assert_close(w, ln_normal(-1.0, 0.2, 2) + ln_normal(0.4, -1.0, 0.5) - ln_normal(0.3, 0.2, 2) - ln_normal(0.4, 0.3, 0.5))
      assert Enum.map(discard, fn {p, x} -> {p, num(x)} end) == [{[:sub, :b], 0.3}]
      assert v(t2, [:sub, :a]) == 0.2
    end

    test "a constraint on a choice the new run does not make raises", %{t: t} do
      assert_raise ArgumentError, ~r/constraint at address :y names no random choice/, fn -> update(t, %{y: 1.0}) end
    end
  end

  describe "regenerate" do
    test "weight: the change of the unselected kept choices only (flips and no flips)" do
      {t, _} = generate(branchy(), [], %{b: true, x: 0.7, z: 1.2})
      outcomes =
        for seed <- 0..15 do
          {t2, w, _} = regenerate(t, Selection.new(:b), key: Mx.Random.key(seed))

          if v(t2, :b) do
            assert v(t2, :x) == 0.7
            assert_close(w, 0.0)
            :kept
          else
            y = v(t2, :y)
            # :b resampled and :y new contribute 0, removed :x contributes 0.
            assert_close(w, ln_normal(1.2, y, 1) - ln_normal(1.2, 0.7, 1))
            assert_close(t2.score, ln_bernoulli(false, 0.3) + ln_normal(y, 2, 3) + ln_normal(1.2, y, 1))
            :flipped
          end
        end

      assert :kept in outcomes and :flipped in outcomes
    end

    test "changed arguments rescore unselected choices" do
      m = gen fn mu -> {trace(:x, Gen.Dist.normal(mu, 1.0)), trace(:y, Gen.Dist.normal(mu, 2.0))} end
      {t, _} = generate(m, [0.0], %{x: 0.4, y: -0.3})
      {t2, w, _} = regenerate(t, [1.0], [:unknown_change], Gen.select(:x), key: Mx.Random.key(0))
      assert v(t2, :y) == -0.3
      assert v(t2, :x) != 0.4
      assert_close(w, ln_normal(-0.3, 1.0, 2) - ln_normal(-0.3, 0.0, 2))
    end

    test "nested selection resamples only inside the call" do
      {t, _} = generate(nested(), [], %{:m => 0.1, [:sub, :a] => 0.2, [:sub, :b] => 0.3, :s => 0.4})
      {t2, w, _} = regenerate(t, Gen.select([[:sub, :a]]), key: Mx.Random.key(9))
      a = v(t2, [:sub, :a])
      assert a != 0.2 and v(t2, :m) == 0.1 and v(t2, [:sub, :b]) == 0.3
      assert_close(w, ln_normal(0.3, a, 2) - ln_normal(0.3, 0.2, 2))
    end
  end

  describe "project, assess, propose" do
    setup do
      {t, _} = generate(nested(), [], %{:m => 0.1, [:sub, :a] => 0.2, [:sub, :b] => 0.3, :s => 0.4})
      %{t: t}
    end

    test "project sums the selected log-densities", %{t: t} do
      assert_close(project(t, Gen.select([:m, [:sub, :b]])), ln_normal(0.1, 0, 1) + ln_normal(0.3, 0.2, 2))
      assert_close(project(t, Gen.select(:sub)), ln_normal(0.2, 0.1, 1) + ln_normal(0.3, 0.2, 2))
      assert_close(project(t, Selection.all()), num(t.score))
      assert num(project(t, Selection.none())) == 0.0
      assert_close(project(t, Selection.complement(Gen.select(:s))), num(t.score) - ln_normal(0.4, 0.3, 0.5))
    end

    test "assess agrees with the score and returns the retval", %{t: t} do
      {w, r} = assess(nested(), [], t.choices)
      assert_close(w, num(t.score))
      assert num(r) == 0.4
    end

    test "propose: weight is the log-density of the proposed choices" do
      {cm, w, r} = propose(branchy(), [], key: Mx.Random.key(6))
      {wa, ra} = assess(branchy(), [], cm)
      assert_close(w, num(wa))
      assert num(r) == num(ra)
    end
  end

  describe "errors" do
    test "a repeated address raises at once, naming it" do
      m = gen fn -> {trace(:x, Gen.Dist.normal(0, 1)), trace(:x, Gen.Dist.normal(0, 1))} end
      assert_raise ArgumentError, ~r/address :x is visited twice/, fn -> simulate(m, []) end
      p = gen fn -> {trace([:a, :b], Gen.Dist.normal(0, 1)), trace(:a, Gen.Dist.normal(0, 1))} end
      assert_raise ArgumentError, ~r/address :a is visited twice/, fn -> simulate(p, []) end
      # Inside a nested call the message gives the full path.
      inner = gen fn -> {trace(:x, Gen.Dist.normal(0, 1)), trace(:x, Gen.Dist.normal(0, 1))} end
      outer = gen fn -> trace(:sub, inner, []) end
      assert_raise ArgumentError, ~r/address \[:sub, :x\] is visited twice/, fn -> simulate(outer, []) end
      # A splice that re-traces an address of its caller.
      t = gen fn -> trace(:m, Gen.Dist.normal(0, 1)) end
      s = gen fn -> {trace(:m, Gen.Dist.normal(0, 1)), splice(t, [])} end
      assert_raise ArgumentError, ~r/address :m is visited twice/, fn -> simulate(s, []) end
    end

    test "a constraint on a non-existent choice raises in generate and assess" do
      assert_raise ArgumentError, ~r/constraint at address :nope names no random choice/, fn ->
        generate(branchy(), [], %{b: true, nope: 1.0})
      end

      assert_raise ArgumentError, ~r/constraint at address :y names no random choice/, fn ->
        generate(branchy(), [], %{b: true, y: 1.0})
      end

      assert_raise ArgumentError, ~r/constraint at address \[:sub, :q\] names no random choice/, fn ->
        generate(nested(), [], %{[:sub, :q] => 1.0})
      end

      assert_raise ArgumentError, ~r/lie under address :m, which is a single random choice/, fn ->
        generate(nested(), [], %{[:m, :deeper] => 1.0})
      end
    end

    test "assess raises on a missing choice, naming it" do
      assert_raise ArgumentError, ~r/no value for the choice at address \[:sub, :b\]/, fn ->
        assess(nested(), [], %{:m => 0.1, [:sub, :a] => 0.2, :s => 0.4})
      end
    end

    test "unknown address, malformed choicemap, misuse" do
      t = simulate(nested(), [], key: Mx.Random.key(0))
      # Issue 10 item 8: a missing address raises (it was nil).
      assert_raise KeyError, ~r/no random choice at address :nope/, fn -> t[:nope] end
      assert_raise KeyError, ~r/no value at address :nope/, fn -> Choicemap.get(t.choices, :nope) end
      assert_raise ArgumentError, ~r/address :m must be a number/, fn -> generate(nested(), [], %{m: "x"}) end
      assert_raise RuntimeError, ~r/outside a generative function/, fn -> Gen.trace(:x, Gen.Dist.normal(0, 1)) end
      assert_raise ArgumentError, ~r/takes 1 argument\(s\), got 0/, fn -> simulate(inner(), []) end
      bad = gen fn -> trace(:x, :not_a_distribution) end
      assert_raise ArgumentError, ~r/expected a distribution or a generative function at address :x/, fn -> simulate(bad, []) end
      sp = gen fn -> splice(Gen.Dist.normal(0, 1), []) end
      assert_raise ArgumentError, ~r/splice: expected a Gen.DynamicFunction/, fn -> simulate(sp, []) end
      assert_raise ArgumentError, ~r/1 argument\(s\) but 2 argdiff/, fn -> update(t, [1], [:no_change, :no_change], %{}) end
    end

    test "the handler state is restored after a raise" do
      bad = gen fn -> raise "boom" end
      assert_raise RuntimeError, "boom", fn -> simulate(bad, []) end
      assert Process.get(:gen_handler_state) == nil
    end
  end

  describe "incremental computation" do
    test "update keeps a sub-call whose arguments are the same terms and skips running it" do
      me = self()
      x0 = Mx.tensor(1.0, type: :f64)

      sub = gen fn mu ->
        send(me, :sub_ran)
        trace(:v, Gen.Dist.normal(mu, 1.0))
      end

      model = gen fn ->
        a = trace(:a, sub, [x0])
        trace(:b, Gen.Dist.normal(a, 1.0))
      end

      tr = Gen.simulate(model, [], key: Mx.Random.key(3))
      assert_received :sub_ran
      {tr2, w, _, discard} = Gen.update(tr, Gen.choicemap(%{b: 0.25}))
      refute_received :sub_ran
      assert Mx.to_number(tr2[[:a, :v]]) == Mx.to_number(tr[[:a, :v]])
      # Only :b changed: the weight is its log-density change, the discard its old value.
      a = Mx.to_number(tr[[:a, :v]])
      old_b = Mx.to_number(tr[:b])
      lp = fn x -> -0.5 * :math.log(2 * :math.pi()) - 0.5 * (x - a) * (x - a) end
      assert_in_delta Mx.to_number(w), lp.(0.25) - lp.(old_b), 1.0e-12
      assert Mx.to_number(discard[:b]) == old_b
    end
  end
end
