defmodule Gen.CombinatorsTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Choicemap

  doctest Gen.Combinators
  doctest Gen.Combinators.Map
  doctest Gen.Combinators.Unfold

  # Kernels report each call to the test process, so tests can count the work done.
  defp map_kernel(me) do
    gen fn mu ->
      send(me, {:kernel, mu})
      trace(:y, Gen.Dist.normal(mu, 1.0))
    end
  end

  # y ~ N(mu, 1), z ~ N(y, 1): regenerating y leaves z's density to change.
  defp map_kernel2(me) do
    gen fn mu ->
      send(me, {:kernel, mu})
      y = trace(:y, Gen.Dist.normal(mu, 1.0))
      trace(:z, Gen.Dist.normal(y, 1.0))
    end
  end

  defp step_kernel(me) do
    gen fn t, x, s ->
      send(me, {:step, t})
      trace(:x, Gen.Dist.normal(x, s))
    end
  end

  defp flush, do: calls(:kernel) ++ calls(:step)

  defp ys(cm_or_trace, n, a \\ :y), do: for(i <- 0..(n - 1), do: num(cm_or_trace[[i, a]]))

  describe "Map" do
    test "simulate: choices under 0..n-1, score is their log joint, retval the list of values" do
      m = Gen.Combinators.map(map_kernel(self()))
      t = Gen.simulate(m, [[0.0, 1.0, 2.0]], key: Mx.Random.key(3))
      y = ys(t, 3)
      assert Enum.map(Gen.get_retval(t), &num/1) == y
      assert Enum.count(Gen.get_choices(t)) == 3
      assert_close(t.score, Enum.sum(for {v, mu} <- Enum.zip(y, [0.0, 1.0, 2.0]), do: ln_normal(v, mu, 1.0)))
      assert Enum.sort(calls(:kernel)) == [0.0, 1.0, 2.0]
      # Element i draws with fold_in(key, i): the same key gives the same trace.
      assert ys(Gen.simulate(m, [[0.0, 1.0, 2.0]], key: Mx.Random.key(3)), 3) == y
    end

    test "generate: weight is the log-density of the constrained elements; propose's weight is the score" do
      m = Gen.Combinators.map(map_kernel(self()))
      {t, w} = Gen.generate(m, [[0.0, 1.0, 2.0]], cm([{[1, :y], 0.5}]), key: Mx.Random.key(1))
      assert num(t[[1, :y]]) == 0.5
      assert_close(w, ln_normal(0.5, 1.0, 1.0))
      [y0, _, y2] = ys(t, 3)
      assert_close(t.score, ln_normal(y0, 0.0, 1.0) + ln_normal(0.5, 1.0, 1.0) + ln_normal(y2, 2.0, 1.0))

      {choices, pw, retval} = Gen.propose(m, [[0.0, 1.0]], key: Mx.Random.key(2))
      [a, b] = Enum.map(retval, &num/1)
      assert {num(choices[[0, :y]]), num(choices[[1, :y]])} == {a, b}
      assert_close(pw, ln_normal(a, 0.0, 1.0) + ln_normal(b, 1.0, 1.0))
    end

    test "update: changed elements only, weight and discard by hand, unchanged elements never call the kernel" do
      me = self()
      m = Gen.Combinators.map(map_kernel(me))
      {t, _} = Gen.generate(m, [[0.0, 1.0, 2.0]], cm([{[0, :y], 0.5}, {[1, :y], 1.5}, {[2, :y], 2.5}]))
      flush()

      # Element 1's argument changes, element 2 is constrained, element 0 is untouched.
      {t2, w, retdiff, discard} = Gen.update(t, [[0.0, 5.0, 2.0]], [:unknown_change], cm([{[2, :y], 3.0}]))
      assert Enum.sort(calls(:kernel)) == [2.0, 5.0]
      expected = ln_normal(1.5, 5.0, 1.0) - ln_normal(1.5, 1.0, 1.0) + ln_normal(3.0, 2.0, 1.0) - ln_normal(2.5, 2.0, 1.0)
      assert_close(w, expected)
      assert retdiff == :unknown_change
      assert Choicemap.to_list(discard) |> Enum.map(fn {p, v} -> {p, num(v)} end) == [{[2, :y], 2.5}]
      assert ys(t2, 3) == [0.5, 1.5, 3.0]
      assert_close(t2.score, ln_normal(0.5, 0.0, 1.0) + ln_normal(1.5, 5.0, 1.0) + ln_normal(3.0, 2.0, 1.0))
      # The kept element is the very same subtrace.
      assert t2.subtraces[[0]] === t.subtraces[[0]]

      # Per-element argdiffs: only the element marked changed is re-run.
      mus = [Mx.tensor(0.0, type: :f64), Mx.tensor(7.0, type: :f64), Mx.tensor(2.0, type: :f64)]
      {t3, w3, _, _} = Gen.update(t, [mus], [[:no_change, :unknown_change, :no_change]], cm([]))
      assert [seven] = calls(:kernel)
      assert num(seven) == 7.0
      assert_close(w3, ln_normal(1.5, 7.0, 1.0) - ln_normal(1.5, 1.0, 1.0))
      assert ys(t3, 3) == [0.5, 1.5, 2.5]
    end

    test "update: shrinking removes elements into the discard, growing generates the new ones only" do
      m = Gen.Combinators.map(map_kernel(self()))
      {t, _} = Gen.generate(m, [[0.0, 1.0, 2.0]], cm([{[0, :y], 0.5}, {[1, :y], 1.5}, {[2, :y], 2.5}]))
      flush()

      {t2, w, _, discard} = Gen.update(t, [[0.0, 1.0]], [:unknown_change], cm([]))
      assert calls(:kernel) == []
      assert_close(w, -ln_normal(2.5, 2.0, 1.0))
      assert Choicemap.to_list(discard) |> Enum.map(fn {p, v} -> {p, num(v)} end) == [{[2, :y], 2.5}]
      assert length(Gen.get_retval(t2)) == 2
      refute Choicemap.has_value?(t2.choices, [2, :y])

      {t3, w3, _, discard3} = Gen.update(t, [[0.0, 1.0, 2.0, 3.0, 4.0]], [:unknown_change], cm([{[3, :y], 3.25}]))
      assert Enum.sort(calls(:kernel)) == [3.0, 4.0]
      # Weight: the constrained new element's density; the unconstrained one was drawn from its prior.
      assert_close(w3, ln_normal(3.25, 3.0, 1.0))
      assert Choicemap.empty?(discard3)
      assert Enum.count(t3.choices) == 5
      y4 = num(t3[[4, :y]])
      assert_close(t3.score, num(t.score) + ln_normal(3.25, 3.0, 1.0) + ln_normal(y4, 4.0, 1.0), 1.0e-10)
    end

    test "regenerate: weight from kept choices whose density changed; unselected, unchanged elements skipped" do
      me = self()
      m = Gen.Combinators.map(map_kernel2(me))
      spec = for i <- 0..2, a <- [:y, :z], do: {[i, a], i + if(a == :y, do: 0.25, else: 0.75)}
      {t, _} = Gen.generate(m, [[0.0, 1.0, 2.0]], cm(spec))
      flush()

      {t2, w, _} = Gen.regenerate(t, [[0.5, 1.0, 2.0]], [:unknown_change], Gen.select([[1, :y]]), key: Mx.Random.key(9))
      assert Enum.sort(calls(:kernel)) == [0.5, 1.0]
      y1 = num(t2[[1, :y]])
      assert y1 != 1.25
      assert num(t2[[1, :z]]) == 1.75
      # Element 0: y kept under a new mean; element 1: z kept under a new y (y's own terms cancel).
      expected = ln_normal(0.25, 0.5, 1.0) - ln_normal(0.25, 0.0, 1.0) + ln_normal(1.75, y1, 1.0) - ln_normal(1.75, 1.25, 1.0)
      assert_close(w, expected, 1.0e-10)
      assert t2.subtraces[[2]] === t.subtraces[[2]]

      # Shrinking adds nothing; growing draws from the prior with weight 0.
      {_, w_shrink, _} = Gen.regenerate(t, [[0.0, 1.0]], [:unknown_change], Gen.Selection.none())
      assert num(w_shrink) == 0.0
      {t4, w_grow, _} = Gen.regenerate(t, [[0.0, 1.0, 2.0, 3.0]], [:unknown_change], Gen.Selection.none(), key: Mx.Random.key(4))
      assert num(w_grow) == 0.0
      assert Enum.count(t4.choices) == 8
    end

    test "project and assess" do
      m = Gen.Combinators.map(map_kernel2(self()))
      spec = [{[0, :y], 0.1}, {[0, :z], 0.2}, {[1, :y], 0.3}, {[1, :z], 0.4}]
      {t, w} = Gen.generate(m, [[0.0, 1.0]], cm(spec))
      full = ln_normal(0.1, 0.0, 1.0) + ln_normal(0.2, 0.1, 1.0) + ln_normal(0.3, 1.0, 1.0) + ln_normal(0.4, 0.3, 1.0)
      assert_close(w, full)
      assert_close(Gen.project(t, Gen.select([[0, :y], 1])), ln_normal(0.1, 0.0, 1.0) + ln_normal(0.3, 1.0, 1.0) + ln_normal(0.4, 0.3, 1.0))
      assert_close(Gen.project(t, Gen.Selection.all()), full)

      {aw, retval} = Gen.assess(m, [[0.0, 1.0]], cm(spec))
      assert_close(aw, full)
      assert Enum.map(retval, &num/1) == [0.2, 0.4]

      assert_raise ArgumentError, ~r/no value for the choice at address :z/, fn ->
        Gen.assess(m, [[0.0, 1.0]], cm(Enum.take(spec, 3)))
      end
    end

    test "traced inside a gen body: nested addresses, and update reaches only the constrained element" do
      me = self()
      m = Gen.Combinators.map(map_kernel(me))

      model =
        gen fn mus ->
          ys = trace(:ys, m, [mus])
          trace(:total, Gen.Dist.normal(Enum.reduce(ys, &Mx.add/2), 1.0))
        end

      obs = cm([{[:ys, 0, :y], 1.0}, {[:ys, 1, :y], 2.0}, {[:ys, 2, :y], 3.0}, {:total, 5.0}])
      {t, w} = Gen.generate(model, [[0.0, 1.0, 2.0]], obs)
      assert_close(w, ln_normal(1.0, 0.0, 1.0) + ln_normal(2.0, 1.0, 1.0) + ln_normal(3.0, 2.0, 1.0) + ln_normal(5.0, 6.0, 1.0))
      assert num(t[[:ys, 2, :y]]) == 3.0
      flush()

      {t2, w2, _, discard} = Gen.update(t, cm([{[:ys, 1, :y], 2.5}]))
      assert calls(:kernel) == [1.0]
      assert_close(w2, ln_normal(2.5, 1.0, 1.0) - ln_normal(2.0, 1.0, 1.0) + ln_normal(5.0, 6.5, 1.0) - ln_normal(5.0, 6.0, 1.0))
      assert num(discard[[:ys, 1, :y]]) == 2.0
      assert num(t2[[:ys, 1, :y]]) == 2.5

      {_, w3, _} = Gen.regenerate(t, Gen.select([[:ys, 0, :y]]), key: Mx.Random.key(5))
      assert calls(:kernel) == [0.0]
      assert is_float(num(w3))
    end

    test "errors name what is wrong" do
      m = Gen.Combinators.map(map_kernel(self()))
      assert_raise ArgumentError, ~r/must have equal lengths, got lengths \[2, 3\]/, fn ->
        Gen.simulate(Gen.Combinators.map(gen(fn a, b -> trace(:y, Gen.Dist.normal(a, b)) end)), [[0.0, 1.0], [1.0, 1.0, 1.0]])
      end

      assert_raise ArgumentError, ~r/argument 0 .* must be a list/, fn -> Gen.simulate(m, [1.0]) end
      assert_raise ArgumentError, ~r/one or more argument lists/, fn -> Gen.simulate(m, []) end
      assert_raise ArgumentError, ~r/takes 1 argument\(s\) but 2 argument list\(s\)/, fn -> Gen.simulate(m, [[1.0], [2.0]]) end

      assert_raise ArgumentError, ~r/constraint at address 3 names no element/, fn ->
        Gen.generate(m, [[0.0, 1.0]], cm([{[3, :y], 0.0}]))
      end

      assert_raise ArgumentError, ~r/constraint at address :y names no element/, fn -> Gen.generate(m, [[0.0]], %{y: 1.0}) end
      assert_raise ArgumentError, ~r/kernel must be a generative function/, fn -> Gen.Combinators.map(fn x -> x end) end

      {t, _} = Gen.generate(m, [[0.0, 1.0]], cm([]))
      assert_raise ArgumentError, ~r/Gen.update: the constraint at address 2/, fn -> Gen.update(t, cm([{[2, :y], 0.0}])) end
    end
  end

  describe "Unfold" do
    defp unfold_trace(me, xs, s \\ 1.0) do
      u = Gen.Combinators.unfold(step_kernel(me))
      spec = for {x, t} <- Enum.with_index(xs), do: {[t, :x], x}
      {t, w} = Gen.generate(u, [length(xs), 0.0, s], cm(spec))
      flush()
      {u, t, w}
    end

    defp chain_lp(xs, s, x0 \\ 0.0) do
      {lp, _} = Enum.reduce(xs, {0.0, x0}, fn x, {lp, prev} -> {lp + ln_normal(x, prev, s), x} end)
      lp
    end

    test "simulate and generate: states thread through the steps" do
      {u, t, w} = unfold_trace(self(), [0.5, 1.5, 1.0], 2.0)
      assert_close(w, chain_lp([0.5, 1.5, 1.0], 2.0))
      assert_close(t.score, chain_lp([0.5, 1.5, 1.0], 2.0))
      assert Enum.map(Gen.get_retval(t), &num/1) == [0.5, 1.5, 1.0]

      ts = Gen.simulate(u, [4, 1.0, 0.5], key: Mx.Random.key(2))
      xs = ys(ts, 4, :x)
      assert_close(ts.score, chain_lp(xs, 0.5, 1.0))
      assert Enum.sort(calls(:step)) == [0, 1, 2, 3]

      {aw, states} = Gen.assess(u, [3, 0.0, 2.0], t.choices)
      assert_close(aw, chain_lp([0.5, 1.5, 1.0], 2.0))
      assert Enum.map(states, &num/1) == [0.5, 1.5, 1.0]
      assert Gen.get_retval(Gen.simulate(u, [0, 0.0, 1.0])) == []
    end

    test "update: a longer n with nothing else changed runs only the new steps, from the last state" do
      {_u, t, _} = unfold_trace(self(), [0.5, 1.5, 1.0])
      {t2, w, _, discard} = Gen.update(t, [5, 0.0, 1.0], [:unknown_change, :no_change, :no_change], cm([{[3, :x], 2.0}]))
      assert Enum.sort(calls(:step)) == [3, 4]
      assert_close(w, ln_normal(2.0, 1.0, 1.0))
      assert Choicemap.empty?(discard)
      x4 = num(t2[[4, :x]])
      assert_close(t2.score, chain_lp([0.5, 1.5, 1.0, 2.0, x4], 1.0), 1.0e-10)
      for i <- 0..2, do: assert(t2.subtraces[[i]] === t.subtraces[[i]])
    end

    test "update: a constrained step re-runs it and the steps whose incoming state changed; weight and discard by hand" do
      {_u, t, _} = unfold_trace(self(), [0.5, 1.5, 1.0, 2.0])
      {t2, w, _, discard} = Gen.update(t, cm([{[1, :x], 0.0}]))
      # Step 2 is re-run under its new state but returns its kept x, the same term, so step 3 is skipped.
      assert Enum.sort(calls(:step)) == [1, 2]
      expected = ln_normal(0.0, 0.5, 1.0) - ln_normal(1.5, 0.5, 1.0) + ln_normal(1.0, 0.0, 1.0) - ln_normal(1.0, 1.5, 1.0)
      assert_close(w, expected)
      assert Enum.map(discard, fn {p, v} -> {p, num(v)} end) == [{[1, :x], 1.5}]
      assert ys(t2, 4, :x) == [0.5, 0.0, 1.0, 2.0]
    end

    test "update: a kernel that computes its next state passes the change on to every later step" do
      me = self()

      drift =
        gen fn t, x ->
          send(me, {:step, t})
          Mx.add(trace(:x, Gen.Dist.normal(x, 1.0)), 1.0)
        end

      u = Gen.Combinators.unfold(drift)
      {t, _} = Gen.generate(u, [3, 0.0], cm([{[0, :x], 0.5}, {[1, :x], 2.0}, {[2, :x], 3.5}]))
      flush()
      {_, w, _, _} = Gen.update(t, cm([{[0, :x], 0.0}]))
      # States are x + 1, recomputed (a new term) at each re-run step: all three run.
      assert Enum.sort(calls(:step)) == [0, 1, 2]
      expected = ln_normal(0.0, 0.0, 1.0) - ln_normal(0.5, 0.0, 1.0) + ln_normal(2.0, 1.0, 1.0) - ln_normal(2.0, 1.5, 1.0)
      assert_close(w, expected)
    end

    test "update: a changed parameter re-runs every step; a shorter n discards the tail" do
      {_u, t, _} = unfold_trace(self(), [0.5, 1.5, 1.0])
      {_, w, _, _} = Gen.update(t, [3, 0.0, 2.0], [:no_change, :no_change, :unknown_change], cm([]))
      assert Enum.sort(calls(:step)) == [0, 1, 2]
      assert_close(w, chain_lp([0.5, 1.5, 1.0], 2.0) - chain_lp([0.5, 1.5, 1.0], 1.0))

      {t3, w3, _, discard} = Gen.update(t, [1, 0.0, 1.0], [:unknown_change, :no_change, :no_change], cm([]))
      assert calls(:step) == []
      assert_close(w3, -(ln_normal(1.5, 0.5, 1.0) + ln_normal(1.0, 1.5, 1.0)))
      assert Enum.map(discard, fn {p, v} -> {p, num(v)} end) == [{[1, :x], 1.5}, {[2, :x], 1.0}]
      assert Enum.map(Gen.get_retval(t3), &num/1) == [0.5]
    end

    test "regenerate: a selected step is redrawn, the next step's density carries the weight" do
      {_u, t, _} = unfold_trace(self(), [0.5, 1.5, 1.0])
      {t2, w, _} = Gen.regenerate(t, Gen.select([[1, :x]]), key: Mx.Random.key(11))
      assert Enum.sort(calls(:step)) == [1, 2]
      x1 = num(t2[[1, :x]])
      assert x1 != 1.5
      assert_close(w, ln_normal(1.0, x1, 1.0) - ln_normal(1.0, 1.5, 1.0), 1.0e-10)
      assert_close(Gen.project(t2, Gen.select([0, 2])), ln_normal(0.5, 0.0, 1.0) + ln_normal(1.0, x1, 1.0), 1.0e-10)

      {t3, w3, _} = Gen.regenerate(t, [5, 0.0, 1.0], [:unknown_change, :no_change, :no_change], Gen.Selection.none())
      assert Enum.sort(calls(:step)) == [3, 4]
      assert num(w3) == 0.0
      assert length(Gen.get_retval(t3)) == 5
    end

    test "traced inside a gen body" do
      me = self()
      u = Gen.Combinators.unfold(step_kernel(me))

      model =
        gen fn n ->
          s = trace(:s, Gen.Dist.gamma(2.0, rate: 1.0))
          trace(:chain, u, [n, 0.0, s])
        end

      obs = cm([{:s, 1.0}, {[:chain, 0, :x], 0.5}, {[:chain, 1, :x], 1.5}])
      {t, w} = Gen.generate(model, [2], obs)
      lp_s = Mx.to_number(Gen.Dist.logpdf(Gen.Dist.gamma(2.0, rate: 1.0), 1.0))
      assert_close(w, lp_s + chain_lp([0.5, 1.5], 1.0))
      flush()

      # Extending the chain from the outer model runs only the new step.
      {t2, w2, _, _} = Gen.update(t, [3], [:unknown_change], cm([{[:chain, 2, :x], 1.0}]))
      assert calls(:step) == [2]
      assert_close(w2, ln_normal(1.0, 1.5, 1.0))
      assert num(t2[[:chain, 2, :x]]) == 1.0
    end

    test "errors name what is wrong" do
      u = Gen.Combinators.unfold(step_kernel(self()))
      assert_raise ArgumentError, ~r/must be a non-negative integer, got -1/, fn -> Gen.simulate(u, [-1, 0.0, 1.0]) end
      assert_raise ArgumentError, ~r/must be a non-negative integer, got 2.0/, fn -> Gen.simulate(u, [2.0, 0.0, 1.0]) end
      assert_raise ArgumentError, ~r/at least two arguments/, fn -> Gen.simulate(u, [2]) end
      assert_raise ArgumentError, ~r/takes 3 argument\(s\) but \(t, state\) and 2 parameter\(s\) give 4/, fn ->
        Gen.simulate(u, [2, 0.0, 1.0, 2.0])
      end

      assert_raise ArgumentError, ~r/constraint at address 2 names no element/, fn ->
        Gen.generate(u, [2, 0.0, 1.0], cm([{[2, :x], 0.0}]))
      end

      assert_raise ArgumentError, ~r/kernel must be a generative function/, fn -> Gen.Combinators.unfold(:nope) end
    end
  end
end
