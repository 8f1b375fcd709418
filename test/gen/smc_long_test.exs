defmodule Gen.SMCLongTest do
  # Not async: Mx.Memory's counters are global, so no other test may run beside this one.
  use ExUnit.Case, async: false
  import Gen

  # A 1-d linear-Gaussian model: x_0 ~ N(0, 1), x_t ~ N(a x_{t-1}, q), y_t ~ N(x_t, r).
  # With the locally optimal proposal the weight of step t is p(y_t | x_{t-1}), whose relative
  # variance over the particles is about a²P/(q + r) ≈ 4e-4 here (P ≈ r the filtered variance),
  # so over 10^4 steps with n = 10 the log-ML estimate has an sd below 1 while the dynamics
  # still matter: log p(y) differs from that of i.i.d. N(0, q/(1 − a²) + r) data by about 200.
  @a 0.2
  @q 1.0
  @r 0.01
  @steps 10_001
  @n 10

  # init and step: test/support/kalman.ex; the locally optimal proposal is this test's own.
  defp model do
    {init, step} = Gen.Kalman.init_step(%{a: @a, q: @q, r: @r})

    # N(μ, v) prior times N(y; x, r): N(m, s²) with 1/s² = 1/v + 1/r, m = s²(μ/v + y/r).
    proposal =
      gen(fn _t, prev, obs ->
        {mu, v} = if prev == nil, do: {0.0, 1.0}, else: {@a * Mx.to_number(prev), @q}
        s2 = 1 / (1 / v + 1 / @r)
        trace(:x, Gen.Dist.normal(s2 * (mu / v + Mx.to_number(obs[:y]) / @r), :math.sqrt(s2)))
      end)

    {init, step, proposal}
  end

  # Data simulated from the model with fixed keys.
  defp data(t_len) do
    e = Mx.Random.normal(Mx.Random.key(1), shape: {t_len}, type: :f64) |> Mx.to_list()
    v = Mx.Random.normal(Mx.Random.key(2), shape: {t_len}, type: :f64) |> Mx.to_list()

    {ys, _} =
      Enum.zip(e, v)
      |> Enum.with_index()
      |> Enum.map_reduce(0.0, fn {{ei, vi}, t}, x ->
        x = if t == 0, do: ei, else: @a * x + :math.sqrt(@q) * ei
        {x + :math.sqrt(@r) * vi, x}
      end)

    ys
  end

  # Kalman filter (test/support/kalman.ex): exact log p(y_0..y_{T-1}).
  defp kalman(ys), do: elem(Gen.Kalman.filter(ys, %{a: @a, q: @q, r: @r}), 0)

  # Resource destructors run shortly after the GC that dropped the last reference (see
  # test/mx/memory_test.exs): read the counters once two reads 20 ms apart agree.
  defp settled(tries \\ 100) do
    :erlang.garbage_collect()
    a = Mx.Memory.report()
    Process.sleep(20)
    b = Mx.Memory.report()

    if (a.live_arrays == b.live_arrays and a.active_bytes == b.active_bytes) or tries == 0,
      do: b,
      else: settled(tries - 1)
  end

  # The distinct arrays the particles' traces hold (duplicates made by resampling share them).
  defp held(term, acc \\ MapSet.new())
  defp held(%Mx.Array{id: id}, acc), do: MapSet.put(acc, id)
  defp held(%_{} = s, acc), do: s |> Map.from_struct() |> held(acc)

  defp held(m, acc) when is_map(m),
    do: Enum.reduce(m, acc, fn {k, v}, a -> held(v, held(k, a)) end)

  defp held(l, acc) when is_list(l), do: Enum.reduce(l, acc, &held/2)
  defp held(t, acc) when is_tuple(t), do: t |> Tuple.to_list() |> held(acc)
  defp held(_, acc), do: acc

  defp mean_sd(v) do
    m = Enum.sum(v) / length(v)
    {m, :math.sqrt(Enum.sum(Enum.map(v, &((&1 - m) ** 2))) / (length(v) - 1))}
  end

  @tag :slow
  @tag timeout: 600_000
  test "a 10^4-step streaming particle filter keeps memory flat and matches the Kalman log ML" do
    ys = data(@steps)
    {init, step, proposal} = model()
    me = self()

    callback = fn %{step: t, traces: traces} ->
      if t in [1_000, 10_000] do
        rep = settled()
        send(me, {:memory, t, rep.live_arrays, rep.active_bytes, MapSet.size(held(traces))})
      end
    end

    obs = Stream.map(ys, &%{y: &1})

    r =
      Gen.Inference.SMC.filter(init, step, obs, @n,
        key: Mx.Random.key(7),
        proposal: proposal,
        callback: callback
      )

    assert_received {:memory, 1_000, live1, bytes1, held1}
    assert_received {:memory, 10_000, live2, bytes2, held2}

    # Flat: besides the particles' own arrays (their number moves with how many particles are
    # copies of one another) the live arrays at step 10^4 are those at step 10^3, within a
    # handful; bytes the same, at the average bytes per array.
    assert abs(live2 - held2 - (live1 - held1)) <= 5,
           "live arrays #{live1} (#{held1} in particles) at 10^3, #{live2} (#{held2}) at 10^4"

    per_array = bytes1 / live1

    assert abs(bytes2 - bytes1) <= (abs(held2 - held1) + 5) * per_array,
           "active bytes #{bytes1} at 10^3, #{bytes2} at 10^4"

    # Standard error of the 10^4-step estimate: the variance of log Ẑ grows linearly with the
    # number of steps, so it is √10 times the sd over 8 independent runs of the first 10^3 steps.
    short = Enum.take(ys, 1_000)

    shorts =
      for s <- 20..27 do
        Gen.Inference.SMC.filter(init, step, Enum.map(short, &%{y: &1}), @n,
          key: Mx.Random.key(s),
          proposal: proposal
        )
        |> Map.fetch!(:log_ml)
        |> Mx.to_number()
      end

    {short_avg, short_sd} = mean_sd(shorts)
    short_exact = kalman(short)

    assert abs(short_avg - short_exact) < 4 * short_sd / :math.sqrt(8),
           "10^3 steps: mean log ML #{short_avg} vs Kalman #{short_exact}, sd #{short_sd}"

    se = short_sd * :math.sqrt(10)
    exact = kalman(ys)
    lml = Mx.to_number(r.log_ml)
    assert abs(lml - exact) < 4 * se, "10^4 steps: log ML #{lml} vs Kalman #{exact}, SE #{se}"
  end
end
