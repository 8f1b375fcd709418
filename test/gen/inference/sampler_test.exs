defmodule Gen.Inference.SamplerTest do
  use ExUnit.Case, async: false
  import Gen
  alias Gen.Inference.Sampler

  doctest Gen.Inference.Sampler

  @q0 [0.5, -0.5, 1.0]

  defp tape do
    f = Mx.compile(Mx.value_and_grad(fn q -> Mx.multiply(-0.5, Mx.sum(Mx.multiply(q, q))) end))
    Mx.Compile.tape!(f, [Mx.tensor(@q0, type: :f64)])
  end

  defp unpack(q), do: for(<<x::float-64-native <- q>>, do: x)
  defp pack(xs), do: for(x <- xs, into: <<>>, do: <<x::float-64-native>>)

  # The tape's density by hand: -|q|^2/2 summed in the same order, the gradient -q.
  defp normal_logp_grad(q) do
    xs = unpack(q)
    pack([-0.5 * Enum.reduce(xs, 0.0, &(&2 + &1 * &1)) | Enum.map(xs, &(-&1))])
  end

  defp target(opts), do: Map.merge(%{dim: 3, q0: @q0, tape: nil, logp_grad: nil}, Map.new(opts))

  test "a compiled tape and an Elixir logp_grad on the same density and key give the same draws (one algorithm)" do
    opts = [warmup: 200, samples: 300, key: Mx.Random.key(11)]
    a = Sampler.run(target(tape: tape()), opts)
    b = Sampler.run(target(logp_grad: &normal_logp_grad/1), opts)
    assert length(a.draws) == 300 and length(a.warmup_stats) == 200
    assert a.draws == b.draws
    assert a.stats == b.stats and a.warmup_stats == b.warmup_stats
    assert {a.step_size, a.inv_metric} == {b.step_size, b.inv_metric}
    c = Sampler.run(target(tape: tape()), Keyword.put(opts, :key, Mx.Random.key(12)))
    assert c.draws != a.draws
  end

  test "the C sampler reproduces Gen.Inference.NUTS.sample draw for draw on the same density and key" do
    m =
      gen(fn ->
        trace(:x, Gen.Dist.broadcasted_normal(Mx.tensor([0.0, 0.0, 0.0], type: :f64), 1.0))
      end)

    {t, _} = Gen.generate(m, [], %{x: Mx.tensor(@q0, type: :f64)})
    key = Mx.Random.key(3)
    r = Gen.Inference.NUTS.sample(t, Gen.select(:x), warmup: 150, samples: 100, key: key)

    # the model's log density, term by term as the GFI sums it
    lg = fn q ->
      xs = unpack(q)

      pack([
        Enum.reduce(xs, 0.0, fn x, s -> s + (-0.5 * x * x - 0.9189385332046728) end)
        | Enum.map(xs, &(-&1))
      ])
    end

    c = Sampler.run(target(logp_grad: lg), warmup: 150, samples: 100, key: key)

    worst =
      Enum.zip(List.flatten(r.flat), List.flatten(c.draws))
      |> Enum.map(fn {x, y} -> abs(x - y) end)
      |> Enum.max()

    assert worst < 1.0e-9
    assert Enum.map(r.stats, & &1.n_leapfrog) == Enum.map(c.stats, & &1.n_leapfrog)
    assert_in_delta r.step_size, c.step_size, 1.0e-12
  end

  test "a short run on a tape runs in the NIF call and equals the run on an engine thread" do
    config = %{
      algorithm: :hmc,
      d: 3,
      q0: pack(@q0),
      key: Mx.to_flat_list(Mx.Random.key(7)),
      warmup: 0,
      samples: 2,
      target_accept: 0.8,
      max_depth: 10,
      step_size: 0.3,
      adapt_metric: false,
      metric: :diag,
      inv_metric: nil,
      n_leapfrog: 5,
      report_every: 3
    }

    assert {_draws, _stats, 0.3, _inv, _last} = Mx.NIF.sampler_run_inline(config, tape())
    assert Mx.NIF.sampler_run_inline(%{config | warmup: 1}, tape()) == :threaded
    assert Mx.NIF.sampler_run_inline(config, nil) == :threaded

    # a callback keeps the run on the engine thread
    threaded = [callback: fn _ -> :ok end]

    for {alg, extra} <- [hmc: [n_leapfrog: 5], mala: [], nuts: [max_depth: 3]] do
      opts =
        [algorithm: alg, warmup: 0, samples: 4, step_size: 0.4, key: Mx.Random.key(8)] ++ extra

      assert Sampler.run(target(tape: tape()), opts) ==
               Sampler.run(target(tape: tape()), opts ++ threaded)
    end

    # log density sum(log q) - |q|^2/2 is NaN for q < 0: the inline run meets it, hands the run to the
    # engine thread, whose owner classifies the point; the result is that run's
    f =
      Mx.compile(
        Mx.value_and_grad(fn q ->
          Mx.subtract(Mx.sum(Mx.log(q)), Mx.multiply(0.5, Mx.sum(Mx.multiply(q, q))))
        end)
      )

    q0 = [0.05, 0.5, 1.0]
    nan_tape = Mx.Compile.tape!(f, [Mx.tensor(q0, type: :f64)])
    lg = fn q -> nan_tape |> Mx.NIF.tape_time_raw([q], 1) |> elem(1) |> Enum.join() end
    t = %{dim: 3, q0: q0, tape: nan_tape, logp_grad: lg}

    opts = [
      algorithm: :hmc,
      n_leapfrog: 8,
      warmup: 0,
      samples: 3,
      step_size: 0.5,
      key: Mx.Random.key(9)
    ]

    assert Mx.NIF.sampler_run_inline(
             %{
               config
               | q0: pack(q0),
                 step_size: 0.5,
                 n_leapfrog: 8,
                 samples: 3,
                 key: Mx.to_flat_list(Mx.Random.key(9))
             },
             nan_tape
           ) == :threaded

    r = Sampler.run(t, opts)
    assert r == Sampler.run(t, opts ++ threaded)
    assert Enum.any?(r.stats, & &1.nan_energy)
  end

  test "the callback sees every iteration with the stats keys" do
    me = self()
    cb = fn info -> send(me, {:cb, info}) end

    r =
      Sampler.run(target(tape: tape()),
        warmup: 20,
        samples: 10,
        key: Mx.Random.key(1),
        callback: cb
      )

    infos =
      for _ <- 1..30,
          do:
            (receive do
               {:cb, i} -> i
             after
               1000 -> flunk("missing callback")
             end)

    refute_received {:cb, _}
    assert Enum.map(infos, & &1.iteration) == Enum.to_list(0..29)
    assert Enum.map(infos, & &1.warmup?) == List.duplicate(true, 20) ++ List.duplicate(false, 10)
    assert Enum.map(infos, & &1.stats) == r.warmup_stats ++ r.stats

    assert Map.keys(hd(infos).stats) == [
             :accept_stat,
             :divergent,
             :energy,
             :n_leapfrog,
             :nan_energy,
             :step_size,
             :tree_depth
           ]
  end

  test "HMC and MALA run through the same driver; dense metric returns rows" do
    h =
      Sampler.run(target(tape: tape()),
        algorithm: :hmc,
        n_leapfrog: 4,
        warmup: 50,
        samples: 20,
        key: Mx.Random.key(2)
      )

    assert Enum.all?(h.stats, &(&1.n_leapfrog == 4 and &1.tree_depth == 0))

    m =
      Sampler.run(target(tape: tape()),
        algorithm: :mala,
        warmup: 50,
        samples: 20,
        key: Mx.Random.key(2)
      )

    assert Enum.all?(m.stats, &(&1.n_leapfrog == 1))

    d =
      Sampler.run(target(tape: tape()),
        metric: :dense,
        warmup: 150,
        samples: 10,
        key: Mx.Random.key(2)
      )

    assert [[_, _, _], [_, _, _], [_, _, _]] = d.inv_metric
  end

  test "an Mx.Error from logp_grad rejects the point; another exception cancels the run and is raised" do
    lg = fn q ->
      if hd(unpack(q)) > 1.5, do: raise(Mx.Error, message: "[cholesky] not positive definite")
      normal_logp_grad(q)
    end

    r = Sampler.run(target(logp_grad: lg), warmup: 100, samples: 200, key: Mx.Random.key(4))
    assert Enum.all?(r.draws, &(hd(&1) <= 1.5))
    assert Enum.any?(r.warmup_stats ++ r.stats, & &1.divergent)

    bad = fn _q -> raise "boom" end

    assert_raise RuntimeError, "boom", fn ->
      Sampler.run(target(logp_grad: bad), warmup: 10, samples: 10)
    end

    refute_receive {:mx_sampler, _, _, _}, 100
  end

  test "a process killed mid-sample leaves no memory behind and no crash" do
    Mx.Memory.clear_cache()
    before = Mx.Memory.report()

    for which <- [:tape, :elixir] do
      me = self()

      # everything (the tape too) belongs to the killed process
      pid =
        spawn(fn ->
          t =
            if which == :tape,
              do: target(tape: tape()),
              else: target(logp_grad: fn q -> Process.sleep(1) && normal_logp_grad(q) end)

          Sampler.run(t,
            warmup: 10,
            samples: 200_000,
            key: Mx.Random.key(5),
            callback: fn %{iteration: i} -> if i == 20, do: send(me, :running) end
          )
        end)

      assert_receive :running, 10_000
      Process.exit(pid, :kill)
      wait_memory(before, 200)
    end

    r = Sampler.run(target(tape: tape()), warmup: 10, samples: 10, key: Mx.Random.key(6))
    assert length(r.draws) == 10
    # a finished run's memory goes with its result, before its handle is collected
    tape = tape()
    before = Mx.Memory.report()
    _ = Sampler.run(target(tape: tape), warmup: 10, samples: 100_000, key: Mx.Random.key(6))
    assert Mx.Memory.report().active_bytes <= before.active_bytes
  end

  defp wait_memory(before, 0) do
    now = Mx.Memory.report()

    flunk(
      "memory not back: active #{before.active_bytes} -> #{now.active_bytes}, tapes #{before.tapes} -> #{now.tapes}"
    )
  end

  defp wait_memory(before, n) do
    Mx.Memory.clear_cache()
    now = Mx.Memory.report()

    if now.active_bytes <= before.active_bytes and now.tapes <= before.tapes,
      do: :ok,
      else: Process.sleep(20) && wait_memory(before, n - 1)
  end

  test "options and targets are validated" do
    t = target(tape: tape())
    assert_raise ArgumentError, ~r/unknown option foo:/, fn -> Sampler.run(t, foo: 1) end

    assert_raise ArgumentError, ~r/algorithm: must be one of \[:nuts, :hmc, :mala\]/, fn ->
      Sampler.run(t, algorithm: :gibbs)
    end

    assert_raise ArgumentError, ~r/target_accept: must lie in \(0, 1\)/, fn ->
      Sampler.run(t, target_accept: 1.2)
    end

    assert_raise ArgumentError, ~r/warmup: must be an integer >= 0/, fn ->
      Sampler.run(t, warmup: -1)
    end

    assert_raise ArgumentError, ~r/max_depth: must be an integer in 1..30/, fn ->
      Sampler.run(t, max_depth: 31)
    end

    assert_raise ArgumentError, ~r/inv_metric: must be a list of 3 positive numbers/, fn ->
      Sampler.run(t, inv_metric: [1.0, -1.0, 1.0])
    end

    assert_raise ArgumentError, ~r/dense inv_metric \(3 x 3\) is not positive definite/, fn ->
      Sampler.run(t, metric: :dense, inv_metric: [[1, 2, 0], [2, 1, 0], [0, 0, 1]])
    end

    assert_raise ArgumentError, ~r/key: must be an Mx.Random key/, fn ->
      Sampler.run(t, key: 3)
    end

    assert_raise ArgumentError, ~r/needs a tape or a logp_grad/, fn -> Sampler.run(target([])) end

    assert_raise ArgumentError, ~r/q0 must be a list of 3 numbers/, fn ->
      Sampler.run(target(tape: tape(), q0: [1.0]))
    end

    f32 = Mx.compile(Mx.value_and_grad(fn q -> Mx.sum(Mx.multiply(q, q)) end))
    t32 = Mx.Compile.tape!(f32, [Mx.tensor(@q0, type: :f32)])

    assert_raise ArgumentError,
                 ~r/must map \(f64\[3\]\) to \(f64\[\] log density, f64\[3\] gradient\).*it maps \(f32\[3\]\) to \(f32\[\], f32\[3\]\)/,
                 fn ->
                   Sampler.run(target(tape: t32))
                 end

    assert_raise Mx.Error, ~r/not finite at the starting point/, fn ->
      neg_inf = <<0xFFF0_0000_0000_0000::unsigned-64-native>>
      Sampler.run(target(logp_grad: fn _ -> neg_inf <> pack([0.0, 0.0, 0.0]) end))
    end
  end

  test "the NIF checks its config and replies" do
    assert_raise ArgumentError, ~r/exactly the keys algorithm, d, q0/, fn ->
      Mx.NIF.sampler_start(%{}, nil, self())
    end

    config = %{
      algorithm: :nuts,
      d: 2,
      q0: pack([0.0, 0.0]),
      key: [0, 1],
      warmup: 0,
      samples: 1,
      target_accept: 0.8,
      max_depth: 3,
      step_size: 0.5,
      adapt_metric: true,
      metric: :diag,
      inv_metric: nil,
      n_leapfrog: 1,
      report_every: 0
    }

    assert_raise ArgumentError, ~r/q0: must be a binary of 2 native f64/, fn ->
      Mx.NIF.sampler_start(%{config | q0: pack([0.0])}, nil, self())
    end

    assert_raise ArgumentError, ~r/key: must be the two u32 words/, fn ->
      Mx.NIF.sampler_start(%{config | key: [0, -1]}, nil, self())
    end

    assert_raise ArgumentError, ~r/metric: must be one of :diag, :dense/, fn ->
      Mx.NIF.sampler_start(%{config | metric: :full}, nil, self())
    end

    {h, ref} = Mx.NIF.sampler_start(config, nil, self())
    assert_receive {:mx_sampler, ^ref, :grad, q}
    assert byte_size(q) == 16

    assert_raise ArgumentError, ~r/must hold 3 native f64/, fn ->
      Mx.NIF.sampler_reply(h, pack([0.0]))
    end

    assert_raise ArgumentError, ~r/sampler is still running|has not finished/, fn ->
      Mx.NIF.sampler_result(h)
    end

    :ok = Mx.NIF.sampler_reply(h, pack([0.0, 0.0, 0.0]))
    :ok = Mx.NIF.sampler_cancel(h)

    assert_raise ArgumentError, ~r/no gradient request is pending/, fn ->
      Mx.NIF.sampler_reply(h, pack([0.0, 0.0, 0.0]))
    end
  end
end
