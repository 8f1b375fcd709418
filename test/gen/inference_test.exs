defmodule Gen.InferenceTest do
  # Not async: the memory test reads Mx.Memory.live_arrays, a global count.
  use ExUnit.Case, async: false
  import Gen.ChainCheck
  import Gen.TestHelpers, only: [settled_live: 0]
  import Gen
  alias Gen.Inference
  alias Gen.Inference.Kernel

  doctest Gen.Inference
  doctest Gen.Inference.Kernel

  # ---- normal–normal: mu ~ N(0, 2²), y_i ~ N(mu, 1), i = 1..5 -------------------------

  # The normal–normal model mu ~ N(0, 2²), y_i ~ N(mu, 1) and its exact posterior: test/support/chain_check.ex.
  @ys Gen.ChainCheck.normal_ys()
  @post_var Gen.ChainCheck.normal_posterior().var
  @post_mean Gen.ChainCheck.normal_posterior().mean

  # Self-normalized mean, Kish's ESS = 1/Σw̄², and the log-ML standard error by the delta
  # method: Var(log Ẑ) ≈ Var(w)/(n·E[w]²) = (n·Σw̄² − 1)/n.
  defp weighted_stats(traces, lnw) do
    w = lnw |> Mx.exp() |> Mx.to_list()
    xs = Enum.map(traces, &Mx.to_number(&1[:mu]))
    n = length(w)
    sum_sq = Enum.sum(Enum.map(w, &(&1 * &1)))
    mean = Enum.zip(w, xs) |> Enum.map(fn {wi, x} -> wi * x end) |> Enum.sum()
    %{mean: mean, ess: 1.0 / sum_sq, lml_se: :math.sqrt((n * sum_sq - 1) / n)}
  end

  describe "importance sampling" do
    test "prior proposal: posterior mean within 4 standard errors (ESS of the weights)" do
      {traces, lnw, lml} =
        Inference.importance_sampling(normal_model(), [@ys], normal_observations(@ys), 2000,
          key: Mx.Random.key(11)
        )

      assert length(traces) == 2000
      assert Mx.describe(lnw) == "f64[2000]"
      assert abs(Mx.to_number(Mx.logsumexp(lnw))) < 1.0e-12
      s = weighted_stats(traces, lnw)
      assert s.ess > 100
      assert abs(s.mean - @post_mean) <= 4 * :math.sqrt(@post_var / s.ess)
      # Four delta-method standard errors (a one-SE bound fails for about a third of keys).
      assert abs(Mx.to_number(lml) - normal_log_ml(@ys)) <= 4 * s.lml_se
      assert s.lml_se < 0.1
    end

    test "custom proposal: weight is model generate weight minus proposal score" do
      q = gen(fn -> trace(:mu, Gen.Dist.normal(1.0, 1.0)) end)
      opts = [key: Mx.Random.key(12), proposal: {q, []}]

      {traces, lnw, lml} =
        Inference.importance_sampling(normal_model(), [@ys], normal_observations(@ys), 2000, opts)

      s = weighted_stats(traces, lnw)
      assert abs(s.mean - @post_mean) <= 4 * :math.sqrt(@post_var / s.ess)
      assert abs(Mx.to_number(lml) - normal_log_ml(@ys)) <= 4 * s.lml_se

      # One particle by hand: log p(mu, ys) − log N(mu; 1, 1), normalized over the particles.
      {[t], lnw1, lml1} =
        Inference.importance_sampling(normal_model(), [@ys], normal_observations(@ys), 1, opts)

      mu = Mx.to_number(t[:mu])

      hand =
        Gen.TestHelpers.ln_normal(mu, 0.0, 2.0) +
          Enum.sum(Enum.map(@ys, &Gen.TestHelpers.ln_normal(&1, mu, 1.0))) -
          Gen.TestHelpers.ln_normal(mu, 1.0, 1.0)

      assert abs(Mx.to_number(lml1) - hand) < 1.0e-10
      assert Mx.to_list(lnw1) == [0.0]
    end

    test "same key, same particles; importance_resampling returns a constrained trace" do
      obs = normal_observations(@ys)

      {a, _, la} =
        Inference.importance_sampling(normal_model(), [@ys], obs, 5, key: Mx.Random.key(3))

      {b, _, lb} =
        Inference.importance_sampling(normal_model(), [@ys], obs, 5, key: Mx.Random.key(3))

      assert Enum.map(a, &Mx.to_number(&1[:mu])) == Enum.map(b, &Mx.to_number(&1[:mu]))
      assert Mx.to_number(la) == Mx.to_number(lb)

      {t, lml} =
        Inference.importance_resampling(normal_model(), [@ys], obs, 50, key: Mx.Random.key(4))

      assert Mx.to_number(t[{:y, 3}]) == 2.4
      assert is_float(Mx.to_number(lml))
    end

    test "errors name the problem" do
      assert_raise ArgumentError, ~r/positive integer/, fn ->
        Inference.importance_sampling(normal_model(), [@ys], normal_observations(@ys), 0)
      end

      assert_raise ArgumentError, ~r/proposal: must be/, fn ->
        Inference.importance_sampling(normal_model(), [@ys], normal_observations(@ys), 2, proposal: :nope)
      end
    end
  end

  describe "Metropolis–Hastings" do
    test "selection (regenerate from the prior): normal–normal posterior mean and variance" do
      {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(20))

      xs =
        Inference.run(Kernel.mh(Gen.select(:mu)), t,
          samples: 2000,
          burn: 200,
          key: Mx.Random.key(21),
          select: &Mx.to_number(&1[:mu])
        )

      assert length(xs) == 2000
      assert_posterior(xs, @post_mean, @post_var)
    end

    test "random-walk custom proposal: normal–normal posterior mean and variance" do
      q = gen(fn t, s -> trace(:mu, Gen.Dist.normal(t[:mu], s)) end)
      {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(30))

      xs =
        Inference.run(Kernel.mh(q, [0.7]), t,
          samples: 2000,
          burn: 200,
          key: Mx.Random.key(31),
          select: &Mx.to_number(&1[:mu])
        )

      assert_posterior(xs, @post_mean, @post_var)
    end

    test "asymmetric custom proposal (truncated normal walk): beta–bernoulli posterior" do
      flips = [1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 1] |> Enum.map(&(&1 == 1))
      heads = Enum.count(flips, & &1)

      model =
        gen(fn n ->
          p = trace(:p, Gen.Dist.beta(2.0, 2.0))
          for i <- 0..(n - 1), do: trace({:flip, i}, Gen.Dist.bernoulli(p))
          p
        end)

      obs = Gen.choicemap(for({f, i} <- Enum.with_index(flips), into: %{}, do: {{:flip, i}, f}))
      # Posterior Beta(2 + heads, 2 + tails).
      {a, b} = {2.0 + heads, 2.0 + (20 - heads)}
      mean = a / (a + b)
      var = a * b / ((a + b) * (a + b) * (a + b + 1))
      # The truncation makes q asymmetric, so a missing backward term would bias the chain.
      q = gen(fn t -> trace(:p, Gen.Dist.truncated_normal(t[:p], 0.2, 0.0, 1.0)) end)
      {t, _} = Gen.generate(model, [20], obs, key: Mx.Random.key(40))

      xs =
        Inference.run(Kernel.mh(q, []), t,
          samples: 2000,
          burn: 200,
          key: Mx.Random.key(41),
          select: &Mx.to_number(&1[:p])
        )

      assert_posterior(xs, mean, var)
    end

    test "mh/3 and mh/4 directly: observed choices never move; a -Inf move is rejected" do
      {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(50))
      {t2, _} = Inference.mh(t, Gen.select(:mu), key: Mx.Random.key(51))
      assert Mx.to_number(t2[{:y, 0}]) == 0.8

      # A proposal onto the edge of a uniform prior's support is never accepted.
      m = gen(fn -> trace(:x, Gen.Dist.uniform(0.0, 1.0)) end)
      q = gen(fn _t -> trace(:x, Gen.Dist.uniform(5.0, 6.0)) end)
      {t, _} = Gen.generate(m, [], %{x: 0.5})
      assert {^t, false} = Inference.mh(t, q, [], key: Mx.Random.key(52))
    end

    test "a selection that selects no choice raises, naming it and the trace's addresses (as NUTS and HMC do)" do
      m = gen(fn -> s = trace(:sigam, Gen.Dist.gamma(2.0, rate: 2.0)); trace(:y, Gen.Dist.normal(0.0, s)) end)
      {t, _} = Gen.generate(m, [], %{y: 0.3}, key: Mx.Random.key(53))
      msg = ~r/Gen.Inference.mh: the selection #Gen.Selection<\[:sigma\]> selects no choice of the trace \(the trace's addresses are :sigam, :y\)/
      assert_raise ArgumentError, msg, fn -> Inference.mh(t, Gen.select(:sigma), key: Mx.Random.key(54)) end
      # The kernel as a value raises at its first step, under the driver too.
      assert_raise ArgumentError, msg, fn -> Inference.run(Kernel.mh(Gen.select(:sigma)), t, samples: 10, key: Mx.Random.key(55)) end
      # Each chain of a vectorized trace alike.
      {vt, _} = Gen.vgenerate(m, [], %{y: 0.3}, 4, key: Mx.Random.key(56))
      assert_raise ArgumentError, ~r/Vectorized.mh: the selection #Gen.Selection<\[:sigma\]> selects no choice .*:sigam, :y/, fn ->
        Inference.vmh(vt, Gen.select(:sigma), key: Mx.Random.key(57))
      end

      # Under the selected subtree, a nested address counts; the correct name moves the chain.
      assert {_t, _acc} = Inference.mh(t, Gen.select(:sigam), key: Mx.Random.key(58))
      many = gen(fn -> for i <- 1..30, do: trace({:x, i}, Gen.Dist.normal(0.0, 1.0)) end)
      assert_raise ArgumentError, ~r/addresses are \{:x, 1\}, .*\{:x, 20\}, \.\.\. \(30 in all\)/, fn ->
        Inference.mh(Gen.simulate(many, [], key: Mx.Random.key(59)), Gen.select(:x))
      end
    end
  end

  describe "kernel composition and the driver" do
    setup do
      m =
        gen(fn -> {trace(:a, Gen.Dist.normal(0.0, 1.0)), trace(:b, Gen.Dist.normal(0.0, 1.0))} end)

      %{trace: Gen.simulate(m, [], key: Mx.Random.key(60))}
    end

    test "chain and cycle move each part; mix picks by weight; repeat counts", %{trace: t} do
      ka = Kernel.mh(Gen.select(:a))
      kb = Kernel.mh(Gen.select(:b))
      {t2, true} = Kernel.cycle([ka, kb], 4).(t, key: Mx.Random.key(61))

      assert Mx.to_number(t2[:a]) != Mx.to_number(t[:a]) and
               Mx.to_number(t2[:b]) != Mx.to_number(t[:b])

      # Regenerate from the prior under the prior: weight 0, always accepted; only :a moves.
      {t3, true} = Kernel.mix([ka, kb], [1.0, 0.0]).(t, key: Mx.Random.key(62))

      assert Mx.to_number(t3[:b]) == Mx.to_number(t[:b]) and
               Mx.to_number(t3[:a]) != Mx.to_number(t[:a])

      counter = fn tr, _ ->
        {tr, (Process.put(:calls, (Process.get(:calls) || 0) + 1) || true) && false}
      end

      Process.put(:calls, 0)
      {^t, false} = Kernel.repeat(counter, 7).(t, key: Mx.Random.key(63))
      assert Process.get(:calls) == 7

      # Mixing draws: with equal weights both kernels are chosen over 200 draws.
      picks =
        for i <- 0..199 do
          {tr, _} = Kernel.mix([ka, kb], [1, 1]).(t, key: Mx.Random.key(100 + i))
          if Mx.to_number(tr[:a]) != Mx.to_number(t[:a]), do: :a, else: :b
        end

      # Binomial(200, 1/2): 100 ± 4σ (σ ≈ 7.1).
      assert abs(Enum.count(picks, &(&1 == :a)) - 100) <= 28
    end

    test "run: burn, thin, callback, same key same chain", %{trace: t} do
      k = Kernel.mh(Gen.select(:a))
      parent = self()
      cb = fn info -> send(parent, {:it, info.iteration, info.accepted}) end
      xs = Inference.run(k, t, samples: 4, burn: 3, thin: 2, key: Mx.Random.key(70), callback: cb)
      assert length(xs) == 4 and Enum.all?(xs, &match?(%Gen.Trace{}, &1))
      for i <- 0..10, do: assert_received({:it, ^i, _})
      refute_received {:it, 11, _}

      # Kept: iterations 4, 6, 8, 10 (0-based), the last of each thinning block after burn-in.
      all =
        Inference.run(k, t, samples: 11, key: Mx.Random.key(70), select: &Mx.to_number(&1[:a]))

      assert Enum.map(xs, &Mx.to_number(&1[:a])) == Enum.map([4, 6, 8, 10], &Enum.at(all, &1))
    end

    test "errors name the option or the contract", %{trace: t} do
      k = Kernel.mh(Gen.select(:a))

      assert_raise ArgumentError, ~r/samples: must be an integer >= 0 \(required\)/, fn ->
        Inference.run(k, t, [])
      end

      assert_raise ArgumentError, ~r/thin: must be/, fn ->
        Inference.run(k, t, samples: 1, thin: 0)
      end

      assert_raise ArgumentError, ~r/select: must be a function/, fn ->
        Inference.run(k, t, samples: 1, select: 3)
      end

      assert_raise ArgumentError, ~r/must return \{new_trace, accepted\?\}/, fn ->
        Inference.run(fn tr, _ -> tr end, t, samples: 1)
      end

      assert_raise ArgumentError, ~r/weights must be 2 non-negative/, fn ->
        Kernel.mix([k, k], [1.0])
      end

      assert_raise ArgumentError, ~r/expected kernels/, fn -> Kernel.chain([]) end
      assert_raise ArgumentError, ~r/Gen.Selection/, fn -> Kernel.mh(:a) end
    end

    test "memory: 10^4 MH iterations keep live arrays flat" do
      {t, _} = Gen.generate(normal_model(), [@ys], normal_observations(@ys), key: Mx.Random.key(80))
      k = Kernel.mh(Gen.select(:mu))
      select = &Mx.to_number(&1[:mu])
      # Warm up (caches, lazily created constants), then take the baseline after a GC.
      _ = Inference.run(k, t, samples: 200, key: Mx.Random.key(81), select: select)
      base = settled_live()

      parent = self()

      cb = fn %{iteration: i} ->
        if rem(i + 1, 1000) == 0, do: send(parent, {:live, settled_live()})
      end

      xs =
        Inference.run(k, t, samples: 10_000, key: Mx.Random.key(82), select: select, callback: cb)

      assert length(xs) == 10_000
      live = for _ <- 1..10, do: assert_received({:live, n}) && n
      live = live ++ [settled_live()]
      # At a checkpoint the run holds one trace (score, 6 choices, retval) and this
      # iteration's keys and draws: a few dozen arrays. A leak of one array per
      # iteration would add 1000 between checkpoints.
      assert Enum.max(live) - base <= 60, "live arrays #{inspect(live)} vs baseline #{base}"
      assert Enum.max(live) - Enum.min(live) <= 60
    end
  end
end
