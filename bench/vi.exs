# Variational inference and optimisation (issue 5): convergence and cost per iteration.
#
# For each problem: the iterations until the parameters come within a tolerance of
# the exact optimum, the time per iteration (median of round-robin batches), beside a
# baseline measured in the same rounds, and the final objective against the exact
# value. Baselines: a VI step against the forward ELBO estimate with the same number
# of draws (no gradient, no optimiser), so the ratio is the price of differentiating;
# a MAP / train step against one Gen.assess of the model.
#
#   mix run bench/vi.exs [batches]
Code.require_file("bench_helper.exs", __DIR__)
import Gen
alias Gen.Inference.VI

batches =
  case System.argv() do
    [b] -> String.to_integer(b)
    _ -> 7
  end

f64 = fn x -> Mx.tensor(x, type: :f64) end
num = &Mx.to_number/1
obs = fn ys -> for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y}) end

# ---- models with closed-form posteriors --------------------------------------------------

ys = [0.8, 1.9, 1.1, 2.4, 1.5]
nn = gen(fn n ->
  mu = trace(:mu, Gen.Dist.normal(0.0, 2.0))
  for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
  mu
end)

prec = 0.25 + 5
nn_mean = Enum.sum(ys) / prec
nn_sd = :math.sqrt(1 / prec)
s = Enum.sum(ys)
quad = Enum.sum(Enum.map(ys, &(&1 * &1))) - 4.0 / 21 * s * s
nn_lml = -2.5 * :math.log(2 * :math.pi()) - 0.5 * :math.log(21) - 0.5 * quad

xs = [-1.5, -0.7, 0.0, 0.4, 1.1, 2.0, 2.6]
lys = [-2.1, -0.4, 0.9, 1.2, 2.6, 4.4, 5.3]
{tau, sigma} = {3.0, 0.8}

reg = gen(fn xs ->
  slope = trace(:slope, Gen.Dist.normal(0.0, tau))
  intercept = trace(:intercept, Gen.Dist.normal(0.0, tau))
  for {x, j} <- Enum.with_index(xs), do: trace({:y, j}, Gen.Dist.normal(Mx.add(Mx.multiply(slope, x), intercept), sigma))
end)

# Posterior N(μ, H⁻¹), H = XᵀX/σ² + I/τ²; log p(y) = log p(y, μ) + log 2π − ½ log det H (d = 2).
s2 = sigma * sigma
{sxx, sx} = {Enum.sum(Enum.map(xs, &(&1 * &1))), Enum.sum(xs)}
{sxy, sy} = {Enum.zip(xs, lys) |> Enum.map(fn {x, y} -> x * y end) |> Enum.sum(), Enum.sum(lys)}
{ha, hb, hd} = {sxx / s2 + 1 / (tau * tau), sx / s2, length(xs) / s2 + 1 / (tau * tau)}
det = ha * hd - hb * hb
reg_mode = %{slope: (hd * sxy / s2 - hb * sy / s2) / det, intercept: (ha * sy / s2 - hb * sxy / s2) / det}
{lj, _} = Gen.assess(reg, [xs], Map.merge(obs.(lys), reg_mode))
reg_lml = num.(lj) + :math.log(2 * :math.pi()) - 0.5 * :math.log(det)
# The best mean-field Gaussian: variances 1/H_ii, KL = ½(Σ log H_ii − log det H).
reg_mf_elbo = reg_lml - 0.5 * (:math.log(ha) + :math.log(hd) - :math.log(det))

IO.puts("# VI and optimisation benchmark, load #{Bench.load()}\n")

# ---- convergence runs ------------------------------------------------------------------

