defmodule Gen.Inference.VI do
  @moduledoc """
  Variational inference on the GFI: a guide (variational family) is a
  generative function whose first argument is its parameters, a container
  of float Mx arrays (see `Gen.Optim`), and whose choices are the latent
  addresses of the model. The objective is estimated by Monte Carlo from
  `Gen.simulate/3` (or `Gen.generate/4`) of the guide and `Gen.assess/3` of
  the model on the guide's choices merged with the observations, and
  differentiated with `Mx.value_and_grad/2`; `Gen.Optim` takes the steps.

    * `advi/5` — automatic differentiation VI (Kucukelbir et al. 2017) with
      a mean-field Gaussian guide over the selected continuous addresses
      (a mean and a log standard deviation per address), reparameterization
      gradient of the ELBO.
    * `vi/6` — programmable VI with a user guide: objectives `:elbo`,
      `:iwelbo` (Burda et al. 2016, K samples), `:wake_sleep` (reweighted
      wake-sleep, Bornschein & Bengio 2015: a sleep phase fitting the guide
      to the model's own simulations and an importance-weighted wake phase;
      `:sleep` and `:wake` alone too), gradient estimators `:reparam`
      and `:reinforce`, `stl: true` for "sticking the landing", and
      `model_params:` to learn the model's own parameters with the guide.
    * `gradient/6` — one Monte-Carlo estimate of an objective and its
      gradient, `elbo/6` and `iwelbo/6` — estimates of the bounds alone.

  ## Which estimator applies to which choice (ADEV in spirit)

  Each choice of the guide gets the estimator its distribution allows:

    * **reparameterization** (pathwise): the draw is a differentiable
      function of the parameters and the key (`mu + sigma * z` for a
      normal), so gradients flow through the value into the model's and the
      guide's densities. It needs a reparameterized distribution:
      `Gen.Distribution.reparameterized?/1` is true for normal, log-normal,
      uniform, exponential, laplace, cauchy, multivariate normal, delta.
      Low variance.
    * **REINFORCE** (score function): the value is held fixed (gradient
      stopped) and the dependence of the choice's distribution on the
      parameters enters as `∇log q(z) · (f − b)`, f the sample's log weight
      log p(z, x) − log q(z) and b a baseline. It applies to every choice,
      and is the only option for discrete ones (bernoulli, categorical,
      poisson, ...) and for continuous ones drawn by rejection (gamma, beta,
      student-t, ...), whose draws are not differentiable.

  With `estimator: :reparam` (the default) float choices are
  reparameterized and the others (booleans, integers) get REINFORCE terms;
  the GFI does not reveal which distribution drew a float choice, so list
  the continuous choices of non-reparameterized distributions in
  `reinforce:` (a `Gen.Selection`). `estimator: :reinforce` uses the score
  function for every choice.

  The single-sample surrogate is f + stop(f − b)·(log q_R − stop(log q_R)),
  q_R the density of the score-function choices: its value is f (so the
  reported objective is the ELBO estimate) and its gradient the
  stochastic-computation-graph estimator (Schulman et al. 2015). Baselines:
  with `samples:` K ≥ 2 the mean of the other K − 1 samples' f
  (leave-one-out, unbiased); with K = 1 inside `vi/6` an exponential moving
  average (decay 0.9) of past estimates. For the IWELBO the score terms use
  VIMCO's leave-one-out signals (Mnih & Rezende 2016).

  ## Constrained choices

  ADVI fits its Gaussians on the unconstrained scale of each selected
  choice (`Gen.Transform`: the transform of the distribution's support, or
  `transforms:`), with the log-Jacobian in the ELBO (Kucukelbir et al.
  2017), so a positive scale, a probability or a simplex needs no
  reparameterization in the model; `advi_draws/6` pushes draws of the fit
  back to the model's scale. A user guide for `vi/6` must itself draw
  inside the model's support.
  """

  alias Gen.{Choicemap, Selection}
  alias Gen.Inference.Target
  alias Gen.Optim

  @objectives [:elbo, :iwelbo, :wake_sleep, :wake, :sleep]
  @estimators [:reparam, :reinforce]
  # The options config!/6 reads, shared by vi/6 and gradient/6; the bounds take fewer.
  @config_opts [
    :objective,
    :estimator,
    :reinforce,
    :samples,
    :sleep_samples,
    :guide_args,
    :model_params,
    :stl,
    :key
  ]
  @bound_opts [:samples, :guide_args, :model_params, :key]

  # ---- ADVI -------------------------------------------------------------------------

  @doc """
  ADVI: fits a mean-field Gaussian, N(mu_a, exp(log_sigma_a)²) independently
  at each selected address a, to the posterior of `model` on `args` given
  `observations`, by maximising the ELBO with reparameterization gradients.
  The selected addresses with the observations must be all of the model's
  choices, and take real values of any shape.

  Each Gaussian lives on the unconstrained scale of its choice (see the
  moduledoc; the identity for a choice on the whole real line):
  `transforms:` overrides the transform at an address, as in
  `Gen.Inference.NUTS`. Returns `{params, elbo_history}`: params `%{mu:
  choicemap, log_sigma: choicemap, transforms: %{path => transform}}` (one
  array per address, the shape of the choice on the unconstrained scale;
  the transform used at each address) and the ELBO estimate at each step.
  `mean_field_guide/1` makes a generative function that samples the fitted
  approximation when every transform is the identity; `advi_draws/6`
  draws it on the model's scale in every case.

  Options: `steps:` (1000), `samples:` (1, draws per step), `stl:` (false;
  true drops the score term of log q, "sticking the landing", Roeder et
  al. 2017: still unbiased, and of zero variance when the guide equals the
  posterior), `optimizer:` (`Gen.Optim.adam(learning_rate: 0.05)`),
  `key:`, `callback:` (after each
  step, `%{iteration: i, params: p, value: elbo}` with p the internal
  `%{mu: [..], log_sigma: [..]}` lists in address order), `transforms:`.
  Means start at the (unconstrained) values of `Gen.generate/4` of the
  model with the observations (a draw in the support), log-sigmas at 0.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {p, elbos} = Gen.Inference.VI.advi(m, [], %{y: 2.0}, Gen.select(:mu), steps: 500, stl: true, key: Mx.Random.key(0))
      iex> # the exact posterior is N(1, 1/2), which the Gaussian guide reaches
      iex> {Float.round(Mx.to_number(p.mu[:mu]), 4), Float.round(:math.exp(Mx.to_number(p.log_sigma[:mu])) ** 2, 4), length(elbos)}
      {1.0, 0.5, 500}
  """
  @spec advi(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), Selection.t(), keyword()) ::
          {%{mu: Choicemap.t(), log_sigma: Choicemap.t()}, [float()]}
  def advi(model, args, observations, %Selection{} = sel, opts \\ []) do
    Mx.Opts.validate!(
      opts,
      [:steps, :samples, :stl, :optimizer, :key, :callback, :transforms],
      "Gen.Inference.VI.advi"
    )

    obs = Choicemap.new(observations)
    {k_init, k_run} = Gen.Inference.two_keys(opts)
    {t, _} = Gen.generate(model, args, obs, key: k_init)

    paths =
      for {path, v} <- Choicemap.to_list(Gen.get_choices(t)), Selection.member?(sel, path) do
        unless match?(%Mx.Array{}, v) and Mx.Type.float?(Mx.type(v)) do
          raise ArgumentError,
                "Gen.Inference.VI.advi: the selected choice at #{Choicemap.format_path(path)} is #{Gen.Inference.Common.describe(v)}, not a floating-point array; ADVI's Gaussian guide covers continuous choices only (use vi/6 with a guide for discrete ones)"
        end

        path
      end

    if paths == [],
      do:
        Gen.Inference.Common.none_selected!(
          t,
          sel,
          "Gen.Inference.VI.advi",
          "select the model's latent continuous choices"
        )

    target = advi_target!(t, sel, obs, opts)
    values = target |> Target.split(Mx.tensor(target.q0, type: :f64)) |> Mx.eval()
    params0 = %{mu: values, log_sigma: Enum.map(values, &Mx.zeros(Mx.shape(&1), type: :f64))}
    guide = list_guide(paths)

    opts =
      opts
      |> Keyword.delete(:transforms)
      |> Keyword.put(:key, k_run)
      |> Keyword.put_new(:optimizer, Optim.adam(learning_rate: 0.05))
      |> Keyword.merge(objective: :elbo, estimator: :reparam)

    cfg = config!(model, args, obs, guide, opts, "advi") |> Map.put(:target, target)
    {p, hist} = fit(cfg, params0, opts, "advi")

    {%{
       mu: Choicemap.new(Enum.zip(paths, p.mu)),
       log_sigma: Choicemap.new(Enum.zip(paths, p.log_sigma)),
       transforms: Map.new(target.blocks, &{&1.path, &1.transform})
     }, hist}
  end

  # The selected choices on their unconstrained scale; the model is assessed on the guide's
  # choices with the observations alone (every latent choice must come from the guide).
  # The density is differentiated inside the ELBO's graph, so it is not compiled on its own.
  defp advi_target!(trace, sel, obs, opts),
    do:
      Target.new(trace, sel,
        transforms: Keyword.get(opts, :transforms, %{}),
        compile: false,
        choices: obs,
        caller: "Gen.Inference.VI.advi"
      )

  @doc """
  `n` draws of ADVI's fitted approximation `params` (from `advi/5` on the
  same `model`, `args` and `observations`) on the model's scale: each a
  choicemap of the selected addresses, the Gaussian draw on the
  unconstrained scale pushed through its transform at the parameters the
  model computes for it (so bounds that depend on other choices follow
  them). Options: `key:`, `transforms:` (as given to `advi/5`).

      iex> import Gen
      iex> m = gen fn -> s = trace(:s, Gen.Dist.log_normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(0.0, s)) end
      iex> p = %{mu: Gen.choicemap(%{s: 0.0}), log_sigma: Gen.choicemap(%{s: -30.0})}
      iex> [d] = Gen.Inference.VI.advi_draws(m, [], %{y: 0.5}, p, 1, key: Mx.Random.key(0))
      iex> Float.round(Mx.to_number(d[:s]), 6)
      1.0
  """
  @spec advi_draws(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          map(),
          pos_integer(),
          keyword()
        ) :: [Choicemap.t()]
  def advi_draws(
        model,
        args,
        observations,
        %{mu: %Choicemap{} = mu, log_sigma: %Choicemap{} = ls},
        n,
        opts \\ []
      ) do
    Mx.Opts.validate!(opts, [:key, :transforms], "Gen.Inference.VI.advi_draws")

    unless is_integer(n) and n >= 1 do
      raise ArgumentError,
            "Gen.Inference.VI.advi_draws: n must be a positive integer, got #{inspect(n)}"
    end

    obs = Choicemap.new(observations)
    paths = mu |> Choicemap.to_list() |> Enum.map(&elem(&1, 0))
    {k_init, k_run} = Gen.Inference.two_keys(opts)
    {t, _} = Gen.generate(model, args, obs, key: k_init)
    target = advi_target!(t, Selection.new(paths), obs, opts)

    for i <- 0..(n - 1) do
      key = Mx.Random.fold_in(k_run, i)
      keys = Mx.Random.split(key, length(paths))

      us =
        for {p, j} <- Enum.with_index(paths), into: %{} do
          m = mu[p]
          z = Mx.Random.normal(keys[j], shape: Mx.shape(m), type: :f64)
          {p, Mx.add(m, Mx.multiply(Mx.exp(ls[p]), z))}
        end

      Target.choices(target, Target.join(target, Enum.map(target.blocks, &us[&1.path])))
    end
  end

  @doc """
  The mean-field Gaussian guide of ADVI's fitted `params` (`%{mu: cm,
  log_sigma: cm}`) as a generative function of no arguments: each
  address of `params.mu` drawn from N(mu, exp(log_sigma)²).

      iex> p = %{mu: Gen.choicemap(%{a: 1.0}), log_sigma: Gen.choicemap(%{a: -20.0})}
      iex> t = Gen.simulate(Gen.Inference.VI.mean_field_guide(p), [], key: Mx.Random.key(0))
      iex> Float.round(Mx.to_number(t[:a]), 6)
      1.0
  """
  @spec mean_field_guide(%{mu: Choicemap.t(), log_sigma: Choicemap.t()}) :: Gen.gen_fn()
  def mean_field_guide(%{transforms: ts} = params) when is_map(ts) do
    case Enum.reject(ts, fn {_path, t} -> t == :identity end) do
      [] ->
        mean_field_guide(Map.delete(params, :transforms))

      [{path, t} | _] ->
        raise ArgumentError,
              "Gen.Inference.VI.mean_field_guide: the fit at #{Choicemap.format_path(path)} is on the unconstrained scale of #{inspect(t)}, " <>
                "so its Gaussian is not a guide for the model's choice; draw the approximation on the model's scale with Gen.Inference.VI.advi_draws/6"
    end
  end

  def mean_field_guide(%{mu: %Choicemap{} = mu, log_sigma: %Choicemap{} = ls}) do
    paths = mu |> Choicemap.to_list() |> Enum.map(&elem(&1, 0))
    lists = %{mu: Enum.map(paths, &mu[&1]), log_sigma: Enum.map(paths, &ls[&1])}
    guide = list_guide(paths)
    Gen.DynamicFunction.new(fn -> Gen.splice(guide, [lists]) end)
  end

  def mean_field_guide(other) do
    raise ArgumentError,
          "Gen.Inference.VI.mean_field_guide: expected ADVI's params %{mu: choicemap, log_sigma: choicemap}, got #{inspect(other)}"
  end

  # The mean-field guide on parameters %{mu: [..], log_sigma: [..]} aligned with `paths`.
  defp list_guide(paths) do
    Gen.DynamicFunction.new(fn p ->
      Enum.zip([paths, p.mu, p.log_sigma])
      |> Enum.each(fn {path, m, ls} -> Gen.trace(path, Gen.Dist.normal(m, Mx.exp(ls))) end)
    end)
  end

  # ---- programmable VI --------------------------------------------------------------

  @doc """
  Programmable VI: fits the parameters `params` of the generative function
  `guide`, called on `[params | guide_args]`, whose choices are the latent
  addresses of `model` (on `args`, given `observations`), by stochastic
  gradient ascent on `objective:`. Returns `{params, history}`, history the
  objective estimate at each step (for `:wake_sleep` and `:wake`, the
  IWELBO estimate of the wake samples; for `:sleep`, the mean log q of
  the sleep samples).

  Options:

    * `objective:` — `:elbo` (default), `:iwelbo`, `:wake_sleep`, `:wake`, `:sleep`
    * `estimator:` — `:reparam` (default) or `:reinforce` (see the moduledoc);
      `reinforce:` a selection of guide choices that take the score function
      under `:reparam`. The wake and sleep phases need neither (their
      gradient is that of log q at fixed values).
    * `stl:` — false (default) or true: "sticking the landing" (Roeder et
      al. 2017), the log q in each sample's weight taken with the parameters
      held fixed, so only path derivatives (and the score terms of
      score-function choices) remain. Unbiased; when the guide family holds
      the posterior the gradient noise vanishes at the optimum.
    * `samples:` — K guide draws per step (1 for `:elbo`, 10 for the
      others); `sleep_samples:` — model simulations per sleep step (10)
    * `guide_args:` — a list (default `[]`), or a function of the
      observations choicemap returning one: an amortized guide q(z | x)
      takes the observations this way, and the sleep phase calls it on
      the observed addresses of each simulation of the model (with a
      list, the sleep phase fits the guide to the prior).
    * `model_params:` — a container of the model's own parameters, learned
      along with the guide (maximum marginal likelihood through the bound,
      as in a variational autoencoder): the model is then called on
      `[model_params | args]` and the result is `{%{guide: params, model:
      model_params}, history}`. The ELBO and IWELBO differentiate log p
      in them; the wake phase ascends Σ w̄ₖ log p(x, zₖ); the sleep phase
      leaves them fixed.
    * `steps:` (1000), `optimizer:` (`Gen.Optim.adam(learning_rate: 0.01)`),
      `key:`, `callback:` (`%{iteration: i, params: p, value: v}` after each step)

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> q = gen fn p -> trace(:mu, Gen.Dist.normal(p.m, Mx.exp(p.ls))) end
      iex> p0 = %{m: Mx.tensor(0.0, type: :f64), ls: Mx.tensor(0.0, type: :f64)}
      iex> {p, elbos} = Gen.Inference.VI.vi(m, [], %{y: 2.0}, q, p0, stl: true, steps: 500, optimizer: Gen.Optim.adam(learning_rate: 0.05), key: Mx.Random.key(0))
      iex> # the exact posterior N(1, 1/2); the ELBO there is log p(y = 2) = log N(2; 0, 2)
      iex> {Float.round(Mx.to_number(p.m), 4), Float.round(Mx.to_number(p.ls), 4), Float.round(List.last(elbos), 4)}
      {1.0, -0.3466, Float.round(-1.0 - 0.5 * :math.log(4 * :math.pi()), 4)}
  """
  @spec vi(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          Gen.gen_fn(),
          Optim.params(),
          keyword()
        ) ::
          {Optim.params(), [float()]}
  def vi(model, args, observations, guide, params, opts \\ []) do
    Mx.Opts.validate!(
      opts,
      @config_opts ++ [:steps, :optimizer, :callback],
      "Gen.Inference.VI.vi"
    )

    cfg = config!(model, args, observations, guide, opts, "vi")
    fit(cfg, params, opts, "vi")
  end

  defp fit(cfg, params, opts, fun) do
    steps = Keyword.get(opts, :steps, 1000)

    unless is_integer(steps) and steps >= 0 do
      raise ArgumentError,
            "Gen.Inference.VI.#{fun}: steps: must be a non-negative integer, got #{inspect(steps)}"
    end

    opt = Optim.optimizer!(opts, Optim.adam(learning_rate: 0.01), "Gen.Inference.VI.#{fun}")
    callback = Optim.callback!(opts, "Gen.Inference.VI.#{fun}")
    key = Keyword.get_lazy(opts, :key, &Gen.next_key/0)

    # K = 1 score-function ELBO: the baseline is a moving average, started from an independent estimate.
    ema? = cfg.objective == :elbo and cfg.samples == 1

    b0 =
      if ema? do
        case estimate(%{cfg | samples: 10}, params, Mx.Random.fold_in(key, -1), :elbo)
             |> Mx.to_number() do
          x when is_float(x) -> x
          _not_finite -> 0.0
        end
      end

    params = with_model(cfg, params)

    {params, _st, _b, hist} =
      Enum.reduce(0..(steps - 1)//1, {params, Optim.init(opt, params), b0, []}, fn i,
                                                                                   {p, st, b,
                                                                                    hist} ->
        {v, g} =
          Mx.value_and_grad(fn p -> surrogate(cfg, p, Mx.Random.fold_in(key, i), b) end).(p)

        value = Mx.to_number(v)
        {p2, st2} = Optim.update(opt, st, p, g)
        if callback, do: callback.(%{iteration: i, params: p2, value: value})
        b2 = if ema? and is_float(value), do: 0.9 * b + 0.1 * value, else: b
        {p2, st2, b2, [value | hist]}
      end)

    {params, Enum.reverse(hist)}
  end

  @doc """
  One Monte-Carlo estimate of `objective:` and of its gradient with respect
  to the guide's `params`: `{estimate, gradient}`, the gradient with the
  container shape of `params`. Same options as `vi/6` (`objective:`,
  `estimator:`, `reinforce:`, `samples:`, `sleep_samples:`, `guide_args:`,
  `stl:`, `model_params:` (then the gradient is `%{guide: .., model: ..}`),
  `key:`), plus `baseline:` (a number; for the single-sample score-function
  ELBO, 0.0 by default).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> q = gen fn p -> trace(:mu, Gen.Dist.normal(p.m, 1.0)) end
      iex> {elbo, g} = Gen.Inference.VI.gradient(m, [], %{y: 2.0}, q, %{m: Mx.tensor(0.0, type: :f64)}, key: Mx.Random.key(0))
      iex> {Mx.describe(elbo), Mx.describe(g.m)}
      {"f64", "f64"}
  """
  @spec gradient(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          Gen.gen_fn(),
          Optim.params(),
          keyword()
        ) ::
          {Mx.t(), Optim.params()}
  def gradient(model, args, observations, guide, params, opts \\ []) do
    Mx.Opts.validate!(opts, @config_opts ++ [:baseline], "Gen.Inference.VI.gradient")
    cfg = config!(model, args, observations, guide, opts, "gradient")
    key = Keyword.get_lazy(opts, :key, &Gen.next_key/0)

    b =
      case Keyword.get(opts, :baseline, 0.0) do
        x when is_number(x) ->
          x * 1.0

        other ->
          raise ArgumentError,
                "Gen.Inference.VI.gradient: baseline: must be a number, got #{inspect(other)}"
      end

    {v, g} = Mx.value_and_grad(fn p -> surrogate(cfg, p, key, b) end).(with_model(cfg, params))
    Mx.eval({v, g})
    {v, g}
  end

  @doc """
  An estimate of the ELBO, E_q[log p(z, x) − log q(z)], as the mean over
  `samples:` (default 1) guide draws. Options: `samples:`, `guide_args:`,
  `model_params:` (for a model called on `[model_params | args]`), `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> # the exact posterior as guide: every sample's weight is log p(y = 2) = log N(2; 0, 2)
      iex> q = gen fn _p -> trace(:mu, Gen.Dist.normal(1.0, :math.sqrt(0.5))) end
      iex> e = Gen.Inference.VI.elbo(m, [], %{y: 2.0}, q, %{}, samples: 3, key: Mx.Random.key(0))
      iex> Float.round(Mx.to_number(e), 10) == Float.round(-1.0 - 0.5 * :math.log(4 * :math.pi()), 10)
      true
  """
  @spec elbo(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          Gen.gen_fn(),
          Optim.params(),
          keyword()
        ) :: Mx.t()
  def elbo(model, args, observations, guide, params, opts \\ []) do
    Mx.Opts.validate!(opts, @bound_opts, "Gen.Inference.VI.elbo")
    bound(model, args, observations, guide, params, opts, :elbo)
  end

  @doc """
  An estimate of the importance-weighted bound with K = `samples:` (default
  10) guide draws, log (1/K) Σₖ p(zₖ, x)/q(zₖ); its expectation rises with
  K towards log p(x) (K = 1 is the ELBO). Options: `samples:`,
  `guide_args:`, `model_params:`, `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> q = gen fn _p -> trace(:mu, Gen.Dist.normal(0.0, 1.0)) end
      iex> Gen.Inference.VI.iwelbo(m, [], %{y: 2.0}, q, %{}, samples: 5, key: Mx.Random.key(0)) |> Mx.describe()
      "f64"
  """
  @spec iwelbo(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          Gen.gen_fn(),
          Optim.params(),
          keyword()
        ) :: Mx.t()
  def iwelbo(model, args, observations, guide, params, opts \\ []) do
    Mx.Opts.validate!(opts, @bound_opts, "Gen.Inference.VI.iwelbo")
    bound(model, args, observations, guide, params, Keyword.put_new(opts, :samples, 10), :iwelbo)
  end

  defp bound(model, args, observations, guide, params, opts, objective) do
    cfg =
      config!(
        model,
        args,
        observations,
        guide,
        Keyword.merge(opts, objective: objective, estimator: :reparam),
        Atom.to_string(objective)
      )

    estimate(cfg, params, Keyword.get_lazy(opts, :key, &Gen.next_key/0), objective)
  end

  # The bound's Monte-Carlo estimate from cfg.samples guide draws.
  defp estimate(cfg, params, key, objective) do
    p = with_model(cfg, params)

    fs =
      for k <- 0..(cfg.samples - 1), do: elem(draw(cfg, p, Mx.Random.fold_in(key, k), cfg.obs), 0)

    v = if objective == :elbo, do: mean(fs), else: log_mean_exp(Mx.stack(fs))
    Mx.eval(v)
  end

  # ---- the surrogates ---------------------------------------------------------------

  defp surrogate(%{objective: :elbo} = cfg, p, key, b) do
    draws = for k <- 0..(cfg.samples - 1), do: draw(cfg, p, Mx.Random.fold_in(key, k), cfg.obs)
    fs = Enum.map(draws, &elem(&1, 0))
    k = length(fs)

    terms =
      Enum.map(draws, fn {f, lq_r} ->
        # leave-one-out baseline with K ≥ 2 samples (independent of sample i, so unbiased)
        base =
          if k >= 2, do: Mx.divide(Mx.subtract(Enum.reduce(fs, &Mx.add/2), f), k - 1), else: b

        Mx.add(f, score_term(Mx.subtract(f, base), lq_r))
      end)

    mean(terms)
  end

  defp surrogate(%{objective: :iwelbo} = cfg, p, key, _b) do
    draws = for k <- 0..(cfg.samples - 1), do: draw(cfg, p, Mx.Random.fold_in(key, k), cfg.obs)
    fs = Mx.stack(Enum.map(draws, &elem(&1, 0)))
    l = log_mean_exp(fs)
    k = cfg.samples

    # VIMCO: sample i's signal is L − L₋ᵢ, L₋ᵢ with f_i replaced by the mean of the others.
    score =
      draws
      |> Enum.with_index()
      |> Enum.map(fn {{f, lq_r}, i} ->
        others = Mx.divide(Mx.subtract(Mx.sum(fs), f), k - 1)

        replaced =
          Mx.add(
            Mx.multiply(fs, Mx.subtract(1.0, one_hot(k, i))),
            Mx.multiply(one_hot(k, i), others)
          )

        score_term(Mx.subtract(l, log_mean_exp(replaced)), lq_r)
      end)
      |> Enum.reduce(&Mx.add/2)

    Mx.add(l, score)
  end

  defp surrogate(%{objective: obj} = cfg, p, key, _b) when obj in [:wake_sleep, :wake, :sleep] do
    {wake_value, wake} = if obj != :sleep, do: wake(cfg, p, key), else: {nil, nil}
    sleep = if obj != :wake, do: sleep(cfg, p, Mx.Random.fold_in(key, cfg.samples))

    case obj do
      :sleep -> sleep
      :wake -> report(wake_value, wake)
      :wake_sleep -> report(wake_value, Mx.add(wake, sleep))
    end
  end

  # Wake phase: K guide draws at fixed values, self-normalised weights w̄ₖ ∝ p(zₖ, x)/q(zₖ); the
  # surrogate Σ w̄ₖ log q(zₖ) has the gradient of the inclusive KL(p(z|x) ‖ q) up to its IS bias.
  defp wake(cfg, p, key) do
    draws =
      for k <- 0..(cfg.samples - 1) do
        z = fixed_guide_sample(cfg, p, Mx.Random.fold_in(key, k), cfg.obs)
        lq = guide_density(cfg, p, z, cfg.obs)
        {lp, _} = Gen.assess(cfg.model, model_args(cfg, p), Choicemap.merge(z, cfg.obs))
        {Mx.subtract(lp, Mx.stop_gradient(lq)), Mx.add(lq, lp)}
      end

    # With model parameters, Σ w̄ₖ log p(x, zₖ) also updates the model (its values are fixed, so
    # log p carries no gradient to the guide).
    fs = Mx.stack(Enum.map(draws, &elem(&1, 0)))
    w = fs |> Mx.subtract(Mx.logsumexp(fs)) |> Mx.exp() |> Mx.stop_gradient()
    s = Mx.sum(Mx.multiply(w, Mx.stack(Enum.map(draws, &elem(&1, 1)))))
    {Mx.stop_gradient(log_mean_exp(fs)), s}
  end

  # Sleep phase: (z, x) simulated from the model; maximise log q(z | x), x at the observed addresses.
  defp sleep(cfg, p, key) do
    obs_paths = cfg.obs |> Choicemap.to_list() |> Enum.map(&elem(&1, 0))

    lqs =
      for m <- 0..(cfg.sleep_samples - 1) do
        # the model's parameters are held fixed here: the sleep phase trains the guide only
        t =
          Gen.simulate(cfg.model, model_args(cfg, stop_params(p)), key: Mx.Random.fold_in(key, m))

        {x, z} =
          Gen.get_choices(t)
          |> Choicemap.to_list()
          |> Enum.split_with(fn {path, _} -> path in obs_paths end)

        guide_density(cfg, p, Choicemap.new(z), Choicemap.new(x))
      end

    mean(lqs)
  end

  # Reports `value` while differentiating `s`: value + (s − stop(s)).
  defp report(value, s), do: Mx.add(value, Mx.subtract(s, Mx.stop_gradient(s)))

  # stop(signal) · (lq_r − stop(lq_r)): zero in value, the score-function term in gradient.
  defp score_term(_signal, nil), do: Mx.tensor(0.0, type: :f64)

  defp score_term(signal, lq_r),
    do: Mx.multiply(Mx.stop_gradient(signal), Mx.subtract(lq_r, Mx.stop_gradient(lq_r)))

  # One guide draw: {f, log q of the score-function choices (nil when there are none)}, f = log p(z, x) − log q(z).
  defp draw(cfg, p, key, obs) do
    gargs = [guide_params(cfg, p) | guide_args(cfg, obs)]
    t = Gen.simulate(cfg.guide, gargs, key: key)
    z = Gen.get_choices(t)
    all = Choicemap.to_list(z)
    score_paths = for {path, v} <- all, score_choice?(path, v, cfg.reinforce), do: path

    {z, lq, lq_r} =
      cond do
        score_paths == [] and cfg.stl ->
          # Sticking the landing: log q with the parameters held fixed, so only the path derivative remains.
          {lq, _} =
            Gen.assess(cfg.guide, [stop_params(guide_params(cfg, p)) | guide_args(cfg, obs)], z)

          {z, lq, nil}

        score_paths == [] ->
          {z, Gen.get_score(t), nil}

        true ->
          # Detach the score-function values, then log q again at the values: a function of p alone there.
          z =
            all
            |> Enum.map(fn {path, v} -> {path, if(path in score_paths, do: stop(v), else: v)} end)
            |> Choicemap.new()

          {t2, lq} = Gen.generate(cfg.guide, gargs, z)

          lq_r =
            if length(score_paths) == length(all),
              do: lq,
              else: Gen.project(t2, Selection.new(score_paths))

          # With stl: the weight's log q holds the parameters fixed; the score term keeps them (still unbiased:
          # what is dropped, −∇log q(z, b) at fixed values, has expectation 0).
          lq =
            if cfg.stl,
              do: elem(Gen.assess(cfg.guide, [stop_params(hd(gargs)) | tl(gargs)], z), 0),
              else: lq

          {z, lq, lq_r}
      end

    {Mx.subtract(model_density(cfg, p, z, obs), lq), lq_r}
  end

  # log p(z, x); for ADVI, with z on the unconstrained scale, log p of the constrained values
  # plus the log-Jacobians.
  defp model_density(%{target: nil} = cfg, p, z, obs),
    do: elem(Gen.assess(cfg.model, model_args(cfg, p), Choicemap.merge(z, obs)), 0)

  defp model_density(%{target: target}, _p, z, _obs),
    do: Target.log_density(target, Target.join(target, Enum.map(target.blocks, &z[&1.path])))

  # Guide choices at fixed values (gradients stopped), for the wake phase.
  defp fixed_guide_sample(cfg, p, key, obs) do
    t = Gen.simulate(cfg.guide, [guide_params(cfg, p) | guide_args(cfg, obs)], key: key)

    Gen.get_choices(t)
    |> Choicemap.to_list()
    |> Enum.map(fn {path, v} -> {path, stop(v)} end)
    |> Choicemap.new()
  end

  defp guide_density(cfg, p, z, obs) do
    z =
      z |> Choicemap.to_list() |> Enum.map(fn {path, v} -> {path, stop(v)} end) |> Choicemap.new()

    {lq, _} = Gen.assess(cfg.guide, [guide_params(cfg, p) | guide_args(cfg, obs)], z)
    lq
  end

  # Non-float values (discrete choices) always take the score function.
  defp score_choice?(_path, _v, :all), do: true

  defp score_choice?(path, v, %Selection{} = sel),
    do: not float?(v) or Selection.member?(sel, path)

  defp float?(%Mx.Array{} = v), do: Mx.Type.float?(Mx.type(v))
  defp float?(v), do: is_float(v)

  defp stop(%Mx.Array{} = v), do: if(float?(v), do: Mx.stop_gradient(v), else: v)
  defp stop(v), do: v

  defp stop_params(p), do: Mx.Tree.map(p, &Mx.stop_gradient/1)

  # With `model_params:` the optimised container is %{guide: ..., model: ...} and the model is
  # called on [model_params | args].
  defp with_model(%{model_params: nil}, params), do: params
  defp with_model(%{model_params: mp}, params), do: %{guide: params, model: mp}

  defp guide_params(%{model_params: nil}, p), do: p
  defp guide_params(_cfg, p), do: p.guide

  defp model_args(%{model_params: nil} = cfg, _p), do: cfg.args
  defp model_args(cfg, p), do: [p.model | cfg.args]

  defp guide_args(%{guide_args: f}, obs) when is_function(f, 1), do: f.(obs)
  defp guide_args(%{guide_args: l}, _obs), do: l

  defp mean([x]), do: x
  defp mean(xs), do: Mx.divide(Enum.reduce(xs, &Mx.add/2), length(xs))

  defp log_mean_exp(fs), do: Mx.subtract(Mx.logsumexp(fs), :math.log(Mx.size(fs)))

  defp one_hot(k, i),
    do: Mx.tensor(for(j <- 0..(k - 1), do: if(j == i, do: 1.0, else: 0.0)), type: :f64)

  # ---- options ------------------------------------------------------------------------

  defp stl!(opts, fun) do
    case Keyword.get(opts, :stl, false) do
      b when is_boolean(b) ->
        b

      other ->
        raise ArgumentError,
              "Gen.Inference.VI.#{fun}: stl: must be true or false, got #{inspect(other)}"
    end
  end

  defp config!(model, args, observations, guide, opts, fun) do
    objective = Keyword.get(opts, :objective, :elbo)
    estimator = Keyword.get(opts, :estimator, :reparam)

    unless objective in @objectives do
      raise ArgumentError,
            "Gen.Inference.VI.#{fun}: objective: must be one of #{inspect(@objectives)}, got #{inspect(objective)}"
    end

    unless estimator in @estimators do
      raise ArgumentError,
            "Gen.Inference.VI.#{fun}: estimator: must be :reparam or :reinforce, got #{inspect(estimator)}"
    end

    unless is_list(args) do
      raise ArgumentError,
            "Gen.Inference.VI.#{fun}: the model's arguments must be a list, got #{inspect(args)}"
    end

    reinforce =
      case {estimator, Keyword.get(opts, :reinforce, Selection.none())} do
        {:reinforce, _} ->
          :all

        {:reparam, %Selection{} = s} ->
          s

        {_, other} ->
          raise ArgumentError,
                "Gen.Inference.VI.#{fun}: reinforce: must be a Gen.Selection of guide choices, got #{inspect(other)}"
      end

    default_k = if objective == :elbo, do: 1, else: 10
    samples = Keyword.get(opts, :samples, default_k)
    min_k = if objective == :iwelbo, do: 2, else: 1

    unless is_integer(samples) and samples >= min_k do
      raise ArgumentError,
            "Gen.Inference.VI.#{fun}: samples: must be an integer >= #{min_k} for objective #{inspect(objective)}, got #{inspect(samples)}"
    end

    sleep_samples = Keyword.get(opts, :sleep_samples, 10)

    unless is_integer(sleep_samples) and sleep_samples >= 1 do
      raise ArgumentError,
            "Gen.Inference.VI.#{fun}: sleep_samples: must be a positive integer, got #{inspect(sleep_samples)}"
    end

    guide_args = Keyword.get(opts, :guide_args, [])

    unless is_list(guide_args) or is_function(guide_args, 1) do
      raise ArgumentError,
            "Gen.Inference.VI.#{fun}: guide_args: must be a list or a function of the observations returning one, got #{inspect(guide_args)}"
    end

    %{
      model: model,
      args: args,
      obs: Choicemap.new(observations),
      guide: guide,
      guide_args: guide_args,
      objective: objective,
      reinforce: reinforce,
      model_params: Keyword.get(opts, :model_params),
      stl: stl!(opts, fun),
      samples: samples,
      sleep_samples: sleep_samples,
      target: nil
    }
  end
end
