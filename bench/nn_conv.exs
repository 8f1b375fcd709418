# Mx.NN.Conv2d (channels last, MLX layout: transposes around Mx.conv) vs Mx.conv on channels-first
# arrays (no transposes): forward and value_and_grad, alternated round-robin in one run.
# Usage: mix run bench/nn_conv.exs. Size: batch 32, 28×28, 8 -> 16 channels, 3×3, padding 1, f32.
Code.require_file("bench_helper.exs", __DIR__)
alias Mx.NN

[kx, kw] = NN.split_keys(Mx.Random.key(0), 2)
x = Mx.Random.normal(kx, shape: {32, 28, 28, 8}) |> Mx.eval()
w = Mx.Random.normal(kw, shape: {16, 3, 3, 8}) |> Mx.eval()
xc = Mx.transpose(x, axes: [0, 3, 1, 2]) |> Mx.eval()
wc = Mx.transpose(w, axes: [0, 3, 1, 2]) |> Mx.eval()

layer = fn w, x -> NN.Conv2d.apply(%{weight: w}, x, padding: 1) end
raw = fn w, x -> Mx.conv(x, w, padding: [{1, 1}, {1, 1}]) end

grad = fn f ->
  Mx.value_and_grad(fn w, x -> Mx.sum(Mx.multiply(f.(w, x), f.(w, x))) end, [0, 1])
end

{gl, gr} = {grad.(layer), grad.(raw)}

cases = [
  {"Conv2d forward (channels last)", fn -> Mx.eval(layer.(w, x)) end},
  {"Mx.conv forward (channels first)", fn -> Mx.eval(raw.(wc, xc)) end},
  {"Conv2d value_and_grad",
   fn ->
     {v, g} = gl.(w, x)
     Mx.eval([v | g])
   end},
  {"Mx.conv value_and_grad",
   fn ->
     {v, g} = gr.(wc, xc)
     Mx.eval([v | g])
   end}
]

for {_, f} <- cases, do: f.()
{load, _} = System.cmd("uptime", [])

times =
  for _ <- 1..15, {name, f} <- cases do
    t0 = Bench.now_ns()
    f.()
    {name, (Bench.now_ns() - t0) / 1.0e6}
  end

IO.puts("load: #{String.trim(load)}")

for {name, _} <- cases do
  ms = for {^name, t} <- times, do: t
  IO.puts("#{name}: median #{Float.round(Bench.median(ms), 2)} ms over #{length(ms)}")
end
