# Gen inference (issue 5): MH iterations per second through Gen.Inference.run/3 on the
# 5-site model of bench/gen.exs (mu ~ N(0, 10), y_i ~ N(mu, 1), i = 1..4, the y's observed):
#   * regenerate one site (select :mu), regenerate all five sites, a custom proposal
#     (Gaussian random walk on mu, Gen.edit with a proposal), and the same random walk
#     as an involutive move (propose, update, assess, plus the Jacobian by autodiff),
# each beside the baseline measured round-robin in the same run: one bare log-density of the
# same model built with Mx ops and evaluated (what any MH step must compute at least once).
# An iteration includes what run/3 does: the folded key, the kernel, evaluating the trace
# (flat memory) and the selected value. Two more rows split the one-site MH iteration: the
# kernel in a bare loop without run/3, and Gen.regenerate alone.
#
#   mix run bench/mh.exs [iterations_per_batch] [batches]
Code.require_file("bench_helper.exs", __DIR__)
import Gen
alias Gen.Inference
alias Gen.Inference.Kernel

{iters, batches} =
  case System.argv() do
    [n, b] -> {String.to_integer(n), String.to_integer(b)}
    _ -> {200, 11}
  end

model = gen fn ->
  mu = trace(:mu, Gen.Dist.normal(0.0, 10.0))
  for i <- 1..4, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
  mu
end

obs = Gen.choicemap(for i <- 1..4, into: %{}, do: {{:y, i}, 0.3 * i})
{trace, _} = Gen.generate(model, [], Gen.Choicemap.put(obs, :mu, 0.5), key: Mx.Random.key(1))
select = &Mx.to_number(&1[:mu])

half_log_2pi = 0.5 * :math.log(2 * :math.pi())

normal_lp = fn x, mu, sigma ->
  z = Mx.divide(Mx.subtract(x, mu), sigma)
  Mx.subtract(Mx.multiply(Mx.square(z), -0.5), :math.log(sigma) + half_log_2pi)
end

mu = Gen.Choicemap.get(Gen.get_choices(trace), :mu)
yvals = for i <- 1..4, do: Gen.Choicemap.get(obs, {:y, i})

direct = fn ->
  Enum.reduce(yvals, normal_lp.(mu, 0.0, 10.0), fn y, acc -> Mx.add(acc, normal_lp.(y, mu, 1.0)) end) |> Mx.eval()
end

walk = gen fn t, s -> trace(:mu, Gen.Dist.normal(t[:mu], s)) end
aux = gen fn _t, s -> trace(:d, Gen.Dist.normal(0.0, s)) end
involution = fn m, a, _ -> {%{mu: Mx.add(m[:mu], a[:d])}, %{d: Mx.negate(a[:d])}} end

all_sites = Gen.select([:mu | for(i <- 1..4, do: {:y, i})])

kernels = [
  {"MH regenerate one site (:mu)", Kernel.mh(Gen.select(:mu))},
  {"MH regenerate all 5 sites", Kernel.mh(all_sites)},
  {"MH custom proposal (random walk on :mu)", Kernel.mh(walk, [1.0])},
  {"involutive MH, same random walk", Kernel.involutive_mh(aux, [1.0], involution)}
]

# Each call is a run of `iters` iterations with a fresh key, so batches differ.
counter = :counters.new(1, [])

run_case = fn kernel ->
  fn ->
    :counters.add(counter, 1, 1)
    key = Mx.Random.key(:counters.get(counter, 1))
    Inference.run(kernel, trace, samples: iters, key: key, select: select, progress: false)
  end
end

# Where an MH-regenerate iteration goes: the kernel called in a bare loop (run/3's share is the
# difference), and Gen.regenerate alone with its weight evaluated (the GFI's share).
regen_one = Kernel.mh(Gen.select(:mu))
key0 = Mx.Random.key(7)

bare = fn ->
  Enum.reduce(0..(iters - 1), trace, fn i, t -> elem(regen_one.(t, key: Mx.Random.fold_in(key0, i)), 0) end)
end

regen_only = fn ->
  for i <- 0..(iters - 1), do: Gen.regenerate(trace, Gen.select(:mu), key: Mx.Random.fold_in(key0, i)) |> elem(1) |> Mx.eval()
end

cases =
  [{"baseline: log-density build + eval", fn -> for _ <- 1..iters, do: direct.() end}] ++
    Enum.map(kernels, fn {name, k} -> {name, run_case.(k)} end) ++
    [{"  same one-site MH kernel, bare loop", bare}, {"  Gen.regenerate(:mu) alone, weight evaluated", regen_only}]

IO.puts("MH iterations on the 5-site model (mu ~ N(0,10), y_i ~ N(mu,1)), load #{Bench.load()}")
results = Bench.round_robin(cases, 1, batches)
base = Bench.median(results["baseline: log-density build + eval"]) / iters

for {name, _} <- cases do
  ns = Bench.median(results[name]) / iters

  IO.puts(
    "  #{Bench.pad(name, 46)} #{Bench.lpad(Bench.fmt(1.0e9 / ns), 10)} it/s  #{Bench.lpad(Bench.fmt(ns / 1000), 8)} us/it  " <>
      "#{Bench.lpad(Bench.fmt(ns / base), 6)}x the log-density  (#{iters} it x #{batches} batches, medians)"
  )
end

IO.puts("load at the end #{Bench.load()}")