# First iteration from which the error of the trailing `window`-iterate average of the parameters
# (Polyak averaging; window 1 = the iterate itself) stays under `tol` to the end of the run.
converge = fn run, flat, err, tol, window ->
  me = self()
  ref = make_ref()
  t0 = Bench.now_ns()
  {p, hist} = run.(fn %{iteration: i, params: p} -> send(me, {ref, i, flat.(p)}) end)
  total_ms = (Bench.now_ns() - t0) / 1.0e6
  its = for _ <- 1..length(hist), do: receive(do: ({^ref, _i, v} -> v))

  errs =
    its
    |> Enum.with_index()
    |> Enum.map(fn {_, i} ->
      w = its |> Enum.slice(max(0, i - window + 1)..i) |> Enum.zip_with(&(Enum.sum(&1) / length(&1)))
      {i, err.(w)}
    end)

  last_bad = errs |> Enum.filter(fn {_, e} -> e >= tol end) |> Enum.map(&elem(&1, 0)) |> Enum.max(fn -> -1 end)
  {p, hist, last_bad + 1, total_ms, elem(List.last(errs), 1)}
end

# ELBO estimate at the fitted guide: mean and MC standard error of 2000 single-draw estimates.
final_elbo = fn model, args, o, guide, params, opts ->
  fs = for r <- 1..2000, do: num.(VI.elbo(model, args, o, guide, params, Keyword.merge(opts, key: Mx.Random.key(1_000_000 + r))))
  m = Enum.sum(fs) / 2000
  {m, :math.sqrt(Enum.sum(Enum.map(fs, &((&1 - m) * (&1 - m)))) / 1999 / 2000)}
end

rows = []
tols = [
  "0.01 (1)",
  "0.05 posterior sd / log sd (100)",
  "0.05 mean-field sd / log sd (100)",
  "0.01 in P(b = 1 | y) (100)",
  "0.05 in a, b, log sd (100)"
]

# ADVI, normal–normal, sticking-the-landing estimator (zero variance at the exact posterior).
{p, _hist, it, ms, err} =
  converge.(
    fn cb -> Gen.Inference.advi(nn, [5], obs.(ys), Gen.select(:mu), steps: 1000, stl: true, key: Mx.Random.key(1), callback: cb) end,
    fn p -> [num.(hd(p.mu)), num.(hd(p.log_sigma))] end,
    fn [m, l] -> max(abs(m - nn_mean) / nn_sd, abs(l - :math.log(nn_sd))) end,
    0.01,
    1
  )

fitted = VI.mean_field_guide(p)
wrap = gen(fn _ -> splice(fitted, []) end)
final = final_elbo.(nn, [5], obs.(ys), wrap, %{}, [])
rows = rows ++ [{"ADVI (stl), normal–normal, 1 draw/step, Adam 0.05", it, 1000, ms, err, final, nn_lml, "log p(y) (exact posterior in family)"}]

# ADVI, normal–normal, standard reparameterization: noisy at the optimum, so a looser tolerance.
{p, _hist, it, ms, err} =
  converge.(
    fn cb -> Gen.Inference.advi(nn, [5], obs.(ys), Gen.select(:mu), steps: 1000, samples: 4, key: Mx.Random.key(1), callback: cb) end,
    fn p -> [num.(hd(p.mu)), num.(hd(p.log_sigma))] end,
    fn [m, l] -> max(abs(m - nn_mean) / nn_sd, abs(l - :math.log(nn_sd))) end,
    0.05,
    100
  )

fitted = VI.mean_field_guide(p)
wrap = gen(fn _ -> splice(fitted, []) end)
final = final_elbo.(nn, [5], obs.(ys), wrap, %{}, [])
rows = rows ++ [{"ADVI (reparam), normal–normal, 4 draws/step, Adam 0.05", it, 1000, ms, err, final, nn_lml, "log p(y)"}]

# ADVI, linear regression (2 latents, correlated posterior).
{p, _hist, it, ms, err} =
  converge.(
    fn cb -> Gen.Inference.advi(reg, [xs], obs.(lys), Gen.select([:slope, :intercept]), steps: 1500, samples: 4, key: Mx.Random.key(2), callback: cb) end,
    fn p -> Enum.map(p.mu ++ p.log_sigma, num) end,
    fn [mi, ms_, li, ls_] ->
      # means in units of the mean-field sds 1/√H_ii; log sds against −½ log H_ii
      Enum.max([abs(mi - reg_mode.intercept) * :math.sqrt(hd), abs(ms_ - reg_mode.slope) * :math.sqrt(ha),
                abs(li + 0.5 * :math.log(hd)), abs(ls_ + 0.5 * :math.log(ha))])
    end,
    0.05,
    100
  )

