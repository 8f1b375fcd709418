defmodule Gen.Inference.VectorizedCompiledTest do
  # The vectorized algorithms on compiled tapes (Gen.Inference.Vectorized with compile: true) against
  # their uncompiled runs. Not async: the tests read the shared compiled functions' cache counters.
  use ExUnit.Case, async: false
  import Gen
  import Gen.ChainCheck, only: [normal_model: 0, normal_observations: 1]
  import Gen.TestModels, only: [small_model: 0]
  alias Gen.Inference.Vectorized, as: VI

  @ys Gen.ChainCheck.normal_ys()
  @post_mean Gen.ChainCheck.normal_posterior().mean

  # Two terms alike: the same structure and plain terms, arrays of one shape and type whose
  # elements agree within rounding (the compiled tape may fuse and associate differently).
  defp assert_same_tree(%Mx.Array{} = a, %Mx.Array{} = b) do
    assert {Mx.shape(a), Mx.type(a)} == {Mx.shape(b), Mx.type(b)}

    for {x, y} <- Enum.zip(Mx.to_flat_list(a), Mx.to_flat_list(b)) do
      assert x == y or (is_float(x) and is_float(y) and abs(x - y) <= 1.0e-12 * max(1.0, abs(y))),
             "#{inspect(x)} vs #{inspect(y)}"
    end
  end

  defp assert_same_tree(a, b) when is_map(a) and is_map(b) do
    assert Enum.sort(Map.keys(a)) == Enum.sort(Map.keys(b))
    for {k, v} <- Map.to_list(a), do: assert_same_tree(v, Map.fetch!(b, k))
  end

  defp assert_same_tree(a, b) when is_list(a) and is_list(b) do
    assert length(a) == length(b)
    Enum.zip_with(a, b, &assert_same_tree/2)
  end

  defp assert_same_tree(a, b) when is_tuple(a) and is_tuple(b),
    do: assert_same_tree(Tuple.to_list(a), Tuple.to_list(b))

  defp assert_same_tree(a, b), do: assert(a == b)

  test "compiled vectorized importance sampling: the uncompiled run's weights, log ML and trace for the same key, replayed" do
    q = gen(fn -> trace(:mu, Gen.Dist.normal(@post_mean, 1.0)) end)

    cases = [
      {small_model(), [Mx.tensor(0.3, type: :f64)], %{y: 0.7}, []},
      {normal_model(), [@ys], normal_observations(@ys), []},
      {normal_model(), [@ys], normal_observations(@ys), [proposal: {q, []}]}
    ]

    for {m, args, obs, opts} <- cases, seed <- [1, 2] do
      before = VI.compiled_stats(:importance_sampling) || %{compiles: 0, hits: 0}

      run = fn compile ->
        VI.importance_sampling(
          m,
          args,
          obs,
          40,
          [key: Mx.Random.key(seed), compile: compile] ++ opts
        )
      end

      {t1, lnw1, lml1} = run.(true)
      {t2, lnw2, lml2} = run.(false)
      assert_same_tree({lnw1, lml1}, {lnw2, lml2})
      assert_same_tree(t1, t2)
      assert Map.keys(t1.subtraces) != [] and t1.gen_fn == m and t1.args == args
      # Seed 2 replays seed 1's tape (the key, observed values and argument arrays are inputs).
      now = VI.compiled_stats(:importance_sampling)
      if seed == 2, do: assert(now.compiles == before.compiles and now.hits == before.hits + 1)
    end

    # New observed values (the same addresses) replay the tape too.
    before = VI.compiled_stats(:importance_sampling)

    {_, lnw1, _} =
      VI.importance_sampling(
        normal_model(),
        [@ys],
        normal_observations(Enum.map(@ys, &(&1 + 1))),
        40,
        key: Mx.Random.key(3)
      )

    {_, lnw2, _} =
      VI.importance_sampling(
        normal_model(),
        [@ys],
        normal_observations(Enum.map(@ys, &(&1 + 1))),
        40,
        key: Mx.Random.key(3),
        compile: false
      )

    assert_same_tree(lnw1, lnw2)
    assert VI.compiled_stats(:importance_sampling).compiles == before.compiles
  end

  test "compiled importance sampling: observed values come back as lazy broadcasts of the observations, not tape outputs" do
    obs = normal_observations(@ys)
    {t, _, _} = VI.importance_sampling(normal_model(), [@ys], obs, 30, key: Mx.Random.key(5))
    [{path, y} | _] = Gen.Choicemap.to_list(obs)
    value = t |> Gen.get_choices() |> Gen.Choicemap.to_list() |> Map.new() |> Map.fetch!(path)
    site = t.subtraces[path]
    # The choicemap's value and the site's record (value, return value) are broadcasts made after
    # the replay; the draws and scores are the tape's outputs.
    for a <- [value, site.choices.value, site.retval], do: refute(Mx.evaluated?(a))
    assert Mx.evaluated?(t[:mu]) and Mx.evaluated?(site.score)

    for a <- [value, site.choices.value, site.retval],
        do: assert(Mx.shape(a) == {30} and Mx.to_list(a) == List.duplicate(Mx.to_number(y), 30))
  end

  test "compiled vectorized importance sampling falls back for a model that needs a value while tracing, with the same results" do
    # Elixir control flow on an argument array's value: the tape cannot hold it.
    m =
      gen(fn s ->
        scale = if Mx.to_number(s) > 0, do: 2.0, else: 0.5
        mu = trace(:mu, Gen.Dist.normal(0.0, scale))
        trace(:y, Gen.Dist.normal(mu, 1.0))
      end)

    before = VI.compiled_stats(:importance_sampling) || %{fallbacks: 0}

    # One signature (an f64 scalar argument): it falls back once, and both values then run uncompiled.
    for s <- [1.0, -1.0] do
      args = [Mx.tensor(s, type: :f64)]
      {t1, lnw1, lml1} = VI.importance_sampling(m, args, %{y: 0.4}, 30, key: Mx.Random.key(4))

      {t2, lnw2, lml2} =
        VI.importance_sampling(m, args, %{y: 0.4}, 30, key: Mx.Random.key(4), compile: false)

      assert_same_tree({t1, lnw1, lml1}, {t2, lnw2, lml2})
      assert Mx.to_number(t1[:mu] |> Mx.square() |> Mx.mean()) > if(s > 0, do: 1.0, else: 0.0)
    end

    assert VI.compiled_stats(:importance_sampling).fallbacks == before.fallbacks + 1

    # Control flow on a sampled (per-particle) value cannot run vectorized: the same error either way.
    bad =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))
        if Mx.to_number(x) > 0, do: 1, else: 0
      end)

    for c <- [true, false] do
      assert_raise ArgumentError, ~r/read a per-particle value as an Elixir number/, fn ->
        VI.importance_sampling(bad, [], %{}, 5, key: Mx.Random.key(1), compile: c)
      end
    end

    assert_raise ArgumentError, ~r/compile: must be true or false/, fn ->
      VI.importance_sampling(m, [Mx.tensor(1.0)], %{y: 0.4}, 3, compile: :yes)
    end
  end

  test "smc_init on the importance-sampling tape: the uncompiled state, an Unfold model included" do
    step =
      gen(fn i, prev ->
        x =
          if i == 0,
            do: trace(:x, Gen.Dist.normal(0.0, 1.0)),
            else: trace(:x, Gen.Dist.normal(Mx.multiply(prev, 0.9), 0.5))

        trace(:y, Gen.Dist.normal(x, 0.3))
        x
      end)

    cases = [
      {Gen.Combinators.unfold(step), [2, 0.0], %{0 => %{y: 0.4}, 1 => %{y: -0.2}}},
      {normal_model(), [@ys], normal_observations(@ys)}
    ]

    for {m, args, obs} <- cases do
      s1 = VI.smc_init(m, args, obs, 25, key: Mx.Random.key(11))
      s2 = VI.smc_init(m, args, obs, 25, key: Mx.Random.key(11), compile: false)
      assert_same_tree(s1, s2)
    end
  end

  # ---- the gradient samplers on the compiled batched gradient --------------------------------------

  defp regression do
    gen(fn xs ->
      a = trace(:a, Gen.Dist.normal(0.0, 2.0))
      b = trace(:b, Gen.Dist.normal(Mx.zeros({2}, type: :f64), 1.0))
      mean = Mx.add(a, Mx.multiply(Mx.sum(b), xs))
      trace(:y, Gen.Dist.normal(mean, 0.5))
    end)
  end

  @xs [0.5, -1.0, 2.0]
  defp regression_trace(n, key) do
    {t, _} =
      Gen.vgenerate(
        regression(),
        [Mx.tensor(@xs, type: :f64)],
        %{y: Mx.tensor([0.3, -0.8, 1.9], type: :f64)},
        n,
        key: Mx.Random.key(key)
      )

    t
  end

  @tag :capture_log
  test "mala, hmc, sample and choice_gradients on the compiled gradient: the dynamic path's gradients and draws for the same key" do
    sel = Gen.select([:a, :b])
    t = regression_trace(16, 5)
    before = VI.compiled_stats(:gradients) || %{compiles: 0, hits: 0}

    assert_same_tree(VI.choice_gradients(t, sel), VI.choice_gradients(t, sel, compile: false))

    assert_same_tree(
      VI.mala(t, sel, tau: 0.05, key: Mx.Random.key(6)),
      VI.mala(t, sel, tau: 0.05, key: Mx.Random.key(6), compile: false)
    )

    hmc = fn c ->
      VI.hmc(t, sel,
        step_size: 0.1,
        n_leapfrog: 4,
        inv_metric: [1.0, 0.5, 2.0],
        key: Mx.Random.key(7),
        compile: c
      )
    end

    assert_same_tree(hmc.(true), hmc.(false))

    sample = fn c ->
      VI.sample(t, sel,
        algorithm: :hmc,
        n_leapfrog: 3,
        warmup: 30,
        samples: 5,
        key: Mx.Random.key(8),
        select: &{&1[:a], &1[:b]},
        compile: c
      )
    end

    r1 = sample.(true)
    r2 = sample.(false)
    assert_same_tree(Map.delete(r1, :trace), Map.delete(r2, :trace))
    assert_same_tree(r1.trace, r2.trace)

    # One structure: every compiled gradient above replayed one tape.
    now = VI.compiled_stats(:gradients)
    assert now.compiles == before.compiles + 1 and now.hits > before.hits + 100

    assert_raise ArgumentError, ~r/compile: must be true or false/, fn ->
      VI.choice_gradients(t, sel, compile: 1)
    end

    assert_raise ArgumentError, ~r/bogus/, fn -> VI.choice_gradients(t, sel, bogus: 1) end
  end

  test "the gradient samplers fall back for a model that reads an argument's value, with the same draws" do
    m =
      gen(fn s ->
        scale = if Mx.to_number(s) > 0, do: 2.0, else: 0.5
        mu = trace(:mu, Gen.Dist.normal(0.0, scale))
        trace(:y, Gen.Dist.normal(mu, 1.0))
      end)

    {t, _} = Gen.vgenerate(m, [Mx.tensor(1.0, type: :f64)], %{y: 0.4}, 12, key: Mx.Random.key(9))
    before = VI.compiled_stats(:gradients) || %{fallbacks: 0}
    mala = fn c -> VI.mala(t, Gen.select(:mu), tau: 0.1, key: Mx.Random.key(10), compile: c) end
    assert_same_tree(mala.(true), mala.(false))
    assert VI.compiled_stats(:gradients).fallbacks == before.fallbacks + 1
  end

  test "memory: compiled vmala iterations and importance-sampling replays keep live arrays flat" do
    import Gen.TestHelpers, only: [settled_live: 0]
    sel = Gen.select([:a, :b])

    step = fn t, i ->
      elem(VI.mala(t, sel, tau: 0.01, key: Mx.Random.fold_in(Mx.Random.key(12), i)), 0)
    end

    is = fn i ->
      VI.importance_sampling(normal_model(), [@ys], normal_observations(@ys), 100,
        key: Mx.Random.key(i)
      )
    end

    # Warm up (tapes, caches), then take the baseline after a GC.
    t = Enum.reduce(1..50, regression_trace(100, 13), &step.(&2, &1))
    for i <- 1..20, do: is.(i)
    base = settled_live()

    {t, live} =
      Enum.reduce(1..1000, {t, []}, fn i, {t, live} ->
        t = step.(t, i)
        is.(i)
        {t, if(rem(i, 200) == 0, do: [settled_live() | live], else: live)}
      end)

    assert Mx.describe(t[:a]) == "f64[100]"
    # The loop holds one trace and an iteration's keys and draws; a leak of one array per
    # iteration would add 200 between checkpoints.
    assert Enum.max(live) - base <= 60,
           "live arrays #{inspect(Enum.reverse(live))} vs baseline #{base}"

    assert Enum.max(live) - Enum.min(live) <= 60
  end
end
