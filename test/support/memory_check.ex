defmodule Mx.MemoryCheck do
  @moduledoc false

  @doc """
  The engine's memory report once every process has been garbage collected and live arrays and
  active bytes are back at or below `base`'s (destructors run shortly after the GC), or after
  `tries` waits of 25 ms: the caller asserts on what comes back.
  """
  def settled(base, tries \\ 200) do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)
    now = Mx.Memory.report()

    if tries == 0 or
         (now.live_arrays <= base.live_arrays and now.active_bytes <= base.active_bytes) do
      now
    else
      Process.sleep(25)
      settled(base, tries - 1)
    end
  end
end
