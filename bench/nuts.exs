# NUTS vs Stan (issue 5): GenMX's Gen.Inference.NUTS.sample against rstan on the seven models
# of ../shared/bench/nuts and a 5-predictor logistic regression on 1000 generated rows, same
# protocol on both sides: 1 chain, 500 warmup + 500 draws, Stan's default adaptation (dual
# averaging to 0.8, diagonal metric in windows), max tree depth 10, inits uniform(−2, 2) on
# the unconstrained scale. Stan runs first (bench/nuts/stan.R, compiled models cached in
# _build/bench/stan_cache), then GenMX, in the same run, on the same seeds.
#
# Reported per model, medians over seeds: wall time of warmup + sampling, min bulk ESS over the
# parameters (Gen.Diagnostics.ess for GenMX, rstan's ess_bulk for Stan: the same Vehtari et al.
# 2021 estimator), ESS/s, divergences and leapfrog steps in the sampling phase, µs per leapfrog
# (warmup + sampling time / all leapfrogs, both sides), and the ratios GenMX/Stan of ESS/s and of µs/leapfrog.
# Then a breakdown of one leapfrog's time on `simple`.
#
#   mix run bench/nuts.exs [seeds, e.g. 1..3] [model ...]
#   env STAN_BENCH_DIR (default ../shared/bench/nuts), SKIP_STAN=1 to run GenMX alone
Code.require_file("bench_helper.exs", __DIR__)
Code.require_file("nuts/json.exs", __DIR__)
Code.require_file("nuts/models.exs", __DIR__)

alias Bench.NutsModels
alias Gen.Inference.NUTS

{seeds, only} =
  case System.argv() do
    [] ->
      {1..3, nil}

    [s | ms] ->
      {s |> Code.eval_string() |> elem(0) |> Enum.to_list(), if(ms == [], do: nil, else: ms)}
  end

seeds = Enum.to_list(seeds)
root = Path.expand("..", __DIR__)
shared = System.get_env("STAN_BENCH_DIR", Path.expand("../shared/bench/nuts", root))
out_dir = Path.join(root, "_build/bench")
File.mkdir_p!(out_dir)

data = shared |> Path.join("data.json") |> File.read!() |> Bench.JSON.decode!()
logistic = NutsModels.logistic_data(Mx.Random.key(2026))
models = NutsModels.all(data, logistic) |> Enum.filter(&(only == nil or &1.name in only))

# The logistic data for Stan, as R source.
r_vec = fn xs -> "c(" <> Enum.map_join(xs, ",", &to_string/1) <> ")" end
{n, k} = Mx.shape(logistic.x)
xs = Mx.to_flat_list(logistic.x)
ys = logistic.y |> Mx.to_flat_list() |> Enum.map(&if(&1, do: 1, else: 0))
logistic_r = Path.join(out_dir, "logistic_data.R")

File.write!(logistic_r, """
logistic_data <- list(N = #{n}L, K = #{k}L, X = matrix(#{r_vec.(xs)}, nrow = #{n}, ncol = #{k}, byrow = TRUE),
  y = as.integer(#{r_vec.(ys)}))
""")

median = &Bench.median/1

