# Issue 9: where native work runs. Each figure beside its limit or the cost it replaced,
# measured in this run. `make -C bench scheduling` (MIX_ENV=test: it uses test/support).
import Bitwise

median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end
time_us = fn f -> {us, _} = :timer.tc(f); us end
IO.puts("load average: #{File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ")}")

# 1. The crash script of the issue in fresh VMs with the smallest scheduler stacks.
runs = String.to_integer(System.get_env("CRASH_RUNS", "20"))

passed =
  Enum.count(1..runs, fn _ ->
    match?({:ok, _}, Mx.FreshVM.run(Mx.BlasWorkloads, :matmul_then_inv, [12])) and
      match?({:ok, _}, Mx.FreshVM.run(Mx.BlasWorkloads, :concurrent, [2]))
  end)

IO.puts("crash script (12 iterations) + concurrent BLAS/LAPACK, fresh VMs, +sssdcpu 20 +sss 20: #{passed}/#{runs} runs passed")

# 2. Normal schedulers: the longest call (per-thread CPU time) in each workload, best of 3.
IO.puts("\nlongest normal-scheduler call per workload (limit 1 ms):")

for {name, w} <- Mx.SchedWorkloads.all() do
  {ns, nif, _} = Mx.SchedWorkloads.best(w)
  IO.puts("  #{String.pad_trailing(name, 50)} #{:io_lib.format("~.3f", [ns / 1.0e6])} ms (#{nif}), #{:io_lib.format("~.2f", [ns / 1.0e6])}x the limit")
end

# 3. Abandoned work: four 3000^2 f64 matmul + exp evals killed mid-run; time until their memory is back.
{held, ms, _} = Mx.SchedWorkloads.killed_evals(60_000)
IO.puts("\nkilled evals (4 x 3000^2 f64 matmul + exp, #{div(held, 1_000_000)} MB held): memory back in #{ms} ms (limit 100 ms)")

# 4. Hashing and serializing a 1 GiB lazy array, beside the same for a 1 GiB binary (the old array term).
big = Mx.ones({1 <<< 27}, type: :f64)
bin = :binary.copy(<<0>>, 1 <<< 30)
h_arr = median.(for _ <- 1..5, do: time_us.(fn -> :erlang.phash2(big) end))
h_bin = time_us.(fn -> :erlang.phash2(bin) end)
t_arr = median.(for _ <- 1..5, do: time_us.(fn -> :erlang.term_to_binary(big) end))
IO.puts("\nphash2 of a 1 GiB array: #{h_arr} us; of a 1 GiB binary (what the term held before): #{h_bin} us (#{div(h_bin, max(h_arr, 1))}x)")
IO.puts("term_to_binary of a 1 GiB array: #{t_arr} us, #{byte_size(:erlang.term_to_binary(big))} bytes")

# 5. What deep-node handoff costs small linear algebra (Gen's 2x2 Cholesky), beside a tiny inline eval.
s = Mx.eval(Mx.add(Mx.eye(2, type: :f64), 1.0))
x = Mx.eval(Mx.tensor([1.0, 2.0], type: :f64))
chol = median.(for _ <- 1..2000, do: time_us.(fn -> Mx.eval(Mx.Linalg.cholesky(s)) end))
tiny = median.(for _ <- 1..2000, do: time_us.(fn -> Mx.eval(Mx.exp(x)) end))
IO.puts("\neval of a 2x2 cholesky (engine thread): #{chol} us median; of a 2-element exp (inline): #{tiny} us")
