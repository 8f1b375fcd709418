defmodule Gen.Inference.TargetTest do
  use ExUnit.Case, async: true
  import Gen

  alias Gen.Inference.Target

  doctest Gen.Inference.Target

  defp f64(xs), do: Mx.tensor(xs, type: :f64)

  # ---- models -------------------------------------------------------------------------

  @schools_y [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
  @schools_sigma [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]

  defp eight_schools_nc do
    m =
      gen(fn j, sigma ->
        mu = trace(:mu, Gen.Dist.normal(0.0, 5.0))
        tau = trace(:tau, Gen.Dist.truncated_normal(0.0, 5.0, 0.0, :infinity))
        tt = trace(:theta_tilde, Gen.Dist.broadcasted_normal(Mx.zeros({j}, type: :f64), 1.0))
        trace(:y, Gen.Dist.broadcasted_normal(Mx.add(mu, Mx.multiply(tau, tt)), sigma))
      end)

    obs = %{
      mu: 1.0,
      tau: 2.5,
      theta_tilde: f64([0.3, -0.2, 0.1, 0.5, -0.7, 0.0, 1.1, -0.4]),
      y: f64(@schools_y)
    }

    {t, _} = Gen.generate(m, [8, f64(@schools_sigma)], obs)
    {t, Gen.select([:mu, :tau, :theta_tilde])}
  end

  # {name, trace, selection} for each model of the compiled-equals-dynamic test.
  defp models do
    normal_normal =
      gen(fn -> trace(:y, Gen.Dist.normal(trace(:mu, Gen.Dist.normal(0.0, 1.0)), 1.0)) end)

    {nn, _} = Gen.generate(normal_normal, [], %{mu: 0.3, y: 1.2})

    scale =
      gen(fn ->
        s = trace(:s, Gen.Dist.gamma(2.0, rate: 1.0))
        trace(:y, Gen.Dist.broadcasted_normal(Mx.zeros({3}, type: :f64), s))
      end)

    {sc, _} = Gen.generate(scale, [], %{s: 1.5, y: f64([0.4, -1.0, 2.0])})

    simplex =
      gen(fn ->
        p = trace(:p, Gen.Dist.dirichlet(f64([1.0, 2.0, 3.0])))
        for i <- 0..4, do: trace({:k, i}, Gen.Dist.categorical(p))
      end)

    ks = Map.new(Enum.zip(0..4, [0, 2, 2, 1, 2]), fn {i, k} -> {{:k, i}, k} end)
    {sx, _} = Gen.generate(simplex, [], Map.put(ks, :p, f64([0.2, 0.3, 0.5])))

    array =
      gen(fn ->
        x = trace(:x, Gen.Dist.broadcasted_normal(f64([0.0, 1.0, -1.0]), 1.0))
        trace(:y, Gen.Dist.broadcasted_normal(x, 0.5))
      end)

    {ar, _} = Gen.generate(array, [], %{x: f64([0.1, 0.2, 0.3]), y: f64([1.0, 0.0, -2.0])})

    regression =
      gen(fn xs ->
        a = trace(:a, Gen.Dist.normal(0.0, 2.0))
        b = trace(:b, Gen.Dist.normal(0.0, 2.0))
        s = trace(:s, Gen.Dist.exponential(1.0))
        trace(:y, Gen.Dist.broadcasted_normal(Mx.add(a, Mx.multiply(b, xs)), s))
      end)

    {rg, _} =
      Gen.generate(regression, [f64([0.0, 1.0, 2.0, 3.0])], %{
        a: 0.5,
        b: 1.0,
        s: 0.7,
        y: f64([0.4, 1.7, 2.2, 3.9])
      })

    {es, es_sel} = eight_schools_nc()

    [
      {"normal-normal", nn, Gen.select(:mu)},
      {"positive scale", sc, Gen.select(:s)},
      {"Dirichlet simplex", sx, Gen.select(:p)},
      {"array choice", ar, Gen.select(:x)},
      {"model with arguments", rg, Gen.select([:a, :b, :s])},
      {"eight schools non-centered", es, es_sel}
    ]
  end

  # Points around the start on the unconstrained scale (a fixed key).
  defp points(target, n) do
    zs = Mx.Random.normal(Mx.Random.key(3), shape: {n, target.dim}, type: :f64) |> Mx.to_list()
    [target.q0 | Enum.map(zs, fn z -> Enum.zip_with(target.q0, z, &(&1 + 0.5 * &2)) end)]
  end

  defp layout(target),
    do: Enum.map(target.blocks, &{&1.path, &1.offset, &1.size, &1.u_shape, &1.x_offset, &1.shape})

  defp bin(q), do: for(x <- q, into: <<>>, do: <<x::float-64-native>>)

  # ---- compiled and dynamic -------------------------------------------------------------

  test "compiled equals dynamic, to the last bit, on six models" do
    for {name, t, sel} <- models() do
      compiled = Target.new(t, sel)
      dynamic = Target.new(t, sel, compile: false)

      assert compiled.compiled? and compiled.why_dynamic == nil and is_reference(compiled.tape),
             name

      refute dynamic.compiled?
      assert dynamic.tape == nil and dynamic.why_dynamic == nil

      assert {compiled.dim, compiled.q0, layout(compiled)} ==
               {dynamic.dim, dynamic.q0, layout(dynamic)}

      # The tape replays the same primitives on the same values in the same order (Mx.compile's
      # contract, tested bit for bit in test/mx/compile_test.exs), so every bit agrees.
      for q <- points(compiled, 4) do
        a = Target.logp_grad(compiled, bin(q))
        assert byte_size(a) == 8 * (compiled.dim + 1)
        assert a == Target.logp_grad(dynamic, bin(q)), "#{name} at #{inspect(q)}"
        assert Target.value_and_grad(compiled, q) == Target.value_and_grad(dynamic, q)
      end
    end
  end

  test "the dimensions and transforms each model's blocks take" do
    dims =
      for {name, t, sel} <- models() do
        target = Target.new(t, sel, compile: false)

        {name, target.dim, target.x_dim,
         Enum.map(target.blocks, &{&1.path, transform(&1.transform), &1.offset, &1.u_shape})}
      end

    assert dims == [
             {"normal-normal", 1, 1, [{[:mu], :identity, 0, {}}]},
             {"positive scale", 1, 1, [{[:s], :log, 0, {}}]},
             {"Dirichlet simplex", 2, 3, [{[:p], :simplex, 0, {2}}]},
             {"array choice", 3, 3, [{[:x], :identity, 0, {3}}]},
             {"model with arguments", 3, 3,
              [{[:a], :identity, 0, {}}, {[:b], :identity, 1, {}}, {[:s], :log, 2, {}}]},
             {"eight schools non-centered", 10, 10,
              [
                {[:mu], :identity, 0, {}},
                {[:tau], {:interval, 0.0, :infinity}, 1, {}},
                {[:theta_tilde], :identity, 2, {8}}
              ]}
           ]
  end

  # A bound given as an array (the truncated normal's parameters) shown as its number.
  defp transform({:interval, a, b}), do: {:interval, number(a), number(b)}
  defp transform(t), do: t
  defp number(%Mx.Array{} = a), do: Mx.to_number(a)
  defp number(x), do: x

  test "the tape's signature is f64[dim] -> (f64[] log density, f64[dim] gradient), and it replays alone" do
    {t, sel} = eight_schools_nc()
    target = Target.new(t, sel)
    q = f64(target.q0)

    assert Mx.NIF.tape_info(target.tape) |> Map.take([:inputs, :outputs]) == %{
             inputs: 1,
             outputs: 2
           }

    [lp, g] = Mx.NIF.compile_run(target.tape, [q.ref]) |> Enum.map(&Mx.Array.wrap/1)
    assert {Mx.shape(lp), Mx.type(lp), Mx.shape(g), Mx.type(g)} == {{}, :f64, {10}, :f64}
    assert Mx.to_binary(lp) <> Mx.to_binary(g) == Target.logp_grad(target, bin(target.q0))

    # an f32 choice moves on the f64 vector; the log density is f64 too
    m32 =
      gen(fn ->
        trace(
          :y,
          Gen.Dist.normal(trace(:x, Gen.Dist.normal(0.0, 1.0)), Mx.tensor(1.0, type: :f32))
        )
      end)

    {t32, _} =
      Gen.generate(m32, [], %{x: Mx.tensor(0.5, type: :f32), y: Mx.tensor(1.0, type: :f32)})

    t32 = Target.new(t32, Gen.select(:x))
    [lp, g] = Mx.NIF.compile_run(t32.tape, [f64([0.25]).ref]) |> Enum.map(&Mx.Array.wrap/1)
    assert {Mx.shape(lp), Mx.type(lp), Mx.shape(g), Mx.type(g)} == {{}, :f64, {1}, :f64}
  end

  test "the log density is the model's: log joint at the constrained values plus the log-Jacobian" do
    {t, sel} = eight_schools_nc()
    target = Target.new(t, sel)
    q = Enum.at(points(target, 1), 1)
    {lp, _g} = Target.value_and_grad(target, q)
    [mu, u_tau | tt] = q
    tau = :math.exp(u_tau)

    log_normal = fn x, m, s ->
      -0.5 * ((x - m) / s) ** 2 - :math.log(s) - 0.5 * :math.log(2 * :math.pi())
    end

    # the half-normal on (0, ∞) is twice the normal; tau = e^u has log-Jacobian u
    expected =
      log_normal.(mu, 0.0, 5.0) + log_normal.(tau, 0.0, 5.0) + :math.log(2.0) + u_tau +
        Enum.sum(Enum.map(tt, &log_normal.(&1, 0.0, 1.0))) +
        Enum.sum(
          Enum.zip_with([@schools_y, @schools_sigma, tt], fn [y, s, z] ->
            log_normal.(y, mu + tau * z, s)
          end)
        )

    # 30 terms of order 1–10 summed in another order: a few ulps of 100.
    assert_in_delta lp, expected, 1.0e-11
  end

  test "the compiled gradient agrees with central finite differences on the unconstrained scale" do
    # Central differences of the (uncompiled) log density: error O(h²|f'''|) + O(eps|f|/h), below
    # 1e-8 with h = 1e-6 for these smooth densities of magnitude ≤ 100 (see Mx.GradCheck).
    h = 1.0e-6

    for {name, t, sel} <- models() do
      target = Target.new(t, sel)

      for q <- Enum.take(points(target, 2), 2) do
        {_lp, g} = Target.value_and_grad(target, q)

        lp_at = fn q -> Mx.to_number(Target.log_density(target, f64(q))) end

        for i <- 0..(target.dim - 1) do
          up = List.update_at(q, i, &(&1 + h))
          down = List.update_at(q, i, &(&1 - h))
          numeric = (lp_at.(up) - lp_at.(down)) / (2 * h)
          a = Enum.at(g, i)

          assert abs(a - numeric) <= 1.0e-6 * (1 + abs(numeric)),
                 "#{name} coordinate #{i}: #{a} vs #{numeric}"
        end
      end
    end
  end

  # ---- dynamic models ----------------------------------------------------------------------

  defp log_n(x, m, s),
    do: -0.5 * ((x - m) / s) ** 2 - :math.log(s) - 0.5 * :math.log(2 * :math.pi())

  test "control flow on a selected value runs dynamic, with the branch of each point" do
    m =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))

        if x > 0.0,
          do: trace(:y, Gen.Dist.normal(x, 1.0)),
          else: trace(:y, Gen.Dist.normal(Mx.negate(x), 2.0))
      end)

    {t, _} = Gen.generate(m, [], %{x: 0.5, y: 1.0})
    target = Target.new(t, Gen.select(:x))
    refute target.compiled?
    assert target.tape == nil
    assert target.why_dynamic =~ "reads a selected value while tracing"
    assert target.why_dynamic =~ "needs a value while tracing"
    uncompiled = Target.new(t, Gen.select(:x), compile: false)

    for x <- [1.5, -0.7] do
      assert Target.logp_grad(target, bin([x])) == Target.logp_grad(uncompiled, bin([x]))
      {lp, [g]} = Target.value_and_grad(target, [x])

      {lp_exact, g_exact} =
        if x > 0,
          do: {log_n(x, 0.0, 1.0) + log_n(1.0, x, 1.0), -x + (1.0 - x)},
          else: {log_n(x, 0.0, 1.0) + log_n(1.0, -x, 2.0), -x - (1.0 + x) / 4}

      assert_in_delta lp, lp_exact, 1.0e-14
      assert_in_delta g, g_exact, 1.0e-14
    end
  end

  test "a selected value read as a number (Mx.to_number) runs dynamic" do
    m =
      gen(fn ->
        s = trace(:s, Gen.Dist.exponential(1.0))

        trace(
          :y,
          Gen.Dist.normal(0.0, Float.round(Mx.to_number(s), 6) + Mx.to_number(Mx.subtract(s, s)))
        )

        s
      end)

    {t, _} = Gen.generate(m, [], %{s: 2.0, y: 0.5})
    target = Target.new(t, Gen.select(:s))
    refute target.compiled?
    assert target.why_dynamic =~ "needs a value while tracing"
    # at u = log 2: the scale is a constant to the gradient (read as a number), so only the prior
    # and the log-Jacobian depend on u: d/du [-e^u + u] = -2 + 1
    {lp, [g]} = Target.value_and_grad(target, [:math.log(2.0)])
    assert_in_delta lp, -2.0 + log_n(0.5, 0.0, 2.0) + :math.log(2.0), 1.0e-14
    assert_in_delta g, -1.0, 1.0e-14
  end

  test "a model whose structure switches on a discrete choice: one target per trace, each right" do
    m =
      gen(fn ->
        if trace(:k, Gen.Dist.bernoulli(0.5)) do
          a = trace(:a, Gen.Dist.normal(0.0, 1.0))
          trace(:y, Gen.Dist.normal(a, 1.0))
        else
          b = trace(:b, Gen.Dist.gamma(2.0, rate: 1.0))
          c = trace(:c, Gen.Dist.normal(0.0, 1.0))
          trace(:y, Gen.Dist.normal(Mx.multiply(b, c), 1.0))
        end
      end)

    {t1, _} = Gen.generate(m, [], %{k: true, a: 0.2, y: 1.0})
    {t2, _} = Gen.generate(m, [], %{k: false, b: 1.5, c: 0.4, y: 1.0})
    sel = Gen.select([:a, :b, :c])
    one = Target.new(t1, sel)
    two = Target.new(t2, sel)
    assert one.compiled? and two.compiled?
    assert {one.dim, two.dim} == {1, 2}

    # the log joint includes the fixed k's log 1/2
    {lp1, [g1]} = Target.value_and_grad(one, [0.7])
    assert_in_delta lp1, :math.log(0.5) + log_n(0.7, 0.0, 1.0) + log_n(1.0, 0.7, 1.0), 1.0e-14
    assert_in_delta g1, -0.7 + 0.3, 1.0e-14

    # b = e^u: log Gamma(b; 2, 1) = log b - b, log-Jacobian u
    u = 0.3
    b = :math.exp(u)
    {lp2, [gu, gc]} = Target.value_and_grad(two, [u, -0.5])

    assert_in_delta lp2,
                    :math.log(0.5) + :math.log(b) - b + u + log_n(-0.5, 0.0, 1.0) +
                      log_n(1.0, -0.5 * b, 1.0),
                    1.0e-13

    assert_in_delta gu, 1 - b + 1 + (1.0 + 0.5 * b) * -0.5 * b, 1.0e-13
    assert_in_delta gc, 0.5 + (1.0 + 0.5 * b) * b, 1.0e-13

    assert Target.logp_grad(two, bin([u, -0.5])) ==
             Target.logp_grad(Target.new(t2, sel, compile: false), bin([u, -0.5]))
  end

  test "NUTS and HMC on a dynamic target draw what they draw on the compiled one" do
    # The branch changes nothing, so both models have the same density, bit for bit.
    plain = gen(fn -> trace(:y, Gen.Dist.normal(trace(:x, Gen.Dist.normal(0.0, 1.0)), 1.0)) end)

    branching =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))

        if x > 1.0e6,
          do: trace(:y, Gen.Dist.normal(x, 1.0)),
          else: trace(:y, Gen.Dist.normal(x, 1.0))
      end)

    [{tp, _}, {tb, _}] = for m <- [plain, branching], do: Gen.generate(m, [], %{x: 0.2, y: 1.0})
    assert Target.new(tp, Gen.select(:x)).compiled?
    refute Target.new(tb, Gen.select(:x)).compiled?

    [rp, rb] =
      for t <- [tp, tb],
          do:
            Gen.Inference.NUTS.sample(t, Gen.select(:x),
              warmup: 30,
              samples: 30,
              key: Mx.Random.key(5)
            )

    assert rp.draws == rb.draws and rp.stats == rb.stats

    [{hp, ap}, {hb, ab}] =
      for t <- [tp, tb],
          do: Gen.Inference.hmc(t, Gen.select(:x), step_size: 0.3, key: Mx.Random.key(6))

    assert ap == ab and Mx.to_number(hp[:x]) == Mx.to_number(hb[:x])
  end

  # ---- constrain and write ----------------------------------------------------------------

  test "constrain(q0) is the trace's values; write(q) then a new target gives q back" do
    for {name, t, sel} <- models() do
      target = Target.new(t, sel)
      values = Enum.flat_map(target.blocks, &Mx.to_flat_list(Mx.as_type(t[&1.path], :f64)))

      # unconstrain then constrain (log/exp, logit/sigmoid, stick-breaking): a few ulps.
      Enum.zip(Target.constrain(target, target.q0), values)
      |> Enum.each(fn {a, b} -> assert abs(a - b) <= 1.0e-14 * (1 + abs(b)), name end)

      q = Enum.at(points(target, 1), 1)
      t2 = Target.write(target, t, q)

      assert Target.constrain(target, q) ==
               Enum.flat_map(target.blocks, &Mx.to_flat_list(Mx.as_type(t2[&1.path], :f64)))

      again = Target.new(t2, sel)

      Enum.zip(again.q0, q)
      |> Enum.each(fn {a, b} ->
        assert abs(a - b) <= 1.0e-12 * (1 + abs(b)), "#{name}: #{a} vs #{b}"
      end)

      # the choices not selected are kept; the score is the new trace's
      {lp, _} = Target.value_and_grad(again, again.q0)
      {lp_q, _} = Target.value_and_grad(target, q)
      assert_in_delta lp, lp_q, 1.0e-10 * (1 + abs(lp_q))
    end
  end

  test "names and by_path lay out constrained draws by choice" do
    {t, sel} = eight_schools_nc()
    target = Target.new(t, sel, compile: false)
    assert Target.names(target) == [[:mu], [:tau]] ++ for(i <- 0..7, do: {[:theta_tilde], i})
    draw = Target.constrain(target, target.q0)

    assert %{[:mu] => [1.0], [:tau] => [tau], [:theta_tilde] => [tt]} =
             Target.by_path(target, [draw])

    assert_in_delta tau, 2.5, 1.0e-14
    assert length(tt) == 8
  end

  # ---- errors --------------------------------------------------------------------------------

  test "errors: a discrete choice, nothing selected, a bad option, a bad point" do
    m =
      gen(fn ->
        k = trace(:k, Gen.Dist.poisson(3.0))
        trace(:x, Gen.Dist.normal(Mx.as_type(k, :f64), 1.0))
      end)

    {t, _} = Gen.generate(m, [], %{k: 2, x: 0.5})

    assert_raise ArgumentError,
                 ~r/^Gen.Inference.nuts: the selected choice at address :k is a s64 array, not a floating-point array; select only continuous choices/,
                 fn -> Target.new(t, Gen.select([:k, :x]), caller: "Gen.Inference.nuts") end

    assert_raise ArgumentError,
                 ~r/^Gen.Inference.Target.new: .*select the continuous choices to move/,
                 fn ->
                   Target.new(t, Gen.select(:zz))
                 end

    # as the builders did: the message each algorithm gave before
    assert_raise ArgumentError, ~r/^Gen.Inference.hmc: the selected choice at address :k/, fn ->
      Gen.Inference.hmc(t, Gen.select(:k), step_size: 0.1)
    end

    assert_raise ArgumentError, ~r/^Gen.Inference.Target.new: unknown option compiled:/, fn ->
      Target.new(t, Gen.select(:x), compiled: true)
    end

    assert_raise ArgumentError,
                 ~r/^Gen.Inference.map_optimize: compile: must be true or false/,
                 fn ->
                   Target.new(t, Gen.select(:x),
                     compile: :yes,
                     caller: "Gen.Inference.map_optimize"
                   )
                 end

    assert_raise ArgumentError,
                 ~r/^Gen.Inference.Target.new: transforms: address :k is not a selected continuous choice/,
                 fn ->
                   Target.new(t, Gen.select(:x), transforms: %{k: :log})
                 end

    assert_raise ArgumentError,
                 ~r/^Gen.Inference.Target.new: choices: must be a Gen.Choicemap or nil/,
                 fn ->
                   Target.new(t, Gen.select(:x), choices: %{x: 1.0})
                 end

    target = Target.new(t, Gen.select(:x))

    assert_raise ArgumentError, ~r/must be 1 f64s \(8 bytes\), got 16 bytes/, fn ->
      Target.logp_grad(target, bin([1.0, 2.0]))
    end

    assert_raise ArgumentError, ~r/must be a list of 1 floats, got 2/, fn ->
      Target.value_and_grad(target, [1.0, 2.0])
    end
  end

  test "a point where the model raises raises Mx.Error, compiled or not; a -inf log density comes back as its IEEE bits" do
    m =
      gen(fn ->
        a = trace(:a, Gen.Dist.normal(0.0, 1.0))
        cov = Mx.add(Mx.multiply(f64([[1.0, 0.0], [0.0, 0.0]]), a), f64([[0.0, 0.0], [0.0, 1.0]]))
        trace(:x, Gen.Dist.multivariate_normal(f64([0.0, 0.0]), cov))
      end)

    {t, _} = Gen.generate(m, [], %{a: 1.0, x: f64([0.1, 0.2])})

    for compile <- [true, false] do
      target = Target.new(t, Gen.select(:a), compile: compile)
      assert target.compiled? == compile
      assert {lp, [_]} = Target.value_and_grad(target, [1.0])
      assert is_float(lp)
      assert_raise Mx.Error, fn -> Target.logp_grad(target, bin([-1.0])) end
    end

    u = gen(fn -> trace(:x, Gen.Dist.uniform(0.0, 1.0)) end)
    {tu, _} = Gen.generate(u, [], %{x: 0.5})
    # on its own scale a uniform's density is -inf outside (0, 1)
    target = Target.new(tu, Gen.select(:x), transforms: %{x: :identity})
    <<lp::binary-8, _g::binary-8>> = Target.logp_grad(target, bin([2.0]))
    assert lp == <<0xFFF0000000000000::64-native>>
    assert {:neg_infinity, _} = Target.value_and_grad(target, [2.0])
  end