stan =
  if System.get_env("SKIP_STAN") do
    %{}
  else
    csv = Path.join(out_dir, "stan_nuts.csv")
    seeds_r = "c(" <> Enum.map_join(seeds, ",", &to_string/1) <> ")"

    IO.puts(
      :stderr,
      "running Stan (rstan) on #{length(models)} models × #{length(seeds)} seeds ..."
    )

    {log, status} =
      System.cmd(
        "Rscript",
        [Path.join(__DIR__, "nuts/stan.R"), csv, seeds_r | Enum.map(models, & &1.name)],
        env: [
          {"STAN_BENCH_DIR", shared},
          {"LOGISTIC_DATA", logistic_r},
          {"STAN_CACHE", Path.join(out_dir, "stan_cache")}
        ],
        stderr_to_stdout: true
      )

    if status != 0, do: raise("Rscript failed:\n" <> log)

    IO.puts(
      String.trim(
        log
        |> String.split("\n")
        |> Enum.filter(&String.starts_with?(&1, "rstan"))
        |> Enum.join("\n")
      )
    )

    [header | rows] = csv |> File.read!() |> String.split("\n", trim: true)
    cols = header |> String.split(",") |> Enum.map(&String.trim(&1, "\""))

    rows
    |> Enum.map(fn line ->
      vals = line |> String.split(",") |> Enum.map(&String.trim(&1, "\""))
      Map.new(Enum.zip(cols, vals))
    end)
    |> Enum.group_by(& &1["model"])
    |> Map.new(fn {m, rs} ->
      num = fn r, c -> r[c] |> Float.parse() |> elem(0) end
      total = Enum.map(rs, &(num.(&1, "warmup_s") + num.(&1, "sample_s")))
      ess = Enum.map(rs, &num.(&1, "min_ess_bulk"))

      {m,
       %{
         wall: median.(total),
         ess: median.(ess),
         ess_s: median.(Enum.zip_with(ess, total, &(&1 / &2))),
         div: median.(Enum.map(rs, &num.(&1, "div"))),
         leapfrog: median.(Enum.map(rs, &num.(&1, "n_leapfrog"))),
         # the whole run over all its leapfrogs, as on GenMX's side
         us_lf:
           median.(
             Enum.map(
               rs,
               &(1.0e6 * (num.(&1, "warmup_s") + num.(&1, "sample_s")) /
                   (num.(&1, "n_leapfrog") + num.(&1, "n_leapfrog_warmup")))
             )
           )
       }}
    end)
  end

run_gen = fn m, seed ->
  key = Mx.Random.key(seed)
  t = NutsModels.init_trace(m, Mx.Random.fold_in(key, 1))
  :erlang.garbage_collect()
  # No callback: a per-iteration callback makes the C run message every iteration, which Stan's
  # side does not pay. µs/leapfrog is therefore the whole run over all its leapfrogs.
  c0 = Bench.process_cpu_ns()
  t0 = Bench.now_ns()

  r =
    NUTS.sample(t, m.selection,
      warmup: 500,
      samples: 500,
      max_depth: 10,
      target_accept: 0.8,
      transforms: m.transforms,
      key: Mx.Random.fold_in(key, 2)
    )

  t1 = Bench.now_ns()
  # CPU time of the OS process over the run (every thread, the C sampler's included): what the
  # run costs without the waits for a core on the shared machine.
  cpu_ms = (Bench.process_cpu_ns() - c0) / 1.0e6
  total = (t1 - t0) / 1.0e9
  ess = r.draws |> m.report.() |> Enum.map(&Gen.Diagnostics.ess/1) |> Enum.min()
  lf = Enum.sum(Enum.map(r.stats, & &1.n_leapfrog))
  lf_all = lf + Enum.sum(Enum.map(r.warmup_stats, & &1.n_leapfrog))

  %{
    wall: total,
    cpu: cpu_ms / 1000,
    ess: ess,
    ess_s: ess / total,
    ess_cpu: ess / (cpu_ms / 1000),
    div: Enum.count(r.stats, & &1.divergent),
    leapfrog: lf,
    us_lf: 1.0e6 * total / lf_all,
    us_lf_cpu: 1000 * cpu_ms / lf_all
  }
end

IO.puts("load before GenMX: #{Bench.load()}")

gen_results =
  for m <- models, into: %{} do
    rs = for s <- seeds, do: run_gen.(m, s)

    IO.puts(
      :stderr,
      "  #{m.name}: #{Enum.map_join(rs, " ", &"#{Float.round(&1.wall, 2)}s/ESS #{round(&1.ess)}")}"
    )

    fields = [:wall, :cpu, :ess, :ess_s, :ess_cpu, :div, :leapfrog, :us_lf, :us_lf_cpu]
    {m.name, Map.new(fields, fn f -> {f, median.(Enum.map(rs, & &1[f]))} end)}
  end

