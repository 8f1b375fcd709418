defmodule Gen.CombinatorsScanTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Choicemap

  doctest Gen.Combinators.Scan

  defp calls do
    receive do
      {:step, i} -> [i | calls()]
    after
      0 -> []
    end
  end

  defp steps, do: Enum.sort(calls())

  # z_i ~ N(c + x_i, s); the carry is z itself (a kept choice passes on the same term).
  defp kernel_z(me) do
    gen fn c, x, s ->
      send(me, {:step, x})
      z = trace(:z, Gen.Dist.normal(Mx.add(c, x), s))
      {z, Mx.multiply(z, 2.0)}
    end
  end

  # The carry is the running sum c + z, recomputed (a new term) at every run of the step.
  defp kernel_sum(me) do
    gen fn c, x ->
      send(me, {:step, x})
      z = trace(:z, Gen.Dist.normal(x, 1.0))
      {Mx.add(c, z), z}
    end
  end

  defp nums(l), do: Enum.map(l, &num/1)

  # The log joint of z_i ~ N(c_{i-1} + x_i, s) with c_i = z_i, c_{-1} = c0.
  defp lp_z(zs, xs, s, c0) do
    {lp, _} = Enum.zip(zs, xs) |> Enum.reduce({0.0, c0}, fn {z, x}, {lp, c} -> {lp + ln_normal(z, c + x, s), z} end)
    lp
  end

  defp zs_spec(zs), do: for({z, i} <- Enum.with_index(zs), do: {[i, :z], z})

  describe "simulate, generate, assess, propose" do
    test "the carry threads through the steps; retval {final_carry, ys}; score by hand" do
      s = Gen.Combinators.scan(kernel_z(self()))
      xs = [1.0, -1.0, 0.5]
      {t, w} = Gen.generate(s, [0.0, xs, 2.0], cm(zs_spec([0.5, 1.0, 2.5])))
      assert_close(w, lp_z([0.5, 1.0, 2.5], xs, 2.0, 0.0))
      assert_close(t.score, lp_z([0.5, 1.0, 2.5], xs, 2.0, 0.0))
      {c, ys} = Gen.get_retval(t)
      assert {num(c), nums(ys)} == {2.5, [1.0, 2.0, 5.0]}
      assert steps() == [-1.0, 0.5, 1.0]

      ts = Gen.simulate(s, [1.0, xs, 0.5], key: Mx.Random.key(7))
      zs = for i <- 0..2, do: num(ts[[i, :z]])
      assert_close(ts.score, lp_z(zs, xs, 0.5, 1.0))
      assert num(elem(Gen.get_retval(ts), 0)) == List.last(zs)
      # Step i draws with fold_in(key, i): the same key gives the same trace.
      assert pairs(Gen.simulate(s, [1.0, xs, 0.5], key: Mx.Random.key(7)).choices) == pairs(ts.choices)

      {pc, pw, {pc_c, _}} = Gen.propose(s, [1.0, xs, 0.5], key: Mx.Random.key(7))
      assert pairs(pc) == pairs(ts.choices)
      assert_close(pw, num(ts.score))
      assert num(pc_c) == List.last(zs)

      {aw, {ac, ays}} = Gen.assess(s, [0.0, xs, 2.0], t.choices)
      assert_close(aw, lp_z([0.5, 1.0, 2.5], xs, 2.0, 0.0))
      assert {num(ac), nums(ays)} == {2.5, [1.0, 2.0, 5.0]}

      # Partial constraints: the weight is the constrained step's density only.
      {tp, wp} = Gen.generate(s, [0.0, xs, 1.0], cm([{[1, :z], 0.0}]), key: Mx.Random.key(3))
      z0 = num(tp[[0, :z]])
      assert_close(wp, ln_normal(0.0, z0 - 1.0, 1.0))
      assert Gen.get_retval(Gen.simulate(s, [3.0, [], 1.0])) == {3.0, []}
    end

    test "a number of steps n scans the step indices 0..n-1; growing n runs only the new steps" do
      s = Gen.Combinators.scan(kernel_z(self()))
      {t, w} = Gen.generate(s, [0.0, 3, 1.0], cm(zs_spec([0.5, 1.0, 2.5])))
      assert_close(w, lp_z([0.5, 1.0, 2.5], [0, 1, 2], 1.0, 0.0))
      assert steps() == [0, 1, 2]
      {t2, w2, _, _} = Gen.update(t, [0.0, 4, 1.0], [:no_change, :unknown_change, :no_change], cm([{[3, :z], 5.0}]))
      assert steps() == [3]
      assert_close(w2, ln_normal(5.0, 2.5 + 3, 1.0))
      assert num(elem(Gen.get_retval(t2), 0)) == 5.0
    end

    test "an Mx array xs is scanned along its first axis, rows as inputs" do
      me = self()

      k =
        gen fn c, row ->
          send(me, {:step, Mx.to_list(row)})
          z = trace(:z, Gen.Dist.normal(Mx.add(c, Mx.sum(row)), 1.0))
          {z, row}
        end

      xs = Mx.tensor([[1.0, 2.0], [3.0, 4.0]], type: :f64)
      {t, w} = Gen.generate(Gen.Combinators.scan(k), [0.0, xs], cm(zs_spec([3.0, 10.0])))
      assert_close(w, ln_normal(3.0, 3.0, 1.0) + ln_normal(10.0, 10.0, 1.0))
      {c, ys} = Gen.get_retval(t)
      assert {num(c), Enum.map(ys, &Mx.to_list/1)} == {10.0, [[1.0, 2.0], [3.0, 4.0]]}
      assert steps() == [[1.0, 2.0], [3.0, 4.0]]
    end
  end

  describe "update" do
    test "only a later input changes: the earlier steps are kept without calling the kernel" do
      me = self()
      s = Gen.Combinators.scan(kernel_sum(me))
      xs = [0.0, 1.0, 2.0, 3.0]
      {t, _} = Gen.generate(s, [0.0, xs], cm(zs_spec([0.5, 1.5, 2.5, 3.5])))
      calls()

      # x_2 changes (a new term in a list): steps 2 and 3 re-run, the carry being recomputed at step 2.
      {t2, w, retdiff, discard} = Gen.update(t, [0.0, [0.0, 1.0, 5.0, 3.0]], [:no_change, :unknown_change], cm([]))
      assert steps() == [3.0, 5.0]
      assert_close(w, ln_normal(2.5, 5.0, 1.0) - ln_normal(2.5, 2.0, 1.0))
      assert retdiff == :unknown_change
      assert Choicemap.empty?(discard)
      for i <- 0..1, do: assert(t2.subtraces[[i]] === t.subtraces[[i]])
      assert_close(elem(Gen.get_retval(t2), 0), 8.0)

      # Per-element argdiffs say which inputs changed.
      xs3 = [0.0, 1.0, 2.0, Mx.tensor(-3.0, type: :f64)]
      {_, w3, _, _} = Gen.update(t, [0.0, xs3], [:no_change, [:no_change, :no_change, :no_change, :unknown_change]], cm([]))
      assert [x3] = calls()
      assert num(x3) == -3.0
      assert_close(w3, ln_normal(3.5, -3.0, 1.0) - ln_normal(3.5, 3.0, 1.0))

      # Nothing changed but a constraint on step 1: steps 1.. re-run (the sum carry changes), step 0 kept.
      {t4, w4, _, d4} = Gen.update(t, cm([{[1, :z], 1.0}]))
      assert steps() == [1.0, 2.0, 3.0]
      assert_close(w4, ln_normal(1.0, 1.0, 1.0) - ln_normal(1.5, 1.0, 1.0))
      assert pairs(d4) == [{[1, :z], 1.5}]
      assert_close(elem(Gen.get_retval(t4), 0), 7.5)
    end

    test "a carry that is a kept choice stops the re-run at the changed step" do
      s = Gen.Combinators.scan(kernel_z(self()))
      xs = [0.0, 1.0, 2.0, 3.0]
      {t, _} = Gen.generate(s, [0.0, xs, 1.0], cm(zs_spec([0.5, 1.5, 2.5, 3.5])))
      calls()
      {_, w, _, _} = Gen.update(t, [0.0, [0.0, 4.0, 2.0, 3.0], 1.0], [:no_change, :unknown_change, :no_change], cm([]))
      # Step 1 re-runs and returns its kept z, the same term, so step 2 sees an unchanged carry.
      assert steps() == [4.0]
      assert_close(w, ln_normal(1.5, 0.5 + 4.0, 1.0) - ln_normal(1.5, 0.5 + 1.0, 1.0))
    end

    test "Mx array inputs under :unknown_change are compared by value, row by row" do
      me = self()
      s = Gen.Combinators.scan(kernel_sum(me))
      xs = Mx.tensor([0.0, 1.0, 2.0], type: :f64)
      {t, _} = Gen.generate(s, [0.0, xs], cm(zs_spec([0.5, 1.5, 2.5])))
      calls()
      {_, w, _, _} = Gen.update(t, [0.0, Mx.tensor([0.0, 1.0, 4.0], type: :f64)], [:no_change, :unknown_change], cm([]))
      assert [x2] = calls()
      assert num(x2) == 4.0
      assert_close(w, ln_normal(2.5, 4.0, 1.0) - ln_normal(2.5, 2.0, 1.0))
    end

    test "longer xs runs only the new steps from the last carry; shorter xs discards the tail" do
      s = Gen.Combinators.scan(kernel_z(self()))
      {t, _} = Gen.generate(s, [0.0, [1.0, 1.0], 1.0], cm(zs_spec([1.0, 2.0])))
      calls()

      {t2, w, _, discard} = Gen.update(t, [0.0, [1.0, 1.0, 1.0, 1.0], 1.0], [:no_change, :unknown_change, :no_change], cm([{[2, :z], 3.5}]))
      assert steps() == [1.0, 1.0]
      assert_close(w, ln_normal(3.5, 3.0, 1.0))
      assert Choicemap.empty?(discard)
      z3 = num(t2[[3, :z]])
      assert_close(t2.score, lp_z([1.0, 2.0, 3.5, z3], [1.0, 1.0, 1.0, 1.0], 1.0, 0.0), 1.0e-10)
      assert {num(elem(t2.retval, 0)), length(elem(t2.retval, 1))} == {z3, 4}

      {t3, w3, _, d3} = Gen.update(t, [0.0, [1.0], 1.0], [:no_change, :unknown_change, :no_change], cm([]))
      assert calls() == []
      assert_close(w3, -ln_normal(2.0, 2.0, 1.0))
      assert pairs(d3) == [{[1, :z], 2.0}]
      assert {num(elem(t3.retval, 0)), nums(elem(t3.retval, 1))} == {1.0, [2.0]}
    end

    test "a changed init carry or parameter re-runs the steps it reaches" do
      s = Gen.Combinators.scan(kernel_z(self()))
      xs = [1.0, 1.0, 1.0]
      zs = [1.0, 2.0, 3.5]
      {t, _} = Gen.generate(s, [0.0, xs, 1.0], cm(zs_spec(zs)))
      calls()

      # The init carry reaches step 0 only: z_0 is kept, so step 1 sees the same carry.
      {_, w, _, _} = Gen.update(t, [0.5, xs, 1.0], [:unknown_change, :no_change, :no_change], cm([]))
      assert length(calls()) == 1
      assert_close(w, ln_normal(1.0, 1.5, 1.0) - ln_normal(1.0, 1.0, 1.0))

      {_, w2, _, _} = Gen.update(t, [0.0, xs, 2.0], [:no_change, :no_change, :unknown_change], cm([]))
      assert length(calls()) == 3
      assert_close(w2, lp_z(zs, xs, 2.0, 0.0) - lp_z(zs, xs, 1.0, 0.0))
    end
  end

  describe "regenerate, project, edit" do
    test "a selected step is redrawn; the next step's density carries the weight; others skipped" do
      s = Gen.Combinators.scan(kernel_z(self()))
      xs = [0.0, 0.0, 0.0, 0.0]
      zs = [0.5, 1.0, 1.5, 2.0]
      {t, _} = Gen.generate(s, [0.0, xs, 1.0], cm(zs_spec(zs)))
      calls()

      {t2, w, _} = Gen.regenerate(t, Gen.select([[1, :z]]), key: Mx.Random.key(11))
      assert length(calls()) == 2
      z1 = num(t2[[1, :z]])
      assert z1 != 1.0
      assert_close(w, ln_normal(1.5, z1, 1.0) - ln_normal(1.5, 1.0, 1.0), 1.0e-10)
      for i <- [0, 3], do: assert(t2.subtraces[[i]] === t.subtraces[[i]])
      assert_close(Gen.project(t2, Gen.select([0, [2, :z]])), ln_normal(0.5, 0.0, 1.0) + ln_normal(1.5, z1, 1.0), 1.0e-10)

      # Growing draws the new step from the prior with weight 0; shrinking adds nothing.
      {t3, w3, _} = Gen.regenerate(t, [0.0, xs ++ [0.0], 1.0], [:no_change, :unknown_change, :no_change], Gen.Selection.none())
      assert length(calls()) == 1
      assert {num(w3), map_size(t3.subtraces)} == {0.0, 5}
      {_, w4, _} = Gen.regenerate(t, [0.0, [0.0], 1.0], [:no_change, :unknown_change, :no_change], Gen.Selection.none())
      assert num(w4) == 0.0

      # edit through the same machinery: a constraint request is update.
      {t5, w5, d5} = Gen.edit(t, Gen.Edit.constraint(%{3 => %{z: 0.0}}))
      assert_close(w5, ln_normal(0.0, 1.5, 1.0) - ln_normal(2.0, 1.5, 1.0))
      assert {pairs(d5), num(t5[[3, :z]])} == {[{[3, :z], 2.0}], 0.0}
    end
  end

  describe "inside a model, with MH" do
    # x_i ~ N(x_{i-1} + drift * u_i, 1) from x_{-1} = 0, with the inputs u_i scanned.
    defp walk do
      gen fn c, u, drift ->
        x = trace(:x, Gen.Dist.normal(Mx.add(c, Mx.multiply(drift, u)), 1.0))
        {x, x}
      end
    end

    defp model do
      s = Gen.Combinators.scan(walk())

      gen fn us ->
        drift = trace(:drift, Gen.Dist.normal(0.0, 1.0))
        trace(:walk, s, [0.0, us, drift])
      end
    end

    test "generate weight by hand, and MH on the drift recovers its conjugate posterior" do
      us = [1.0, 0.5, 2.0, 1.0, 1.5]
      xs = [0.8, 1.6, 3.1, 3.4, 5.0]
      obs = cm(for {x, i} <- Enum.with_index(xs), do: {[:walk, i, :x], x})
      {t, w} = Gen.generate(model(), [us], Gen.Choicemap.put(obs, [:drift], 0.5))
      diffs = Enum.zip([0.0 | xs], xs) |> Enum.map(fn {a, b} -> b - a end)
      lp = ln_normal(0.5, 0.0, 1.0) + (Enum.zip(diffs, us) |> Enum.map(fn {d, u} -> ln_normal(d, 0.5 * u, 1.0) end) |> Enum.sum())
      assert_close(w, lp, 1.0e-10)

      # d_i = x_i - x_{i-1} ~ N(drift * u_i, 1), drift ~ N(0, 1): posterior precision 1 + Σu², mean Σ u d / precision.
      prec = 1.0 + Enum.sum(Enum.map(us, &(&1 * &1)))
      mean = (Enum.zip(us, diffs) |> Enum.map(fn {u, d} -> u * d end) |> Enum.sum()) / prec

      {t0, _} = Gen.generate(model(), [us], obs, key: Mx.Random.key(1))
      k = Gen.Inference.Kernel.mh(Gen.select(:drift))
      samples = Gen.Inference.run(k, t0, samples: 3000, burn: 100, key: Mx.Random.key(2), select: &num(&1[:drift]))
      # assert_posterior: mean and variance each within 4 batch-means standard errors.
      Gen.ChainCheck.assert_posterior(samples, mean, 1.0 / prec)
      assert t.subtraces[[:walk]].gen_fn.__struct__ == Gen.Combinators.Scan
    end
  end

  describe "vectorized" do
    test "under Gen.vsimulate every step scores per particle; Gen.Vectorized.update rescoring a changed input" do
      s = Gen.Combinators.scan(kernel_z(self()))
      t = Gen.vsimulate(s, [0.0, [1.0, 2.0], 1.0], 3, key: Mx.Random.key(1))
      [z0, z1] = for i <- 0..1, do: Mx.to_list(t[[i, :z]])
      assert length(z0) == 3
      expected = Enum.zip_with(z0, z1, &lp_z([&1, &2], [1.0, 2.0], 1.0, 0.0))
      for {a, e} <- Enum.zip(Mx.to_list(t.score), expected), do: assert_close(a, e, 1.0e-12)
      calls()

      # x_1 changes: only step 1 re-runs (its carry z_0 is kept), for all particles at once.
      {_, w, _, _} = Gen.Vectorized.update(t, [0.0, [1.0, 3.0], 1.0], [:no_change, :unknown_change, :no_change], cm([]))
      assert calls() == [3.0]
      expected_w = Enum.zip_with(z0, z1, fn a, b -> ln_normal(b, a + 3.0, 1.0) - ln_normal(b, a + 2.0, 1.0) end)
      for {a, e} <- Enum.zip(Mx.to_list(w), expected_w), do: assert_close(a, e, 1.0e-12)
    end
  end

  describe "errors" do
    test "name what is wrong" do
      s = Gen.Combinators.scan(kernel_z(self()))
      assert_raise ArgumentError, ~r/at least two arguments/, fn -> Gen.simulate(s, [0.0]) end
      assert_raise ArgumentError, ~r/must be a list, an Mx array or a number of steps, got -1/, fn -> Gen.simulate(s, [0.0, -1, 1.0]) end
      assert_raise ArgumentError, ~r/got the scalar f64; wrap it in a list/, fn -> Gen.simulate(s, [0.0, Mx.tensor(1.0, type: :f64), 1.0]) end
      assert_raise ArgumentError, ~r/takes 3 argument\(s\) but \(carry, x\) and 0 parameter\(s\) give 2/, fn -> Gen.simulate(s, [0.0, [1.0]]) end
      assert_raise ArgumentError, ~r/constraint at address 2 names no element/, fn -> Gen.generate(s, [0.0, [1.0, 1.0], 1.0], cm([{[2, :z], 0.0}])) end
      assert_raise ArgumentError, ~r/kernel must be a generative function/, fn -> Gen.Combinators.scan(:nope) end

      bad = Gen.Combinators.scan(gen(fn c, x -> trace(:z, Gen.Dist.normal(Mx.add(c, x), 1.0)) end))
      assert_raise ArgumentError, ~r/must return \{carry, y\}, but step 0 returned/, fn -> Gen.simulate(bad, [0.0, [1.0]]) end
      assert_raise ArgumentError, ~r/Gen.assess: the kernel .* must return \{carry, y\}/, fn -> Gen.assess(bad, [0.0, [1.0]], cm([{[0, :z], 0.0}])) end
    end
  end
end
