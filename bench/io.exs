# safetensors load throughput against the plain read bandwidth of the same file.
# Writes a ~200 MB checkpoint (50 f32 tensors of 1M elements) to the temp dir, then per round
# (after one warm-up round; cases alternate so drift hits all alike) times:
#   * dd into a reused 4 MB buffer (the kernel's page-cache copy rate, an upper bound);
#   * File.read!/1 of the whole file into one binary (the plain read bandwidth);
#   * Mx.IO.load/1 (tensors read by offset straight into Mx buffers, dirty IO scheduler), "fresh"
#     after clearing the allocator's buffer cache (page faults count, as in a first load) and
#     "reused" with the cache holding the last load's buffers;
#   * the same tensors by :file.pread into binaries, then Mx.from_binary/3 (one extra copy).
# The file is in the page cache after the first read, so every case reads from memory. On a
# VM, first touches of fresh memory vary by 10x or more from one run to the next: the minimum
# is printed beside the median. Also prints the Mx bytes held and the BEAM binary memory after a load (no doubling).
#
#   mix run bench/io.exs [tensors] [rounds]
Code.require_file("bench_helper.exs", __DIR__)
import Bitwise

{tensors, rounds} =
  case System.argv() do
    [t, r] -> {String.to_integer(t), String.to_integer(r)}
    _ -> {50, 7}
  end

elems = 1 <<< 20
path = Path.join(System.tmp_dir!(), "mx_bench_io_#{System.os_time()}.safetensors")
key = Mx.Random.key(0)
arrays = Map.new(1..tensors, fn i -> {"layer.#{i}.weight", Mx.Random.normal(Mx.Random.key(i), shape: {elems})} end)
:ok = Mx.IO.save_safetensors(path, arrays)
_ = key
size = File.stat!(path).size
mb = size / 1.0e6
IO.puts("file: #{path}, #{Float.round(mb, 1)} MB, #{tensors} tensors of #{elems} f32; load #{Bench.load()}")

# Offsets for the pread baseline, from the header.
<<n::little-64>> = File.open!(path, [:read, :binary], &IO.binread(&1, 8))
header = File.open!(path, [:read, :binary], fn f -> :file.pread(f, 8, n) end) |> elem(1)
{:ok, entries} = Mx.IO.JSON.decode(header)
infos = for {name, %{"data_offsets" => [b, e]}} <- entries, do: {name, 8 + n + b, e - b}

cases = [
  {"dd to /dev/null", fn -> {_, 0} = System.cmd("dd", ["if=#{path}", "of=/dev/null", "bs=4M"], stderr_to_stdout: true) end},
  {"File.read!", fn -> byte_size(File.read!(path)) end},
  {"Mx.IO.load, fresh",
   fn ->
     Mx.Memory.clear_cache()
     map_size(Mx.IO.load(path))
   end},
  {"Mx.IO.load, reused", fn -> map_size(Mx.IO.load(path)) end},
  {"pread + from_binary",
   fn ->
     {:ok, f} = :file.open(path, [:read, :raw, :binary])

     out =
       Map.new(infos, fn {name, off, len} ->
         {:ok, bin} = :file.pread(f, off, len)
         {name, Mx.from_binary(bin, :f32)}
       end)

     :file.close(f)
     map_size(out)
   end}
]

times = Bench.round_robin(Enum.map(cases, fn {name, fun} -> {name, fn -> fun.() end} end), 1, rounds)

IO.puts(
  "\n#{Bench.pad("case", 22)} #{Bench.lpad("median ms", 10)} #{Bench.lpad("GB/s", 7)} #{Bench.lpad("min ms", 8)} #{Bench.lpad("GB/s", 7)}   (#{rounds} rounds; load #{Bench.load()})"
)

gbs = fn ms -> :erlang.float_to_binary(size / (ms * 1.0e6), decimals: 2) end

for {name, _} <- cases do
  ms = Bench.median(times[name]) / 1.0e6
  min = Enum.min(times[name]) / 1.0e6

  IO.puts(
    "#{Bench.pad(name, 22)} #{Bench.lpad(Bench.fmt(ms), 10)} #{Bench.lpad(gbs.(ms), 7)} #{Bench.lpad(Bench.fmt(min), 8)} #{Bench.lpad(gbs.(min), 7)}"
  )
end

:erlang.garbage_collect()
Mx.Memory.clear_cache()
bin0 = :erlang.memory(:binary)
Mx.Memory.reset_peak()
loaded = Mx.IO.load(path)
bin1 = :erlang.memory(:binary)

IO.puts(
  "\nafter Mx.IO.load: Mx active #{Float.round(Mx.Memory.active_bytes() / 1.0e6, 1)} MB, Mx peak #{Float.round(Mx.Memory.peak_bytes() / 1.0e6, 1)} MB, " <>
    "BEAM binary memory change #{Float.round((bin1 - bin0) / 1.0e6, 1)} MB, for a #{Float.round(mb, 1)} MB file (#{map_size(loaded)} tensors)"
)

File.rm!(path)
