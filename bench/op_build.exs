# Cost of building one lazy op from Elixir, beside an empty NIF call and an
# empty dirty NIF call measured in the same run; and the cost of evaluating a
# tiny graph inline versus through a dirty scheduler.
#
#   mix run bench/op_build.exs [calls_per_batch] [batches]
Code.require_file("bench_helper.exs", __DIR__)

{n, batches} =
  case System.argv() do
    [n, b] -> {String.to_integer(n), String.to_integer(b)}
    _ -> {10_000, 21}
  end

a = Mx.tensor([1.0, 2.0, 3.0, 4.0])
b = Mx.tensor([0.5, 0.25, 0.125, 1.0])
x = Mx.tensor(1.5)
Mx.eval([a, b, x])
{ra, rb} = {a.ref, b.ref}

# A tiny graph: three ops on an f32 scalar, as a probabilistic program makes them.
tiny = fn -> x |> Mx.multiply(x) |> Mx.add(x) |> Mx.exp() end

cases = [
  {"empty fun call (harness)", fn -> :ok end},
  {"Mx.NIF.noop/0 (empty NIF)", &Mx.NIF.noop/0},
  {"Mx.NIF.noop_dirty/0 (empty dirty NIF)", &Mx.NIF.noop_dirty/0},
  {"Mx.NIF.binary(:add, ref, ref)", fn -> Mx.NIF.binary(:add, ra, rb) end},
  {"Mx.add(a, b), f32[4]", fn -> Mx.add(a, b) end},
  {"Mx.exp(a), f32[4]", fn -> Mx.exp(a) end},
  {"Mx.add(a, 2.0): a scalar operand", fn -> Mx.add(a, 2.0) end},
  {"build tiny graph (3 ops)", tiny},
  {"build tiny + Mx.eval (inline)", fn -> Mx.eval(tiny.()) end},
  {"build tiny + Mx.NIF.eval_dirty", fn -> Mx.NIF.eval_dirty([tiny.().ref]) end}
]

IO.puts(
  "op_build: #{batches} batches of #{n} calls per case, round-robin; median of batch means (ns per call)"
)

IO.puts(
  "  OTP #{System.otp_release()}, Elixir #{System.version()}, #{System.schedulers_online()} schedulers, " <>
    "#{:erlang.system_info(:dirty_cpu_schedulers_online)} dirty CPU schedulers; load average #{Bench.load()}"
)

res = Bench.round_robin(cases, n, batches)
med = Map.new(res, fn {k, v} -> {k, Bench.median(v)} end)
best = Map.new(res, fn {k, v} -> {k, Enum.min(v)} end)
nif = med["Mx.NIF.noop/0 (empty NIF)"]
dirty = med["Mx.NIF.noop_dirty/0 (empty dirty NIF)"]

IO.puts(
  "  " <>
    Bench.pad("case", 40) <>
    Bench.lpad("ns/call", 10) <>
    Bench.lpad("/ NIF", 9) <>
    Bench.lpad("/ dirty", 9) <>
    Bench.lpad("best batch", 12)
)

for {name, _} <- cases do
  m = med[name]

  IO.puts(
    "  " <>
      Bench.pad(name, 40) <>
      Bench.lpad(Bench.fmt(m), 10) <>
      Bench.lpad(Bench.fmt(m / nif), 9) <>
      Bench.lpad(:erlang.float_to_binary(m / dirty, decimals: 2), 9) <>
      Bench.lpad(Bench.fmt(best[name]), 12)
  )
end

add = med["Mx.add(a, b), f32[4]"]
raw = med["Mx.NIF.binary(:add, ref, ref)"]
build = med["build tiny graph (3 ops)"]
inline_eval = med["build tiny + Mx.eval (inline)"] - build
dirty_eval = med["build tiny + Mx.NIF.eval_dirty"] - build

IO.puts("""
  Mx.add(a, b): #{Bench.fmt(add)} ns per op (median; best batch #{Bench.fmt(best["Mx.add(a, b), f32[4]"])} ns) = #{Bench.fmt(add / nif)}x an empty NIF call (target <= 500 ns: #{if add <= 500, do: "met", else: "NOT met"})
  Mx.NIF.binary(:add, ...): #{Bench.fmt(raw)} ns; the Elixir wrapper adds #{Bench.fmt(add - raw)} ns
  tiny graph eval (3 scalar ops), net of building: inline #{Bench.fmt(inline_eval)} ns, dirty #{Bench.fmt(dirty_eval)} ns
    inline / empty dirty NIF round trip = #{:erlang.float_to_binary(inline_eval / dirty, decimals: 2)}; inline / dirty eval = #{:erlang.float_to_binary(inline_eval / dirty_eval, decimals: 2)}
""")
