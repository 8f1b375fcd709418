defmodule Gen.VectorizedTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers, only: [ln_normal: 3, ln_bernoulli: 2]
  import Gen.Kalman, only: [ssm: 0]
  import Gen.TestModels, only: [small_model: 0]
  import Gen.ChainCheck, only: [normal_model: 0, normal_observations: 1, normal_log_ml: 1]
  alias Gen.Inference.Vectorized, as: VI

  doctest Gen.Vectorized
  doctest Gen.Inference.Vectorized

  # ---- shapes and weights against hand-computed log-densities (Gen.TestModels.small_model) ----

  defp sigmoid(x), do: 1.0 / (1.0 + :math.exp(-x))

  # Particle i's log joint in plain floats, from the rows of the trace's choices.
  defp hand_scores(t, c) do
    [mus, zs, vs, bs, ys] = Enum.map([:mu, :zs, :v, :b, :y], &Mx.to_list(t[&1]))

    Enum.zip_with([mus, zs, vs, bs, ys], fn [mu, z, v, b, y] ->
      ln_normal(mu, 0.0, 1.0) + Enum.sum(Enum.map(z, &ln_normal(&1, 0.0, 2.0))) +
        ln_normal(Enum.at(v, 0), mu, 1.0) + ln_normal(Enum.at(v, 1), -mu, 1.0) +
        ln_bernoulli(b, sigmoid(mu)) + ln_normal(y, mu + c, 0.5)
    end)
  end

  defp assert_all_close(xs, ys, tol \\ 1.0e-10) do
    assert length(xs) == length(ys)

    for {x, y} <- Enum.zip(xs, ys),
        do: assert(abs(x - y) <= tol * max(1.0, abs(y)), "#{x} vs #{y}")
  end

  defp row(%Mx.Array{} = a, i), do: a[i]

  test "vsimulate: every site [n | shape], score f64[n] = each particle's log joint" do
    n = 6
    t = Gen.vsimulate(small_model(), [0.3], n, key: Mx.Random.key(1))

    assert Enum.map([:mu, :zs, :v, :b, :y], &Mx.describe(t[&1])) ==
             ["f64[6]", "f64[6][3]", "f64[6][2]", "bool[6]", "f64[6]"]

    assert Mx.describe(t.score) == "f64[6]"
    assert_all_close(Mx.to_list(t.score), hand_scores(t, 0.3))

    # Particles differ (independent draws), also at the shared site.
    assert length(Enum.uniq(Mx.to_list(t[:mu]))) == n
    assert length(Enum.uniq(Enum.map(Mx.to_list(t[:zs]), &hd/1))) == n

    # Row i is a trace of the scalar model: the scalar assess gives the same log joint.
    for i <- 0..(n - 1) do
      cm = Gen.choicemap(for p <- [:mu, :zs, :v, :b, :y], into: %{}, do: {p, row(t[p], i)})
      {w, _} = Gen.assess(small_model(), [0.3], cm)
      assert Mx.describe(w) == "f64"
      assert_all_close([Mx.to_number(w)], [Enum.at(Mx.to_list(t.score), i)])
    end
  end

  test "vgenerate: observations broadcast, weight = log p(observation | particle)" do
    {t, w} = Gen.vgenerate(small_model(), [0.3], %{y: 0.7}, 5, key: Mx.Random.key(2))
    assert Mx.to_list(t[:y]) == List.duplicate(0.7, 5)
    assert Mx.describe(w) == "f64[5]"
    assert_all_close(Mx.to_list(w), Enum.map(Mx.to_list(t[:mu]), &ln_normal(0.7, &1 + 0.3, 0.5)))
    assert_all_close(Mx.to_list(t.score), hand_scores(t, 0.3))

    # Fully constrained at shared values: every particle has the same weight, the log joint.
    all = %{mu: 0.2, zs: [0.1, -0.4, 1.0], v: [0.5, 0.0], b: true, y: 0.7}
    {t2, w2} = Gen.vgenerate(small_model(), [0.3], all, 4, key: Mx.Random.key(3))
    [expected] = hand_scores(Gen.Vectorized.take(t2, [0]), 0.3)
    assert_all_close(Mx.to_list(w2), List.duplicate(expected, 4))
    assert Mx.describe(t2[:zs]) == "f64[4][3]" and Mx.describe(t2[:v]) == "f64[4][2]"
  end

  test "vectorized update, regenerate and assess weights per particle" do
    {t, _} = Gen.vgenerate(small_model(), [0.3], %{y: 0.7}, 5, key: Mx.Random.key(4))
    [mus, zs_old] = [Mx.to_list(t[:mu]), Mx.to_list(t[:zs])]

    # New argument and a shared constraint on :zs.
    zs_new = [0.5, -1.0, 2.0]
    {t2, w, _, discard} = Gen.Vectorized.update(t, [-0.2], :unknown_change, %{zs: zs_new})

    expected =
      Enum.zip_with(mus, zs_old, fn mu, z ->
        ln_normal(0.7, mu - 0.2, 0.5) - ln_normal(0.7, mu + 0.3, 0.5) +
          Enum.sum(Enum.map(zs_new, &ln_normal(&1, 0.0, 2.0))) - Enum.sum(Enum.map(z, &ln_normal(&1, 0.0, 2.0)))
      end)

    assert_all_close(Mx.to_list(w), expected)
    assert Mx.to_list(discard[:zs]) == zs_old
    assert_all_close(Mx.to_list(t2.score), hand_scores(t2, -0.2))

    # Regenerate :mu: the weight is the change of the unselected sites that depend on it.
    {t3, w3, _} = Gen.Vectorized.regenerate(t2, Gen.select(:mu), key: Mx.Random.key(5))
    new_mus = Mx.to_list(t3[:mu])
    assert Enum.all?(Enum.zip(new_mus, mus), fn {a, b} -> a != b end)
    [vs, bs] = [Mx.to_list(t3[:v]), Mx.to_list(t3[:b])]

    site = fn mu, v, b ->
      ln_normal(Enum.at(v, 0), mu, 1.0) + ln_normal(Enum.at(v, 1), -mu, 1.0) + ln_bernoulli(b, sigmoid(mu)) +
        ln_normal(0.7, mu - 0.2, 0.5)
    end

    expected3 = Enum.zip_with([new_mus, mus, vs, bs], fn [m1, m0, v, b] -> site.(m1, v, b) - site.(m0, v, b) end)
    assert_all_close(Mx.to_list(w3), expected3)

    {wa, _} = Gen.Vectorized.assess(small_model(), [-0.2], Gen.get_choices(t3), 5)
    assert_all_close(Mx.to_list(wa), Mx.to_list(t3.score))
  end

  test "take gathers every choice along the particle axis and keeps the scores" do
    t = Gen.vsimulate(small_model(), [0.3], 4, key: Mx.Random.key(6))
    t2 = Gen.Vectorized.take(t, [3, 3, 1])
    assert Gen.Vectorized.particles(t2) == 3

    for p <- [:mu, :zs, :v, :b, :y] do
      rows = Mx.to_list(t[p])
      assert Mx.to_list(t2[p]) == Enum.map([3, 3, 1], &Enum.at(rows, &1))
    end

    s = Mx.to_list(t.score)
    assert_all_close(Mx.to_list(t2.score), Enum.map([3, 3, 1], &Enum.at(s, &1)))
  end

  defp values(t), do: t |> Gen.get_choices() |> Gen.Choicemap.to_list() |> Enum.map(fn {p, v} -> {p, Mx.to_list(v)} end)

  test "take by gathering the trace tree equals the rebuild by vectorized generate, and updates alike" do
    idx = Mx.tensor([4, 0, 0, 2, 1], type: :s64)

    for {gf, args} <- [{small_model(), [0.3]}, {ssm(), [4, 0.0]}, {switch_model(), []}] do
      t = Gen.vsimulate(gf, args, 5, key: Mx.Random.key(13))
      g = Gen.Vectorized.take(t, idx)
      r = Gen.Vectorized.rebuild_take(t, idx)
      assert values(g) == values(r)
      assert_all_close(Mx.to_list(g.score), Mx.to_list(r.score))
    end

    # The next SMC step from either: the Unfold's state (the last retval) was gathered too.
    t = Gen.vsimulate(ssm(), [4, 0.0], 5, key: Mx.Random.key(14))
    [g, r] = [Gen.Vectorized.take(t, idx), Gen.Vectorized.rebuild_take(t, idx)]
    step = fn tr -> Gen.Vectorized.update(tr, [5, 0.0], :unknown_change, %{4 => %{y: 0.2}}, key: Mx.Random.key(15)) end
    {g2, wg, _, _} = step.(g)
    {r2, wr, _, _} = step.(r)
    assert_all_close(Mx.to_list(wg), Mx.to_list(wr))
    assert values(g2) == values(r2)
  end

  test "select merges the trace trees per particle, as the rebuild by vectorized generate does" do
    mask = Mx.tensor([true, false, false, true, true])

    for {gf, args, sel} <- [
          {small_model(), [0.3], Gen.select([:mu, :zs])},
          {ssm(), [4, 0.0], Gen.select([[2, :x], [3, :y]])},
          {switch_model(), [], Gen.select(:k)}
        ] do
      t = Gen.vsimulate(gf, args, 5, key: Mx.Random.key(16))
      {new, _, _} = Gen.Vectorized.regenerate(t, sel, key: Mx.Random.key(17))
      merged = Gen.Vectorized.select(mask, new, t)
      rebuilt = Gen.Vectorized.rebuild_select(mask, new, t)
      assert values(merged) == values(rebuilt)
      assert_all_close(Mx.to_list(merged.score), Mx.to_list(rebuilt.score))
      # Row by row the merged trace is the accepted or the kept particle.
      picks = Mx.to_list(mask)
      assert_all_close(Mx.to_list(merged.score), Enum.zip_with([picks, Mx.to_list(new.score), Mx.to_list(t.score)], fn [p, a, b] -> if p, do: a, else: b end))

      # The merged records behave as the rebuilt ones in the next move.
      {_, w1, _} = Gen.Vectorized.regenerate(merged, sel, key: Mx.Random.key(18))
      {_, w2, _} = Gen.Vectorized.regenerate(rebuilt, sel, key: Mx.Random.key(18))
      assert_all_close(Mx.to_list(w1), Mx.to_list(w2))
    end
  end

  test "errors name the cause" do
    branchy =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))
        if Mx.to_number(x) > 0, do: trace(:y, Gen.Dist.normal(1.0, 1.0)), else: 0.0
      end)

    assert_raise ArgumentError, ~r/Gen.vsimulate: .*read a per-particle value as an Elixir number.*Mx.select/s, fn ->
      Gen.vsimulate(branchy, [], 4, key: Mx.Random.key(0))
    end

    # The scalar switch wants a scalar index: its error gets the same hint.
    sw = Gen.Combinators.switch([gen(fn -> trace(:a, Gen.Dist.normal(0.0, 1.0)) end), gen(fn -> trace(:a, Gen.Dist.normal(5.0, 1.0)) end)])
    m = gen(fn -> i = trace(:i, Gen.Dist.bernoulli(0.5)); trace(:s, sw, [Mx.as_type(i, :s64)]) end)

    assert_raise ArgumentError, ~r/Gen.vgenerate: .*branch index.*s64\[3\].*cannot run vectorized over 3 particles/, fn ->
      Gen.vgenerate(m, [], %{}, 3, key: Mx.Random.key(0))
    end

    # Mix reads its sampled component with to_number.
    mix = Gen.Combinators.mix([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(5.0, 1.0)], [0.0, 0.0])

    assert_raise ArgumentError, ~r/read a per-particle value as an Elixir number/, fn ->
      Gen.vsimulate(mix, [], 4, key: Mx.Random.key(0))
    end

    # Observations are shared, whatever their shape: one of the particle axis's size is no longer
    # ambiguous (issue 10 item 11: it raised under the shape-based form); every particle scores all of it.
    {t3, w3} = Gen.vgenerate(small_model(), [0.3], %{zs: [1.0, 2.0, 3.0]}, 3, key: Mx.Random.key(0))
    assert Mx.to_list(t3[:zs]) == List.duplicate([1.0, 2.0, 3.0], 3)
    assert_all_close(Mx.to_list(w3), List.duplicate(Enum.sum(Enum.map([1.0, 2.0, 3.0], &ln_normal(&1, 0.0, 2.0))), 3))

    # An event axis of that size is not: the 2-d normal's observation [2] with 2 particles.
    {t2, w2} = Gen.vgenerate(small_model(), [0.3], %{v: [0.5, -0.5]}, 2, key: Mx.Random.key(0))
    assert Mx.to_list(t2[:v]) == [[0.5, -0.5], [0.5, -0.5]]

    expected =
      Enum.map(Mx.to_list(t2[:mu]), fn mu -> ln_normal(0.5, mu, 1.0) + ln_normal(-0.5, -mu, 1.0) end)

    assert_all_close(Mx.to_list(w2), expected)

    # The same for shared observations of a vectorized update: each particle's weight is the scalar update's.
    s0 = VI.smc_init(ssm(), [1, 0.0], %{0 => %{y: 0.1}}, 2, key: Mx.Random.key(0))
    obs = Gen.choicemap(%{1 => %{y: [0.0, 1.0]}})
    {t4, w4, _, _} = Gen.Vectorized.update(s0.trace, [2, 0.0], :unknown_change, obs, key: Mx.Random.key(1), shared_observations: obs)
    # Step 1 is new: its x is drawn from its prior (no term), y = [0, 1] scored under it.
    sd = :math.sqrt(Gen.Kalman.params().r)
    expected = Enum.map(Mx.to_list(t4[[1, :x]]), fn x -> ln_normal(0.0, x, sd) + ln_normal(1.0, x, sd) end)
    assert_all_close(Mx.to_list(w4), expected)

    assert_raise ArgumentError, ~r/positive integer/, fn -> Gen.vsimulate(small_model(), [0.3], 0) end

    assert_raise ArgumentError, ~r/expected a vectorized trace/, fn ->
      Gen.Vectorized.particles(Gen.simulate(small_model(), [0.3], key: Mx.Random.key(0)))
    end

    # The batch context is restored after an error.
    assert Gen.Vectorized.batch() == nil
  end

  # ---- one particle's model, run for n particles (issue 10 item 11) ----------------------------

  @xs [1.0, 2.0, 3.0]

  # A per-particle slope times a shared data vector: written for one particle, no Mx.new_axis.
  defp regression do
    gen(fn xs ->
      slope = trace(:slope, Gen.Dist.normal(0.0, 1.0))
      trace(:ys, Gen.Dist.normal(Mx.multiply(slope, xs), 1.0))
    end)
  end

  defp f64(l), do: Mx.tensor(l, type: :f64)

  # Row i of every choice of a vectorized trace, as a scalar choicemap.
  defp row_choices(t, i) do
    t |> Gen.get_choices() |> Gen.Choicemap.to_list() |> Enum.reduce(Gen.Choicemap.new(), fn {p, v}, cm -> Gen.Choicemap.put(cm, p, v[i]) end)
  end

  # Each particle's score (or weights) against the scalar GFI on its row: the same numbers.
  defp assert_rows_are_scalar_traces(gf, args, t) do
    n = Gen.Vectorized.particles(t)

    for i <- 0..(n - 1) do
      {w, _} = Gen.assess(gf, args, row_choices(t, i))
      assert_all_close([Mx.to_number(w)], [Enum.at(Mx.to_list(t.score), i)], 1.0e-12)
    end
  end

  test "a per-particle scalar times a shared vector: each particle is a run of the one-particle model" do
    xs = f64(@xs)

    # n = 5 raised a broadcast error under the shape-based form; n = 3 (the data's length) silently
    # took the data vector for per-particle values and drew one y per particle.
    for n <- [5, 3] do
      t = Gen.vsimulate(regression(), [xs], n, key: Mx.Random.key(n))
      assert Mx.describe(t[:ys]) == "f64[#{n}][3]" and Mx.describe(t.score) == "f64[#{n}]"
      assert_rows_are_scalar_traces(regression(), [xs], t)

      ys = [0.5, 2.5, 2.0]
      {tg, w} = Gen.vgenerate(regression(), [xs], %{ys: f64(ys)}, n, key: Mx.Random.key(10 + n))
      assert Mx.to_list(tg[:ys]) == List.duplicate(ys, n)
      expected = Enum.map(Mx.to_list(tg[:slope]), fn s -> Enum.zip_with(ys, @xs, &ln_normal(&1, s * &2, 1.0)) |> Enum.sum() end)
      assert_all_close(Mx.to_list(w), expected)
      assert_rows_are_scalar_traces(regression(), [xs], tg)

      # update and regenerate: each particle's weight is the scalar GFI's on its row.
      ys2 = f64([0.5, 2.5, 4.0])
      {tu, wu, _, _} = Gen.Vectorized.update(tg, [xs], :no_change, %{ys: ys2}, shared_observations: %{ys: ys2})
      {tr, wr, _} = Gen.Vectorized.regenerate(tu, Gen.select(:slope), key: Mx.Random.key(20 + n))

      for i <- 0..(n - 1) do
        {ti, _} = Gen.generate(regression(), [xs], row_choices(tg, i))
        {_, wi, _, _} = Gen.update(ti, %{ys: ys2})
        assert_all_close([Enum.at(Mx.to_list(wu), i)], [Mx.to_number(wi)], 1.0e-12)
        # Regenerating the slope from its prior: the weight is the change of the ys term.
        [s0, s1] = [Mx.to_list(tu[:slope]), Mx.to_list(tr[:slope])] |> Enum.map(&Enum.at(&1, i))
        lp_ys = fn s -> Enum.zip_with([0.5, 2.5, 4.0], @xs, &ln_normal(&1, s * &2, 1.0)) |> Enum.sum() end
        assert_all_close([Enum.at(Mx.to_list(wr), i)], [lp_ys.(s1) - lp_ys.(s0)], 1.0e-10)
      end

      assert_rows_are_scalar_traces(regression(), [xs], tr)
    end
  end

  test "the vectorized draws have the scalar model's distribution" do
    # slope ~ N(0, 1), ys_j = slope·x_j + N(0, 1): ys_j ~ N(0, x_j² + 1), Cov(ys_1, ys_3) = x_1·x_3.
    # Moments of n = 4000 draws within 4 standard errors: sd/√n for a mean, var·√(2/(n−1)) for a
    # normal variance, √((v₁v₃ + c²)/n) for a covariance.
    n = 4000
    t = Gen.vsimulate(regression(), [f64(@xs)], n, key: Mx.Random.key(77))
    rows = Mx.to_list(t[:ys])
    cols = Enum.zip_with(rows, & &1)
    means = Enum.map(cols, &(Enum.sum(&1) / n))

    for {{col, m}, x} <- Enum.zip([Enum.zip(cols, means), @xs]) do
      var = x * x + 1
      v = Enum.sum(Enum.map(col, &((&1 - m) ** 2))) / (n - 1)
      assert abs(m) <= 4 * :math.sqrt(var / n), "mean #{m}"
      assert abs(v - var) <= 4 * var * :math.sqrt(2 / (n - 1)), "variance #{v} vs #{var}"
    end

    [c1, _, c3] = cols
    [m1, _, m3] = means
    cov = Enum.zip_with(c1, c3, fn a, b -> (a - m1) * (b - m3) end) |> Enum.sum() |> Kernel./(n - 1)
    assert abs(cov - 3.0) <= 4 * :math.sqrt((2.0 * 10.0 + 9.0) / n), "covariance #{cov} vs 3"
  end

  # Sites whose per-particle operands have ranks below the site's batch rank: a scalar mean with a
  # shared vector of sds, a per-particle mean vector of a 2-d normal, a per-particle concentration
  # vector, per-particle probabilities, and a shared vector observed at a site of scalar parameters.
  defp mixed_sites do
    gen(fn sds, cov ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
      _a = trace(:a, Gen.Dist.normal(mu, sds))
      _v = trace(:v, Gen.Dist.multivariate_normal(Mx.multiply(mu, f64([1.0, -1.0])), cov))
      _p = trace(:p, Gen.Dist.dirichlet(Mx.exp(Mx.multiply(mu, f64([0.0, 1.0, 2.0])))))
      _b = trace(:b, Gen.Dist.bernoulli(Mx.sigmoid(Mx.multiply(mu, f64([-1.0, 1.0])))))
      trace(:y, Gen.Dist.normal(mu, 1.0))
    end)
  end

  test "per-particle operands of lower rank than their site align with it" do
    args = [f64([0.5, 1.0, 2.0]), f64([[1.0, 0.3], [0.3, 2.0]])]
    t = Gen.vsimulate(mixed_sites(), args, 6, key: Mx.Random.key(31))
    assert Enum.map([:mu, :a, :v, :p, :b, :y], &Mx.describe(t[&1])) == ["f64[6]", "f64[6][3]", "f64[6][2]", "f64[6][3]", "bool[6][2]", "f64[6]"]
    assert_rows_are_scalar_traces(mixed_sites(), args, t)
    assert length(Enum.uniq(Mx.to_list(t[:mu]))) == 6

    # A vector observed where the parameters are one particle's scalars: each particle scores all of it.
    {tg, w} = Gen.vgenerate(mixed_sites(), args, %{y: f64([0.5, 1.0, 1.5, 2.0])}, 6, key: Mx.Random.key(32))
    expected = Enum.map(Mx.to_list(tg[:mu]), fn mu -> Enum.sum(Enum.map([0.5, 1.0, 1.5, 2.0], &ln_normal(&1, mu, 1.0))) end)
    assert_all_close(Mx.to_list(w), expected)
    assert_rows_are_scalar_traces(mixed_sites(), args, tg)

    # Vectorized assess and gradients on the same rows agree with the scalar GFI.
    {wa, _} = Gen.Vectorized.assess(mixed_sites(), args, Gen.get_choices(t), 6)
    assert_all_close(Mx.to_list(wa), Mx.to_list(t.score))
    {_, g} = VI.choice_gradients(t, Gen.select([:mu, :a]))

    for i <- [0, 5] do
      {ti, _} = Gen.generate(mixed_sites(), args, row_choices(t, i))
      {_, gi} = Gen.Inference.Gradient.choice_gradients(ti, Gen.select([:mu, :a]))
      assert_all_close([Mx.to_list(g[:mu]) |> Enum.at(i)], [Mx.to_number(gi[:mu])])
      assert_all_close(Mx.to_list(g[:a]) |> Enum.at(i), Mx.to_list(gi[:a]))
    end
  end

  test "a shape error under a particle batch says so and what to do" do
    bad = gen(fn -> x = trace(:x, Gen.Dist.normal(0.0, 1.0)); Mx.add(Mx.multiply(x, Mx.zeros({2})), Mx.zeros({3})) end)
    # The scalar GFI fails the same way: the body sees one particle's shapes.
    assert_raise Mx.Error, ~r/cannot be broadcast/, fn -> Gen.simulate(bad, []) end

    assert_raise Mx.Error, ~r/^Gen.vsimulate: \[add\] shapes f64\[2\] and f32\[3\] cannot be broadcast.*raised under a particle batch of 4: .*one particle's values and shapes.*Gen.simulate/s, fn ->
      Gen.vsimulate(bad, [], 4)
    end

    # The shape-based form (values with the particle axis, under with_batch/2) names the batch too.
    assert_raise Mx.Error, ~r/raised under a particle batch of 4 \(Gen.Vectorized.with_batch\/2\).*Mx.new_axis/s, fn ->
      Gen.Vectorized.with_batch(4, fn -> Gen.simulate(regression(), [f64(@xs)]) end)
    end

    assert Gen.Vectorized.batch() == nil
  end

  test "a Dimap inside a vectorized update compares its per-particle inner arguments over every particle" do
    inner = gen(fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end)
    d = Gen.Combinators.dimap(inner, pre: fn [m] -> [Mx.multiply(m, 2.0)] end)
    m = gen(fn c -> mu = trace(:mu, Gen.Dist.normal(c, 1.0)); trace(:d, d, [Mx.floor(mu)]) end)
    t = Gen.vsimulate(m, [0.0], 4, key: Mx.Random.key(90))
    {t2, w, _, _} = Gen.Vectorized.update(t, [0.5], :unknown_change, %{})
    mus = Mx.to_list(t[:mu])
    assert_all_close(Mx.to_list(w), Enum.map(mus, &(ln_normal(&1, 0.5, 1.0) - ln_normal(&1, 0.0, 1.0))))
    assert_rows_are_scalar_traces(m, [0.5], t2)
  end

  test "many sites: packed placeholders, and past the engine's vmap budget a clear error" do
    m = gen(fn k -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); for i <- 1..k, do: trace({:x, i}, Gen.Dist.normal(mu, 1.0)) end)
    t = Gen.vsimulate(m, [40], 3, key: Mx.Random.key(3))
    assert_rows_are_scalar_traces(m, [40], t)

    # past the 64 the engine's vmap table once held (writing past it crashed the VM)
    t = Gen.vsimulate(m, [70], 3, key: Mx.Random.key(4))
    assert_rows_are_scalar_traces(m, [70], t)

    assert_raise ArgumentError, ~r/^Gen.vsimulate: more per-particle arrays than the engine's vmap replays at once \(1024.*vector-valued sites/, fn ->
      Gen.vsimulate(m, [1100], 3)
    end
  end

  # ---- combinators under vsimulate ------------------------------------------------------------

  # x_0 ~ N(0, 1), x_t ~ N(0.9 x_{t-1}, 0.5²), y_t ~ N(x_t, 0.3²) (the model of smc_test.exs).
  # The linear-Gaussian model is Gen.Kalman.ssm/0 (test/support/kalman.ex).
  @a Gen.Kalman.params().a
  @q Gen.Kalman.params().q
  @r Gen.Kalman.params().r

  test "Unfold, Map, Scan, Switch and Mask under vsimulate" do
    t = Gen.vsimulate(ssm(), [4, 0.0], 5, key: Mx.Random.key(7))
    xs = for i <- 0..3, do: Mx.to_list(t[[i, :x]])
    ys = for i <- 0..3, do: Mx.to_list(t[[i, :y]])
    assert Enum.all?(xs ++ ys, &(length(&1) == 5))

    expected =
      for p <- 0..4 do
        x = Enum.map(xs, &Enum.at(&1, p))
        y = Enum.map(ys, &Enum.at(&1, p))

        ln_normal(hd(x), 0.0, 1.0) +
          (Enum.zip(tl(x), x) |> Enum.map(fn {xt, xp} -> ln_normal(xt, @a * xp, :math.sqrt(@q)) end) |> Enum.sum()) +
          (Enum.zip(y, x) |> Enum.map(fn {yt, xt} -> ln_normal(yt, xt, :math.sqrt(@r)) end) |> Enum.sum())
      end

    assert_all_close(Mx.to_list(t.score), expected)
    assert length(Gen.get_retval(t)) == 4 and Mx.describe(List.last(Gen.get_retval(t))) == "f64[5]"

    # Map over a distribution kernel with per-element shared arguments.
    mp = Gen.Combinators.map(gen(fn m -> trace(:z, Gen.Dist.normal(m, 1.0)) end))
    tm = Gen.vsimulate(mp, [[0.0, 10.0, -10.0]], 4, key: Mx.Random.key(8))
    zs = for i <- 0..2, do: Mx.to_list(tm[[i, :z]])

    expected =
      for p <- 0..3, do: Enum.zip([0.0, 10.0, -10.0], zs) |> Enum.map(fn {m, z} -> ln_normal(Enum.at(z, p), m, 1.0) end) |> Enum.sum()

    assert_all_close(Mx.to_list(tm.score), expected)

    # Switch and Mask with a shared index or flag (an argument) run the chosen branch vectorized.
    sw = Gen.Combinators.switch([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(5.0, 1.0)])
    tw = Gen.vsimulate(sw, [1], 4, key: Mx.Random.key(20))
    assert_all_close(Mx.to_list(tw.score), Enum.map(Mx.to_list(tw.retval), &ln_normal(&1, 5.0, 1.0)))
    tk = Gen.vsimulate(Gen.Combinators.mask(Gen.Dist.normal(0.0, 1.0)), [true], 4, key: Mx.Random.key(21))
    assert_all_close(Mx.to_list(tk.score), Enum.map(Mx.to_list(tk.retval), &ln_normal(&1, 0.0, 1.0)))

    # Scan: a random walk z_i ~ N(c, 1) carrying c = z_i, returning z_i + x_i.
    walk = gen(fn c, x -> z = trace(:z, Gen.Dist.normal(c, 1.0)); {z, Mx.add(z, x)} end)
    ts = Gen.vsimulate(Gen.Combinators.scan(walk), [0.0, [10.0, 20.0, 30.0]], 4, key: Mx.Random.key(19))
    zs = for i <- 0..2, do: Mx.to_list(ts[[i, :z]])
    {carry, ys} = Gen.get_retval(ts)
    assert Mx.to_list(carry) == List.last(zs)
    assert Mx.to_list(List.last(ys)) == Enum.map(List.last(zs), &(&1 + 30.0))

    expected =
      for p <- 0..3 do
        z = Enum.map(zs, &Enum.at(&1, p))
        Enum.zip([0.0 | z], z) |> Enum.map(fn {c, zi} -> ln_normal(zi, c, 1.0) end) |> Enum.sum()
      end

    assert_all_close(Mx.to_list(ts.score), expected)
  end

  # k ~ Bernoulli(0.3); x ~ N(0, 1) when k = 0, N(3, 1) when k = 1 (a vectorized switch on k).
  defp switch_model do
    b0 = gen(fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end)
    b1 = gen(fn -> trace(:x, Gen.Dist.normal(3.0, 1.0)) end)
    vs = Gen.Combinators.vswitch([b0, b1])

    gen(fn ->
      k = trace(:k, Gen.Dist.bernoulli(0.3))
      trace(:s, vs, [Mx.as_type(k, :s64)])
    end)
  end

  test "vectorized switch under vsimulate and vectorized importance sampling" do
    t = Gen.vsimulate(switch_model(), [], 8, key: Mx.Random.key(9))
    ks = Mx.to_list(t[:k])
    xs = Mx.to_list(t[[:s, :x]])
    assert length(xs) == 8 and Enum.uniq(ks) |> length() == 2
    expected = Enum.zip_with(ks, xs, fn k, x -> ln_bernoulli(k, 0.3) + ln_normal(x, if(k, do: 3.0, else: 0.0), 1.0) end)
    assert_all_close(Mx.to_list(t.score), expected)

    # P(k = 1 | x = 2) = 0.3·N(2; 3, 1) / (0.3·N(2; 3, 1) + 0.7·N(2; 0, 1)); the weighted mean of
    # the indicator has standard error √(p(1 − p)/ESS).
    p1 = 0.3 * :math.exp(ln_normal(2.0, 3.0, 1.0))
    exact = p1 / (p1 + 0.7 * :math.exp(ln_normal(2.0, 0.0, 1.0)))
    {ti, lnw, _} = Gen.Inference.vimportance_sampling(switch_model(), [], %{[:s, :x] => 2.0}, 4000, key: Mx.Random.key(10))
    w = lnw |> Mx.exp() |> Mx.to_list()
    ess = 1.0 / Enum.sum(Enum.map(w, &(&1 * &1)))
    est = Enum.zip_with(w, Mx.to_list(ti[:k]), fn wi, k -> if k, do: wi, else: 0.0 end) |> Enum.sum()
    assert abs(est - exact) <= 4 * :math.sqrt(exact * (1 - exact) / ess), "P(k = 1 | x) #{est} vs #{exact}, ESS #{ess}"
  end

  # ---- normal–normal: mu ~ N(0, 2²), y_i ~ N(mu, 1), i = 1..5 (as in inference_test.exs) --------

  # The normal–normal model mu ~ N(0, 2²), y_i ~ N(mu, 1) and its exact posterior: test/support/chain_check.ex.
  @ys Gen.ChainCheck.normal_ys()
  @post_var Gen.ChainCheck.normal_posterior().var
  @post_mean Gen.ChainCheck.normal_posterior().mean

  test "vectorized importance sampling recovers the posterior mean and the log marginal likelihood" do
    n = 5000
    {t, lnw, lml} = Gen.Inference.vimportance_sampling(normal_model(), [@ys], normal_observations(@ys), n, key: Mx.Random.key(11))
    assert Mx.describe(t[:mu]) == "f64[5000]"
    assert abs(Mx.to_number(Mx.logsumexp(lnw))) < 1.0e-12

    w = lnw |> Mx.exp() |> Mx.to_list()
    mus = Mx.to_list(t[:mu])
    sum_sq = Enum.sum(Enum.map(w, &(&1 * &1)))
    ess = 1.0 / sum_sq
    mean = Enum.zip_with(w, mus, &(&1 * &2)) |> Enum.sum()
    # The self-normalized mean has standard error ≈ sd/√ESS; the log-ML estimate, by the delta
    # method, Var(log Ẑ) ≈ (n·Σw̄² − 1)/n. Four standard errors: a two-sided 6e-5 level.
    lml_se = :math.sqrt((n * sum_sq - 1) / n)
    assert ess > 300
    assert abs(mean - @post_mean) <= 4 * :math.sqrt(@post_var / ess), "mean #{mean} vs #{@post_mean}, ESS #{ess}"
    assert abs(Mx.to_number(lml) - normal_log_ml(@ys)) <= 4 * lml_se, "log ML #{Mx.to_number(lml)} vs #{normal_log_ml(@ys)}, SE #{lml_se}"
    assert lml_se < 0.05

    # Its weights are those of the scalar importance sampler: each particle's generate weight.
    expected =
      Enum.map(Enum.take(mus, 20), fn mu -> Enum.sum(Enum.map(@ys, &ln_normal(&1, mu, 1.0))) end)

    # log wᵢ = log w̄ᵢ + log Σw = log w̄ᵢ + log ML + log n.
    shift = Mx.to_number(lml) + :math.log(n)
    assert_all_close(Enum.take(Mx.to_list(lnw), 20) |> Enum.map(&(&1 + shift)), expected, 1.0e-9)
  end

  test "vectorized and scalar importance sampling agree (n = 5000)" do
    # mu ~ N(0, 4), y ~ N(mu, 1), y = 1.5: p(y) = N(1.5; 0, 5).
    m = gen(fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 2.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end)
    exact = ln_normal(1.5, 0.0, :math.sqrt(5.0))
    n = 5000
    {traces, lnw_s, lml_s} = Gen.Inference.importance_sampling(m, [], %{y: 1.5}, n, key: Mx.Random.key(40))
    {t, lnw_v, lml_v} = Gen.Inference.vimportance_sampling(m, [], %{y: 1.5}, n, key: Mx.Random.key(41))
    assert length(traces) == n and Gen.Vectorized.particles(t) == n

    # Delta-method standard errors of each log-ML estimate; the two estimates are independent,
    # so their difference has standard error √(se_s² + se_v²); four of them bound it.
    se = fn lnw -> w = lnw |> Mx.exp() |> Mx.to_list(); :math.sqrt((n * Enum.sum(Enum.map(w, &(&1 * &1))) - 1) / n) end
    {se_s, se_v} = {se.(lnw_s), se.(lnw_v)}
    {l_s, l_v} = {Mx.to_number(lml_s), Mx.to_number(lml_v)}
    assert abs(l_s - l_v) <= 4 * :math.sqrt(se_s ** 2 + se_v ** 2), "scalar #{l_s} vs vectorized #{l_v}"
    assert abs(l_v - exact) <= 4 * se_v and abs(l_s - exact) <= 4 * se_s
  end

  test "vectorized importance sampling with a custom proposal" do
    # The exact posterior as proposal: every weight equals the marginal likelihood.
    q = gen(fn -> trace(:mu, Gen.Dist.normal(@post_mean, :math.sqrt(@post_var))) end)
    {_t, lnw, lml} = VI.importance_sampling(normal_model(), [@ys], normal_observations(@ys), 50, key: Mx.Random.key(12), proposal: {q, []})
    assert abs(Mx.to_number(lml) - normal_log_ml(@ys)) < 1.0e-9
    assert_all_close(Mx.to_list(lnw), List.duplicate(-:math.log(50), 50), 1.0e-9)
  end

  # ---- vectorized SMC against the Kalman filter ------------------------------------------------

  @t_len 15

  # Exact log p(y_0..y_{T-1}) and the filtered mean of x_{T-1}: test/support/kalman.ex.
  defp data, do: Gen.Kalman.data(@t_len)

  defp vsmc_run(ys, seed, opts) do
    obs = for {y, i} <- Enum.with_index(ys), do: %{i => %{y: y}}
    {t, lnw, lml} = Gen.Inference.vsmc(ssm(), &[&1 + 1, 0.0], obs, 500, [key: Mx.Random.key(seed)] ++ opts)
    assert Mx.describe(t[[@t_len - 1, :x]]) == "f64[500]"
    w = lnw |> Mx.exp() |> Mx.to_list()
    mean = Enum.zip_with(w, Mx.to_list(t[[@t_len - 1, :x]]), &(&1 * &2)) |> Enum.sum()
    {Mx.to_number(lml), mean}
  end

  defp mean_sd(v) do
    m = Enum.sum(v) / length(v)
    {m, :math.sqrt(Enum.sum(Enum.map(v, &((&1 - m) ** 2))) / (length(v) - 1))}
  end

  # 10 independent runs (keys 100..109), n = 500: one estimate's standard error is the sd over
  # runs; each run within 4 sd of the exact value, and their average within 4 sd/√10.
  defp check_against_kalman(opts) do
    ys = data()
    {exact, k_mean, _k_var} = Gen.Kalman.filter(ys)
    {lmls, means} = Enum.unzip(for seed <- 100..109, do: vsmc_run(ys, seed, opts))
    {lml_avg, lml_sd} = mean_sd(lmls)
    {mean_avg, mean_sd} = mean_sd(means)
    for l <- lmls, do: assert(abs(l - exact) < 4 * lml_sd, "log ML #{l} vs exact #{exact}, sd #{lml_sd}")
    assert abs(lml_avg - exact) < 4 * lml_sd / :math.sqrt(10), "mean log ML #{lml_avg} vs #{exact}, sd #{lml_sd}"
    for x <- means, do: assert(abs(x - k_mean) < 4 * mean_sd, "filtered mean #{x} vs #{k_mean}, sd #{mean_sd}")
    assert abs(mean_avg - k_mean) < 4 * mean_sd / :math.sqrt(10)
  end

  for scheme <- [:multinomial, :systematic, :residual] do
    test "vectorized smc (#{scheme}) matches the Kalman log marginal likelihood and filtered mean" do
      check_against_kalman(resampling: unquote(scheme))
    end
  end

  test "vectorized smc with MH rejuvenation of the latest state still matches the Kalman filter" do
    # MH on the latest state (proposed from its prior given the previous one) leaves the filtering target invariant.
    last = fn t, opts -> VI.mh(t, Gen.select([[hd(t.args) - 1, :x]]), opts) end

    check_against_kalman(resampling: :systematic, rejuvenate: last)
  end

  test "vectorized smc with MALA rejuvenation (gradients through Unfold) matches the Kalman filter" do
    mala = fn t, opts -> VI.mala(t, Gen.select([[hd(t.args) - 1, :x]]), [tau: 0.02] ++ opts) end
    check_against_kalman(resampling: :residual, rejuvenate: mala, rejuvenate_steps: 2)
  end

  test "run errors" do
    {t, _} = Gen.vgenerate(normal_model(), [@ys], normal_observations(@ys), 3, key: Mx.Random.key(0))
    k = fn t, opts -> VI.mh(t, Gen.select(:mu), opts) end
    assert_raise ArgumentError, ~r/samples: must be an integer >= 0 \(required\)/, fn -> VI.run(k, t, burn: 2) end
    assert_raise ArgumentError, ~r/expected a kernel/, fn -> VI.run(:mh, t, samples: 1) end
    assert_raise ArgumentError, ~r/must return \{vectorized_trace, accepted\}/, fn -> VI.run(fn t, _ -> {t, true} end, t, samples: 1) end
    assert_raise ArgumentError, ~r/expected a vectorized trace/, fn -> VI.run(k, Gen.simulate(normal_model(), [@ys]), samples: 1) end
  end

  test "smc_step errors" do
    s = VI.smc_init(ssm(), [1, 0.0], %{0 => %{y: 0.1}}, 4, key: Mx.Random.key(0))
    assert_raise ArgumentError, ~r/resampling: must be/, fn -> VI.smc_step(s, [2, 0.0], %{1 => %{y: 0.0}}, resampling: :stratified) end
    assert_raise ArgumentError, ~r/ess_threshold/, fn -> VI.smc_step(s, [2, 0.0], %{1 => %{y: 0.0}}, ess_threshold: 2) end
    assert_raise ArgumentError, ~r/rejuvenate/, fn -> VI.smc_step(s, [2, 0.0], %{1 => %{y: 0.0}}, rejuvenate: :mh) end
    assert_raise ArgumentError, ~r/non-empty list/, fn -> VI.smc(ssm(), &[&1 + 1, 0.0], [], 4) end
  end

  # ---- MH and MALA over n independent chains ------------------------------------------------------

  # After burn-in the n chains' values are n independent posterior draws: the mean is within
  # 4 sd/√n of the exact mean, and the sample variance within 4 of its standard errors,
  # σ²·√(2/(n−1)) for normal draws.
  defp assert_posterior_draws(xs) do
    n = length(xs)
    m = Enum.sum(xs) / n
    v = Enum.sum(Enum.map(xs, &((&1 - m) ** 2))) / (n - 1)
    assert abs(m - @post_mean) <= 4 * :math.sqrt(@post_var / n), "mean #{m} vs #{@post_mean}"
    assert abs(v - @post_var) <= 4 * @post_var * :math.sqrt(2 / (n - 1)), "variance #{v} vs #{@post_var}"
  end

  defp chains(kernel, steps, n) do
    {t, _} = Gen.vgenerate(normal_model(), [@ys], normal_observations(@ys), n, key: Mx.Random.key(20))
    parent = self()
    count = fn %{accepted: a} -> send(parent, {:accepted, a |> Mx.as_type(:s64) |> Mx.sum() |> Mx.to_number()}) end
    [xs] = VI.run(kernel, t, samples: 1, burn: steps - 1, key: Mx.Random.key(21), select: &Mx.to_list(&1[:mu]), callback: count)
    accepted = for _ <- 1..steps, do: assert_received({:accepted, a}) && a
    {xs, Enum.sum(accepted) / (steps * n)}
  end

  test "vectorized MH: 2000 chains after burn-in are posterior draws" do
    # Independence proposal from the prior N(0, 4): sup π/q ≈ 6.2 on this posterior, so the
    # distance to the target shrinks by 1 − 1/6.2 per step: 0.84^80 ≈ 1e-6 after 80 steps.
    {xs, rate} = chains(fn t, opts -> Gen.Inference.vmh(t, Gen.select(:mu), opts) end, 80, 2000)
    assert rate > 0.1
    assert_posterior_draws(xs)
  end

  test "vectorized MALA: per-chain gradients, 2000 chains after burn-in are posterior draws" do
    {t, _} = Gen.vgenerate(normal_model(), [@ys], normal_observations(@ys), 3, key: Mx.Random.key(30))
    {_lp, g} = VI.choice_gradients(t, Gen.select(:mu))

    # Row i is the scalar gradient of particle i: d/dmu log p = -mu/4 + Σ(y - mu).
    expected = Enum.map(Mx.to_list(t[:mu]), fn mu -> -mu / 4 + Enum.sum(Enum.map(@ys, &(&1 - mu))) end)
    assert_all_close(Mx.to_list(g[:mu]), expected)

    # τ = 0.05 (step √(2τ) ≈ 0.32 against a posterior sd of 0.44): the drift contracts the mean
    # by 1 − τ/σ² ≈ 0.74 per step, so 150 steps leave no trace of the prior start.
    {xs, rate} = chains(fn t, opts -> Gen.Inference.vmala(t, Gen.select(:mu), [tau: 0.05] ++ opts) end, 150, 2000)
    assert rate > 0.5
    assert_posterior_draws(xs)
  end

  # ---- adaptive MALA and HMC over n chains (issue 10 item 12) ---------------------------------

  # y = w0 + w1·x + N(0, 0.5²), w ~ N((0, 0), diag(1, 4)), written for one particle (w0 + w1·xs is a
  # vector per particle); its Gaussian posterior: Gen.Conjugate.linear_regression/5.
  @lr_x [-1.2, -0.6, -0.1, 0.4, 0.9, 1.5]
  @lr_y [-1.9, -0.8, 0.3, 0.7, 1.9, 2.8]

  defp line do
    gen(fn xs ->
      w0 = trace({:w, 0}, Gen.Dist.normal(0.0, 1.0))
      w1 = trace({:w, 1}, Gen.Dist.normal(0.0, 2.0))
      trace(:y, Gen.Dist.normal(Mx.add(w0, Mx.multiply(w1, xs)), 0.5))
    end)
  end

  defp line_posterior, do: Gen.Conjugate.linear_regression(Enum.map(@lr_x, &[1.0, &1]), @lr_y, [0.0, 0.0], [1.0, 4.0], 0.5)

  # n independent chains' final values, per coordinate: mean within 4 sd/√n, variance within 4 of
  # its standard errors var·√(2/(n−1)) (normal posteriors).
  defp assert_draws(xs, mean, var) do
    n = length(xs)
    m = Enum.sum(xs) / n
    v = Enum.sum(Enum.map(xs, &((&1 - m) ** 2))) / (n - 1)
    assert abs(m - mean) <= 4 * :math.sqrt(var / n), "mean #{m} vs #{mean}"
    assert abs(v - var) <= 4 * var * :math.sqrt(2 / (n - 1)), "variance #{v} vs #{var}"
  end

  # Dual averaging's identity: since its last restart (the end of the last metric window, 250 of 300
  # warmup iterations), the mean acceptance of its iterates is δ − γ(μ − x_t)(t + t₀)/t^1.5; with
  # t = 50, γ = 0.05, t₀ = 10 and |μ − x_t| ≲ 2·log 10 that is within 0.02 of δ: 0.05 bounds it.
  defp assert_target(r, delta) do
    tail = Enum.take(r.warmup_accept, -50)
    mean = Enum.sum(tail) / 50
    assert abs(mean - delta) <= 0.05, "acceptance #{mean} in the last warmup window vs target #{delta}"
  end

  # The metric pooled over n chains in the last window estimates each posterior variance from at
  # least n independent draws: relative standard error √(2/n), 4 of them.
  defp assert_metric(r, vars, n) do
    for {m, v} <- Enum.zip(r.inv_metric, vars), do: assert(abs(m - v) <= 4 * v * :math.sqrt(2 / n), "metric #{m} vs variance #{v}")
  end

  test "adapted vectorized MALA and HMC reach the target acceptance and the exact normal–normal posterior" do
    n = 400
    {t, _} = Gen.vgenerate(normal_model(), [@ys], normal_observations(@ys), n, key: Mx.Random.key(50))

    for {alg, delta, seed} <- [{:mala, 0.574, 51}, {:hmc, 0.8, 52}] do
      r = VI.sample(t, Gen.select(:mu), algorithm: alg, warmup: 300, samples: 1, key: Mx.Random.key(seed), select: &Mx.to_list(&1[:mu]))
      assert Mx.describe(r.step_size) == "f64[#{n}]" and length(Enum.uniq(Mx.to_list(r.step_size))) == n
      assert_target(r, delta)
      assert_draws(hd(r.samples), @post_mean, @post_var)
      assert_metric(r, [@post_var], n)
    end
  end

  test "adapted vectorized HMC and MALA on a regression: target acceptance, exact posterior, the metric its variances" do
    n = 400
    %{mean: [m0, m1], cov: [[v0, c], [_, v1]]} = line_posterior()
    xs = Mx.tensor(@lr_x, type: :f64)
    {t, _} = Gen.vgenerate(line(), [xs], %{y: Mx.tensor(@lr_y, type: :f64)}, n, key: Mx.Random.key(60))
    select = fn t -> [Mx.to_list(t[{:w, 0}]), Mx.to_list(t[{:w, 1}])] end

    for {alg, delta, seed} <- [{:hmc, 0.8, 61}, {:mala, 0.574, 62}] do
      r = VI.sample(t, Gen.select([{:w, 0}, {:w, 1}]), algorithm: alg, warmup: 300, samples: 1, key: Mx.Random.key(seed), select: select)
      assert_target(r, delta)
      [w0s, w1s] = hd(r.samples)
      assert_draws(w0s, m0, v0)
      assert_draws(w1s, m1, v1)
      # Their covariance within 4 standard errors √((v₀v₁ + c²)/n).
      {a, b} = {Enum.sum(w0s) / n, Enum.sum(w1s) / n}
      cov = Enum.zip_with(w0s, w1s, fn x, y -> (x - a) * (y - b) end) |> Enum.sum() |> Kernel./(n - 1)
      assert abs(cov - c) <= 4 * :math.sqrt((v0 * v1 + c * c) / n), "covariance #{cov} vs #{c}"
      assert_metric(r, [v0, v1], n)
    end
  end

  # Eight schools, non-centred (θ = μ + τ·η), with log τ ~ N(1, 1) so that every latent is real-valued.
  @school_y [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
  @school_sigma [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]

  defp schools do
    gen(fn sigma ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 5.0))
      log_tau = trace(:log_tau, Gen.Dist.normal(1.0, 1.0))
      eta = trace(:eta, Gen.Dist.normal(Mx.zeros({8}, type: :f64), 1.0))
      trace(:y, Gen.Dist.normal(Mx.add(mu, Mx.multiply(Mx.exp(log_tau), eta)), sigma))
    end)
  end

  test "a hierarchical model started from the prior: fixed-step MALA leaves chains stuck (and says so), adapted chains all move" do
    import ExUnit.CaptureLog
    n = 200
    sel = Gen.select([:mu, :log_tau, :eta])
    {t, _} = Gen.vgenerate(schools(), [f64(@school_sigma)], %{y: f64(@school_y)}, n, key: Mx.Random.key(70))
    start = Mx.to_list(t[:mu])

    fixed = fn t, o -> Gen.Inference.vmala(t, sel, [tau: 1.0] ++ o) end
    log = capture_log(fn -> VI.run(fixed, t, samples: 1, burn: 49, key: Mx.Random.key(71)) end)
    assert log =~ ~r/Gen.Inference.Vectorized.run: \d+ of #{n} chains never accepted a move in 50 iterations/

    for {alg, seed} <- [{:hmc, 72}, {:mala, 73}] do
      log =
        capture_log(fn ->
          r = VI.sample(t, sel, algorithm: alg, warmup: 200, samples: 20, key: Mx.Random.key(seed), select: &Mx.to_list(&1[:mu]))
          # Every chain moved away from its prior draw, and every chain accepts a fair share.
          assert Enum.zip(List.last(r.samples), start) |> Enum.all?(fn {a, b} -> a != b end)
          assert Enum.all?(Mx.to_list(r.accept_rate), &(&1 >= 0.05))
        end)

      refute log =~ "Gen.Inference.Vectorized.sample"
    end
  end

  test "sample warns when acceptance stays near 0 or near 1; hmc and sample check their options" do
    import ExUnit.CaptureLog
    {t, _} = Gen.vgenerate(normal_model(), [@ys], normal_observations(@ys), 50, key: Mx.Random.key(80))
    sel = Gen.select(:mu)
    fixed = fn step -> fn -> VI.sample(t, sel, algorithm: :mala, warmup: 0, samples: 20, step_size: step, adapt_step_size: false, key: Mx.Random.key(81)) end end

    # A step 100 posterior sds long is almost never accepted; one of 10⁻⁵ always is.
    assert capture_log(fixed.(44.0)) =~ ~r/Gen.Inference.Vectorized.sample: \d+ of 50 chains accepted under 5% of their proposals/
    assert capture_log(fixed.(1.0e-5)) =~ ~r/Gen.Inference.Vectorized.sample: the chains accepted 100.0% of their proposals .*too small to explore/

    assert_raise ArgumentError, ~r/algorithm: must be :hmc or :mala/, fn -> VI.sample(t, sel, algorithm: :nuts) end
    assert_raise ArgumentError, ~r/n_leapfrog: is for algorithm: :hmc/, fn -> VI.sample(t, sel, algorithm: :mala, n_leapfrog: 3) end
    assert_raise ArgumentError, ~r/target_accept: must lie in \(0, 1\)/, fn -> VI.sample(t, sel, target_accept: 1.5) end
    assert_raise ArgumentError, ~r/inv_metric: must be a list of 1 positive numbers/, fn -> VI.hmc(t, sel, step_size: 0.1, inv_metric: [1.0, 2.0]) end
    assert_raise ArgumentError, ~r/step_size: must be a positive number or an f64 \[50\] array/, fn -> VI.hmc(t, sel, step_size: -1.0) end
    assert_raise ArgumentError, ~r/unknown option steps: \(did you mean step_size:\?\)/, fn -> VI.sample(t, sel, steps: 3) end
  end