fitted = VI.mean_field_guide(p)
wrap = gen(fn _ -> splice(fitted, []) end)
final = final_elbo.(reg, [xs], obs.(lys), wrap, %{}, [])
rows = rows ++ [{"ADVI (reparam), linear regression, 4 draws/step", it, 1500, ms, err, final, reg_mf_elbo, "best mean-field ELBO (log p(y) #{Float.round(reg_lml, 4)})"}]

# Discrete latent with REINFORCE (leave-one-out baseline).
dm = gen(fn -> b = trace(:b, Gen.Dist.bernoulli(0.3)); trace(:y, Gen.Dist.normal(Mx.select(b, f64.(1.5), f64.(-0.5)), 1.0)) end)
dq = gen(fn p -> trace(:b, Gen.Dist.bernoulli(Mx.sigmoid(p.logit))) end)
l1 = :math.log(0.3) - 0.5 * 0.49
l0 = :math.log(0.7) - 0.5 * 1.69
pb = 1 / (1 + :math.exp(l0 - l1))
d_lml = :math.log(:math.exp(l1) + :math.exp(l0)) - 0.5 * :math.log(2 * :math.pi())

{p, _hist, it, ms, err} =
  converge.(
    fn cb -> Gen.Inference.vi(dm, [], %{y: 0.8}, dq, %{logit: f64.(0.0)}, samples: 4, stl: true, steps: 1000, optimizer: Gen.Optim.adam(learning_rate: 0.05), key: Mx.Random.key(3), callback: cb) end,
    fn p -> [num.(p.logit)] end,
    fn [l] -> abs(1 / (1 + :math.exp(-l)) - pb) end,
    0.01,
    100
  )

final = final_elbo.(dm, [], %{y: 0.8}, dq, p, [])
rows = rows ++ [{"REINFORCE (stl), bernoulli latent, 4 draws/step", it, 1000, ms, err, final, d_lml, "log p(y)"}]

# Wake-sleep, amortized q(mu | ȳ) on normal–normal.
wq = gen(fn p, ybar -> trace(:mu, Gen.Dist.normal(Mx.add(Mx.multiply(p.a, ybar), p.b), Mx.exp(p.ls))) end)
ybar = fn cm -> vals = cm |> Gen.Choicemap.to_list() |> Enum.map(&elem(&1, 1)); [Mx.divide(Enum.reduce(vals, &Mx.add/2), length(vals))] end

{p, _hist, it, ms, err} =
  converge.(
    fn cb ->
      Gen.Inference.vi(nn, [5], obs.(ys), wq, %{a: f64.(0.0), b: f64.(0.0), ls: f64.(0.0)},
        objective: :wake_sleep, samples: 4, sleep_samples: 4, guide_args: ybar, steps: 1500,
        optimizer: Gen.Optim.adam(learning_rate: 0.02), key: Mx.Random.key(4), callback: cb)
    end,
    fn p -> [num.(p.a), num.(p.b), num.(p.ls)] end,
    fn [a, b, l] -> Enum.max([abs(a - 5 / prec), abs(b), abs(l - :math.log(nn_sd))]) end,
    0.05,
    100
  )

final = final_elbo.(nn, [5], obs.(ys), wq, p, guide_args: ybar)
rows = rows ++ [{"wake-sleep, amortized guide, 4 wake + 4 sleep/step, Adam 0.02", it, 1500, ms, err, final, nn_lml, "log p(y)"}]

IO.puts("| problem | tolerance (averaging window) | iterations to tolerance | of | wall ms (whole run) | final error | final ELBO ± SE (2000 draws) | exact | exact is |")
IO.puts("|---|---|---:|---:|---:|---:|---:|---:|---|")

for {{name, it, steps, ms, err, final, exact, what}, tol} <- Enum.zip(rows, tols) do
  IO.puts("| #{name} | #{tol} | #{it} | #{steps} | #{Bench.fmt(ms)} | #{Float.round(err, 4)} | #{Float.round(elem(final, 0), 4)} ± #{Float.round(elem(final, 1), 4)} | #{Float.round(exact, 4)} | #{what} |")
end

# ---- MAP and maximum-likelihood training: iterations to the closed-form optimum ---------------

