defmodule Bench do
  @moduledoc false
  # Shared timing helpers for the Elixir benchmarks. The machine is shared and
  # noisy, so every figure is a median, and cases are measured round-robin
  # (batch 1 of every case, then batch 2, ...) so drift hits all cases alike.

  def median([]), do: nil

  def median(list) do
    sorted = Enum.sort(list)
    n = length(sorted)
    mid = div(n, 2)

    if rem(n, 2) == 1,
      do: Enum.at(sorted, mid),
      else: (Enum.at(sorted, mid - 1) + Enum.at(sorted, mid)) / 2
  end

  def now_ns, do: :erlang.monotonic_time(:nanosecond)

  @doc """
  CPU time in ns of every thread of this OS process (schedulers, dirty schedulers and the
  engine's own threads, which :erlang.statistics(:runtime) does not see), from schedstat.
  """
  def process_cpu_ns do
    dir = "/proc/self/task"

    case File.ls(dir) do
      {:ok, tasks} ->
        Enum.reduce(tasks, 0, fn t, acc ->
          case File.read(Path.join([dir, t, "schedstat"])) do
            {:ok, s} -> acc + (s |> String.split() |> hd() |> String.to_integer())
            _ -> acc
          end
        end)

      _ ->
        0
    end
  end

  @doc "The 1-minute load average: how busy the shared machine was when a figure was taken."
  def load do
    case File.read("/proc/loadavg") do
      {:ok, s} -> s |> String.split() |> hd()
      _ -> "?"
    end
  end

  @doc "Mean ns per call of `fun` over one batch of `n` calls."
  def batch_ns(fun, n) do
    t0 = now_ns()
    loop(fun, n)
    (now_ns() - t0) / n
  end

  defp loop(_fun, 0), do: :ok

  defp loop(fun, n) do
    fun.()
    loop(fun, n - 1)
  end

  @doc """
  Runs `batches` rounds over `cases` ([{name, fun}]), one batch of `n` calls
  per case per round, after one warm-up round. Returns %{name => [batch means in ns]}.
  A garbage collection before each batch keeps one case's garbage out of the next one's time.
  """
  def round_robin(cases, n, batches) do
    Enum.each(cases, fn {_name, fun} -> batch_ns(fun, n) end)

    for _ <- 1..batches, {name, fun} <- cases, reduce: %{} do
      acc ->
        :erlang.garbage_collect()
        t = batch_ns(fun, n)
        Map.update(acc, name, [t], &[t | &1])
    end
  end

  def fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 1)
  def fmt(x), do: to_string(x)

  def pad(s, n), do: String.pad_trailing(to_string(s), n)
  def lpad(s, n), do: String.pad_leading(to_string(s), n)
end
