defmodule Gen.Inference do
  @moduledoc """
  The inference library: kernels on traces and drivers that collect
  samples, written on the GFI of `Gen` alone (generate, update, regenerate,
  assess, propose, edit and the trace accessors), so they work for every
  generative function.

  ## Where things are

    * `importance_sampling/5`, `importance_resampling/5` — `Gen.Inference.Importance`
    * `mh/3` (selection, via regenerate), `mh/4` (custom proposal) — `Gen.Inference.MH`
    * `mala/3`, `hmc/3` (gradient kernels on continuous choices) — `Gen.Inference.Gradient`
    * `gibbs/3`, `elliptical_slice/3`, `involutive_mh/5` — `Gen.Inference.Gibbs`,
      `Gen.Inference.EllipticalSlice`, `Gen.Inference.Involutive`
    * kernels as values and their composition: `Gen.Inference.Kernel`
      (`mh`, `gibbs`, `elliptical_slice`, `involutive_mh`, `chain`, `cycle`, `mix`, `repeat`)
    * `run/3` — the MCMC driver: burn-in, thinning, selected values, a
      callback, a progress bar, several chains as processes, flat memory
    * `smc/5` — a particle filter with ESS-triggered resampling and optional
      MCMC rejuvenation — `Gen.Inference.SMC`, resampling schemes
      (multinomial, systematic, residual) in `Gen.Inference.Resample`
    * `csmc/6` (conditional SMC) and `particle_gibbs/4` — `Gen.Inference.CSMC`;
      `smcp3/5` (probabilistic program proposals) — `Gen.Inference.SMCP3`;
      `Gen.Inference.SMC.filter/5`, a streaming particle filter for long series
    * `vimportance_sampling/5`, `vsmc/5`, `vmh/3`, `vmala/3`, `vhmc/3` — the same over `n` particles
      or chains in one vectorized trace (`Gen.Vectorized`) — `Gen.Inference.Vectorized`,
      with its driver `Gen.Inference.Vectorized.run/3`, and `vsample/3`, adaptive MALA or HMC
      over `n` chains (per-chain step sizes, a shared diagonal metric)

  Every function that draws takes `key:`; without one, `Gen.next_key/0`.
  """

  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Inference.{Importance, Kernel, MH}
  import Gen.Inference.Common, only: [count!: 5, fun!: 4]

  @doc """
  Importance sampling with `n` particles. Returns `{traces,
  log_normalized_weights, log_ml_estimate}`: the weights an f64 `[n]` array
  whose `exp` sums to one, the estimate of log p(observations) an f64
  scalar, log((1/n) Σ wᵢ).

  Options: `key:` (split into one key per particle); `proposal:
  {proposal_gen_fn, proposal_args}`, whose choices (addresses of the model)
  are merged with the observations, each weight then being the model's
  generate weight minus the proposal's score. Without a proposal the prior
  is the proposal (`Gen.generate/4`).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {traces, lnw, lml} = Gen.Inference.importance_sampling(m, [], %{y: 0.0}, 4, key: Mx.Random.key(0))
      iex> {length(traces), Mx.describe(lnw), Mx.describe(lml)}
      {4, "f64[4]", "f64"}
      iex> abs(Mx.to_number(Mx.logsumexp(lnw))) < 1.0e-12
      true
      iex> # With the exact posterior N(0, 1/2) as proposal every weight is p(y = 0) = N(0; 0, 2).
      iex> q = gen fn -> trace(:mu, Gen.Dist.normal(0.0, :math.sqrt(0.5))) end
      iex> {_, _, lml} = Gen.Inference.importance_sampling(m, [], %{y: 0.0}, 3, key: Mx.Random.key(1), proposal: {q, []})
      iex> Float.round(Mx.to_number(lml), 10) == Float.round(-0.5 * :math.log(2 * :math.pi() * 2), 10)
      true
  """
  @spec importance_sampling(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          pos_integer(),
          keyword()
        ) ::
          {[Trace.t()], Mx.t(), Mx.t()}
  def importance_sampling(gf, args, observations, n, opts \\ []),
    do: Importance.importance_sampling(gf, args, observations, n, opts)

  @doc """
  Importance resampling: `importance_sampling/5`, then one trace drawn with
  probability proportional to its weight. Returns `{trace,
  log_ml_estimate}`. Same options.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, lml} = Gen.Inference.importance_resampling(m, [], %{y: 1.0}, 10, key: Mx.Random.key(0))
      iex> {Mx.to_number(t[:y]), Mx.describe(lml)}
      {1.0, "f64"}
  """
  @spec importance_resampling(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          pos_integer(),
          keyword()
        ) ::
          {Trace.t(), Mx.t()}
  def importance_resampling(gf, args, observations, n, opts \\ []),
    do: Importance.importance_resampling(gf, args, observations, n, opts)

  @doc """
  A particle filter with `n` particles (`Gen.Inference.SMC`): step 0 runs
  `Gen.generate/4` on `args_fn.(0)` with `Enum.at(observations, 0)`; step t
  moves every particle with `Gen.update/5` to `args_fn.(t)` and the new
  observations, adding the update weight. Before a step, when Kish's ESS
  falls under `ess_threshold · n`, the particles are resampled and the
  log-mean-exp of the weights added to the log marginal likelihood
  estimate. Returns `{traces, log_normalized_weights, log_ml_estimate}`.

  Options: `key:`, `ess_threshold:` (0.5), `resampling:` (`:multinomial`,
  `:systematic` or `:residual`; see `Gen.Inference.Resample`),
  `rejuvenate:` (a `Gen.Inference.Kernel.t()`, e.g.
  `Kernel.mh(Gen.select(:mu))`, applied to every particle after each
  step's resampling and after the last step; particle i at step t with a
  key folded from the step's key; nil by default), `callback:` (called
  after every step with `%{step: t, ess: ess, log_ml: estimate so far,
  traces: traces}`). For long series see `Gen.Inference.SMC.filter/5`,
  whose particles do not hold the history.

      iex> import Gen
      iex> m = gen fn t -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0)) end
      iex> obs = [%{{:y, 0} => 0.3}, %{{:y, 1} => 0.5}]
      iex> {traces, lnw, lml} = Gen.Inference.smc(m, &[&1], obs, 8, key: Mx.Random.key(0), resampling: :systematic)
      iex> {length(traces), Mx.describe(lnw), Mx.describe(lml), Mx.to_number(hd(traces)[{:y, 1}])}
      {8, "f64[8]", "f64", 0.5}
  """
  @spec smc(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
          {[Trace.t()], Mx.t(), Mx.t()}
  def smc(gf, args_fn, observations, n, opts \\ []),
    do: Gen.Inference.SMC.smc(gf, args_fn, observations, n, opts)

  @doc """
  One Metropolis–Hastings step resampling the `selection` from its prior
  (`Gen.regenerate/3`), accepted with probability min(1, exp(weight)).
  Returns `{new_trace, accepted?}`. Options: `key:`. (`mh(trace, q,
  q_args)` with a generative function `q` is `mh/4` without options.)
  A selection that selects no choice of the trace raises, listing the
  trace's addresses: a misspelt address would give a chain that never moves.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.mh(t, Gen.select(:mu), key: Mx.Random.key(1))
      iex> {is_boolean(acc), Mx.to_number(t2[:y])}
      {true, 0.5}
  """
  @spec mh(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def mh(trace, selection, opts \\ [])

  def mh(%Trace{} = trace, %Selection{} = sel, opts) when is_list(opts),
    do: MH.mh_selection(trace, sel, opts)

  def mh(%Trace{} = trace, q, q_args) when is_list(q_args),
    do: MH.mh_proposal(trace, q, q_args, [])

  def mh(trace, sel, _opts) do
    raise ArgumentError,
          "Gen.Inference.mh: expected a Gen.Trace and a Gen.Selection (or a proposal and its argument list), got #{inspect(trace)} and #{inspect(sel)}"
  end

  @doc """
  One Metropolis–Hastings step with the custom proposal `q`, a generative
  function called on `[trace | q_args]` whose choices are addresses of the
  model (Gen.jl's `metropolis_hastings(trace, proposal, args)`, here
  `Gen.edit/3` with `Gen.Edit.proposal/2`: propose, update, assess
  backward). Returns `{new_trace, accepted?}`. Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> q = gen fn t, s -> trace(:mu, Gen.Dist.normal(t[:mu], s)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {_t2, acc} = Gen.Inference.mh(t, q, [0.3], key: Mx.Random.key(1))
      iex> is_boolean(acc)
      true
  """
  @spec mh(Trace.t(), Gen.gen_fn(), [term()], keyword()) :: {Trace.t(), boolean()}
  def mh(%Trace{} = trace, q, q_args, opts) when is_list(opts),
    do: MH.mh_proposal(trace, q, q_args, opts)

  @doc """
  One Metropolis-adjusted Langevin step on the selected continuous choices
  (`Gen.Inference.Gradient`): propose x' ~ N(x + τ∇log p(x), 2τ·I), with
  the gradient of the log joint from `Gen.assess/3` under `Mx.grad/2`, and
  accept with the forward and backward proposal densities. Returns
  `{new_trace, accepted?}`. Constrained choices move on their unconstrained
  scale (`Gen.Transform`, with the log-Jacobian). Options: `tau:`
  (required), `transforms:` (overrides, as for `nuts/3`), `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.mala(t, Gen.select(:mu), tau: 0.2, key: Mx.Random.key(1))
      iex> {is_boolean(acc), Mx.to_number(t2[:y])}
      {true, 0.5}
  """
  @spec mala(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def mala(%Trace{} = trace, %Selection{} = sel, opts),
    do: Gen.Inference.Gradient.mala(trace, sel, opts)

  @doc """
  One Hamiltonian Monte Carlo step on the selected continuous choices
  (`Gen.Inference.Gradient`): momentum p ~ N(0, I), `n_leapfrog:` leapfrog
  steps of size `step_size:` with unit mass, accepted on the change in the
  Hamiltonian -log p(x) + |p|²/2, on the unconstrained scale of constrained
  choices (`Gen.Transform`). Returns `{new_trace, accepted?}`.
  Options: `step_size:` (required), `n_leapfrog:` (10), `transforms:`
  (overrides, as for `nuts/3`), `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.hmc(t, Gen.select(:mu), step_size: 0.3, n_leapfrog: 5, key: Mx.Random.key(1))
      iex> {is_boolean(acc), Mx.to_number(t2[:y])}
      {true, 0.5}
  """
  @spec hmc(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def hmc(%Trace{} = trace, %Selection{} = sel, opts),
    do: Gen.Inference.Gradient.hmc(trace, sel, opts)

  # ---- adaptive HMC and NUTS (Gen.Inference.NUTS) ----

  @doc """
  Warmup for `hmc/3`: runs `warmup:` (500) HMC steps of `n_leapfrog:` (10)
  leapfrog steps while dual averaging (`Gen.Inference.Adapt`) drives the
  step size to the mean acceptance probability `target_accept:` (0.8),
  from Stan's doubling heuristic started at `step_size:` (1.0). Returns
  `{trace, step_size, stats}`: the last warmup trace, the adapted
  (averaged) step size to pass to `hmc/3`, and per warmup step
  `%{step_size: ε, accept_prob: α}`. Options also `transforms:`, `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {t2, eps, stats} = Gen.Inference.hmc_warmup(t, Gen.select(:mu), warmup: 20, n_leapfrog: 3, key: Mx.Random.key(1))
      iex> {eps > 0, length(stats), Map.keys(hd(stats)), Mx.to_number(t2[:y])}
      {true, 20, [:accept_prob, :step_size], 0.5}
  """
  @spec hmc_warmup(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), float(), [map()]}
  def hmc_warmup(%Trace{} = trace, %Selection{} = sel, opts \\ []),
    do: Gen.Inference.Gradient.hmc_warmup(trace, sel, opts)

  @doc """
  One multinomial NUTS transition as in Stan (`Gen.Inference.NUTS`) on the
  selected continuous choices, at a fixed `step_size:` (required), with
  `inv_metric:` (diagonal, unit by default), `max_depth:` (10),
  `transforms:` and `key:`. Constrained choices move on the unconstrained
  scale of their distribution's support (`Gen.Transform`); `transforms:`
  (e.g. `%{x: :ordered}` or `%{b: {:lower, fn cm -> cm[:a] end}}`)
  overrides the automatic choice. Returns `{new_trace, accepted?}`. For warmup adaptation of the
  step size and the metric and a run of draws, use
  `Gen.Inference.NUTS.sample/3`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.nuts(t, Gen.select(:mu), step_size: 0.8, key: Mx.Random.key(2))
      iex> {is_boolean(acc), Mx.to_number(t2[:y])}
      {true, 0.5}
  """
  @spec nuts(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def nuts(%Trace{} = trace, %Selection{} = sel, opts),
    do: Gen.Inference.NUTS.nuts(trace, sel, opts)

  # ---- gibbs, elliptical_slice, involutive_mh ----

  @doc """
  One Gibbs step on the discrete choice at `address` (`Gen.Inference.Gibbs`):
  each candidate value is scored with `Gen.update/3` and one is drawn from
  the exact full conditional. Returns `{new_trace, true}`. Options:
  `values:` (the candidates, covering the choice's support; a boolean
  choice defaults to `[false, true]`), `key:`.

      iex> import Gen
      iex> m = gen fn -> z = trace(:z, Gen.Dist.bernoulli(0.5)); trace(:y, Gen.Dist.normal(if(Mx.to_number(z), do: 3.0, else: 0.0), 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 3.0, z: false}, key: Mx.Random.key(0))
      iex> # p(z = true | y = 3) = 1 / (1 + e^(-4.5)) ≈ 0.989
      iex> {t2, true} = Gen.Inference.gibbs(t, :z, key: Mx.Random.key(1))
      iex> Mx.to_number(t2[:z])
      true
  """
  @spec gibbs(Trace.t(), Choicemap.path(), keyword()) :: {Trace.t(), boolean()}
  def gibbs(trace, address, opts \\ []), do: Gen.Inference.Gibbs.gibbs(trace, address, opts)

  @doc """
  One elliptical slice step (`Gen.Inference.EllipticalSlice`) on the
  continuous choice at `address`, whose prior is Gaussian with `mean:` and
  `cov:` (a variance, variances, or a covariance matrix); the rest of the
  log joint is the likelihood. Returns `{new_trace, true}`. Options:
  `mean:`, `cov:` (both required), `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 2.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 1.0, mu: 0.0}, key: Mx.Random.key(0))
      iex> {t2, true} = Gen.Inference.elliptical_slice(t, :mu, mean: 0.0, cov: 4.0, key: Mx.Random.key(1))
      iex> {Mx.to_number(t2[:mu]) != 0.0, Mx.to_number(t2[:y])}
      {true, 1.0}
  """
  @spec elliptical_slice(Trace.t(), Choicemap.path(), keyword()) :: {Trace.t(), boolean()}
  def elliptical_slice(trace, address, opts),
    do: Gen.Inference.EllipticalSlice.elliptical_slice(trace, address, opts)

  @doc """
  One involutive MCMC step (`Gen.Inference.Involutive`): auxiliary choices
  from `proposal` on `[trace | proposal_args]`, the `involution`
  `fn model_choices, aux_choices, proposal_args -> {model_changes,
  new_aux_choices} end`, and acceptance with the log |det| of its Jacobian
  on the continuous values. Returns `{new_trace, accepted?}`. Options:
  `check:` (false; true applies the involution twice at every step and
  raises unless it gives back the start), `key:`.

  A Gaussian random walk written as an involution, `(mu, d) -> (mu + d, -d)`:

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> q = gen fn _t, s -> trace(:d, Gen.Dist.normal(0.0, s)) end
      iex> inv = fn m, a, _ -> {%{mu: Mx.add(m[:mu], a[:d])}, %{d: Mx.negate(a[:d])}} end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.involutive_mh(t, q, [0.5], inv, key: Mx.Random.key(1), check: true)
      iex> {is_boolean(acc), Mx.to_number(t2[:y])}
      {true, 0.5}
  """
  @spec involutive_mh(Trace.t(), Gen.gen_fn(), [term()], function(), keyword()) ::
          {Trace.t(), boolean()}
  def involutive_mh(trace, proposal, proposal_args, involution, opts \\ []),
    do: Gen.Inference.Involutive.involutive_mh(trace, proposal, proposal_args, involution, opts)

  # ---- MAP, trainable parameters and variational inference ----

  @doc """
  Maximum a posteriori optimisation of the selected continuous choices of
  `trace` (`Gen.Inference.MAP`): gradient ascent on the log joint (from
  `Gen.assess/3` under `Mx.value_and_grad/2`) with a backtracking line
  search until max|∇| ≤ `tol:`, or `steps:` steps of a `Gen.Optim`
  optimiser; returns the trace with the optimised values written by
  `Gen.update/3`.

  Constrained choices move on their unconstrained scale (`Gen.Transform`),
  without the log-Jacobian, so the result is the mode of the constrained
  posterior.

  Options: `steps:` (1000, the most iterations), `tol:` (1.0e-6, on the
  gradient with respect to the unconstrained values), `step_size:` (1.0,
  the first trial step of the line search), `optimizer:` (nil for the line
  search, or a `Gen.Optim`), `transforms:` (overrides, as for `nuts/3`).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{mu: 0.0, y: 3.0})
      iex> # the posterior N(y/2, 1/2) has its mode at 1.5
      iex> t2 = Gen.Inference.map_optimize(t, Gen.select(:mu), tol: 1.0e-10)
      iex> Float.round(Mx.to_number(t2[:mu]), 8)
      1.5
  """
  @spec map_optimize(Trace.t(), Selection.t(), keyword()) :: Trace.t()
  def map_optimize(%Trace{} = trace, %Selection{} = sel, opts \\ []),
    do: Gen.Inference.MAP.map_optimize(trace, sel, opts)

  @doc """
  Trains the parameters of a generative function by maximum likelihood
  (`Gen.Inference.Train`): `gf` takes its parameters (a map or list of
  float Mx arrays, see `Gen.Optim`) as its first argument; `data` is a list
  of fully observed items, each a choicemap (or map), called as
  `gf.(params)`, or `{extra_args, choicemap}`, called as `gf.(params,
  extra_args...)`. The objective Σᵢ log p(choicesᵢ; params) (each term
  `Gen.assess/3`) is ascended by `optimizer:`. Returns `{params, history}`,
  history the objective at each step.

  Options: `steps:` (1000), `optimizer:` (`Gen.Optim.adam(learning_rate:
  0.01)`), `batch_size:` (all; a minibatch of b items drawn without
  replacement each step, its sum scaled by n/b), `key:` (for the
  minibatches), `callback:` (see `Gen.Optim.fit/3`).

      iex> import Gen
      iex> m = gen fn p -> trace(:x, Gen.Dist.normal(p.mu, 1.0)) end
      iex> data = for x <- [1.0, 2.0, 4.5], do: %{x: x}
      iex> {p, _} = Gen.Inference.train(m, %{mu: Mx.tensor(0.0, type: :f64)}, data, steps: 100, optimizer: Gen.Optim.sgd(learning_rate: 0.2))
      iex> # the maximum-likelihood mean is the sample mean, 2.5
      iex> Float.round(Mx.to_number(p.mu), 8)
      2.5
  """
  @spec train(Gen.gen_fn(), Gen.Optim.params(), [term()], keyword()) ::
          {Gen.Optim.params(), [float()]}
  def train(gf, params, data, opts \\ []), do: Gen.Inference.Train.train(gf, params, data, opts)

  @doc """
  ADVI (`Gen.Inference.VI.advi/5`): a mean-field Gaussian over the
  selected continuous addresses, on the unconstrained scale of each
  (`Gen.Transform`), fitted to the posterior by the reparameterization
  gradient of the ELBO. Returns `{%{mu: choicemap, log_sigma: choicemap,
  transforms: map}, elbo_history}`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {p, _} = Gen.Inference.advi(m, [], %{y: 2.0}, Gen.select(:mu), steps: 300, samples: 4, key: Mx.Random.key(0))
      iex> abs(Mx.to_number(p.mu[:mu]) - 1.0) < 0.1
      true
  """
  @spec advi(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), Selection.t(), keyword()) ::
          {%{mu: Choicemap.t(), log_sigma: Choicemap.t()}, [float()]}
  def advi(model, args, observations, %Selection{} = sel, opts \\ []),
    do: Gen.Inference.VI.advi(model, args, observations, sel, opts)

  @doc """
  Programmable variational inference (`Gen.Inference.VI.vi/6`): fits the
  parameters of a guide generative function, called on `[params |
  guide_args]`, with objectives `:elbo`, `:iwelbo`, `:wake_sleep` and
  gradient estimators `:reparam` and `:reinforce`. Returns `{params,
  history}`.

      iex> import Gen
      iex> m = gen fn -> b = trace(:b, Gen.Dist.bernoulli(0.5)); trace(:y, Gen.Dist.normal(Mx.select(b, Mx.tensor(1.0, type: :f64), Mx.tensor(-1.0, type: :f64)), 1.0)) end
      iex> q = gen fn p -> trace(:b, Gen.Dist.bernoulli(Mx.sigmoid(p.logit))) end
      iex> {p, _} = Gen.Inference.vi(m, [], %{y: 1.0}, q, %{logit: Mx.tensor(0.0, type: :f64)}, samples: 4, steps: 600, optimizer: Gen.Optim.adam(learning_rate: 0.05), key: Mx.Random.key(0))
      iex> # P(b | y = 1) = σ(2): the guide's logit approaches 2
      iex> abs(Mx.to_number(p.logit) - 2.0) < 0.1
      true
  """
  @spec vi(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          Gen.gen_fn(),
          Gen.Optim.params(),
          keyword()
        ) ::
          {Gen.Optim.params(), [float()]}
  def vi(model, args, observations, guide, params, opts \\ []),
    do: Gen.Inference.VI.vi(model, args, observations, guide, params, opts)

  # ---- SMC extensions: rejuvenation, csmc, smcp3 ----

  @doc """
  Conditional SMC (`Gen.Inference.CSMC`, Andrieu, Doucet & Holenstein
  2010): `smc/5`'s particle filter with particle 0 held to
  `reference_trace` (a trace of `gf` on `args_fn.(T - 1)` holding the
  observations) and multinomial resampling at every step that keeps it.
  Returns `{traces, log_normalized_weights, new_reference}`, the new
  reference drawn from the final weights. Options: `key:`.

      iex> import Gen
      iex> step = gen fn _t, x -> x = trace(:x, Gen.Dist.normal(x, 1.0)); trace(:y, Gen.Dist.normal(x, 0.5)); x end
      iex> m = Gen.Combinators.unfold(step)
      iex> obs = for {y, t} <- Enum.with_index([0.2, -0.1, 0.4]), do: %{t => %{y: y}}
      iex> {ref, _} = Gen.generate(m, [3, 0.0], %{0 => %{y: 0.2}, 1 => %{y: -0.1}, 2 => %{y: 0.4}}, key: Mx.Random.key(0))
      iex> {traces, lnw, new_ref} = Gen.Inference.csmc(m, &[&1 + 1, 0.0], obs, 5, ref, key: Mx.Random.key(1))
      iex> {length(traces), Mx.describe(lnw), Mx.to_list(hd(traces)[[1, :x]]) == Mx.to_list(ref[[1, :x]]), Mx.to_number(new_ref[[2, :y]])}
      {5, "f64[5]", true, 0.4}
  """
  @spec csmc(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          Trace.t(),
          keyword()
        ) :: {[Trace.t()], Mx.t(), Trace.t()}
  def csmc(gf, args_fn, observations, n, reference_trace, opts \\ []) do
    {traces, lnw, new_ref, _} =
      Gen.Inference.CSMC.csmc(gf, args_fn, observations, n, reference_trace, opts)

    {traces, lnw, new_ref}
  end

  @doc """
  The particle-Gibbs kernel (a `Gen.Inference.Kernel.t()`): from a trace of
  the model on `args_fn.(T - 1)` with the observations, `csmc/6` with `n`
  particles and that trace as reference; the new trace is the new
  reference. `accepted?` is true when a particle other than the reference
  was drawn. Leaves the posterior of the latent choices invariant.

      iex> import Gen
      iex> step = gen fn _t, x -> x = trace(:x, Gen.Dist.normal(x, 1.0)); trace(:y, Gen.Dist.normal(x, 0.5)); x end
      iex> m = Gen.Combinators.unfold(step)
      iex> obs = for {y, t} <- Enum.with_index([0.2, -0.1]), do: %{t => %{y: y}}
      iex> {t, _} = Gen.generate(m, [2, 0.0], %{0 => %{y: 0.2}, 1 => %{y: -0.1}}, key: Mx.Random.key(0))
      iex> pg = Gen.Inference.particle_gibbs(&[&1 + 1, 0.0], obs, 4)
      iex> xs = Gen.Inference.run(pg, t, samples: 3, key: Mx.Random.key(1), select: &Mx.to_number(&1[[0, :x]]))
      iex> length(xs)
      3
  """
  @spec particle_gibbs(
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
          Kernel.t()
  def particle_gibbs(args_fn, observations, n, opts \\ []),
    do: Gen.Inference.CSMC.kernel(args_fn, observations, n, opts)

  @doc """
  SMCP3 (`Gen.Inference.SMCP3`, Lew et al. 2023): a particle filter whose
  steps move each particle with a forward proposal `forward:` K, a
  generative function on `[old_trace (nil at step 0), t, observations]`,
  and score the way back with a backward proposal `backward:` L on
  `[new_trace, t, observations]`, the incremental weight being

      log p(new) − log p(old) + log L(v; new) − log K(u; old) (+ log |det J|)

  By default K's choices are model choices written into the trace, and v
  is what they displace (`transform:` gives another bijection; see the
  module for the contract). Returns `{traces, log_normalized_weights,
  log_ml_estimate}`. Options: `forward:` (required), `backward:`,
  `transform:`, and those of `smc/5`.

      iex> import Gen
      iex> m = gen fn t -> for i <- 0..t, do: trace({:x, i}, Gen.Dist.normal(0.0, 1.0)) end
      iex> # K proposes the step's latent from the exact posterior N(y/2, 1/2) of x ~ N(0, 1), y ~ N(x, 1).
      iex> m2 = gen fn t -> for i <- 0..t, do: (x = trace({:x, i}, Gen.Dist.normal(0.0, 1.0)); trace({:y, i}, Gen.Dist.normal(x, 1.0))) end
      iex> k = gen fn _old, t, obs -> trace({:x, t}, Gen.Dist.normal(Mx.multiply(obs[{:y, t}], 0.5), :math.sqrt(0.5))) end
      iex> obs = [%{{:y, 0} => 1.0}, %{{:y, 1} => -1.0}]
      iex> {_traces, lnw, lml} = Gen.Inference.smcp3(m2, &[&1], obs, 4, forward: k, key: Mx.Random.key(0))
      iex> # Every weight is exactly p(y_t) = N(y_t; 0, 2), so the estimate is exact.
      iex> {Mx.describe(lnw), Float.round(Mx.to_number(lml), 10) == Float.round(-:math.log(4 * :math.pi()) - 0.5, 10), is_struct(m)}
      {"f64[4]", true, true}
  """
  @spec smcp3(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
          {[Trace.t()], Mx.t(), Mx.t()}
  def smcp3(gf, args_fn, observations, n, opts),
    do: Gen.Inference.SMCP3.smcp3(gf, args_fn, observations, n, opts)

  # ---- vectorized inference over [n] particles ----

  @doc """
  Importance sampling with `n` particles in one vectorized run of the model
  (`Gen.Inference.Vectorized.importance_sampling/5`): `{trace,
  log_normalized_weights, log_ml_estimate}` as `importance_sampling/5`,
  with one vectorized trace (`Gen.vgenerate/5`) in place of the list.
  Options: `key:`, `proposal:`, `compile:` (true: one compiled tape per
  signature, replayed).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, lnw, lml} = Gen.Inference.vimportance_sampling(m, [], %{y: 0.0}, 100, key: Mx.Random.key(0))
      iex> {Mx.describe(t[:mu]), Mx.describe(lnw), Mx.describe(lml)}
      {"f64[100]", "f64[100]", "f64"}
  """
  @spec vimportance_sampling(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          pos_integer(),
          keyword()
        ) ::
          {Trace.t(), Mx.t(), Mx.t()}
  def vimportance_sampling(gf, args, observations, n, opts \\ []),
    do: Gen.Inference.Vectorized.importance_sampling(gf, args, observations, n, opts)

  @doc """
  A particle filter with `n` particles held in one vectorized trace
  (`Gen.Inference.Vectorized.smc/5`): as `smc/5`, with `rejuvenate:` a
  selection (vectorized MH on it) or a kernel on vectorized traces (`fn
  trace, opts -> {trace, accepted} end`, e.g. wrapping `vmh/3` or
  `vmala/3`), and `rejuvenate_steps:`. Returns `{trace,
  log_normalized_weights, log_ml_estimate}`.

      iex> import Gen
      iex> m = gen fn t -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0)) end
      iex> obs = [%{{:y, 0} => 0.3}, %{{:y, 1} => 0.5}]
      iex> {t, lnw, _lml} = Gen.Inference.vsmc(m, &[&1], obs, 8, key: Mx.Random.key(0), rejuvenate: Gen.select(:mu))
      iex> {Mx.describe(t[:mu]), Mx.describe(lnw)}
      {"f64[8]", "f64[8]"}
  """
  @spec vsmc(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
          {Trace.t(), Mx.t(), Mx.t()}
  def vsmc(gf, args_fn, observations, n, opts \\ []),
    do: Gen.Inference.Vectorized.smc(gf, args_fn, observations, n, opts)

  @doc """
  One Metropolis–Hastings step (selection, via regenerate) on each of the
  `n` independent chains of a vectorized trace
  (`Gen.Inference.Vectorized.mh/3`): `{trace, accepted}`, `accepted` a
  boolean `[n]` array. Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 3, key: Mx.Random.key(0))
      iex> {_t2, acc} = Gen.Inference.vmh(t, Gen.select(:mu), key: Mx.Random.key(1))
      iex> Mx.describe(acc)
      "bool[3]"
  """
  @spec vmh(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t()}
  def vmh(%Trace{} = trace, %Selection{} = sel, opts \\ []),
    do: Gen.Inference.Vectorized.mh(trace, sel, opts)

  @doc """
  One MALA step on each of the `n` independent chains of a vectorized trace
  (`Gen.Inference.Vectorized.mala/3`), with per-chain gradients:
  `{trace, accepted}`. Options: `tau:` (required), `key:`, `compile:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 3, key: Mx.Random.key(0))
      iex> {_t2, acc} = Gen.Inference.vmala(t, Gen.select(:mu), tau: 0.3, key: Mx.Random.key(1))
      iex> Mx.describe(acc)
      "bool[3]"
  """
  @spec vmala(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t()}
  def vmala(%Trace{} = trace, %Selection{} = sel, opts),
    do: Gen.Inference.Vectorized.mala(trace, sel, opts)

  @doc """
  One HMC step on each of the `n` independent chains of a vectorized trace
  (`Gen.Inference.Vectorized.hmc/3`): `{trace, accepted}`. Options:
  `step_size:` (required; a number or per-chain f64 `[n]` steps),
  `n_leapfrog:` (10), `inv_metric:`, `key:`, `compile:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 3, key: Mx.Random.key(0))
      iex> {_t2, acc} = Gen.Inference.vhmc(t, Gen.select(:mu), step_size: 0.5, n_leapfrog: 5, key: Mx.Random.key(1))
      iex> Mx.describe(acc)
      "bool[3]"
  """
  @spec vhmc(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t()}
  def vhmc(%Trace{} = trace, %Selection{} = sel, opts),
    do: Gen.Inference.Vectorized.hmc(trace, sel, opts)

  @doc """
  Adaptive MALA or HMC on the `n` chains of a vectorized trace
  (`Gen.Inference.Vectorized.sample/3`): per-chain step sizes by dual
  averaging, a shared diagonal metric from Stan's windows, a warning when
  acceptance stays near 0 or 1. Returns a map with `samples`, `trace`,
  `step_size`, `inv_metric`, `accept_rate`, `warmup_accept`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 4, key: Mx.Random.key(0))
      iex> r = Gen.Inference.vsample(t, Gen.select(:mu), warmup: 10, samples: 2, n_leapfrog: 3, key: Mx.Random.key(1))
      iex> {length(r.samples), Mx.describe(r.accept_rate)}
      {2, "f64[4]"}
  """
  @spec vsample(Trace.t(), Selection.t(), keyword()) :: map()
  def vsample(%Trace{} = trace, %Selection{} = sel, opts \\ []),
    do: Gen.Inference.Vectorized.sample(trace, sel, opts)

  @doc """
  Runs `kernel` (a `Gen.Inference.Kernel.t()`) from `trace` for `burn +
  samples * thin` iterations and returns the `samples` values kept after
  burn-in, every `thin`-th: the traces, or `select.(trace)` with `select:`.

  Options: `samples:` (required), `burn:` (0), `thin:` (1), `key:`
  (iteration i uses `Mx.Random.fold_in(key, i)`), `select:` (a function of
  the trace, or nil), `callback:` (called after every iteration with
  `%{iteration: i, trace: t, accepted: acc?}`, plus `chain: j` with
  `chains:`; or nil), `chains:` and `progress:` (below).

  `chains: k` runs k chains as concurrent BEAM processes and returns a list
  of k result lists, in chain order. Chain j uses the key
  `Mx.Random.fold_in(key, j)` (without `key:`, one from `Gen.next_key/0`
  is folded), so its result is exactly that of `run(kernel, trace, key:
  Mx.Random.fold_in(key, j))`. `trace` may be one trace (every chain
  starts there) or a list of k traces. The callback runs in the chain's
  process.

  `progress:` `true` draws a progress bar on stderr (iterations over all
  chains, rate, time left), redrawn at most ten times a second; `false`
  never; `:auto` (the default) only when stderr is a terminal, ExUnit is
  not running, and the run is long: at least 1000 iterations, or 2 s
  expected from the rate so far.

  Memory stays flat: each iteration's trace is evaluated and only the
  current trace and the kept values are held, so keep small values with
  `select:` for long runs.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> k = Gen.Inference.Kernel.mh(Gen.select(:mu))
      iex> xs = Gen.Inference.run(k, t, samples: 5, burn: 3, thin: 2, key: Mx.Random.key(1), select: &Mx.to_number(&1[:mu]))
      iex> {length(xs), Enum.all?(xs, &is_float/1)}
      {5, true}
      iex> [c0, c1] = Gen.Inference.run(k, t, samples: 5, chains: 2, key: Mx.Random.key(1), select: &Mx.to_number(&1[:mu]))
      iex> c1 == Gen.Inference.run(k, t, samples: 5, key: Mx.Random.fold_in(Mx.Random.key(1), 1), select: &Mx.to_number(&1[:mu]))
      true
      iex> length(c0)
      5
  """
  @spec run(Kernel.t(), Trace.t() | [Trace.t()], keyword()) :: [term()] | [[term()]]
  def run(kernel, trace, opts) do
    unless is_function(kernel, 2) do
      raise ArgumentError,
            "Gen.Inference.run: expected a kernel, fn trace, opts -> {trace, accepted?} end, got #{inspect(kernel)}"
    end

    Mx.Opts.validate!(
      opts,
      [:samples, :burn, :thin, :key, :select, :callback, :chains, :progress],
      "Gen.Inference.run"
    )

    samples = count!(opts, :samples, nil, 0, "Gen.Inference.run")
    burn = count!(opts, :burn, 0, 0, "Gen.Inference.run")
    thin = count!(opts, :thin, 1, 1, "Gen.Inference.run")

    plan = %{
      burn: burn,
      thin: thin,
      total: burn + samples * thin,
      select: fun!(opts, :select, 1, "Gen.Inference.run"),
      callback: fun!(opts, :callback, 1, "Gen.Inference.run"),
      counter: nil
    }

    key = Keyword.get(opts, :key)
    progress = Keyword.get(opts, :progress, :auto)

    case Keyword.get(opts, :chains) do
      nil ->
        unless match?(%Trace{}, trace) do
          raise ArgumentError,
                "Gen.Inference.run: expected a Gen.Trace (or, with chains:, a list of traces), got #{inspect(trace)}"
        end

        with_progress(
          progress,
          plan.total,
          1,
          "Gen.Inference.run",
          &run_chain(kernel, trace, key, nil, %{plan | counter: &1})
        )

      k when is_integer(k) and k >= 1 ->
        traces = chain_traces!(trace, k)
        key = key || Gen.next_key()

        with_progress(
          progress,
          plan.total * k,
          k,
          "Gen.Inference.run",
          &run_chains(kernel, traces, key, %{plan | counter: &1})
        )

      other ->
        raise ArgumentError,
              "Gen.Inference.run: chains: must be a positive integer (the number of chains) or nil, got #{inspect(other)}"
    end
  end

  defp run_chain(kernel, trace, key, chain, plan) do
    %{burn: burn, thin: thin, select: select, callback: callback, counter: counter} = plan

    {_t, kept} =
      Enum.reduce(0..(plan.total - 1)//1, {force(trace), []}, fn i, {t, kept} ->
        k_opts = if key, do: [key: Mx.Random.fold_in(key, i)], else: []
        {t2, acc} = Kernel.call!(kernel, t, k_opts)
        t2 = force(t2)
        if counter, do: :counters.add(counter, 1, 1)

        if callback do
          info = %{iteration: i, trace: t2, accepted: acc}
          callback.(if chain, do: Map.put(info, :chain, chain), else: info)
        end

        kept =
          if i >= burn and rem(i - burn + 1, thin) == 0,
            do: [keep(t2, select) | kept],
            else: kept

        {t2, kept}
      end)

    Enum.reverse(kept)
  end

  # One process per chain; an exception in a chain is raised again here, in the caller.
  defp run_chains(kernel, traces, key, plan) do
    traces
    |> Enum.with_index()
    |> Task.async_stream(
      fn {t, j} ->
        try do
          {:ok, run_chain(kernel, t, Mx.Random.fold_in(key, j), j, plan)}
        rescue
          e -> {:error, e, __STACKTRACE__}
        end
      end,
      timeout: :infinity,
      ordered: true,
      max_concurrency: length(traces)
    )
    |> Enum.map(fn
      {:ok, {:ok, kept}} -> kept
      {:ok, {:error, e, stack}} -> reraise e, stack
    end)
  end

  defp chain_traces!(%Trace{} = t, k), do: List.duplicate(t, k)

  defp chain_traces!(traces, k) when is_list(traces) and length(traces) == k do
    if Enum.all?(traces, &match?(%Trace{}, &1)), do: traces, else: chain_traces!(:bad, k)
  end

  defp chain_traces!(other, k) do
    raise ArgumentError,
          "Gen.Inference.run: with chains: #{k}, give one Gen.Trace (every chain starts there) or a list of #{k} traces, got #{inspect(other)}"
  end

  defp keep(t, nil), do: t
  defp keep(t, select), do: t |> select.() |> Mx.eval()

  @doc false
  # Runs fun.(counter) under a progress bar (mode true | false | :auto, see run/3) over `total`
  # iterations that fun adds to the :counters ref (nil when no bar is drawn).
  @spec with_progress(
          boolean() | :auto,
          non_neg_integer(),
          pos_integer(),
          String.t(),
          (term() -> result)
        ) :: result
        when result: term()
  def with_progress(mode, _total, _chains, where, _fun) when mode not in [true, false, :auto],
    do:
      raise(
        ArgumentError,
        "#{where}: progress: must be true, false or :auto, got #{inspect(mode)}"
      )

  def with_progress(false, _total, _chains, _where, fun), do: fun.(nil)

  def with_progress(mode, total, chains, _where, fun) do
    if mode == :auto and Process.whereis(ExUnit.Server) != nil do
      fun.(nil)
    else
      counter = :counters.new(1, [:write_concurrency])

      bar = %{
        counter: counter,
        total: total,
        chains: chains,
        mode: mode,
        start: now_ms(),
        show: mode == true,
        drawn: false
      }

      drawer = spawn_link(fn -> progress_loop(bar) end)

      try do
        fun.(counter)
      after
        send(drawer, {:done, self()})

        receive do
          :progress_done -> :ok
        end
      end
    end
  end

  defp progress_loop(bar) do
    receive do
      {:done, from} ->
        if bar.drawn or bar.show, do: IO.write(:standard_error, progress_line(bar) <> "\n")
        send(from, :progress_done)
    after
      100 -> progress_loop(progress_tick(bar))
    end
  end

  defp progress_tick(%{show: true} = bar) do
    IO.write(:standard_error, progress_line(bar))
    %{bar | drawn: true}
  end

  # :auto: a long run (by count, or by the rate so far) on a terminal.
  defp progress_tick(%{mode: :auto, show: false} = bar) do
    done = :counters.get(bar.counter, 1)
    elapsed = now_ms() - bar.start
    long? = bar.total >= 1000 or (done > 0 and elapsed * bar.total / done >= 2000)
    if long? and stderr_tty?(), do: progress_tick(%{bar | show: true}), else: bar
  end

  defp progress_tick(bar), do: bar

  defp progress_line(bar) do
    done = :counters.get(bar.counter, 1)
    total = max(bar.total, 1)
    secs = max(now_ms() - bar.start, 1) / 1000
    rate = done / secs
    width = 30
    filled = div(done * width, total)
    left = if rate > 0, do: format_secs((bar.total - done) / rate), else: "?"
    chains = if bar.chains > 1, do: " #{bar.chains} chains", else: ""

    "\r[" <>
      String.duplicate("=", filled) <>
      String.duplicate(" ", width - filled) <>
      "] #{done}/#{bar.total} #{div(done * 100, total)}%#{chains} #{Float.round(rate, 1)} it/s, #{left} left   "
  end

  defp format_secs(s) do
    s = round(s)
    if s >= 60, do: "#{div(s, 60)}m#{rem(s, 60)}s", else: "#{s}s"
  end

  defp now_ms, do: System.monotonic_time(:millisecond)

  # Whether the VM's stderr (fd 2, inherited by a child shell) is a terminal; asked once.
  defp stderr_tty? do
    case :persistent_term.get({__MODULE__, :stderr_tty}, nil) do
      nil ->
        tty? =
          case System.find_executable("sh") do
            nil ->
              false

            sh ->
              match?(
                {"y" <> _, 0},
                System.cmd(sh, ["-c", "if [ -t 2 ]; then echo y; else echo n; fi"])
              )
          end

        :persistent_term.put({__MODULE__, :stderr_tty}, tty?)
        tty?

      tty? ->
        tty?
    end
  end

  @doc false
  # Evaluates a trace's arrays (score, choices, return value) so no pending graph chains it to older traces.
  @spec force(Trace.t()) :: Trace.t()
  def force(%Trace{} = t) do
    values = t |> Gen.get_choices() |> Enum.map(&elem(&1, 1))
    Mx.eval([Gen.get_score(t), Gen.get_retval(t) | values])
    t
  end

  @doc false
  # Two independent keys: from `key:` when given, else from the per-process key.
  def two_keys(opts) do
    case Keyword.fetch(opts, :key) do
      {:ok, k} ->
        ks = Mx.Random.split(k)
        {ks[0], ks[1]}

      :error ->
        {Gen.next_key(), Gen.next_key()}
    end
  end
end