end

defmodule Gen.Inference.TargetMemoryTest do
  # Not async: Mx.Memory's counts are global to the VM.
  use ExUnit.Case, async: false
  import Gen
  import Gen.TestHelpers, only: [settled_live: 0]

  test "a chain of HMC moves, each compiling its target, keeps tapes and live arrays flat" do
    m =
      gen(fn ->
        s = trace(:s, Gen.Dist.gamma(2.0, rate: 1.0))
        trace(:y, Gen.Dist.broadcasted_normal(Mx.zeros({3}, type: :f64), s))
      end)

    {t, _} = Gen.generate(m, [], %{s: 1.0, y: Mx.tensor([0.5, -1.0, 2.0], type: :f64)})

    move = fn t, i ->
      elem(
        Gen.Inference.hmc(t, Gen.select(:s), step_size: 0.2, n_leapfrog: 3, key: Mx.Random.key(i)),
        0
      )
    end

    counts = fn -> %{live: settled_live(), tapes: Mx.Memory.report().tapes} end

    t = Enum.reduce(1..50, t, &move.(&2, &1))
    before = counts.()
    t = Enum.reduce(51..250, t, &move.(&2, &1))
    after_ = counts.()
    assert is_struct(t, Gen.Trace)
    # 200 more moves made 200 tapes; at most the last one may still be alive.
    assert after_.tapes - before.tapes <= 1, "tapes #{before.tapes} -> #{after_.tapes}"
    assert after_.live - before.live <= 20, "live arrays #{before.live} -> #{after_.live}"
  end
