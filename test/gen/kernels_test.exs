defmodule Gen.KernelsTest do
  # Not async: the progress tests capture the VM-wide stderr.
  use ExUnit.Case, async: false
  import ExUnit.CaptureIO
  import Gen.ChainCheck
  import Gen
  alias Gen.Inference
  alias Gen.Inference.{Involutive, Kernel}

  doctest Gen.Inference.Gibbs
  doctest Gen.Inference.Involutive

  # ---- Gibbs ------------------------------------------------------------------------------

  # z ~ Categorical(0.1, 0.2, 0.3, 0.4), b ~ Bernoulli(0.3), y ~ N(z + 2b, 1), y observed.
  @pz [0.1, 0.2, 0.3, 0.4]
  @y 2.5

  defp discrete_model do
    gen(fn ->
      z = trace(:z, Gen.Dist.categorical(logits: Mx.log(Mx.tensor([0.1, 0.2, 0.3, 0.4], type: :f64))))
      b = trace(:b, Gen.Dist.bernoulli(0.3))
      trace(:y, Gen.Dist.normal(Mx.add(Mx.as_type(z, :f64), Mx.multiply(Mx.as_type(b, :f64), 2.0)), 1.0))
    end)
  end

  # The exact posterior over the 8 states (z, b) by enumeration: prior × N(y; z + 2b, 1), normalized.
  defp exact_discrete do
    joint =
      for {pz, z} <- Enum.with_index(@pz), b <- [false, true], into: %{} do
        pb = if b, do: 0.3, else: 0.7
        mean = z + if(b, do: 2, else: 0)
        {{z, b}, pz * pb * :math.exp(-0.5 * (@y - mean) * (@y - mean))}
      end

    total = joint |> Map.values() |> Enum.sum()
    Map.new(joint, fn {k, v} -> {k, v / total} end)
  end

  describe "gibbs" do
    test "one discrete choice: draws are exact and independent, chi-square against the enumerated conditional" do
      {t, _} = Gen.generate(discrete_model(), [], %{y: @y, b: false}, key: Mx.Random.key(1))
      n = 2000

      zs =
        Inference.run(Kernel.gibbs(:z, values: 0..3), t,
          samples: n,
          key: Mx.Random.key(2),
          select: &Mx.to_number(&1[:z])
        )

      # With b fixed at false the conditional of z is p(z) N(y; z, 1), normalized.
      w = for {p, z} <- Enum.with_index(@pz), do: p * :math.exp(-0.5 * (@y - z) * (@y - z))
      probs = Enum.map(w, &(&1 / Enum.sum(w)))
      counts = Enum.frequencies(zs)

      chi2 =
        probs
        |> Enum.with_index()
        |> Enum.map(fn {p, z} -> :math.pow(Map.get(counts, z, 0) - n * p, 2) / (n * p) end)
        |> Enum.sum()

      # Each Gibbs step draws z afresh from its conditional (the chain is i.i.d.), so the
      # statistic is chi-square with 3 degrees of freedom; 16.27 is its 0.999 quantile.
      assert chi2 < 16.27, "chi-square #{chi2}, counts #{inspect(counts)}, expected #{inspect(Enum.map(probs, &(&1 * n)))}"
    end

    test "systematic scan over (z, b): every joint state's frequency within 4 batch-means SE of the exact posterior" do
      {t, _} = Gen.generate(discrete_model(), [], %{y: @y}, key: Mx.Random.key(3))
      k = Kernel.cycle([Kernel.gibbs(:z, values: [0, 1, 2, 3]), Kernel.gibbs(:b)])

      states =
        Inference.run(k, t,
          samples: 3000,
          burn: 20,
          key: Mx.Random.key(4),
          select: &{Mx.to_number(&1[:z]), Mx.to_number(&1[:b])}
        )

      for {state, p} <- exact_discrete() do
        ind = Enum.map(states, &if(&1 == state, do: 1.0, else: 0.0))
        bm = batch_means(ind)
        # The indicator's mean is the state's frequency; its batch-means SE accounts for the
        # chain's autocorrelation. A state of probability p gets a floor of the i.i.d. SE.
        se = max(bm.se, :math.sqrt(p * (1 - p) / length(ind)))
        assert abs(bm.mean - p) <= 4 * se, "state #{inspect(state)}: #{bm.mean} vs #{p}, 4 SE = #{4 * se}"
      end
    end

    test "observed choices stay; values outside the support are never drawn; errors name the fix" do
      {t, _} = Gen.generate(discrete_model(), [], %{y: @y, z: 2}, key: Mx.Random.key(5))

      for i <- 0..19 do
        {t2, true} = Inference.gibbs(t, :z, values: [-1, 0, 1, 2, 3, 7], key: Mx.Random.key(100 + i))
        assert Mx.to_number(t2[:z]) in 0..3
        assert Mx.to_number(t2[:y]) == @y
      end

      assert_raise ArgumentError, ~r/values: is required for the s64 choice at address :z/, fn ->
        Inference.gibbs(t, :z, key: Mx.Random.key(0))
      end

      assert_raise ArgumentError, ~r/no choice at address :nope/, fn ->
        Inference.gibbs(t, :nope, values: [0])
      end

      assert_raise ArgumentError, ~r/every value in values: has probability zero/, fn ->
        Inference.gibbs(t, :z, values: [5, 6], key: Mx.Random.key(0))
      end

      assert_raise ArgumentError, ~r/values: must be a non-empty/, fn ->
        Inference.gibbs(t, :z, values: [], key: Mx.Random.key(0))
      end
    end

    test "values: that do not cover a finite support raise, for every finite distribution" do
      m =
        gen(fn ->
          b = trace(:b, Gen.Dist.bernoulli(0.3))
          c = trace(:c, Gen.Dist.categorical(logits: Mx.log(Mx.tensor([0.2, 0.3, 0.5]))))
          trace(:n, Gen.Dist.binomial(3, 0.4))
          trace(:u, Gen.Dist.discrete_uniform(1, 4))
          trace(:p, Gen.Dist.poisson(2.0))
          x = trace(:x, Gen.Dist.normal(0.0, 1.0))
          mean = x |> Mx.add(Mx.as_type(c, :f64)) |> Mx.add(Mx.as_type(b, :f64))
          trace(:y, Gen.Dist.normal(mean, 1.0))
        end)

      {t, _} = Gen.generate(m, [], %{y: 1.0}, key: Mx.Random.key(6))
      gibbs = fn addr, values -> Inference.gibbs(t, addr, values: values, key: Mx.Random.key(7)) end

      # The whole support: accepted (booleans or 0/1 for a bernoulli; for an unbounded poisson a tail < 1e-5 left out).
      for {addr, values} <- [b: [false, true], b: [0, 1], c: 0..2, n: 0..3, u: 1..4, u: 0..5, p: 0..40] do
        assert {%Gen.Trace{}, true} = gibbs.(addr, values)
      end

      # The mass found is the prior probability of the values given: p(false) = 0.7, P(c <= 1) = 0.5, ...
      # P(n <= 2) = 1 - 0.4³ for n ~ Binomial(3, 0.4); P(p <= 3) = e⁻² (1 + 2 + 2 + 4/3) for p ~ Poisson(2).
      cases = [b: {[0], 0.7}, b: {[false], 0.7}, c: {[0, 1], 0.5}, n: {0..2, 1 - 0.4 ** 3}, u: {1..3, 0.75}] ++
                [p: {0..3, :math.exp(-2.0) * (1 + 2 + 2 + 4 / 3)}]

      for {addr, {values, mass}} <- cases do
        e = assert_raise ArgumentError, fn -> gibbs.(addr, values) end
        assert [_, found] = Regex.run(~r/carry prior probability ([\d.e-]+) of the choice at address #{inspect(addr)}, not 1 \(within 1.0e-5\); give every value of its support/, e.message)
        # f32 categorical log-probabilities round at ~1e-7
        assert abs(String.to_float(found) - mass) < 1.0e-6, "#{addr}: #{found} vs #{mass}"
      end

      assert_raise ArgumentError, ~r/values: \[0, 1, 2, 2\] carry prior probability 1\.49.*; a value is listed twice/, fn -> gibbs.(:c, [0, 1, 2, 2]) end
      assert_raise ArgumentError, ~r/continuous f64 choice, which has no finite support: use MH or a gradient kernel/, fn -> gibbs.(:x, [-1.0, 0.0, 1.0]) end
      # The kernel checks at every step, under the driver.
      assert_raise ArgumentError, ~r/carry prior probability/, fn -> Inference.run(Kernel.gibbs(:c, values: [1, 2]), t, samples: 3) end
    end
  end

  # ---- elliptical slice -------------------------------------------------------------------

  describe "elliptical_slice" do
    test "scalar Gaussian prior, Gaussian likelihood: exact posterior mean and variance" do
      # mu ~ N(1, 2²), y_i ~ N(mu, 1): precision 1/4 + n, mean (1/4 + Σy)/precision.
      ys = [0.3, 1.7, 2.2, 0.9]

      m =
        gen(fn ->
          mu = trace(:mu, Gen.Dist.normal(1.0, 2.0))
          for {_, i} <- Enum.with_index(ys), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
        end)

      obs = for {y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}
      {t, _} = Gen.generate(m, [], obs, key: Mx.Random.key(10))
      prec = 0.25 + length(ys)

      xs =
        Inference.run(Kernel.elliptical_slice(:mu, mean: 1.0, cov: 4.0), t,
          samples: 2000,
          burn: 50,
          key: Mx.Random.key(11),
          select: &Mx.to_number(&1[:mu])
        )

      assert_posterior(xs, (0.25 * 1.0 + Enum.sum(ys)) / prec, 1.0 / prec)
    end

    test "vector choice with a full prior covariance (Cholesky): exact posterior of both coordinates" do
      # x ~ N(m, C) in R², y_j ~ N(x_j, s²): posterior precision P = C⁻¹ + I/s², mean P⁻¹(C⁻¹m + y/s²).
      mean = [0.5, -0.5]
      cov = [[1.0, 0.6], [0.6, 2.0]]
      {s, y} = {0.8, [1.2, 0.4]}

      m =
        gen(fn ->
          x = trace(:x, Gen.Dist.multivariate_normal(Mx.tensor(mean, type: :f64), Mx.tensor(cov, type: :f64)))
          trace(:y0, Gen.Dist.normal(x[0], s))
          trace(:y1, Gen.Dist.normal(x[1], s))
        end)

      {t, _} = Gen.generate(m, [], %{y0: Enum.at(y, 0), y1: Enum.at(y, 1)}, key: Mx.Random.key(12))

      ci = inv2(cov)
      p = add2(ci, [[1 / (s * s), 0.0], [0.0, 1 / (s * s)]])
      post_cov = inv2(p)
      rhs = Enum.zip_with(mul2v(ci, mean), y, fn a, b -> a + b / (s * s) end)
      post_mean = mul2v(post_cov, rhs)

      xs =
        Inference.run(Kernel.elliptical_slice(:x, mean: mean, cov: cov), t,
          samples: 2000,
          burn: 50,
          key: Mx.Random.key(13),
          select: &Mx.to_list(&1[:x])
        )

      for j <- 0..1 do
        assert_posterior(Enum.map(xs, &Enum.at(&1, j)), Enum.at(post_mean, j), Enum.at(Enum.at(post_cov, j), j))
      end
    end

    test "errors name the option" do
      m = gen(fn -> {trace(:x, Gen.Dist.normal(0.0, 1.0)), trace(:k, Gen.Dist.poisson(2.0))} end)
      t = Gen.simulate(m, [], key: Mx.Random.key(14))

      assert_raise ArgumentError, ~r/cov: \(the prior covariance\) must be/, fn ->
        Inference.elliptical_slice(t, :x, mean: 0.0)
      end

      assert_raise ArgumentError, ~r/mean: \(the prior mean\) must be/, fn ->
        Inference.elliptical_slice(t, :x, cov: 1.0)
      end

      assert_raise ArgumentError, ~r/not floating point/, fn ->
        Inference.elliptical_slice(t, :k, mean: 0.0, cov: 1.0)
      end

      assert_raise ArgumentError, ~r/needs a \{d\} choice/, fn ->
        Inference.elliptical_slice(t, :x, mean: 0.0, cov: [[1.0, 0.0], [0.0, 1.0]])
      end

      assert_raise ArgumentError, ~r/does not broadcast/, fn ->
        Inference.elliptical_slice(t, :x, mean: [0.0, 1.0], cov: 1.0)
      end
    end
  end

  # ---- involutive MCMC --------------------------------------------------------------------

  # A random walk as an involution: (mu, d) -> (mu + d, -d), |det J| = |det [[1, 1], [0, -1]]| = 1.
  defp walk, do: fn m, a, _ -> {%{mu: Mx.add(m[:mu], a[:d])}, %{d: Mx.negate(a[:d])}} end

  # Scale moves on positive choices with u ~ LogNormal(0, s): (x, u) -> (x·u, 1/u), |det J| = 1/u.
  defp scale(addr), do: fn m, a, _ -> {%{addr => Mx.multiply(m[addr], a[:u])}, %{u: Mx.reciprocal(a[:u])}} end

  # Swap + scale: (x, y, u) -> (y·u², x·u², 1/u). Applied twice: (x·u²/u², y·u²/u², u).
  # J = [[0, u², 2yu], [u², 0, 2xu], [0, 0, -1/u²]], det = (−u⁴)(−1/u²) = u².
  defp swap_scale do
    fn m, a, _ ->
      u2 = Mx.square(a[:u])
      {%{x: Mx.multiply(m[:y], u2), y: Mx.multiply(m[:x], u2)}, %{u: Mx.reciprocal(a[:u])}}
    end
  end

  defp log_normal_aux, do: gen(fn _t, s -> trace(:u, Gen.Dist.log_normal(0.0, s)) end)

  describe "involutive_mh" do
    test "Gaussian random walk as an involution: normal–normal posterior mean and variance" do
      ys = Gen.ChainCheck.normal_ys()
      m = Gen.ChainCheck.normal_model()
      obs = for {y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}
      {t, _} = Gen.generate(m, [ys], obs, key: Mx.Random.key(20))
      q = gen(fn _t, s -> trace(:d, Gen.Dist.normal(0.0, s)) end)
      prec = 0.25 + 5

      xs =
        Inference.run(Kernel.involutive_mh(q, [0.7], walk()), t,
          samples: 2000,
          burn: 100,
          key: Mx.Random.key(21),
          select: &Mx.to_number(&1[:mu])
        )

      assert_posterior(xs, Enum.sum(ys) / prec, 1.0 / prec)
    end

    test "swap + scale: log |det J| = 2 log u by autodiff, and applying the involution twice is the identity" do
      model = Gen.choicemap(%{x: 3.0, y: 0.5})
      aux = Gen.choicemap(%{u: 1.7})
      lad = Involutive.log_abs_det_jacobian(swap_scale(), model, aux, [])
      assert abs(Mx.to_number(lad) - 2 * :math.log(1.7)) < 1.0e-12

      {c1, a1} = swap_scale().(model, aux, [])
      {c2, a2} = swap_scale().(Gen.choicemap(c1), Gen.choicemap(a1), [])
      assert abs(Mx.to_number(c2[:x]) - 3.0) < 1.0e-12 and abs(Mx.to_number(c2[:y]) - 0.5) < 1.0e-12
      assert abs(Mx.to_number(a2[:u]) - 1.7) < 1.0e-12

      # The random walk's Jacobian has |det| 1; the scale move's is 1/u.
      lw = Involutive.log_abs_det_jacobian(walk(), Gen.choicemap(%{mu: 0.3}), Gen.choicemap(%{d: -1.1}), [])
      assert abs(Mx.to_number(lw)) < 1.0e-12
      ls = Involutive.log_abs_det_jacobian(scale(:x), model, aux, [])
      assert abs(Mx.to_number(ls) + :math.log(1.7)) < 1.0e-12
    end

    test "scale and swap + scale moves on a gamma–poisson pair: exact posterior (the Jacobian term matters)" do
      # x, y ~ Gamma(2, 1) (rate 1); counts ~ Poisson(x) and Poisson(y). Posteriors are
      # Gamma(2 + Σc, 1 + n) = Gamma(14, 4) for both, so the swap + scale move is often
      # accepted. Dropping log |det J| from the scale moves would target Gamma(15, 4), a bias
      # of 0.25 against 4 SE ≈ 0.2 here.
      {cx, cy} = {[3, 5, 4], [4, 3, 5]}

      m =
        gen(fn ->
          x = trace(:x, Gen.Dist.gamma(2.0, rate: 1.0))
          y = trace(:y, Gen.Dist.gamma(2.0, rate: 1.0))
          for i <- 0..2, do: {trace({:cx, i}, Gen.Dist.poisson(x)), trace({:cy, i}, Gen.Dist.poisson(y))}
        end)

      obs = for i <- 0..2, into: %{}, do: {{:cx, i}, Enum.at(cx, i)}
      obs = Enum.into(for(i <- 0..2, do: {{:cy, i}, Enum.at(cy, i)}), obs)
      {t, _} = Gen.generate(m, [], Map.merge(obs, %{x: 1.0, y: 1.0}), key: Mx.Random.key(30))
      q = log_normal_aux()
      swap = Kernel.involutive_mh(q, [0.5], swap_scale(), check: true)
      k = Kernel.cycle([Kernel.involutive_mh(q, [0.5], scale(:x)), Kernel.involutive_mh(q, [0.5], scale(:y)), swap])

      xs =
        Inference.run(k, t,
          samples: 2000,
          burn: 100,
          key: Mx.Random.key(31),
          select: &{Mx.to_number(&1[:x]), Mx.to_number(&1[:y])}
        )

      assert_posterior(Enum.map(xs, &elem(&1, 0)), 14 / 4, 14 / 16)
      assert_posterior(Enum.map(xs, &elem(&1, 1)), 14 / 4, 14 / 16)

      # The swap + scale move takes part: from the posterior means it is accepted about one
      # time in five; 200 tries, binomial sd ≈ 5.7, so more than 15 is far inside.
      {at_mean, _, _, _} = Gen.update(t, %{x: 3.5, y: 3.5})
      accepted = Enum.count(1..200, fn i -> elem(swap.(at_mean, key: Mx.Random.key(500 + i)), 1) end)
      assert accepted > 15, "swap + scale accepted #{accepted} of 200"
    end

    test "check: true raises on a map that is not an involution; contract errors name the fix" do
      m = gen(fn -> {trace(:x, Gen.Dist.normal(0.0, 1.0)), trace(:k, Gen.Dist.poisson(2.0))} end)
      t = Gen.simulate(m, [], key: Mx.Random.key(40))
      q = gen(fn _t -> trace(:d, Gen.Dist.normal(0.0, 1.0)) end)
      shift = fn m, a, _ -> {%{x: Mx.add(m[:x], a[:d])}, %{d: a[:d]}} end

      assert_raise ArgumentError, ~r/not an involution \(check: true\): applied twice it takes address :x/, fn ->
        Inference.involutive_mh(t, q, [], shift, key: Mx.Random.key(41), check: true)
      end

      # Without check the step runs (and targets the wrong distribution, which check: true exists to catch).
      assert {%Gen.Trace{}, _} = Inference.involutive_mh(t, q, [], shift, key: Mx.Random.key(41))

      grow = fn _m, a, _ -> {%{x: a[:d], z: a[:d]}, %{d: a[:d]}} end

      assert_raise ArgumentError, ~r/writes address :z, which the trace does not have/, fn ->
        Inference.involutive_mh(t, q, [], grow, key: Mx.Random.key(42))
      end

      drop = fn m, _a, _ -> {%{x: m[:x]}, %{}} end

      assert_raise ArgumentError, ~r/maps 2 continuous values to 1/, fn ->
        Inference.involutive_mh(t, q, [], drop, key: Mx.Random.key(43))
      end

      assert_raise ArgumentError, ~r/must return \{model_changes, new_aux_choices\}/, fn ->
        Inference.involutive_mh(t, q, [], fn _, _, _ -> :nope end, key: Mx.Random.key(44))
      end

      assert_raise ArgumentError, ~r/an involution\s+fn model_choices/, fn ->
        Inference.involutive_mh(t, q, [], fn _, _ -> :nope end)
      end
    end
  end

  # ---- run/3: chains and progress ----------------------------------------------------------

  describe "run with chains: and progress:" do
    setup do
      m = gen(fn -> {trace(:a, Gen.Dist.normal(0.0, 1.0)), trace(:b, Gen.Dist.normal(0.0, 1.0))} end)
      %{trace: Gen.simulate(m, [], key: Mx.Random.key(60))}
    end

    test "k concurrent chains give exactly the k runs made one by one with folded keys", %{trace: t} do
      k = Kernel.cycle([Kernel.mh(Gen.select(:a)), Kernel.mh(Gen.select(:b))])
      key = Mx.Random.key(61)
      sel = &{Mx.to_number(&1[:a]), Mx.to_number(&1[:b])}
      chains = Inference.run(k, t, samples: 30, burn: 5, thin: 2, chains: 4, key: key, select: sel)
      assert length(chains) == 4 and Enum.all?(chains, &(length(&1) == 30))

      for {c, j} <- Enum.with_index(chains) do
        assert c == Inference.run(k, t, samples: 30, burn: 5, thin: 2, key: Mx.Random.fold_in(key, j), select: sel)
      end

      # Different keys, different chains.
      assert length(Enum.uniq(chains)) == 4

      # One start per chain; the callback says which chain, from that chain's process.
      starts = for i <- 1..2, do: elem(Gen.update(t, %{a: 10.0 * i}), 0)
      parent = self()
      cb = fn info -> if info.iteration == 0, do: send(parent, {:first, info.chain, self()}) end
      [c1, c2] = Inference.run(k, starts, samples: 1, chains: 2, key: key, select: sel, callback: cb)
      assert_received {:first, 0, p0}
      assert_received {:first, 1, p1}
      assert p0 != self() and p1 != self() and p0 != p1
      assert c1 == Inference.run(k, hd(starts), samples: 1, key: Mx.Random.fold_in(key, 0), select: sel)
      assert c2 == Inference.run(k, List.last(starts), samples: 1, key: Mx.Random.fold_in(key, 1), select: sel)
    end

    test "4 chains from dispersed starts: split R-hat under 1.01 and the pooled mean within 4 SE (Gen.Diagnostics.ess)" do
      # mu ~ N(0, 2²), y_i ~ N(mu, 1): posterior N(Σy/(1/4 + n), 1/(1/4 + n)).
      ys = Gen.ChainCheck.normal_ys()
      m = Gen.ChainCheck.normal_model()
      obs = for {y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}
      starts = for mu <- [-10.0, -3.0, 3.0, 10.0], do: elem(Gen.generate(m, [ys], Map.put(obs, :mu, mu)), 0)
      q = gen(fn t -> trace(:mu, Gen.Dist.normal(t[:mu], 0.7)) end)

      chains =
        Inference.run(Kernel.mh(q, []), starts,
          chains: 4,
          samples: 1000,
          burn: 200,
          key: Mx.Random.key(62),
          select: &Mx.to_number(&1[:mu])
        )

      # R-hat's excess over 1 shrinks as the chains grow: with 1000 draws a chain it is 0.004 here.
      assert Gen.Diagnostics.rhat(chains) < 1.01
      # The ESS of the mean (split chains, no rank normalization) sets the standard error.
      ess = Gen.Diagnostics.ess(chains, method: :basic)
      {prec, pooled} = {0.25 + 5, List.flatten(chains)}
      mean = Enum.sum(pooled) / length(pooled)
      assert ess > 200
      assert abs(mean - Enum.sum(ys) / prec) <= 4 * :math.sqrt(1 / prec / ess)
    end

    test "an error in a chain is raised in the caller; option errors name the option", %{trace: t} do
      boom = fn _t, _opts -> raise ArgumentError, "boom in a chain" end

      assert_raise ArgumentError, "boom in a chain", fn ->
        Inference.run(boom, t, samples: 2, chains: 2, key: Mx.Random.key(0))
      end

      k = Kernel.mh(Gen.select(:a))

      assert_raise ArgumentError, ~r/chains: must be a positive integer/, fn ->
        Inference.run(k, t, samples: 1, chains: 0)
      end

      assert_raise ArgumentError, ~r/give one Gen.Trace \(every chain starts there\) or a list of 3 traces/, fn ->
        Inference.run(k, [t, t], samples: 1, chains: 3)
      end

      assert_raise ArgumentError, ~r/expected a Gen.Trace \(or, with chains:, a list of traces\)/, fn ->
        Inference.run(k, [t], samples: 1)
      end

      assert_raise ArgumentError, ~r/progress: must be true, false or :auto/, fn ->
        Inference.run(k, t, samples: 1, progress: :yes)
      end
    end

    test "progress: true draws a bar on stderr ending at 100%; :auto draws nothing under ExUnit", %{trace: t} do
      k = Kernel.mh(Gen.select(:a))
      out = capture_io(:stderr, fn -> Inference.run(k, t, samples: 40, key: Mx.Random.key(1), progress: true) end)
      assert out =~ ~r/\r\[=+\] 40\/40 100%/
      assert String.ends_with?(out, "\n")

      out = capture_io(:stderr, fn -> Inference.run(k, t, samples: 30, chains: 2, key: Mx.Random.key(1), progress: true) end)
      assert out =~ "60/60 100% 2 chains"

      # A long run by count (>= 1000 iterations), but stderr is not a terminal and ExUnit runs.
      assert capture_io(:stderr, fn -> Inference.run(k, t, samples: 1000, key: Mx.Random.key(2)) end) == ""
      assert capture_io(:stderr, fn -> Inference.run(k, t, samples: 5, progress: false) end) == ""
    end
  end

  # 2×2 helpers for the closed-form Gaussian posterior.
  defp inv2([[a, b], [c, d]]) do
    det = a * d - b * c
    [[d / det, -b / det], [-c / det, a / det]]
  end

  defp add2(x, y), do: Enum.zip_with(x, y, fn r, s -> Enum.zip_with(r, s, &(&1 + &2)) end)
  defp mul2v(m, v), do: Enum.map(m, fn row -> row |> Enum.zip_with(v, &(&1 * &2)) |> Enum.sum() end)
end
