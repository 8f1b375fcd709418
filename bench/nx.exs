# Nx on Mx (issue 12): µs per call, measured round-robin in one run.
#
#   1. elementwise (add then exp), a sum over one axis, and a matmul: the same ops through
#      Mx directly, through Nx on Mx.Nx.Backend (the backend's overhead), and through Nx on
#      Nx.BinaryBackend. Mx results are evaluated in the timed call (Mx.eval/1).
#   2. a defn gradient step of a small MLP (32×8 inputs, 16 hidden units): jitted with
#      Mx.Nx.Compiler (a tape replay), with Nx.Defn.Evaluator on Mx.Nx.Backend (a lazy graph
#      built per call), and with Nx.Defn.Evaluator on Nx.BinaryBackend.
#
#   mix run bench/nx.exs [calls per batch] [batches]
Code.require_file("bench_helper.exs", __DIR__)

[n, batches] =
  case System.argv() do
    [n, b] -> [String.to_integer(n), String.to_integer(b)]
    [] -> [20, 9]
  end

Code.require_file("../test/support/nx_mlp.ex", __DIR__)

on = fn backend, fun -> Nx.with_default_backend(backend, fun) end
mx_eval = fn t -> Mx.eval(Mx.from_nx(t)) end
force = fn tuple -> tuple |> Tuple.to_list() |> Enum.each(&Nx.to_binary/1) end

op_cases =
  for {label, shape} <- [{"1k", {1000}}, {"64k", {256, 256}}] do
    a = Mx.iota(shape, type: :f32) |> Mx.divide(Mx.size(Mx.iota(shape))) |> Mx.eval()
    b = Mx.eval(Mx.add(a, 0.5))
    {na, nb} = {Mx.to_nx(a), Mx.to_nx(b)}
    {ba, bb} = {Nx.backend_copy(na, Nx.BinaryBackend), Nx.backend_copy(nb, Nx.BinaryBackend)}
    axis = tuple_size(shape) - 1

    [
      {"add+exp #{label} Mx", fn -> Mx.eval(Mx.exp(Mx.add(a, b))) end},
      {"add+exp #{label} Nx on Mx", fn -> mx_eval.(Nx.exp(Nx.add(na, nb))) end},
      {"add+exp #{label} Nx on Binary", fn -> Nx.exp(Nx.add(ba, bb)) end},
      {"sum #{label} Mx", fn -> Mx.eval(Mx.sum(a, axes: [axis])) end},
      {"sum #{label} Nx on Mx", fn -> mx_eval.(Nx.sum(na, axes: [axis])) end},
      {"sum #{label} Nx on Binary", fn -> Nx.sum(ba, axes: [axis]) end}
    ]
  end
  |> List.flatten()

m = Mx.divide(Mx.iota({64, 64}, type: :f32), 4096.0) |> Mx.eval()
{nm, bm} = {Mx.to_nx(m), Nx.backend_copy(Mx.to_nx(m), Nx.BinaryBackend)}

matmul_cases = [
  {"matmul 64² Mx", fn -> Mx.eval(Mx.matmul(m, m)) end},
  {"matmul 64² Nx on Mx", fn -> mx_eval.(Nx.dot(nm, nm)) end},
  {"matmul 64² Nx on Binary", fn -> Nx.dot(bm, bm) end}
]

data = fn backend ->
  on.(backend, fn ->
    x = Nx.iota({32, 8}, type: :f32) |> Nx.divide(256)
    y = Nx.sin(Nx.sum(x, axes: [1], keep_axes: true))
    w1 = Nx.iota({8, 16}, type: :f32) |> Nx.divide(128) |> Nx.subtract(0.5)
    w2 = Nx.iota({16, 1}, type: :f32) |> Nx.divide(16) |> Nx.subtract(0.5)
    {{w1, Nx.broadcast(0.0, {16}), w2, Nx.tensor([0.0])}, x, y}
  end)
end

{pm, xm, ym} = data.(Mx.Nx.Backend)
{pb, xb, yb} = data.(Nx.BinaryBackend)
compiled = Nx.Defn.jit(&Mx.NxMLP.step/3, compiler: Mx.Nx.Compiler)
evaluated = Nx.Defn.jit(&Mx.NxMLP.step/3, compiler: Nx.Defn.Evaluator)

# The three give the same step (to f32 rounding).
[c, e] = Enum.map([compiled.(pm, xm, ym), evaluated.(pb, xb, yb)], &elem(&1, 0))

diff =
  Nx.subtract(Nx.backend_copy(c, Nx.BinaryBackend), e)
  |> Nx.abs()
  |> Nx.reduce_max()
  |> Nx.to_number()

IO.puts("defn step: max |Mx.Nx.Compiler - Evaluator on Binary| over w1 = #{diff}")

defn_cases = [
  {"defn step Mx.Nx.Compiler", fn -> force.(compiled.(pm, xm, ym)) end},
  {"defn step Evaluator on Mx",
   fn -> on.(Mx.Nx.Backend, fn -> force.(evaluated.(pm, xm, ym)) end) end},
  {"defn step Evaluator on Binary", fn -> force.(evaluated.(pb, xb, yb)) end}
]

cases = op_cases ++ matmul_cases ++ defn_cases
results = Bench.round_robin(cases, n, batches)
IO.puts("load #{Bench.load()}; median of #{batches} batches of #{n} calls, µs per call")

for {name, _} <- cases do
  IO.puts(Bench.pad(name, 36) <> Bench.lpad(Bench.fmt(Bench.median(results[name]) / 1000), 12))
end
