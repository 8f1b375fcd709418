defmodule Gen.MemoryLongTest do
  # Not async: Mx.Memory's counts are global to the VM.
  use ExUnit.Case, async: false
  alias Gen.Inference
  alias Gen.Inference.Kernel

  # Resource destructors run shortly after the GC that dropped the last reference, so read the
  # counters once two reads 20 ms apart agree (as test/gen/inference_test.exs does).
  defp settled(tries \\ 50) do
    :erlang.garbage_collect()
    a = Map.take(Mx.Memory.report(), [:live_arrays, :active_bytes])
    Process.sleep(20)
    b = Map.take(Mx.Memory.report(), [:live_arrays, :active_bytes])
    if a == b or tries == 0, do: b, else: settled(tries - 1)
  end

  @tag :slow
  @tag timeout: :infinity
  test "10^5 MH iterations through run/3: live arrays and bytes after 10^5 equal those after 10^4" do
    ys = Gen.ChainCheck.normal_ys()
    obs = Gen.ChainCheck.normal_observations(ys)
    {t, _} = Gen.generate(Gen.ChainCheck.normal_model(), [ys], obs, key: Mx.Random.key(1))
    parent = self()

    # The callback runs in this process, between iterations, with the same things alive at
    # both checkpoints: the current trace, the kernel's closure, and the kept floats.
    cb = fn %{iteration: i} ->
      if i + 1 in [10_000, 100_000], do: send(parent, {:mem, i + 1, settled()})
    end

    xs =
      Inference.run(Kernel.mh(Gen.select(:mu)), t,
        samples: 100_000,
        key: Mx.Random.key(2),
        select: &Mx.to_number(&1[:mu]),
        callback: cb,
        progress: false
      )

    assert length(xs) == 100_000 and Enum.all?(xs, &is_float/1)
    assert_received {:mem, 10_000, at_1e4}
    assert_received {:mem, 100_000, at_1e5}

    # Flat: the same within a few arrays. A leak of one array per 100 iterations would add
    # 900 arrays between the checkpoints; here the difference is the current trace's and
    # keys' arrays, which are the same number at both.
    assert abs(at_1e5.live_arrays - at_1e4.live_arrays) <= 4,
           "live arrays #{at_1e4.live_arrays} after 10^4, #{at_1e5.live_arrays} after 10^5"

    # Each of those few arrays is a scalar or a key: at most 16 bytes of data.
    assert abs(at_1e5.active_bytes - at_1e4.active_bytes) <= 4 * 16,
           "active bytes #{at_1e4.active_bytes} after 10^4, #{at_1e5.active_bytes} after 10^5"
  end
end
