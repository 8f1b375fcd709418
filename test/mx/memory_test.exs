defmodule Mx.MemoryTest do
  # Engine memory stays flat: arrays the BEAM can no longer reach are freed by
  # its garbage collector, dispose frees at once, and the buffer cache obeys
  # its limit. Not async: these read and set the engine-wide counters.
  use ExUnit.Case, async: false
  import Bitwise

  @moduletag timeout: 300_000
  # 2^20 f32 is exactly 4 MiB, a size class of its own, so byte counts are exact.
  @big 1 <<< 20
  @big_bytes 4 <<< 20

  setup do
    before = Mx.Memory.report()
    on_exit(fn -> Mx.Memory.set_cache_limit(before.cache_limit) end)
    :ok
  end

  # Array terms are resource binaries whose size is the array's byte size; they
  # live in the process's binary heap, so its GC frees the arrays it drops.
  # Every process is collected, and the counters read once they stop moving, so arrays
  # dropped by earlier tests' processes are not freed during the test and below its baseline.
  defp collect_garbage do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)
    stable(Mx.Memory.report(), 200)
  end

  defp stable(last, 0), do: last

  defp stable(last, tries) do
    Process.sleep(25)
    now = Mx.Memory.report()

    if now.live_arrays == last.live_arrays and now.active_bytes == last.active_bytes,
      do: now,
      else: stable(now, tries - 1)
  end

  # The VM runs resource destructors shortly after the GC that dropped the last
  # reference, not inside it, so counters reach their final values a moment later.
  defp settled(base, tries \\ 200) do
    now = Mx.Memory.report()

    if tries == 0 or (now.live_arrays == base.live_arrays and now.active_bytes == base.active_bytes) do
      now
    else
      Process.sleep(25)
      settled(base, tries - 1)
    end
  end

  test "a million arrays made and dropped across processes leave nothing behind" do
    base = collect_garbage()
    workers = 4
    iterations = 90_000
    test = self()

    pids =
      for w <- 1..workers do
        spawn_link(fn ->
          for i <- 1..iterations do
            # three arrays an iteration (the two operands and the sum), each evaluated
            y = Mx.eval(Mx.add(Mx.tensor(w * 1.0, type: :f64), i))

            if rem(i, 10_000) == 0 do
              assert Mx.to_number(y) == w + i
              # Dead arrays are reclaimed by minor GCs as the loop runs, so the live count
              # stays near what one young heap holds (a few hundred per process), not 10^5.
              assert Mx.Memory.live_arrays() - base.live_arrays < 20_000
            end
          end

          :erlang.garbage_collect()
          send(test, {:collected, self()})
          receive do: (:exit -> :ok)
        end)
      end

    for pid <- pids, do: assert_receive({:collected, ^pid}, 120_000)

    # Every worker has garbage collected but is still alive: the GC, not process exit, freed the arrays.
    after_gc = settled(base)
    assert after_gc.alloc_count - base.alloc_count >= 3 * workers * iterations
    assert 3 * workers * iterations >= 1_000_000
    assert after_gc.live_arrays == base.live_arrays
    assert after_gc.live_buffers == base.live_buffers
    assert after_gc.active_bytes == base.active_bytes

    for pid <- pids, do: send(pid, :exit)
  end

  # Builds and evaluates `n` arrays of 4 MiB, dropping each; returns the largest active_bytes seen.
  defp churn_big_arrays(n) do
    Enum.reduce(1..n, 0, fn i, seen ->
      a = Mx.eval(Mx.full({@big}, i * 1.0))
      if rem(i, 50) == 0, do: assert(Mx.to_number(a[@big - 1]) == i * 1.0)
      max(seen, Mx.Memory.active_bytes())
    end)
  end

  test "a loop of large arrays stays bounded without an explicit GC" do
    base = collect_garbage()
    Mx.Memory.reset_peak()
    iterations = 200
    seen = churn_big_arrays(iterations)

    # The process GCs whenever the binaries it made since the last GC pass its binary
    # heap size, which starts at 46422 words (363 KiB) and, after each GC, grows only to
    # about twice what survived (one live array). So a GC comes within a few 4 MiB arrays,
    # and at most a handful are alive at once: 8 is a safe bound, against 200 if the BEAM
    # could not see the arrays' size.
    bound = 8 * @big_bytes
    assert seen - base.active_bytes <= bound
    assert Mx.Memory.peak_bytes() - base.active_bytes <= bound
    assert iterations * @big_bytes > 20 * bound

    :erlang.garbage_collect()
    after_gc = settled(base)
    assert after_gc.active_bytes == base.active_bytes
    assert after_gc.live_arrays == base.live_arrays
  end

  test "dispose frees the buffer at once" do
    a = Mx.eval(Mx.full({@big}, 1.0))
    before = Mx.Memory.report()
    assert :ok = Mx.dispose(a)
    now = Mx.Memory.report()

    assert before.active_bytes - now.active_bytes == @big_bytes
    assert before.live_buffers - now.live_buffers == 1
    # The node itself lives on until its term is collected; only the data is gone.
    assert now.live_arrays == before.live_arrays
    assert Mx.NIF.state(a.ref) == :disposed

    # Disposing twice, or disposing a lazy array, frees nothing more.
    assert :ok = Mx.dispose(a)
    assert Mx.Memory.active_bytes() == now.active_bytes
    lazy = Mx.full({@big}, 2.0)
    Mx.dispose(lazy)
    assert Mx.Memory.active_bytes() == now.active_bytes
  end

  test "freed buffers are cached for reuse, within the cache limit, until clear_cache" do
    Mx.Memory.set_cache_limit(:infinity)
    Mx.Memory.clear_cache()
    assert Mx.Memory.cache_bytes() == 0

    # A disposed buffer goes to the cache, and the next array of its size reuses it.
    a = Mx.eval(Mx.full({@big}, 1.0))
    Mx.dispose(a)
    assert Mx.Memory.cache_bytes() == @big_bytes
    hits = Mx.Memory.report().cache_hits
    b = Mx.eval(Mx.full({@big}, 2.0))
    assert Mx.Memory.report().cache_hits == hits + 1
    assert Mx.Memory.cache_bytes() == 0
    assert binary_part(Mx.to_binary(b), 28, 4) == <<2.0::float-32-native>>

    # Lowering the limit evicts; a buffer that would overflow it is freed instead of kept.
    c = Mx.eval(Mx.full({@big}, 3.0))
    Mx.dispose(b)
    Mx.dispose(c)
    assert Mx.Memory.cache_bytes() == 2 * @big_bytes
    Mx.Memory.set_cache_limit(@big_bytes)
    assert Mx.Memory.cache_bytes() <= @big_bytes
    assert Mx.Memory.report().cache_limit == @big_bytes
    Mx.Memory.clear_cache()
    d = Mx.eval(Mx.full({2 * @big}, 4.0))
    Mx.dispose(d)
    assert Mx.Memory.cache_bytes() == 0

    # A zero limit turns the cache off.
    Mx.Memory.set_cache_limit(0)
    e = Mx.eval(Mx.full({@big}, 5.0))
    Mx.dispose(e)
    assert Mx.Memory.cache_bytes() == 0

    Mx.Memory.set_cache_limit(:infinity)
    f = Mx.eval(Mx.full({@big}, 6.0))
    Mx.dispose(f)
    assert Mx.Memory.cache_bytes() == @big_bytes
    assert :ok = Mx.Memory.clear_cache()
    assert Mx.Memory.cache_bytes() == 0
  end

  test "report has every counter" do
    report = Mx.Memory.report()

    for key <- [:active_bytes, :peak_bytes, :cache_bytes, :live_arrays, :live_buffers, :alloc_count, :cache_hits] do
      assert is_integer(report[key]) and report[key] >= 0, "#{key}: #{inspect(report[key])}"
    end

    assert report.peak_bytes >= report.active_bytes
    assert report.cache_limit == :infinity or is_integer(report.cache_limit)
    assert report.memory_limit == :infinity or is_integer(report.memory_limit)
  end
end