end

defmodule Gen.Inference.TargetCacheTest do
  # Not async: the cache of compiled targets and its counters are global to the VM.
  use ExUnit.Case, async: false
  import Gen

  alias Gen.Inference.Target

  defp f64(xs), do: Mx.tensor(xs, type: :f64)
  defp bin(q), do: for(x <- q, into: <<>>, do: <<x::float-64-native>>)

  # The counters' change over fun: {compiles, hits}.
  defp counted(fun) do
    before = Target.cache_stats()
    result = fun.()
    after_ = Target.cache_stats()
    {result, {after_.compiles - before.compiles, after_.hits - before.hits}}
  end

  # A compiled target must give the uncompiled one's bits wherever it came from.
  defp same_as_dynamic!(target, trace, sel, opts \\ []) do
    assert target.compiled?
    dynamic = Target.new(trace, sel, [compile: false] ++ opts)

    for q <- [target.q0, Enum.map(target.q0, &(&1 + 0.37))] do
      assert Target.logp_grad(target, bin(q)) == Target.logp_grad(dynamic, bin(q))
    end
  end

  defp scale_model do
    gen(fn n, loc ->
      s = trace(:s, Gen.Dist.gamma(2.0, rate: 1.0))
      mu = trace(:mu, Gen.Dist.normal(loc, 1.0))
      trace(:y, Gen.Dist.broadcasted_normal(Mx.broadcast(mu, {n}), s))
    end)
  end

  defp scale_trace(ys, args \\ [3, 0.0], start \\ %{s: 1.5, mu: 0.2}) do
    {t, _} = Gen.generate(scale_model(), args, Map.put(start, :y, f64(ys)))
    t
  end

  test "the same structure and data hit; other data, arguments, selection or options miss" do
    sel = Gen.select([:s, :mu])
    t = scale_trace([0.4, -1.0, 2.0])
    {a, {compiles, _}} = counted(fn -> Target.new(t, sel, caller: "cache test 1") end)
    assert compiles == 1
    same_as_dynamic!(a, t, sel)

    # the same model made again, another starting point of the selected values, another process
    t_moved = scale_trace([0.4, -1.0, 2.0], [3, 0.0], %{s: 0.7, mu: -1.3})

    for {tr, how} <- [{t, "same trace"}, {t_moved, "new start"}] do
      {b, counts} = counted(fn -> Target.new(tr, sel, caller: "cache test 1") end)
      assert counts == {0, 1}, how
      same_as_dynamic!(b, tr, sel)
    end

    {_, counts} =
      counted(fn ->
        Task.async(fn -> Target.new(t_moved, sel, caller: "cache test 1") end) |> Task.await()
      end)

    assert counts == {0, 1}

    misses = [
      {"an observation", scale_trace([0.4, -1.0, 2.5]), sel, []},
      {"an argument's value", scale_trace([0.4, -1.0, 2.0], [3, 0.5]), sel, []},
      {"an argument's type", scale_trace([0.4, -1.0, 2.0], [3, f64(0.0)]), sel, []},
      {"the data's size", scale_trace([0.4, -1.0, 2.0, 1.0], [4, 0.0]), sel, []},
      {"the selection", t, Gen.select(:s), []},
      {"a transform", t, sel, [transforms: %{s: :identity}]},
      {"the Jacobian", t, sel, [jacobian: false]}
    ]

    for {what, tr, sl, opts} <- misses do
      {c, counts} = counted(fn -> Target.new(tr, sl, [caller: "cache test 1"] ++ opts) end)
      assert counts == {1, 0}, what
      same_as_dynamic!(c, tr, sl, opts)
    end

    # ... and each of those hits when asked again
    for {what, tr, sl, opts} <- misses do
      {_, counts} = counted(fn -> Target.new(tr, sl, [caller: "cache test 1"] ++ opts) end)
      assert counts == {0, 1}, what
    end
  end

  test "a model's captured values and code are part of its key" do
    make = fn center ->
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(center, 1.0))
        trace(:y, Gen.Dist.normal(x, 1.0))
      end)
    end

    other_code =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 2.0))
        trace(:y, Gen.Dist.normal(x, 1.0))
      end)

    sel = Gen.select(:x)
    trace_of = fn m -> elem(Gen.generate(m, [], %{x: 0.1, y: 0.5}), 0) end
    caller = "cache test 2"

    for {m, expect} <- [
          {make.(0.0), {1, 0}},
          {make.(0.0), {0, 1}},
          {make.(1.0), {1, 0}},
          {make.(f64(1.0)), {1, 0}},
          {make.(f64(1.0)), {0, 1}},
          {make.(f64(2.0)), {1, 0}},
          {other_code, {1, 0}}
        ] do
      t = trace_of.(m)
      {target, counts} = counted(fn -> Target.new(t, sel, caller: caller) end)
      assert counts == expect
      same_as_dynamic!(target, t, sel)
    end
  end

  test "a model whose structure changes: one tape per structure, and a dynamic model is never cached" do
    m =
      gen(fn ->
        n = Mx.to_number(trace(:n, Gen.Dist.poisson(2.0)))
        for i <- 1..max(n, 1), do: trace({:x, i}, Gen.Dist.normal(0.0, 1.0))
      end)

    sel = Gen.Selection.complement(Gen.select(:n))
    caller = "cache test 3"

    trace_n = fn n ->
      elem(Gen.generate(m, [], Map.new(1..n, &{{:x, &1}, 0.1 * &1}) |> Map.put(:n, n)), 0)
    end

    t2 = trace_n.(2)
    t3 = trace_n.(3)

    for {t, dim, expect} <- [{t2, 2, {1, 0}}, {t3, 3, {1, 0}}, {t2, 2, {0, 1}}, {t3, 3, {0, 1}}] do
      {target, counts} = counted(fn -> Target.new(t, sel, caller: caller) end)
      assert {target.dim, counts} == {dim, expect}
      same_as_dynamic!(target, t, sel)
    end

    reads =
      gen(fn ->
        s = trace(:s, Gen.Dist.exponential(1.0))
        trace(:y, Gen.Dist.normal(0.0, Mx.to_number(s)))
      end)

    {t, _} = Gen.generate(reads, [], %{s: 2.0, y: 0.5})

    for _ <- 1..2 do
      {target, counts} = counted(fn -> Target.new(t, Gen.select(:s), caller: caller) end)
      refute target.compiled?
      assert counts == {0, 0}
    end
  end

  test "the cache is bounded: least recently used tapes go, a target keeps its own" do
    sel = Gen.select([:s, :mu])
    caller = "cache test 4"
    first = scale_trace([0.0, 0.0, 0.0])
    kept = Target.new(first, sel, caller: caller)
    size = Target.cache_stats().cache_size
    before = Target.cache_stats()

    for i <- 1..size, do: Target.new(scale_trace([i * 1.0, 0.0, 0.0]), sel, caller: caller)

    after_ = Target.cache_stats()
    assert after_.evictions - before.evictions >= 1
    assert after_.entries == size and after_.tapes <= size
    # the evicted tape still serves the target that holds it; asking again traces anew
    same_as_dynamic!(kept, first, sel)
    {_, counts} = counted(fn -> Target.new(first, sel, caller: caller) end)
    assert counts == {1, 0}

    # clear_cache/0 empties it: the next target traces again
    assert Target.clear_cache() == :ok
    assert %{entries: 0, tapes: 0} = Target.cache_stats()
    {again, counts} = counted(fn -> Target.new(first, sel, caller: caller) end)
    assert counts == {1, 0}
    same_as_dynamic!(again, first, sel)
    same_as_dynamic!(kept, first, sel)
  end
end