end

defmodule Gen.VectorizedMemoryTest do
  # Not async: Mx.Memory.live_arrays is a global count.
  use ExUnit.Case, async: false
  import Gen
  import Gen.TestHelpers, only: [settled_live: 0]

  test "memory: 2000 vectorized MH iterations over 100 chains keep live arrays flat" do
    m = gen(fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 2.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end)
    {t, _} = Gen.vgenerate(m, [], %{y: 1.0}, 100, key: Mx.Random.key(0))
    step = fn t, i -> elem(Gen.Inference.vmh(t, Gen.select(:mu), key: Mx.Random.fold_in(Mx.Random.key(1), i)), 0) end
    # Warm up (caches, lazily created constants), then take the baseline after a GC.
    t = Enum.reduce(1..100, t, &step.(&2, &1))
    base = settled_live()

    {t, live} =
      Enum.reduce(1..2000, {t, []}, fn i, {t, live} ->
        t = step.(t, i)
        {t, if(rem(i, 200) == 0, do: [settled_live() | live], else: live)}
      end)

    assert Mx.describe(t[:mu]) == "f64[100]"
    # The loop holds one vectorized trace (2 choices, score, retval) and an iteration's keys and
    # draws: a few dozen arrays. A leak of one array per iteration would add 200 between checkpoints.
    assert Enum.max(live) - base <= 60, "live arrays #{inspect(Enum.reverse(live))} vs baseline #{base}"
    assert Enum.max(live) - Enum.min(live) <= 60
  end
end
