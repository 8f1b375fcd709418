defmodule Mx.Memory do
  @moduledoc """
  The engine's memory accounting.

  Array data lives in C buffers that the BEAM's garbage collector cannot
  see. Two things keep memory in check: every array term carries a binary
  weighing the array's byte size, so a process holding much array memory is
  garbage collected sooner; and freed buffers go to a cache (reused for the
  next array of a similar size), bounded by `set_cache_limit/1` (by default
  1/16 of the machine's memory). `Mx.dispose/1` frees one array's buffer at once.

  Large graphs dropped by a process are freed on an engine thread rather than
  on the scheduler running its garbage collection; `report/0` and the counters
  wait for such frees to finish, so the figures they give are settled.

      iex> is_integer(Mx.Memory.active_bytes())
      true
  """

  @typedoc "A byte count, or `:infinity` for no limit."
  @type limit :: non_neg_integer() | :infinity

  @doc """
  All counters as a map: `:active_bytes` (held by live buffers),
  `:peak_bytes`, `:cache_bytes` (freed, kept for reuse), `:live_arrays`
  (graph nodes alive), `:live_buffers`, `:cache_limit`, `:memory_limit`,
  `:alloc_count`, `:cache_hits`, `:tapes` (live tapes of `Mx.compile/2`)
  and `:tape_bytes` (their structures and captured constants; the
  constants' buffers also count in `:active_bytes`).

      iex> Map.has_key?(Mx.Memory.report(), :peak_bytes)
      true
  """
  @spec report() :: %{atom() => non_neg_integer() | :infinity}
  def report, do: Mx.NIF.memory_report()

  @doc "Bytes held by live array buffers."
  @spec active_bytes() :: non_neg_integer()
  def active_bytes, do: report().active_bytes

  @doc "The most bytes held at once since start or `reset_peak/0`."
  @spec peak_bytes() :: non_neg_integer()
  def peak_bytes, do: report().peak_bytes

  @doc "Bytes of freed buffers kept for reuse."
  @spec cache_bytes() :: non_neg_integer()
  def cache_bytes, do: report().cache_bytes

  @doc "Graph nodes (arrays, evaluated or not) currently alive."
  @spec live_arrays() :: non_neg_integer()
  def live_arrays, do: report().live_arrays

  @doc "Sets the peak to the current active bytes."
  @spec reset_peak() :: :ok
  def reset_peak, do: Mx.NIF.reset_peak()

  @doc """
  Bounds the buffer cache; `0` disables caching, `:infinity` removes the bound.

      iex> Mx.Memory.set_cache_limit(:infinity)
      :ok
  """
  @spec set_cache_limit(limit()) :: :ok
  def set_cache_limit(bytes), do: Mx.NIF.set_cache_limit(bytes)

  @doc """
  Bounds the bytes live buffers may hold; an allocation past it raises
  `Mx.Error` (evaluation fails, nothing crashes).
  """
  @spec set_memory_limit(limit()) :: :ok
  def set_memory_limit(bytes), do: Mx.NIF.set_memory_limit(bytes)

  @doc "Frees every cached buffer."
  @spec clear_cache() :: :ok
  def clear_cache, do: Mx.NIF.clear_cache()
end
