# value_and_grad of a 1000-term scalar log-density (sum of normal logpdfs of a
# data vector, with respect to mu and log sigma) beside the forward pass alone,
# measured round-robin in the same run. Each call builds the graph and evaluates
# it, as an inference loop would. Target: value_and_grad <= 3x the forward pass.
#
#   mix run bench/grad.exs [calls_per_batch] [batches]
Code.require_file("bench_helper.exs", __DIR__)

{n, batches} =
  case System.argv() do
    [n, b] -> {String.to_integer(n), String.to_integer(b)}
    _ -> {200, 21}
  end

data = Mx.linspace(-3.0, 3.0, n: 1000, type: :f64) |> Mx.eval()
half_log_2pi = 0.5 * :math.log(2 * :math.pi())

logdensity = fn mu, log_sigma ->
  z = Mx.divide(Mx.subtract(data, mu), Mx.exp(log_sigma))
  Mx.sum(Mx.subtract(Mx.negate(Mx.multiply(Mx.square(z), 0.5)), Mx.add(log_sigma, half_log_2pi)))
end

mu = Mx.tensor(0.3, type: :f64)
ls = Mx.tensor(-0.2, type: :f64)
vg = Mx.value_and_grad(logdensity, [0, 1])

cases = [
  {"forward: build + eval", fn -> logdensity.(mu, ls) |> Mx.eval() end},
  {"value_and_grad: build + eval", fn -> vg.(mu, ls) |> Mx.eval() end}
]

results = Bench.round_robin(cases, n, batches)
fwd = Bench.median(results["forward: build + eval"])
both = Bench.median(results["value_and_grad: build + eval"])

IO.puts("value_and_grad of a 1000-term normal log-density (f64), load #{Bench.load()}")
IO.puts("  forward pass          #{Bench.lpad(Bench.fmt(fwd / 1000), 8)} us/call")
IO.puts("  value_and_grad        #{Bench.lpad(Bench.fmt(both / 1000), 8)} us/call")
IO.puts("  ratio                 #{Bench.lpad(Bench.fmt(both / fwd), 8)} x (target <= 3x)")