# MAP with the line search: the smallest `steps:` whose result is within 1e-8 of the posterior mode
# (the path is deterministic, so doubling then bisection finds it).
{t0, _} = Gen.generate(reg, [xs], Map.merge(obs.(lys), %{slope: 0.0, intercept: 0.0}))
map_err = fn steps ->
  t = Gen.Inference.map_optimize(t0, Gen.select([:slope, :intercept]), steps: steps, tol: 0.0)
  max(abs(num.(t[:slope]) - reg_mode.slope), abs(num.(t[:intercept]) - reg_mode.intercept))
end

hi = Stream.iterate(1, &(&1 * 2)) |> Enum.find(&(map_err.(&1) < 1.0e-8))
bisect = fn bisect, lo, hi -> if hi - lo <= 1, do: hi, else: (mid = div(lo + hi, 2); if map_err.(mid) < 1.0e-8, do: bisect.(bisect, lo, mid), else: bisect.(bisect, mid, hi)) end
map_iters = bisect.(bisect, div(hi, 2), hi)

# Maximum likelihood of linear-regression coefficients (σ = 1): least squares.
lm = gen(fn p, x -> trace(:y, Gen.Dist.normal(Mx.add(Mx.multiply(p.w, x), p.b), 1.0)) end)
data = Enum.zip_with(xs, lys, fn x, y -> {[x], %{y: y}} end)
n = length(xs)
w_ls = (n * sxy - sx * sy) / (n * sxx - sx * sx)
b_ls = (sy - w_ls * sx) / n

train_iters = fn opt ->
  me = self()
  ref = make_ref()
  Gen.Inference.train(lm, %{w: f64.(0.0), b: f64.(0.0)}, data, steps: 2000, optimizer: opt,
    callback: fn %{iteration: i, params: p} -> send(me, {ref, i, max(abs(num.(p.w) - w_ls), abs(num.(p.b) - b_ls))}) end)
  errs = for _ <- 1..2000, do: receive(do: ({^ref, i, e} -> {i, e}))
  last_bad = errs |> Enum.filter(fn {_, e} -> e >= 1.0e-8 end) |> Enum.map(&elem(&1, 0)) |> Enum.max(fn -> -1 end)
  if last_bad + 1 >= 2000, do: "not reached", else: last_bad + 1
end

IO.puts("\n| optimisation, linear regression (closed-form optimum) | iterations to 1e-8 |")
IO.puts("|---|---:|")
IO.puts("| MAP, line-search gradient ascent (posterior mode) | #{map_iters} |")
IO.puts("| train, SGD η = 1/λ_max(XᵀX) (least squares) | #{train_iters.(Gen.Optim.sgd(learning_rate: 2 / ((sxx + n) + :math.sqrt((sxx - n) * (sxx - n) + 4 * sx * sx))))} |")
IO.puts("| train, SGD η = 1/λ_max, momentum 0.5 | #{train_iters.(Gen.Optim.sgd(learning_rate: 2 / ((sxx + n) + :math.sqrt((sxx - n) * (sxx - n) + 4 * sx * sx)), momentum: 0.5))} |")
IO.puts("| train, Adam η = 0.05 | #{train_iters.(Gen.Optim.adam(learning_rate: 0.05))} |")

# ---- time per iteration beside the forward estimate ------------------------------------------

q = gen(fn p -> trace(:mu, Gen.Dist.normal(p.m, Mx.exp(p.ls))) end)
p0 = %{m: f64.(1.0), ls: f64.(-0.5)}
steps = 20

