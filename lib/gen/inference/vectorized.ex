defmodule Gen.Inference.Vectorized do
  @moduledoc """
  Inference over `n` particles or chains held in one vectorized trace
  (`Gen.Vectorized`): every model run serves all of them at once, so a step
  costs one run of the body on `[n]`-shaped values instead of `n` runs.
  Written on the vectorized GFI alone (generate, update, regenerate,
  assess, and `Gen.Vectorized.take/2` / `select/3` to copy and merge
  particles). Results agree in distribution with the scalar algorithms.

    * `importance_sampling/5` — `Gen.vgenerate/5` (or a vectorized proposal
      then generate), log-normalized weights and the log marginal likelihood
    * `smc_init/5`, `smc_step/4`, `smc/5` — a particle filter: vectorized
      generate, update with each step's arguments and observations,
      resampling by gathering every choice along the particle axis with
      ancestors from `Gen.Inference.Resample`, optional rejuvenation by a
      vectorized kernel
    * `mh/3` — Metropolis–Hastings on `n` independent chains: a vectorized
      regenerate, accepted per chain with `Mx.select/3`
    * `mala/3` — MALA on `n` independent chains with per-chain gradients
      (`choice_gradients/2`)
    * `run/3` — a driver for kernels on vectorized traces (burn-in,
      thinning, selected values, flat memory)

  Use them through `Gen.Inference` (`vimportance_sampling/5`, `vsmc/5`,
  `vmh/3`, `vmala/3`) or directly.
  """

  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Inference.Resample
  import Gen.Inference.Common, only: [count!: 5, fun!: 4, positive!: 4, selects_some!: 4, none_selected!: 4]
  alias Gen.Vectorized, as: V

  # ---- importance sampling ------------------------------------------------------------

  @doc """
  Importance sampling with `n` particles in one vectorized run. Returns
  `{trace, log_normalized_weights, log_ml_estimate}`: a vectorized trace
  (particle i is row i of every choice), an f64 `[n]` array whose `exp`
  sums to one, and the f64 scalar log((1/n) Σ wᵢ). Options: `key:`;
  `proposal: {q, q_args}` (q's choices, drawn for `n` particles with a
  vectorized simulate, are merged with the observations; each weight is the
  model's generate weight minus q's score).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, lnw, lml} = Gen.Inference.Vectorized.importance_sampling(m, [], %{y: 0.0}, 4, key: Mx.Random.key(0))
      iex> {Mx.describe(t[:mu]), Mx.describe(lnw), Mx.describe(lml)}
      {"f64[4]", "f64[4]", "f64"}
      iex> # The exact posterior N(0, 1/2) as proposal: every weight is p(y = 0) = N(0; 0, 2).
      iex> q = gen fn -> trace(:mu, Gen.Dist.normal(0.0, :math.sqrt(0.5))) end
      iex> {_, _, lml} = Gen.Inference.Vectorized.importance_sampling(m, [], %{y: 0.0}, 3, key: Mx.Random.key(1), proposal: {q, []})
      iex> abs(Mx.to_number(lml) - -0.5 * :math.log(2 * :math.pi() * 2)) < 1.0e-12
      true
  """
  @spec importance_sampling(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), pos_integer(), keyword()) ::
          {Trace.t(), Mx.t(), Mx.t()}
  def importance_sampling(gf, args, observations, n, opts \\ []) do
    check_n!(n, "importance_sampling")
    Mx.Opts.validate!(opts, [:key, :proposal], "Gen.Inference.Vectorized.importance_sampling")
    obs = Choicemap.new(observations)

    {trace, log_w} =
      case Keyword.get(opts, :proposal) do
        nil ->
          V.generate(gf, args, obs, n, key: key(opts))

        {q, q_args} when is_list(q_args) ->
          {k_q, k_p} = Gen.Inference.two_keys(opts)
          {proposed, q_w, _} = V.propose(q, q_args, n, key: k_q)
          {t, p_w} = V.generate_particles(gf, args, Choicemap.merge(obs, proposed), n, key: k_p, shared_observations: obs)
          {t, Mx.subtract(p_w, q_w)}

        other ->
          raise ArgumentError,
                "Gen.Inference.Vectorized.importance_sampling: proposal: must be {proposal_gen_fn, proposal_args} with args a list, got #{inspect(other)}"
      end

    lse = Mx.logsumexp(log_w)
    lnw = Mx.subtract(log_w, lse)
    lml = Mx.subtract(lse, :math.log(n))
    Mx.eval([lnw, lml])
    {V.force(trace), lnw, lml}
  end

  # ---- SMC ------------------------------------------------------------------------------

  @typedoc "A particle filter's state: the vectorized trace, its unnormalized log weights f64[n], and the log ML so far (a float, resampling folds into it)."
  @type smc_state :: %{trace: Trace.t(), log_weights: Mx.t(), log_ml: float()}

  @doc """
  Step 0 of a vectorized particle filter: `n` particles by `Gen.vgenerate/5`
  on `args` and `observations`, weighted by the generate weights. Options:
  `key:`.

      iex> import Gen
      iex> m = gen fn t -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0)) end
      iex> s = Gen.Inference.Vectorized.smc_init(m, [0], %{{:y, 0} => 0.3}, 6, key: Mx.Random.key(0))
      iex> {Mx.describe(s.log_weights), s.log_ml, Gen.Vectorized.particles(s.trace)}
      {"f64[6]", 0.0, 6}
  """
  @spec smc_init(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), pos_integer(), keyword()) :: smc_state()
  def smc_init(gf, args, observations, n, opts \\ []) do
    check_n!(n, "smc_init")
    Mx.Opts.validate!(opts, [:key], "Gen.Inference.Vectorized.smc_init")
    {t, w} = V.generate(gf, args, observations, n, key: key(opts))
    Mx.eval(w)
    %{trace: V.force(t), log_weights: w, log_ml: 0.0}
  end

  @doc """
  One step of a vectorized particle filter: when Kish's ESS of the weights
  falls under `ess_threshold · n`, resample (ancestors from
  `Gen.Inference.Resample`, every choice gathered along the particle axis by
  `Gen.Vectorized.take/2`) and fold the log-mean weight into the log ML;
  then, with `rejuvenate:`, move every particle with an MCMC kernel; then
  move every particle to `args` with `observations` by a vectorized
  `update`, adding its weight.

  Options: `key:`, `ess_threshold:` (0.5), `resampling:` (`:multinomial`,
  `:systematic`, `:residual`), `rejuvenate:` (nil, a `Gen.Selection` for
  `mh/3` on it, or a kernel on vectorized traces, `fn trace, opts ->
  {trace, accepted} end` as in `Gen.Inference.Kernel`, called with `key:`),
  `rejuvenate_steps:` (1).

      iex> import Gen
      iex> m = gen fn t -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0)) end
      iex> s = Gen.Inference.Vectorized.smc_init(m, [0], %{{:y, 0} => 0.3}, 6, key: Mx.Random.key(0))
      iex> s = Gen.Inference.Vectorized.smc_step(s, [1], %{{:y, 1} => 0.5}, key: Mx.Random.key(1), rejuvenate: Gen.select(:mu))
      iex> {Mx.to_list(s.trace[{:y, 1}]), Mx.describe(s.log_weights)}
      {[0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "f64[6]"}
  """
  # The options of smc_step/4, which smc/5 passes on.
  @smc_opts [:key, :ess_threshold, :resampling, :rejuvenate, :rejuvenate_steps]

  @spec smc_step(smc_state(), [term()], Choicemap.t() | map() | list(), keyword()) :: smc_state()
  def smc_step(%{trace: trace, log_weights: log_w, log_ml: lml}, args, observations, opts \\ []) do
    Mx.Opts.validate!(opts, @smc_opts, "Gen.Inference.Vectorized.smc_step")
    threshold = threshold!(Keyword.get(opts, :ess_threshold, 0.5))
    resample = scheme!(Keyword.get(opts, :resampling, :multinomial))
    rejuv = rejuvenation!(Keyword.get(opts, :rejuvenate), Keyword.get(opts, :rejuvenate_steps, 1))
    n = V.particles(trace)
    ks = Mx.Random.split(key(opts), 3)
    obs = Choicemap.new(observations)

    {trace, log_w, lml} =
      if Resample.ess(log_w) < threshold * n do
        lse = log_w |> Mx.logsumexp() |> Mx.to_number()
        idx = resample.(log_w, ks[0])
        {V.take(trace, idx), Mx.broadcast(Mx.tensor(0.0, type: :f64), {n}), add(lml, lse - :math.log(n))}
      else
        {trace, log_w, lml}
      end

    trace = if rejuv, do: rejuv.(trace, ks[1]), else: trace
    {trace, inc, _, _} = V.update(trace, args, :unknown_change, obs, key: ks[2], shared_observations: obs)
    log_w = Mx.add(log_w, inc)
    Mx.eval(log_w)
    %{trace: V.force(trace), log_weights: log_w, log_ml: lml}
  end

  @doc """
  A vectorized particle filter over a sequence of observations: `smc_init/5`
  on `args_fn.(0)` and the first observations, then `smc_step/4` for each
  later step t with `args_fn.(t)`. Returns `{trace,
  log_normalized_weights, log_ml_estimate}` like `Gen.Inference.smc/5`, with
  one vectorized trace. Options: those of `smc_step/4` and `key:` (step t
  uses `Mx.Random.fold_in(key, t)`).

      iex> import Gen
      iex> m = gen fn t -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0)) end
      iex> obs = [%{{:y, 0} => 0.3}, %{{:y, 1} => 0.5}]
      iex> {t, lnw, lml} = Gen.Inference.Vectorized.smc(m, &[&1], obs, 8, key: Mx.Random.key(0), resampling: :systematic)
      iex> {Mx.describe(t[:mu]), Mx.describe(lnw), Mx.describe(lml)}
      {"f64[8]", "f64[8]", "f64"}
  """
  @spec smc(Gen.gen_fn(), (non_neg_integer() -> [term()]), [Choicemap.t() | map() | list()], pos_integer(), keyword()) ::
          {Trace.t(), Mx.t(), Mx.t()}
  def smc(gf, args_fn, observations, n, opts \\ []) do
    Mx.Opts.validate!(opts, @smc_opts, "Gen.Inference.Vectorized.smc")

    unless is_function(args_fn, 1) do
      raise ArgumentError,
            "Gen.Inference.Vectorized.smc: args_fn must be a function of the step t returning the model's argument list, got #{inspect(args_fn)}"
    end

    unless is_list(observations) and observations != [] do
      raise ArgumentError,
            "Gen.Inference.Vectorized.smc: observations must be a non-empty list of choicemaps, one per step, got #{inspect(observations)}"
    end

    key = key(opts)
    [obs0 | rest] = observations
    s0 = smc_init(gf, args_fn.(0), obs0, n, key: Mx.Random.fold_in(key, 0))

    s =
      rest
      |> Enum.with_index(1)
      |> Enum.reduce(s0, fn {obs, t}, s ->
        smc_step(s, args_fn.(t), obs, Keyword.put(opts, :key, Mx.Random.fold_in(key, t)))
      end)

    lse = s.log_weights |> Mx.logsumexp() |> Mx.to_number()

    if lse == :neg_infinity do
      raise ArgumentError,
            "Gen.Inference.Vectorized.smc: every particle has weight zero after the last step; the observations are impossible under the model (or under every particle)"
    end

    lnw = s.log_weights |> Mx.subtract(lse) |> Mx.eval()
    {s.trace, lnw, Mx.tensor(add(s.log_ml, lse - :math.log(n)), type: :f64)}
  end

  # ---- MCMC over n chains ------------------------------------------------------------------

  @doc """
  One Metropolis–Hastings step on each of the `n` independent chains of a
  vectorized trace: the `selection` resampled from its prior by a
  vectorized regenerate, chain i accepting with probability min(1,
  exp(weightᵢ)) (NaN rejects). Returns `{trace, accepted}`, `accepted` a
  boolean `[n]` array. Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 5, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.Vectorized.mh(t, Gen.select(:mu), key: Mx.Random.key(1))
      iex> {Mx.describe(acc), Mx.to_list(t2[:y])}
      {"bool[5]", [0.5, 0.5, 0.5, 0.5, 0.5]}
  """
  @spec mh(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t()}
  def mh(%Trace{} = trace, %Selection{} = sel, opts \\ []) do
    Mx.Opts.validate!(opts, [:key], "Gen.Inference.Vectorized.mh")
    selects_some!(trace, sel, "Gen.Inference.Vectorized.mh", "select the choices to resample")
    n = V.particles(trace)
    {k_move, k_accept} = Gen.Inference.two_keys(opts)
    {new, w, _} = V.regenerate(trace, sel, key: k_move)
    decide(trace, new, w, k_accept, n)
  end

  @doc """
  One Metropolis-adjusted Langevin step on each of the `n` independent
  chains, on the selected continuous choices: x' ~ N(x + τ∇log p(x), 2τ·I)
  per chain, accepted per chain with the forward and backward proposal
  densities. The gradients come from one `Mx.value_and_grad/2` of the sum
  over chains of the vectorized log joint (`Gen.Vectorized.assess/4`) with
  respect to the `[n | shape]` selected values: the chains are independent,
  so row i of the gradient is chain i's gradient. Returns `{trace,
  accepted}` (boolean `[n]`). Options: `tau:` (required), `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 4, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.Vectorized.mala(t, Gen.select(:mu), tau: 0.2, key: Mx.Random.key(1))
      iex> {Mx.describe(acc), Mx.describe(t2[:mu])}
      {"bool[4]", "f64[4]"}
  """
  @spec mala(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t()}
  def mala(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:tau, :key], "Gen.Inference.Vectorized.mala")
    tau = positive!(opts, :tau, nil, "Gen.Inference.Vectorized.mala")

    n = V.particles(trace)
    {k_move, k_accept} = Gen.Inference.two_keys(opts)
    paths = selected_paths!(trace, sel, n)
    xs = Enum.map(paths, &Gen.get_choices(trace)[&1])
    gs = gradients(trace, paths, xs, n)
    sd = :math.sqrt(2 * tau)
    keys = Mx.Random.split(k_move, length(xs))

    new_xs =
      xs
      |> Enum.zip(gs)
      |> Enum.with_index()
      |> Enum.map(fn {{x, g}, i} ->
        z = Mx.Random.normal(keys[i], shape: Mx.shape(x), type: Mx.type(x))
        Mx.add(Mx.add(x, Mx.multiply(g, tau)), Mx.multiply(z, sd))
      end)

    Mx.eval(new_xs)
    new_gs = gradients(trace, paths, new_xs, n)
    fwd = log_q(new_xs, xs, gs, tau, sd)
    bwd = log_q(xs, new_xs, new_gs, tau, sd)
    {proposed, _} = V.generate_particles(trace.gen_fn, trace.args, with_values(trace, paths, new_xs), n)
    log_alpha = Mx.add(Mx.subtract(proposed.score, trace.score), Mx.subtract(bwd, fwd))
    decide(trace, proposed, log_alpha, k_accept, n)
  end

  @doc """
  Per particle, the log joint of a vectorized trace (its score, f64 `[n]`)
  and its gradient with respect to the selected continuous choices: a
  choicemap of `[n | shape]` arrays whose row i is particle i's gradient
  (the gradient of the sum over particles, the particles being
  independent).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 2.0}, 2, key: Mx.Random.key(0))
      iex> {_lp, g} = Gen.Inference.Vectorized.choice_gradients(t, Gen.select(:mu))
      iex> # d/dmu [-mu²/2 - (y - mu)²/2] = y - 2 mu
      iex> Enum.zip_with(Mx.to_list(g[:mu]), Mx.to_list(t[:mu]), fn gi, mu -> abs(gi - (2.0 - 2 * mu)) < 1.0e-12 end)
      [true, true]
  """
  @spec choice_gradients(Trace.t(), Selection.t()) :: {Mx.t(), Choicemap.t()}
  def choice_gradients(%Trace{} = trace, %Selection{} = sel) do
    n = V.particles(trace)
    paths = selected_paths!(trace, sel, n)
    gs = gradients(trace, paths, Enum.map(paths, &Gen.get_choices(trace)[&1]), n)
    {trace.score, Choicemap.new(Enum.zip(paths, gs))}
  end

  @doc """
  Runs a kernel on vectorized traces (`fn trace, opts -> {trace, accepted}
  end`, `accepted` a boolean `[n]` array, e.g. wrapping `mh/3` or `mala/3`)
  from `trace` for `burn + samples * thin` iterations, and returns the
  `samples` values kept after burn-in, every `thin`-th: the traces, or
  `select.(trace)` with `select:`. Each iteration's trace is evaluated, so
  memory stays flat (keep small values with `select:` for long runs).

  Options: `samples:` (required), `burn:` (0), `thin:` (1), `key:`
  (iteration i uses `Mx.Random.fold_in(key, i)`), `select:`, `callback:`
  (called after every iteration with `%{iteration: i, trace: t, accepted:
  acc}`).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 10, key: Mx.Random.key(0))
      iex> k = fn t, opts -> Gen.Inference.Vectorized.mh(t, Gen.select(:mu), opts) end
      iex> xs = Gen.Inference.Vectorized.run(k, t, samples: 3, burn: 5, key: Mx.Random.key(1), select: &Mx.to_list(&1[:mu]))
      iex> {length(xs), Enum.map(xs, &length/1)}
      {3, [10, 10, 10]}
  """
  @spec run((Trace.t(), keyword() -> {Trace.t(), Mx.t()}), Trace.t(), keyword()) :: [term()]
  def run(kernel, %Trace{} = trace, opts) do
    unless is_function(kernel, 2) do
      raise ArgumentError,
            "Gen.Inference.Vectorized.run: expected a kernel on vectorized traces, fn trace, opts -> {trace, accepted} end, got #{inspect(kernel)}"
    end

    _ = V.particles(trace)
    Mx.Opts.validate!(opts, [:samples, :burn, :thin, :select, :callback, :key], "Gen.Inference.Vectorized.run")
    samples = count!(opts, :samples, nil, 0, "Gen.Inference.Vectorized.run")
    burn = count!(opts, :burn, 0, 0, "Gen.Inference.Vectorized.run")
    thin = count!(opts, :thin, 1, 1, "Gen.Inference.Vectorized.run")
    select = fun!(opts, :select, 1, "Gen.Inference.Vectorized.run")
    callback = fun!(opts, :callback, 1, "Gen.Inference.Vectorized.run")
    key = Keyword.get(opts, :key)

    {_t, kept} =
      Enum.reduce(0..(burn + samples * thin - 1)//1, {V.force(trace), []}, fn i, {t, kept} ->
        k_opts = if key, do: [key: Mx.Random.fold_in(key, i)], else: []

        {t2, acc} =
          case kernel.(t, k_opts) do
            {%Trace{} = t2, %Mx.Array{} = acc} -> {V.force(t2), acc}
            other -> raise ArgumentError, "Gen.Inference.Vectorized.run: a kernel must return {vectorized_trace, accepted}, got #{inspect(other)}"
          end

        if callback, do: callback.(%{iteration: i, trace: t2, accepted: acc})
        keep? = i >= burn and rem(i - burn + 1, thin) == 0
        {t2, if(keep?, do: [if(select, do: Mx.eval(select.(t2)), else: t2) | kept], else: kept)}
      end)

    Enum.reverse(kept)
  end

  # Row i of d/dx Σ_j log p(x_j) is d/dx_i log p(x_i): chains are independent.
  defp gradients(trace, paths, xs, n) do
    f = fn vals ->
      {w, _} = V.assess(trace.gen_fn, trace.args, with_values(trace, paths, vals), n)
      Mx.sum(w)
    end

    {_lp, gs} = Mx.value_and_grad(f).(xs)
    Mx.eval(gs)
    gs
  end

  defp with_values(trace, paths, vals) do
    Enum.zip(paths, vals) |> Enum.reduce(Gen.get_choices(trace), fn {p, v}, acc -> Choicemap.put(acc, p, v) end)
  end

  # Per chain: log N(to; from + τ·g, sd²·I) summed over every element but the chain axis.
  defp log_q(to, from, gs, tau, sd) do
    Enum.zip_with([to, from, gs], fn [t, f, g] ->
      z = Mx.divide(Mx.subtract(t, Mx.add(f, Mx.multiply(g, tau))), sd)
      per_chain = div(Mx.size(t), elem(Mx.shape(t), 0))
      sq = Mx.square(z)
      sq = if Mx.rank(sq) > 1, do: Mx.sum(sq, axes: Enum.to_list(1..(Mx.rank(sq) - 1))), else: sq
      Mx.subtract(Mx.multiply(sq, -0.5), per_chain * (:math.log(sd) + 0.5 * :math.log(2 * :math.pi())))
    end)
    |> Enum.reduce(&Mx.add/2)
  end

  # Chain i accepts when log uᵢ < log αᵢ: NaN compares false (rejects), +Inf accepts.
  defp decide(old, new, log_alpha, key, n) do
    log_u = key |> Mx.Random.uniform(shape: {n}, type: :f64) |> Mx.log()
    accepted = Mx.less(log_u, log_alpha)
    Mx.eval(accepted)
    {V.force(V.select(accepted, new, old)), accepted}
  end

  defp selected_paths!(trace, sel, n) do
    paths =
      for {path, v} <- Choicemap.to_list(Gen.get_choices(trace)), Selection.member?(sel, path) do
        unless match?(%Mx.Array{}, v) and Mx.Type.float?(Mx.type(v)) and Mx.rank(v) >= 1 and elem(Mx.shape(v), 0) == n do
          raise ArgumentError,
                "Gen.Inference.Vectorized: the selected choice at #{Choicemap.format_path(path)} is #{inspect(v)}, " <>
                  "not a floating-point array with the particle axis #{n}; select only continuous choices"
        end

        path
      end

    if paths == [], do: none_selected!(trace, sel, "Gen.Inference.Vectorized", "select the continuous choices to move")

    paths
  end

  # ---- options ------------------------------------------------------------------------------

  defp key(opts), do: Keyword.get_lazy(opts, :key, &Gen.next_key/0)

  defp add(:neg_infinity, _), do: :neg_infinity
  defp add(a, b) when is_number(a) and is_number(b), do: a + b
  defp add(_, _), do: :neg_infinity

  defp rejuvenation!(nil, _steps), do: nil

  defp rejuvenation!(%Selection{} = sel, steps), do: rejuvenation!(fn t, opts -> mh(t, sel, opts) end, steps)

  # A kernel as in Gen.Inference.Kernel, on vectorized traces: fn trace, opts -> {trace, accepted} end.
  defp rejuvenation!(kernel, steps) when is_function(kernel, 2) and is_integer(steps) and steps >= 1 do
    fn t, k ->
      Enum.reduce(0..(steps - 1), t, fn i, t ->
        case kernel.(t, key: Mx.Random.fold_in(k, i)) do
          {%Trace{} = t2, _accepted} ->
            t2

          other ->
            raise ArgumentError,
                  "Gen.Inference.Vectorized.smc_step: the rejuvenation kernel must return {vectorized_trace, accepted}, got #{inspect(other)}"
        end
      end)
    end
  end

  defp rejuvenation!(other, steps) do
    raise ArgumentError,
          "Gen.Inference.Vectorized.smc_step: rejuvenate: must be nil, a Gen.Selection (vectorized MH on it) or a kernel " <>
            "fn trace, opts -> {trace, accepted} end on vectorized traces (e.g. fn t, o -> Gen.Inference.vmala(t, sel, [tau: 0.1] ++ o) end), " <>
            "and rejuvenate_steps a positive integer; got #{inspect(other)} and #{inspect(steps)}"
  end

  defp threshold!(x) when is_number(x) and x >= 0 and x <= 1, do: x

  defp threshold!(x),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.Vectorized.smc_step: ess_threshold: must be a number in [0, 1] (resample when ESS < threshold · n), got #{inspect(x)}"
      )

  defp scheme!(:multinomial), do: &Resample.multinomial/2
  defp scheme!(:systematic), do: &Resample.systematic/2
  defp scheme!(:residual), do: &Resample.residual/2

  defp scheme!(s),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.Vectorized.smc_step: resampling: must be :multinomial, :systematic or :residual, got #{inspect(s)}"
      )

  defp check_n!(n, _who) when is_integer(n) and n >= 1, do: :ok

  defp check_n!(n, who),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.Vectorized.#{who}: the number of particles must be a positive integer, got #{inspect(n)}"
      )
end
