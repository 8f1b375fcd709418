defmodule Gen.CombinatorsVSwitchTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Choicemap

  doctest Gen.Combinators.VSwitch

  defp calls do
    receive do
      {:branch, k} -> [k | calls()]
    after
      0 -> []
    end
  end

  defp vec(l), do: Mx.tensor(l, type: :f64)
  defp idx(l), do: Mx.tensor(l, type: :s64)
  defp list(a), do: Mx.to_list(a)

  # Branch 0: x ~ N(mu, 1). Branch 1: y ~ N(mu, 2), x ~ N(y, 1). Both return x; :y is branch 1's only.
  defp vs(me) do
    b0 =
      gen fn mu ->
        send(me, {:branch, 0})
        trace(:x, Gen.Dist.normal(mu, 1.0))
      end

    b1 =
      gen fn mu ->
        send(me, {:branch, 1})
        y = trace(:y, Gen.Dist.normal(mu, 2.0))
        trace(:x, Gen.Dist.normal(y, 1.0))
      end

    Gen.Combinators.vswitch([b0, b1])
  end

  @mu [0.0, 1.0, 2.0, 3.0]

  # Per element: the log joint of the choices of the branch it follows.
  defp lp(ks, xs, ys, mus \\ @mu) do
    for {k, x, y, mu} <- Enum.zip([ks, xs, ys, mus]),
        do: if(k == 0, do: ln_normal(x, mu, 1.0), else: ln_normal(y, mu, 2.0) + ln_normal(x, y, 1.0))
  end

  defp assert_all_close(actual, expected, tol \\ 1.0e-12) do
    a = if is_list(actual), do: actual, else: list(actual)
    assert length(a) == length(expected)
    for {x, e} <- Enum.zip(a, expected), do: assert(abs(x - e) <= tol * max(1.0, abs(e)), "expected #{inspect(expected)}, got #{inspect(a)}")
  end

  defp obs(xs, ys), do: Gen.choicemap([{:x, vec(xs)}, {:y, vec(ys)}])

  describe "simulate, generate, assess, project" do
    test "every branch runs on [N] arguments; choices, score and retval are selected per element" do
      s = vs(self())
      ks = [0, 1, 1, 0]
      t = Gen.simulate(s, [idx(ks), vec(@mu)], key: Mx.Random.key(3))
      assert Enum.sort(calls()) == [0, 1]
      xs = list(t[:x])
      ys = list(t[:y])
      assert length(xs) == 4 and length(ys) == 4
      assert_all_close(t.score, lp(ks, xs, ys))
      assert list(Gen.get_retval(t)) == xs
      # Each element's x is the x of the branch it follows; y is branch 1's everywhere (masked in the score).
      x0 = list(t.subtraces[[0]].choices[:x])
      x1 = list(t.subtraces[[1]].choices[:x])
      assert xs == for({k, a, b} <- Enum.zip([ks, x0, x1]), do: if(k == 0, do: a, else: b))
      assert ys == list(t.subtraces[[1]].choices[:y])

      {pc, pw, pr} = Gen.propose(s, [idx(ks), vec(@mu)], key: Mx.Random.key(3))
      assert {list(pc[:x]), list(pr)} == {xs, xs}
      assert_all_close(pw, lp(ks, xs, ys))
    end

    test "generate: the weight per element is the selected branch's; :y constrains branch 1 only" do
      s = vs(self())
      ks = [0, 1, 1, 0]
      xs = [0.5, 1.5, -1.0, 2.0]
      ys = [9.0, 1.0, 0.0, 9.0]
      {t, w} = Gen.generate(s, [idx(ks), vec(@mu)], obs(xs, ys), key: Mx.Random.key(1))
      assert_all_close(w, lp(ks, xs, ys))
      assert_all_close(t.score, lp(ks, xs, ys))
      assert {list(t[:x]), list(t[:y])} == {xs, ys}

      # Only x constrained: branch 1's elements weigh x given their drawn y.
      {t2, w2} = Gen.generate(s, [idx(ks), vec(@mu)], Gen.choicemap([{:x, vec(xs)}]), key: Mx.Random.key(2))
      y2 = list(t2[:y])
      expected = for {k, x, y, mu} <- Enum.zip([ks, xs, y2, @mu]), do: if(k == 0, do: ln_normal(x, mu, 1.0), else: ln_normal(x, y, 1.0))
      assert_all_close(w2, expected)

      # A scalar index outside a particle batch is the scalar GFI: one branch, its sites' log-densities summed.
      {_, w3} = Gen.generate(s, [1, vec(@mu)], obs(xs, ys))
      assert_close(w3, Enum.sum(lp([1, 1, 1, 1], xs, ys)), 1.0e-12)
    end

    test "assess and project per element; assess runs only the branches some element follows" do
      s = vs(self())
      ks = [1, 1, 0, 1]
      xs = [0.5, 1.5, -1.0, 2.0]
      ys = [0.0, 1.0, 2.0, 2.5]
      {aw, r} = Gen.assess(s, [idx(ks), vec(@mu)], obs(xs, ys))
      assert_all_close(aw, lp(ks, xs, ys))
      assert list(r) == xs

      calls()
      {aw1, _} = Gen.assess(s, [idx([1, 1, 1, 1]), vec(@mu)], obs(xs, ys))
      assert Enum.uniq(calls()) == [1]
      assert_all_close(aw1, lp([1, 1, 1, 1], xs, ys))

      {t, _} = Gen.generate(s, [idx(ks), vec(@mu)], obs(xs, ys))
      py = for {k, y, mu} <- Enum.zip([ks, ys, @mu]), do: if(k == 0, do: 0.0, else: ln_normal(y, mu, 2.0))
      assert_all_close(Gen.project(t, Gen.select(:y)), py)
      assert_all_close(Gen.project(t, Gen.Selection.all()), lp(ks, xs, ys))

      # Branch 1 needs :y; an element following it without one raises.
      assert_raise ArgumentError, ~r/no value for the choice at address :y of branch 1/, fn ->
        Gen.assess(s, [idx(ks), vec(@mu)], Gen.choicemap([{:x, vec(xs)}]))
      end
    end
  end

  describe "update" do
    setup do
      s = vs(self())
      ks = [0, 1, 1, 0]
      xs = [0.5, 1.5, -1.0, 2.0]
      ys = [9.0, 1.0, 0.0, 9.0]
      {t, _} = Gen.generate(s, [idx(ks), vec(@mu)], obs(xs, ys))
      calls()
      %{s: s, t: t, ks: ks, xs: xs, ys: ys}
    end

    test "same index, new x: each element's weight is its branch's update weight", %{t: t, ks: ks, xs: xs, ys: ys} do
      xs2 = [0.0, 1.0, 1.0, 3.0]
      {t2, w, _, discard} = Gen.update(t, Gen.choicemap([{:x, vec(xs2)}]))
      assert_all_close(w, Enum.zip_with(lp(ks, xs2, ys), lp(ks, xs, ys), &(&1 - &2)))
      assert_all_close(t2.score, lp(ks, xs2, ys))
      assert Choicemap.to_list(discard) |> Enum.map(fn {p, v} -> {p, list(v)} end) == [{[:x], xs}]

      # edit with a constraint request is this update.
      {_, we, de} = Gen.edit(t, Gen.Edit.constraint(Gen.choicemap([{:x, vec(xs2)}])))
      assert list(we) == list(w)
      assert list(de[:x]) == xs
    end

    test "a constraint under branch 1 only leaves branch 0 unrun", %{t: t, ks: ks, xs: xs, ys: ys} do
      ys2 = [9.0, 2.0, -1.0, 9.0]
      {_, w, _, _} = Gen.update(t, Gen.choicemap([{:y, vec(ys2)}]))
      assert calls() == [1]
      assert_all_close(w, Enum.zip_with(lp(ks, xs, ys2), lp(ks, xs, ys), &(&1 - &2)))
    end

    test "the index changes per element: movers weigh generate − old score, stayers their update", %{s: s, t: t, ks: ks, xs: xs, ys: ys} do
      ks2 = [1, 1, 0, 0]
      xs2 = [0.25, 1.5, 2.5, 2.0]
      ys2 = [0.5, 1.0, 0.0, 9.0]
      {t2, w, _, discard} = Gen.update(t, [idx(ks2), vec(@mu)], [:unknown_change, :no_change], obs(xs2, ys2))
      assert Enum.sort(calls()) == [0, 0, 1, 1]
      new = lp(ks2, xs2, ys2)
      old = lp(ks, xs, ys)
      # Element 0 moves 0 -> 1 and element 2 moves 1 -> 0: their new branch's full density minus the old score.
      # Elements 1 and 3 stay; 1 keeps all its values (weight 0), 3 keeps x (its y is not in branch 0).
      assert_all_close(w, Enum.zip_with(new, old, &(&1 - &2)))
      assert_all_close(t2.score, new)
      assert {list(t2[:x]), list(t2[:y])} == {xs2, ys2}
      assert Gen.get_args(t2) |> hd() |> list() == ks2
      # Discard: x (constrained) and y (element 2 leaves branch 1), old [N] values.
      assert Choicemap.to_list(discard) |> Enum.map(fn {p, v} -> {p, list(v)} end) == [{[:x], xs}, {[:y], ys}]
      _ = s
    end

    test "moving without constraints draws the new branch fresh: weight −old score for movers", %{t: t, ks: ks, xs: xs, ys: ys} do
      ks2 = [1, 1, 0, 0]
      {t2, w, _, _} = Gen.update(t, [idx(ks2), vec(@mu)], [:unknown_change, :no_change], Choicemap.new(), key: Mx.Random.key(7))
      old = lp(ks, xs, ys)
      assert_all_close(w, [-Enum.at(old, 0), 0.0, -Enum.at(old, 2), 0.0])
      [x0, _, x2, _] = list(t2[:x])
      [y0, _, _, _] = list(t2[:y])
      # Fresh draws, not the old values the branches held for elements that did not follow them.
      assert y0 != 9.0
      assert x2 != Enum.at(list(t.subtraces[[0]].choices[:x]), 2)
      assert_all_close(t2.score, lp(ks2, [x0, 1.5, x2, 2.0], [y0, 1.0, 0.0, 9.0]), 1.0e-10)
    end
  end

  describe "regenerate" do
    test "selected :y per element; movers get a prior draw with weight 0" do
      s = vs(self())
      ks = [0, 1, 1, 0]
      xs = [0.5, 1.5, -1.0, 2.0]
      ys = [9.0, 1.0, 0.0, 9.0]
      {t, _} = Gen.generate(s, [idx(ks), vec(@mu)], obs(xs, ys))

      {t2, w, _} = Gen.regenerate(t, Gen.select(:y), key: Mx.Random.key(4))
      y2 = list(t2[:y])
      assert Enum.at(y2, 1) != 1.0
      # Regenerating y from its prior leaves x's density under the new y as the weight (branch 1's elements).
      expected = for {k, x, y_old, y_new} <- Enum.zip([ks, xs, ys, y2]), do: if(k == 0, do: 0.0, else: ln_normal(x, y_new, 1.0) - ln_normal(x, y_old, 1.0))
      assert_all_close(w, expected, 1.0e-10)
      assert list(t2[:x]) == xs

      ks2 = [1, 1, 1, 0]
      {t3, w3, _} = Gen.regenerate(t, [idx(ks2), vec(@mu)], [:unknown_change, :no_change], Gen.Selection.none(), key: Mx.Random.key(5))
      assert list(w3) == [0.0, 0.0, 0.0, 0.0]
      [x0 | _] = list(t3[:x])
      [y0 | _] = list(t3[:y])
      assert_all_close(t3.score, lp(ks2, [x0 | tl(xs)], [y0 | tl(ys)]), 1.0e-10)
    end
  end

  describe "inside a vectorized model" do
    defp model(s) do
      lw = Mx.log(vec([0.3, 0.7]))

      gen fn mu ->
        k = trace(:k, Gen.Dist.categorical(logits: lw))
        trace(:v, s, [k, mu])
      end
    end

    defp lk(ks), do: for(k <- ks, do: :math.log(if(k == 0, do: 0.3, else: 0.7)))

    # The vectorized GFI runs the model for one particle: its arguments are shared (issue 10 item 11;
    # an [N] argument was per-particle under the shape-based form), so mu is one number here.
    test "vsimulate: the index drawn per particle, then the switch; each particle's score by hand" do
      t = Gen.vsimulate(model(vs(self())), [1.5], 4, key: Mx.Random.key(8))
      ks = list(t[:k])
      assert Enum.sort(Enum.uniq(ks)) == [0, 1]
      expected = Enum.zip_with(lk(ks), lp(ks, list(t[[:v, :x]]), list(t[[:v, :y]]), List.duplicate(1.5, 4)), &(&1 + &2))
      assert_all_close(t.score, expected, 1.0e-10)
    end

    test "per-particle constraints under a batch: generate and a vectorized update flipping k" do
      m = model(vs(self()))
      ks = [0, 1, 1, 0]
      xs = [0.5, 1.5, -1.0, 2.0]
      ys = [9.0, 1.0, 0.0, 9.0]
      cm = Gen.choicemap([{:k, idx(ks)}, {[:v, :x], vec(xs)}, {[:v, :y], vec(ys)}])
      {_t, w} = Gen.Vectorized.with_batch(4, fn -> Gen.generate(m, [vec(@mu)], cm) end)
      assert_all_close(w, Enum.zip_with(lk(ks), lp(ks, xs, ys), &(&1 + &2)))

      # The vectorized GFI (one particle's model, shared arguments: mu = 0 for all, issue 10 item 11)
      # with the same per-particle constraints.
      mus = List.duplicate(0.0, 4)
      {t, w} = Gen.Vectorized.generate_particles(m, [0.0], cm, 4)
      assert_all_close(w, Enum.zip_with(lk(ks), lp(ks, xs, ys, mus), &(&1 + &2)))

      # Particle 0 moves to branch 1 with y constrained and x drawn fresh (no term):
      # log .7 - log .3 + log N(0; 0, 2) - log N(0.5; 0, 1), its old x term.
      ks2 = [1, 1, 1, 0]
      ys2 = [0.0, 1.0, 0.0, 9.0]
      {t2, w2, _, _} = Gen.Vectorized.update(t, [0.0], :no_change, Gen.choicemap([{:k, idx(ks2)}, {[:v, :y], vec(ys2)}]), key: Mx.Random.key(6))
      e0 = :math.log(0.7) - :math.log(0.3) + ln_normal(0.0, 0.0, 2.0) - ln_normal(0.5, 0.0, 1.0)
      assert_all_close(w2, [e0, 0.0, 0.0, 0.0])
      [x0 | _] = list(t2[[:v, :x]])
      assert x0 != 0.5
      assert_all_close(t2.score, Enum.zip_with(lk(ks2), lp(ks2, [x0 | tl(xs)], ys2, mus), &(&1 + &2)), 1.0e-10)
    end
  end

  test "errors name what is wrong" do
    s = vs(self())
    assert_raise ArgumentError, ~r/entries out of range \(\[2, -1\]\); it has 2 branch\(es\): use 0..1/, fn -> Gen.simulate(s, [idx([0, 2, -1]), vec([0.0, 0.0, 0.0])]) end
    assert_raise ArgumentError, ~r/entries out of range \(3\)/, fn -> Gen.simulate(s, [3, 0.0]) end
    assert_raise ArgumentError, ~r/integer Mx array of shape \{N\} \(or a scalar\), got f64\[2\]/, fn -> Gen.simulate(s, [vec([0.0, 1.0]), 0.0]) end
    assert_raise ArgumentError, ~r/integer Mx array .* got s64\[1\]\[2\]/, fn -> Gen.simulate(s, [Mx.tensor([[0, 1]]), 0.0]) end
    assert_raise ArgumentError, ~r/index array first/, fn -> Gen.simulate(s, []) end
    assert_raise ArgumentError, ~r/takes 1 argument\(s\) but the 2 argument\(s\) after the index give 2/, fn -> Gen.simulate(s, [0, 0.0, 1.0]) end
    assert_raise ArgumentError, ~r/non-empty list of branches/, fn -> Gen.Combinators.vswitch([]) end

    assert_raise ArgumentError, ~r/has 2 entries but the vectorized call runs 3 particles/, fn ->
      Gen.Vectorized.with_batch(3, fn -> Gen.simulate(s, [idx([0, 1]), vec([0.0, 0.0])]) end)
    end

    assert_raise ArgumentError, ~r/constraint at address :z names no random choice of any branch/, fn ->
      Gen.generate(s, [idx([0, 1]), vec([0.0, 0.0])], Gen.choicemap([{:z, vec([0.0, 0.0])}]))
    end

    bad = Gen.Combinators.vswitch([gen(fn -> {:a, trace(:x, Gen.Dist.normal(0.0, 1.0))} end), gen(fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end)])
    assert_raise ArgumentError, ~r/cannot select per element between the branch values/, fn -> Gen.simulate(bad, [idx([0, 1])]) end
  end
end