cases = [
  {"VI step, ELBO reparam, K=1", fn -> VI.vi(nn, [5], obs.(ys), q, p0, steps: steps, key: Mx.Random.key(5)) end},
  {"VI step, ELBO reinforce, K=4", fn -> VI.vi(nn, [5], obs.(ys), q, p0, steps: steps, estimator: :reinforce, samples: 4, key: Mx.Random.key(5)) end},
  {"VI step, IWELBO reparam, K=4", fn -> VI.vi(nn, [5], obs.(ys), q, p0, steps: steps, objective: :iwelbo, samples: 4, key: Mx.Random.key(5)) end},
  {"baseline: forward ELBO estimate, K=1", fn -> for i <- 1..steps, do: VI.elbo(nn, [5], obs.(ys), q, p0, key: Mx.Random.key(i)) end},
  {"baseline: forward ELBO estimate, K=4", fn -> for i <- 1..steps, do: VI.elbo(nn, [5], obs.(ys), q, p0, samples: 4, key: Mx.Random.key(i)) end},
  {"MAP line-search step (linear regression)", fn ->
     {t, _} = Gen.generate(reg, [xs], Map.merge(obs.(lys), %{slope: 0.0, intercept: 0.0}))
     Gen.Inference.map_optimize(t, Gen.select([:slope, :intercept]), steps: steps, tol: 0.0)
   end},
  {"baseline: Gen.assess of the regression model", fn ->
     cm = Gen.choicemap(Map.merge(obs.(lys), %{slope: 0.5, intercept: 0.5}))
     for _ <- 1..steps, do: Gen.assess(reg, [xs], cm) |> elem(0) |> Mx.eval()
   end}
]

res = Bench.round_robin(cases, 1, batches)
per = fn name -> Bench.median(res[name]) / steps / 1000 end

IO.puts("\n| per iteration (median of #{batches} round-robin batches of #{steps}) | µs | baseline | ratio |")
IO.puts("|---|---:|---|---:|")

for {name, base} <- [
      {"VI step, ELBO reparam, K=1", "baseline: forward ELBO estimate, K=1"},
      {"VI step, ELBO reinforce, K=4", "baseline: forward ELBO estimate, K=4"},
      {"VI step, IWELBO reparam, K=4", "baseline: forward ELBO estimate, K=4"},
      {"MAP line-search step (linear regression)", "baseline: Gen.assess of the regression model"}
    ] do
  IO.puts("| #{name} | #{Bench.fmt(per.(name))} | #{base} #{Bench.fmt(per.(base))} µs | #{Float.round(per.(name) / per.(base), 2)} |")
end

# ---- estimator variance at the same parameters ----------------------------------------------

p1 = %{m: f64.(nn_mean + 0.5), ls: f64.(:math.log(0.8))}

sd_of = fn estimator, stl ->
  gs = for r <- 1..300, do: VI.gradient(nn, [5], obs.(ys), q, p1, estimator: estimator, stl: stl, samples: 2, key: Mx.Random.key(r)) |> elem(1)
  for k <- [:m, :ls] do
    v = Enum.map(gs, &num.(&1[k]))
    m = Enum.sum(v) / length(v)
    {m, :math.sqrt(Enum.sum(Enum.map(v, &((&1 - m) * (&1 - m)))) / (length(v) - 1))}
  end
end

[{rm, rs}, {rlm, rls}] = sd_of.(:reparam, false)
[{tm, ts}, {tlm, tls}] = sd_of.(:reparam, true)
[{fm, fs}, {flm, fls}] = sd_of.(:reinforce, false)
exact_m = -(0.5) * prec
exact_ls = 1 - 0.64 * prec
IO.puts("\n| ELBO gradient, K=2, 300 draws at mean m+0.5, sd 0.8 | d/d mean (exact #{Float.round(exact_m, 3)}) | sd | d/d log sd (exact #{Float.round(exact_ls, 3)}) | sd |")
IO.puts("|---|---:|---:|---:|---:|")
IO.puts("| reparam | #{Float.round(rm, 3)} | #{Float.round(rs, 3)} | #{Float.round(rlm, 3)} | #{Float.round(rls, 3)} |")
IO.puts("| reparam, sticking the landing | #{Float.round(tm, 3)} | #{Float.round(ts, 3)} | #{Float.round(tlm, 3)} | #{Float.round(tls, 3)} |")
IO.puts("| reinforce (leave-one-out baseline) | #{Float.round(fm, 3)} | #{Float.round(fs, 3)} | #{Float.round(flm, 3)} | #{Float.round(fls, 3)} |")
IO.puts("| variance ratio reinforce/reparam | | #{Float.round(fs * fs / (rs * rs), 1)} | | #{Float.round(fls * fls / (rls * rls), 1)} |")
IO.puts("\nload at the end #{Bench.load()}")