fmt = fn
  nil -> "–"
  x when is_float(x) and x >= 100 -> x |> round() |> Integer.to_string()
  x when is_float(x) -> :erlang.float_to_binary(x, decimals: if(x >= 10, do: 1, else: 2))
  x -> to_string(x)
end

ms = fn s -> fmt.(s * 1000) end

IO.puts("""

NUTS, 1 chain, 500 warmup + 500 draws, max depth 10; medians over seeds #{inspect(seeds)}; load #{Bench.load()}
(ESS/s on wall time; GenMX's CPU-time ESS/s and µs/leapfrog in brackets; ratios GenMX/Stan)

| model | wall ms G / S | min bulk ESS G / S | ESS/s G [cpu] / S | ESS/s G/S | div G / S | leapfrogs G / S | µs/leapfrog G [cpu] / S | µs/leapfrog G/S |
|---|---:|---:|---:|---:|---:|---:|---:|---:|\
""")

sig = fn
  nil ->
    "–"

  x ->
    :erlang.float_to_binary(x / 1, [
      {:decimals, max(0, 2 - floor(:math.log10(max(abs(x), 1.0e-12))))}
    ])
end

for m <- models do
  g = gen_results[m.name]
  s = Map.get(stan, m.name)
  sv = fn f -> s && s[f] end
  ratio = fn a, b -> if a && b && b > 0, do: sig.(a / b), else: "–" end

  IO.puts(
    "| #{m.name} | #{ms.(g.wall)} / #{if s, do: ms.(s.wall), else: "–"} | #{fmt.(g.ess)} / #{fmt.(sv.(:ess))} | " <>
      "#{fmt.(g.ess_s)} [#{fmt.(g.ess_cpu)}] / #{fmt.(sv.(:ess_s))} | #{ratio.(g.ess_s, sv.(:ess_s))} | " <>
      "#{fmt.(g.div)} / #{fmt.(sv.(:div))} | #{fmt.(g.leapfrog)} / #{fmt.(sv.(:leapfrog))} | " <>
      "#{fmt.(g.us_lf)} [#{fmt.(g.us_lf_cpu)}] / #{fmt.(sv.(:us_lf))} | #{ratio.(g.us_lf, sv.(:us_lf))} |"
  )
end

# ---- where a leapfrog's time goes (simple) ------------------------------------------------
# The density as the sampler evaluates it (one array per choice, exp for sigma's :log transform
# plus its log-Jacobian, assess on the choicemap with the two leaves replaced), its forward pass
# alone, and the same log density written directly in Mx ops, measured round-robin.
m = Enum.find(NutsModels.all(data, logistic), &(&1.name == "simple"))
%{gfi: density, direct: direct, args: args} = NutsModels.simple_densities(m, data)

grad_call = fn f ->
  vg = Mx.value_and_grad(f)

  fn ->
    {lp, gs} = vg.(args.())
    Mx.eval([lp | gs])
    {Mx.to_number(lp), Enum.flat_map(gs, &Mx.to_flat_list/1)}
  end
end

res =
  Bench.round_robin(
    [
      {"1. Gen.assess forward only (build + eval)", fn -> Mx.eval(density.(args.())) end},
      {"2. value_and_grad through Gen.assess (the sampler's call)", grad_call.(density)},
      {"3. value_and_grad of the same density written in Mx ops", grad_call.(direct)}
    ],
    200,
    7
  )

IO.puts(
  "\nWhere a leapfrog's time goes (simple: 2 parameters, 50 observations; load #{Bench.load()}):\n"
)

IO.puts("| per call | µs |\n|---|---:|")

for {name, ts} <- Enum.sort_by(res, fn {k, _} -> k end) do
  IO.puts("| #{name} | #{fmt.(median.(ts) / 1000)} |")
end

g = gen_results["simple"]

if g do
  IO.puts("| 4. a NUTS leapfrog in the sampler, wall (median over seeds) | #{fmt.(g.us_lf)} |")

  IO.puts(
    "| 5. a NUTS leapfrog in the sampler, VM CPU time (warmup + sampling) | #{fmt.(g.us_lf_cpu)} |"
  )
end
