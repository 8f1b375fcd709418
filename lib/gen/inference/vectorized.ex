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
      (`choice_gradients/3`)
    * `hmc/3` — HMC on `n` independent chains, per-chain step sizes and a
      diagonal metric, in one graph per leapfrog step
    * `sample/3` — adaptive MALA or HMC on `n` chains: per-chain step sizes
      by dual averaging and a shared diagonal metric from Stan's windows
      (`Gen.Inference.Adapt`), with a warning when acceptance stays near 0 or 1
    * `run/3` — a driver for kernels on vectorized traces (burn-in,
      thinning, selected values, flat memory)

  Use them through `Gen.Inference` (`vimportance_sampling/5`, `vsmc/5`,
  `vmh/3`, `vmala/3`) or directly.

  ## Compiled tapes

  With `compile: true` (the default) importance sampling and `smc_init/5`
  run as one `Mx.compile/2` tape, and the gradient kernels replay compiled
  batched gradients and proposal scores: each is traced once per signature
  (the model, its arguments' non-array values, the addresses and shapes of
  the choices or observations, `n`) and replayed with keys, observed or
  chosen values and argument arrays as inputs, from caches shared by every
  process (`Mx.compile/2`'s, 16 signatures each, least recently used
  evicted). The results equal `compile: false`'s within floating-point
  rounding (the same draws for the same key). A signature runs uncompiled
  when tracing needs a value (Elixir control flow on an argument array).
  A number argument that changes from call to call traces again each
  time: pass it as an array, or use `compile: false` for one-off calls.
  """

  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Inference.{Adapt, Resample}

  import Gen.Inference.Common,
    only: [count!: 5, fun!: 4, positive!: 4, selects_some!: 4, none_selected!: 4]

  require Logger
  alias Gen.Vectorized, as: V

  # ---- importance sampling ------------------------------------------------------------

  @doc """
  Importance sampling with `n` particles in one vectorized run. Returns
  `{trace, log_normalized_weights, log_ml_estimate}`: a vectorized trace
  (particle i is row i of every choice), an f64 `[n]` array whose `exp`
  sums to one, and the f64 scalar log((1/n) Σ wᵢ). Options: `key:`;
  `proposal: {q, q_args}` (q's choices, drawn for `n` particles with a
  vectorized simulate, are merged with the observations; each weight is the
  model's generate weight minus q's score); `compile:` (below).

  With `compile: true` (the default) the whole run, from the key to the
  trace, the weights and the log ML, is one `Mx.compile/2` tape, traced once
  per signature (the model, the arguments' non-array values, the addresses
  and shapes of the observations, `n`, the proposal) and replayed on later
  calls with the key, the observed values and the arguments' arrays as
  inputs. The results equal `compile: false`'s within floating-point
  rounding (the same draws for the same key), and the trace is the same;
  its observed values broadcast over the particles come back as lazy
  broadcasts of the values given (the tape neither computes nor stores
  their `n` copies). A model that needs a value while tracing (Elixir control flow on an
  argument or an observed value) runs uncompiled, remembered per signature.
  A NaN weight re-runs the call uncompiled, whose diagnosis names the site.

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
      iex> {_, lnw2, _} = Gen.Inference.Vectorized.importance_sampling(m, [], %{y: 0.0}, 4, key: Mx.Random.key(0), compile: false)
      iex> Enum.zip_with(Mx.to_list(lnw), Mx.to_list(lnw2), &(abs(&1 - &2) < 1.0e-12)) |> Enum.all?()
      true
  """
  @spec importance_sampling(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          pos_integer(),
          keyword()
        ) ::
          {Trace.t(), Mx.t(), Mx.t()}
  def importance_sampling(gf, args, observations, n, opts \\ []) do
    who = "Gen.Inference.Vectorized.importance_sampling"
    check_n!(n, "importance_sampling")
    Mx.Opts.validate!(opts, [:key, :proposal, :compile], who)
    obs = Choicemap.new(observations)

    {proposal, keys} =
      case Keyword.get(opts, :proposal) do
        nil ->
          {nil, [key(opts)]}

        {q, q_args} when is_list(q_args) ->
          {k_q, k_p} = Gen.Inference.two_keys(opts)
          {{q, q_args}, [k_q, k_p]}

        other ->
          raise ArgumentError,
                "#{who}: proposal: must be {proposal_gen_fn, proposal_args} with args a list, got #{inspect(other)}"
      end

    {trace, lnw, lml, _log_w} =
      if flag!(opts, :compile, who),
        do: compiled_is(gf, args, obs, n, keys, proposal),
        else: uncompiled_is(gf, args, obs, n, keys, proposal)

    {trace, lnw, lml}
  end

  # {trace, log-normalized weights, log ML, log weights}, evaluated.
  defp uncompiled_is(gf, args, obs, n, keys, proposal) do
    {trace, lnw, lml, log_w} = is_graph(gf, args, obs, n, keys, proposal)
    Mx.eval([lnw, lml, log_w])
    {V.force(trace), lnw, lml, log_w}
  end

  # The run as one tape (compiled/2): the trace comes back as its arrays and the rest of the term.
  defp compiled_is(gf, args, obs, n, keys, proposal) do
    f = compiled(:importance_sampling, &is_tape/5)

    {skeleton, leaves, lnw, lml, log_w, nan?} =
      apply(f, is_inputs(gf, args, obs, n, keys, proposal))

    if Mx.to_number(nan?) do
      uncompiled_is(gf, args, obs, n, keys, proposal)
    else
      given = obs |> Choicemap.to_list() |> Enum.map(&elem(&1, 1))
      trace = refill(skeleton, List.to_tuple(leaves), List.to_tuple(given))
      {%{trace | gen_fn: gf, args: args}, lnw, lml, log_w}
    end
  end

  defp is_inputs(gf, args, obs, n, keys, proposal) do
    {q, q_args} = proposal || {nil, []}
    [keys, args, Choicemap.to_list(obs), q_args, {gf, n, q}]
  end

  @doc false
  # Waits for the generated-C tier (Mx.Compile.await_native/3) of the tape that importance_sampling/5
  # replays for these arguments (call it first): for benchmarks that time one tier.
  @spec await_native_importance(
          Gen.gen_fn(),
          [term()],
          term(),
          pos_integer(),
          keyword(),
          non_neg_integer()
        ) ::
          map()
  def await_native_importance(gf, args, observations, n, opts \\ [], timeout \\ 120_000) do
    proposal = Keyword.get(opts, :proposal)
    keys = if proposal, do: [Mx.Random.key(0), Mx.Random.key(0)], else: [Mx.Random.key(0)]
    inputs = is_inputs(gf, args, Choicemap.new(observations), n, keys, proposal)
    Mx.Compile.await_native(compiled(:importance_sampling, &is_tape/5), inputs, timeout)
  end

  defp is_tape(keys, args, obs_list, q_args, {gf, n, q}) do
    proposal = if q, do: {q, q_args}

    {{trace, lnw, lml, log_w}, spread} =
      V.with_spread_log(fn -> is_graph(gf, args, Choicemap.new(obs_list), n, keys, proposal) end)

    # The vectorized GFI's NaN checks read values, so a replay checks them here: a NaN score or weight
    # makes the sum or the log ML NaN (so may +inf meeting -inf, which only re-runs needlessly).
    nan? = Mx.is_nan(Mx.add(lml, Mx.sum(trace.score)))
    {skeleton, leaves} = hollow(%{trace | gen_fn: nil, args: []}, Enum.map(obs_list, &elem(&1, 1)), spread)
    {skeleton, leaves, lnw, lml, log_w, nan?}
  end

  # {trace, log-normalized weights, log ML, log weights} as lazy graphs.
  defp is_graph(gf, args, obs, n, keys, proposal) do
    {trace, log_w} =
      case {proposal, keys} do
        {nil, [key]} ->
          V.generate(gf, args, obs, n, key: key)

        {{q, q_args}, [k_q, k_p]} ->
          {proposed, q_w, _} = V.propose(q, q_args, n, key: k_q)

          {t, p_w} =
            V.generate_particles(gf, args, Choicemap.merge(obs, proposed), n,
              key: k_p,
              shared_observations: obs
            )

          {t, Mx.subtract(p_w, q_w)}
      end

    lse = Mx.logsumexp(log_w)
    {trace, Mx.subtract(log_w, lse), Mx.subtract(lse, :math.log(n)), log_w}
  end

  # ---- compiled runs --------------------------------------------------------------------

  # One Mx.compile'd function per algorithm, shared by every caller (its cache is the tapes'
  # cache: signatures least recently used are evicted); tracing that needs a value falls back.
  defp compiled(name, fun) do
    key = {__MODULE__, :compiled, name}

    case :persistent_term.get(key, nil) do
      nil ->
        f = Mx.compile(fun, fallback: true, cache_size: 16)
        :persistent_term.put(key, f)
        f

      f ->
        f
    end
  end

  @doc false
  # The cache counters (Mx.compile_stats/1) of an algorithm's compiled function, nil before its first use.
  @spec compiled_stats(atom()) :: map() | nil
  def compiled_stats(name) do
    case :persistent_term.get({__MODULE__, :compiled, name}, nil) do
      nil -> nil
      f -> Mx.compile_stats(f)
    end
  end

  @leaf :"$gen_tape_leaf"
  @given :"$gen_tape_given"
  @spread :"$gen_tape_spread"

  # The arrays of a term (through lists, tuples, maps and structs), each once, and the term with
  # each replaced by {@leaf, position}: a trace as a tape's outputs; refill/3 puts them back. An
  # array among `given` (the tape's own inputs) becomes {@given, its position} instead: it comes
  # back as the very array given, so traces share it as uncompiled ones do. A broadcast of a given
  # array over the particles (`spread`, from Gen.Vectorized.with_spread_log/1) becomes {@spread,
  # its position, shape}: it comes back as a lazy broadcast of the array given, so the tape neither
  # computes nor stores its n copies.
  defp hollow(term, given, spread) do
    at = given |> Enum.with_index() |> Map.new()
    seen = Map.new(at, fn {a, i} -> {a, {@given, i}} end)

    seen =
      Enum.reduce(spread, seen, fn {b, a}, seen ->
        case at do
          %{^a => i} -> Map.put_new(seen, b, {@spread, i, Mx.shape(b)})
          _ -> seen
        end
      end)

    {skeleton, {_seen, rev}} = hollow_walk(term, {seen, []})
    {skeleton, Enum.reverse(rev)}
  end

  defp hollow_walk(%Mx.Array{} = a, {seen, rev} = acc) do
    case seen do
      %{^a => marker} -> {marker, acc}
      _ -> {{@leaf, length(rev)}, {Map.put(seen, a, {@leaf, length(rev)}), [a | rev]}}
    end
  end

  defp hollow_walk([h | t], acc) do
    {h, acc} = hollow_walk(h, acc)
    {t, acc} = hollow_walk(t, acc)
    {[h | t], acc}
  end

  defp hollow_walk(t, acc) when is_tuple(t) do
    {l, acc} = hollow_walk(Tuple.to_list(t), acc)
    {List.to_tuple(l), acc}
  end

  # Structs too (a struct is a map with :__struct__), through Map.to_list, not Enumerable.
  defp hollow_walk(m, acc) when is_map(m) do
    {kvs, acc} =
      Enum.map_reduce(Map.to_list(m), acc, fn {k, v}, acc ->
        {v, acc} = hollow_walk(v, acc)
        {{k, v}, acc}
      end)

    {Map.new(kvs), acc}
  end

  defp hollow_walk(other, acc), do: {other, acc}

  defp refill({@leaf, i}, leaves, _given), do: elem(leaves, i)
  defp refill({@given, i}, _leaves, given), do: elem(given, i)
  defp refill({@spread, i, shape}, _leaves, given), do: Mx.broadcast(elem(given, i), shape)
  defp refill([h | t], leaves, given), do: [refill(h, leaves, given) | refill(t, leaves, given)]

  defp refill(t, leaves, given) when is_tuple(t),
    do: t |> Tuple.to_list() |> refill(leaves, given) |> List.to_tuple()

  defp refill(m, leaves, given) when is_map(m),
    do: Map.new(Map.to_list(m), fn {k, v} -> {k, refill(v, leaves, given)} end)

  defp refill(other, _leaves, _given), do: other

  # ---- SMC ------------------------------------------------------------------------------

  @typedoc "A particle filter's state: the vectorized trace, its unnormalized log weights f64[n], and the log ML so far (a float, resampling folds into it)."
  @type smc_state :: %{trace: Trace.t(), log_weights: Mx.t(), log_ml: float()}

  @doc """
  Step 0 of a vectorized particle filter: `n` particles by `Gen.vgenerate/5`
  on `args` and `observations`, weighted by the generate weights. Options:
  `key:`, `compile:` (true: the generate runs on the tape of
  `importance_sampling/5`, replayed per signature; the same results as
  `false` within rounding).

      iex> import Gen
      iex> m = gen fn t -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0)) end
      iex> s = Gen.Inference.Vectorized.smc_init(m, [0], %{{:y, 0} => 0.3}, 6, key: Mx.Random.key(0))
      iex> {Mx.describe(s.log_weights), s.log_ml, Gen.Vectorized.particles(s.trace)}
      {"f64[6]", 0.0, 6}
  """
  @spec smc_init(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), pos_integer(), keyword()) ::
          smc_state()
  def smc_init(gf, args, observations, n, opts \\ []) do
    check_n!(n, "smc_init")
    who = "Gen.Inference.Vectorized.smc_init"
    Mx.Opts.validate!(opts, [:key, :compile], who)

    if flag!(opts, :compile, who) do
      {t, _lnw, _lml, w} = compiled_is(gf, args, Choicemap.new(observations), n, [key(opts)], nil)
      %{trace: t, log_weights: w, log_ml: 0.0}
    else
      {t, w} = V.generate(gf, args, observations, n, key: key(opts))
      Mx.eval(w)
      %{trace: V.force(t), log_weights: w, log_ml: 0.0}
    end
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

        {V.take(trace, idx), Mx.broadcast(Mx.tensor(0.0, type: :f64), {n}),
         add(lml, lse - :math.log(n))}
      else
        {trace, log_w, lml}
      end

    trace = if rejuv, do: rejuv.(trace, ks[1]), else: trace

    {trace, inc, _, _} =
      V.update(trace, args, :unknown_change, obs, key: ks[2], shared_observations: obs)

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
  @spec smc(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
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
  accepted}` (boolean `[n]`). Options: `tau:` (required), `key:`,
  `compile:` (see `choice_gradients/3`). For per-chain steps adapted by
  dual averaging and a diagonal metric, run `sample/3` with `algorithm:
  :mala`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 4, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.Vectorized.mala(t, Gen.select(:mu), tau: 0.2, key: Mx.Random.key(1))
      iex> {Mx.describe(acc), Mx.describe(t2[:mu])}
      {"bool[4]", "f64[4]"}
  """
  @spec mala(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t()}
  def mala(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:tau, :key, :compile], "Gen.Inference.Vectorized.mala")
    tau = positive!(opts, :tau, nil, "Gen.Inference.Vectorized.mala")
    compile? = flag!(opts, :compile, "Gen.Inference.Vectorized.mala")

    n = V.particles(trace)
    {k_move, k_accept} = Gen.Inference.two_keys(opts)
    paths = selected_paths!(trace, sel, n)
    xs = Enum.map(paths, &Gen.get_choices(trace)[&1])
    gs = gradients(trace, paths, xs, n, compile?)
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
    new_gs = gradients(trace, paths, new_xs, n, compile?)
    fwd = log_q(new_xs, xs, gs, tau, sd)
    bwd = log_q(xs, new_xs, new_gs, tau, sd)

    {proposed, _} =
      generate_particles(trace.gen_fn, trace.args, with_values(trace, paths, new_xs), n, compile?)

    log_alpha = Mx.add(Mx.subtract(proposed.score, trace.score), Mx.subtract(bwd, fwd))
    decide(trace, proposed, log_alpha, k_accept, n)
  end

  @doc """
  Per particle, the log joint of a vectorized trace (its score, f64 `[n]`)
  and its gradient with respect to the selected continuous choices: a
  choicemap of `[n | shape]` arrays whose row i is particle i's gradient
  (the gradient of the sum over particles, the particles being
  independent).

  With `compile: true` (the default) the value and gradient of that sum are
  one `Mx.compile/2` tape per structure (the model, its arguments'
  non-array values, the addresses and shapes of the choices, the selection,
  `n`), replayed with the selected values, the other choices and the
  arguments' arrays as inputs, so the samplers that call it every step
  (`mala/3`, `hmc/3`, `sample/3`) replay one tape per gradient. The result
  equals `compile: false`'s within floating-point rounding; a model that
  needs a value while tracing runs uncompiled (remembered per structure).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 2.0}, 2, key: Mx.Random.key(0))
      iex> {_lp, g} = Gen.Inference.Vectorized.choice_gradients(t, Gen.select(:mu))
      iex> # d/dmu [-mu²/2 - (y - mu)²/2] = y - 2 mu
      iex> Enum.zip_with(Mx.to_list(g[:mu]), Mx.to_list(t[:mu]), fn gi, mu -> abs(gi - (2.0 - 2 * mu)) < 1.0e-12 end)
      [true, true]
  """
  @spec choice_gradients(Trace.t(), Selection.t(), keyword()) :: {Mx.t(), Choicemap.t()}
  def choice_gradients(%Trace{} = trace, %Selection{} = sel, opts \\ []) do
    who = "Gen.Inference.Vectorized.choice_gradients"
    Mx.Opts.validate!(opts, [:compile], who)
    n = V.particles(trace)
    paths = selected_paths!(trace, sel, n)

    gs =
      gradients(
        trace,
        paths,
        Enum.map(paths, &Gen.get_choices(trace)[&1]),
        n,
        flag!(opts, :compile, who)
      )

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
  acc}`). Chains that accept no move in the whole run are reported with
  `Logger.warning/1`.

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

    Mx.Opts.validate!(
      opts,
      [:samples, :burn, :thin, :select, :callback, :key],
      "Gen.Inference.Vectorized.run"
    )

    samples = count!(opts, :samples, nil, 0, "Gen.Inference.Vectorized.run")
    burn = count!(opts, :burn, 0, 0, "Gen.Inference.Vectorized.run")
    thin = count!(opts, :thin, 1, 1, "Gen.Inference.Vectorized.run")
    select = fun!(opts, :select, 1, "Gen.Inference.Vectorized.run")
    callback = fun!(opts, :callback, 1, "Gen.Inference.Vectorized.run")
    key = Keyword.get(opts, :key)

    iterations = burn + samples * thin

    {_t, kept, moved} =
      Enum.reduce(0..(iterations - 1)//1, {V.force(trace), [], nil}, fn i, {t, kept, moved} ->
        k_opts = if key, do: [key: Mx.Random.fold_in(key, i)], else: []

        {t2, acc} =
          case kernel.(t, k_opts) do
            {%Trace{} = t2, %Mx.Array{} = acc} ->
              {V.force(t2), acc}

            other ->
              raise ArgumentError,
                    "Gen.Inference.Vectorized.run: a kernel must return {vectorized_trace, accepted}, got #{inspect(other)}"
          end

        if callback, do: callback.(%{iteration: i, trace: t2, accepted: acc})
        keep? = i >= burn and rem(i - burn + 1, thin) == 0
        moved = Mx.eval(if(moved, do: Mx.logical_or(moved, acc), else: Mx.as_type(acc, :bool)))

        {t2, if(keep?, do: [if(select, do: Mx.eval(select.(t2)), else: t2) | kept], else: kept),
         moved}
      end)

    warn_stuck(moved, iterations)
    Enum.reverse(kept)
  end

  # Chains that accepted no move in the whole run are stuck at their start: say so.
  defp warn_stuck(nil, _iterations), do: :ok

  defp warn_stuck(moved, iterations) do
    n = Mx.size(moved)
    stuck = n - (moved |> Mx.as_type(:s64) |> Mx.sum() |> Mx.to_number())

    if stuck > 0 do
      Logger.warning(
        "Gen.Inference.Vectorized.run: #{stuck} of #{n} chains never accepted a move in #{iterations} iterations: they " <>
          "are stuck at their start; adapt the gradient kernels' steps (Gen.Inference.Vectorized.sample/3) or give MH " <>
          "a proposal nearer the posterior"
      )
    end
  end

  # Row i of d/dx Σ_j log p(x_j) is d/dx_i log p(x_i): chains are independent.
  defp gradients(trace, paths, xs, n, false = _compile?) do
    f = fn vals ->
      {w, _} = V.assess(trace.gen_fn, trace.args, with_values(trace, paths, vals), n)
      Mx.sum(w)
    end

    {_lp, gs} = Mx.value_and_grad(f).(xs)
    Mx.eval(gs)
    gs
  end

  # The same from one tape per structure: the selected values, the other choices and the
  # arguments' arrays are its inputs.
  defp gradients(trace, paths, xs, n, true) do
    others = for {p, v} <- Choicemap.to_list(Gen.get_choices(trace)), p not in paths, do: {p, v}
    vg = compiled(:gradients, Mx.value_and_grad(&sum_log_joint/5))
    {_lp, gs} = vg.(xs, others, trace.args, paths, {trace.gen_fn, n})
    gs
  end

  # Gen.Vectorized.generate_particles of every choice (the proposal of mala/hmc, from the
  # per-process key as before), compiled like the gradient; choices come back as the arrays given.
  defp generate_particles(gf, args, cm, n, false = _compile?),
    do: V.generate_particles(gf, args, cm, n, key: Gen.next_key())

  defp generate_particles(gf, args, cm, n, true) do
    given = Choicemap.to_list(cm)

    {skeleton, leaves, w} =
      compiled(:generate, &generate_tape/5).(Gen.next_key(), args, given, gf, n)

    trace = refill(skeleton, List.to_tuple(leaves), List.to_tuple(Enum.map(given, &elem(&1, 1))))
    {%{trace | gen_fn: gf, args: args}, w}
  end

  defp generate_tape(key, args, given, gf, n) do
    {{t, w}, spread} =
      V.with_spread_log(fn -> V.generate_particles(gf, args, Choicemap.new(given), n, key: key) end)

    {skeleton, leaves} = hollow(%{t | gen_fn: nil, args: []}, Enum.map(given, &elem(&1, 1)), spread)
    {skeleton, leaves, w}
  end

  defp sum_log_joint(xs, others, args, paths, {gf, n}) do
    cm =
      paths
      |> Enum.zip(xs)
      |> Enum.reduce(Choicemap.new(others), fn {p, x}, acc -> Choicemap.put(acc, p, x) end)

    {w, _} = V.assess(gf, args, cm, n)
    Mx.sum(w)
  end

  # ---- HMC and adaptive MALA / HMC over n chains -------------------------------------------

  @doc """
  One Hamiltonian Monte Carlo step on each of the `n` independent chains of
  a vectorized trace, on the selected continuous choices: momenta p ~ N(0,
  M) per chain, `n_leapfrog` leapfrog steps with per-chain gradients (as
  in `mala/3`), accepted per chain with exp(−ΔH) (a non-finite energy
  rejects). All chains move in one graph per leapfrog step. Returns
  `{trace, accepted}` (boolean `[n]`).

  Options: `step_size:` (required: a positive number, or an f64 `[n]`
  array of per-chain steps), `n_leapfrog:` (10), `inv_metric:` (the
  diagonal inverse metric M⁻¹ shared by the chains: a list of positive
  numbers, one per coordinate of a chain's selected values flattened in
  address order; unit by default), `key:`, `compile:` (the gradients and
  the proposal's score from compiled tapes, see `choice_gradients/3`;
  `false`: the dynamic path). With one leapfrog step HMC is
  MALA with step ε (drift ε²/2·M⁻¹∇, noise ε·M^(−1/2)z).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 4, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.Vectorized.hmc(t, Gen.select(:mu), step_size: 0.3, key: Mx.Random.key(1))
      iex> {Mx.describe(acc), Mx.describe(t2[:mu])}
      {"bool[4]", "f64[4]"}
  """
  @spec hmc(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t()}
  def hmc(%Trace{} = trace, %Selection{} = sel, opts) do
    who = "Gen.Inference.Vectorized.hmc"
    Mx.Opts.validate!(opts, [:step_size, :n_leapfrog, :inv_metric, :key, :compile], who)
    n = V.particles(trace)
    paths = selected_paths!(trace, sel, n)
    eps = step_sizes!(Keyword.get(opts, :step_size), n, who)
    inv = inv_metric!(Keyword.get(opts, :inv_metric), trace, paths, who)

    {t, accepted, _alpha} =
      hmc_move(
        trace,
        paths,
        eps,
        inv,
        count!(opts, :n_leapfrog, 10, 1, who),
        Gen.Inference.two_keys(opts),
        flag!(opts, :compile, who)
      )

    {t, accepted}
  end

  @doc """
  Adaptive MALA or HMC on the `n` chains of a vectorized trace: `warmup`
  iterations that adapt, then `samples` kept draws (every `thin`-th
  iteration), all chains in one graph.

  Adaptation is Stan's, from `Gen.Inference.Adapt`:

    * the step size, *per chain*: each chain starts from Stan's heuristic
      (double or halve ε until one step's acceptance crosses 0.8) and runs
      its own Nesterov dual averaging towards `target_accept`, so chains
      started far apart (from the prior) each find a step that moves them;
      the draws use each chain's averaged step;
    * the diagonal inverse metric, *shared*: the variances of every
      chain's positions, pooled, in Stan's windows (a fast buffer, slow
      windows doubling, a terminal buffer, regularized towards 10⁻³);
      after each window the step-size heuristic and dual averaging restart
      around the chains' current steps.

  After the draws, `Logger.warning/1` reports the chains whose acceptance
  rate stayed under 5 % (their step is too large where they are: they do
  not move), and a mean acceptance over 99 % (the steps are too small to
  explore).

  Options: `algorithm:` (`:hmc`, or `:mala`, HMC with one leapfrog step),
  `warmup:` (500), `samples:` (500), `thin:` (1), `key:` (iteration i uses
  `Mx.Random.fold_in(key, i)`), `target_accept:` (0.8 for HMC, 0.574 for
  MALA, the optimal rate of Roberts and Rosenthal 1998), `step_size:`
  (1.0: the heuristic's start, or the fixed step without adaptation),
  `n_leapfrog:` (10, HMC only), `inv_metric:` (unit; see `hmc/3`),
  `adapt_step_size:` and `adapt_metric:` (true), `compile:` (true; see
  `hmc/3`), `select:` (keep
  `select.(trace)` instead of traces), `callback:` (called after every
  iteration with `%{iteration: i, warmup?: bool, trace: t, accept_prob:
  f64[n], step_size: [float]}`).

  Returns a map: `samples` (the kept traces or selected values), `trace`
  (the last), `step_size` (f64 `[n]`, each chain's adapted step),
  `inv_metric` (the adapted diagonal, a list), `accept_rate` (f64 `[n]`,
  each chain's mean acceptance probability over the draws) and
  `warmup_accept` (the chains' mean acceptance probability at each warmup
  iteration).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.5}, 8, key: Mx.Random.key(0))
      iex> r = Gen.Inference.Vectorized.sample(t, Gen.select(:mu), algorithm: :mala, warmup: 20, samples: 3, key: Mx.Random.key(1), select: &Mx.to_list(&1[:mu]))
      iex> {length(r.samples), Mx.describe(r.step_size), Mx.describe(r.accept_rate)}
      {3, "f64[8]", "f64[8]"}
  """
  @spec sample(Trace.t(), Selection.t(), keyword()) :: map()
  def sample(%Trace{} = trace, %Selection{} = sel, opts \\ []) do
    who = "Gen.Inference.Vectorized.sample"

    Mx.Opts.validate!(
      opts,
      [
        :algorithm,
        :warmup,
        :samples,
        :thin,
        :key,
        :target_accept,
        :step_size,
        :n_leapfrog,
        :inv_metric,
        :adapt_step_size,
        :adapt_metric,
        :select,
        :callback,
        :compile
      ],
      who
    )

    algorithm = Keyword.get(opts, :algorithm, :hmc)

    steps =
      case algorithm do
        :hmc ->
          count!(opts, :n_leapfrog, 10, 1, who)

        :mala ->
          if Keyword.has_key?(opts, :n_leapfrog),
            do:
              raise(
                ArgumentError,
                "#{who}: n_leapfrog: is for algorithm: :hmc (MALA takes one step)"
              ),
            else: 1

        other ->
          raise ArgumentError, "#{who}: algorithm: must be :hmc or :mala, got #{inspect(other)}"
      end

    warmup = count!(opts, :warmup, 500, 0, who)
    samples = count!(opts, :samples, 500, 1, who)
    thin = count!(opts, :thin, 1, 1, who)
    delta = Keyword.get(opts, :target_accept, if(algorithm == :mala, do: 0.574, else: 0.8))

    unless is_number(delta) and delta > 0 and delta < 1 do
      raise ArgumentError, "#{who}: target_accept: must lie in (0, 1), got #{inspect(delta)}"
    end

    eps0 = positive!(opts, :step_size, 1.0, who)

    [adapt_eps, adapt_metric, compile?] =
      Enum.map([:adapt_step_size, :adapt_metric, :compile], &flag!(opts, &1, who))

    select = fun!(opts, :select, 1, who)
    callback = fun!(opts, :callback, 1, who)
    n = V.particles(trace)
    paths = selected_paths!(trace, sel, n)
    inv = Keyword.get(opts, :inv_metric) |> inv_metric!(trace, paths, who) |> flat_metric()
    key = key(opts)
    trace = V.force(trace)

    eps =
      if adapt_eps and warmup > 0,
        do:
          init_step_sizes(
            trace,
            paths,
            List.duplicate(eps0, n),
            metric_arrays(inv, trace, paths),
            steps,
            Mx.Random.fold_in(key, -1),
            compile?
          ),
        else: List.duplicate(eps0, n)

    das = Enum.map(eps, &Adapt.dual_averaging(&1, delta: delta))

    step = fn t, eps, inv, i ->
      hmc_move(
        t,
        paths,
        Mx.tensor(eps, type: :f64),
        metric_arrays(inv, t, paths),
        steps,
        Gen.Inference.two_keys(key: Mx.Random.fold_in(key, i)),
        compile?
      )
    end

    {t, das, inv, _win, wacc} =
      Enum.reduce(0..(warmup - 1)//1, {trace, das, inv, Adapt.windows(warmup), []}, fn i,
                                                                                       {t, das,
                                                                                        inv, win,
                                                                                        wacc} ->
        eps = if adapt_eps, do: Enum.map(das, &Adapt.step_size/1), else: eps
        {t, _acc, alpha} = step.(t, eps, inv, i)
        t = V.force(t)
        alphas = Mx.to_list(alpha)

        if callback,
          do:
            callback.(%{iteration: i, warmup?: true, trace: t, accept_prob: alpha, step_size: eps})

        das = if adapt_eps, do: Enum.zip_with(das, alphas, &Adapt.learn_step_size/2), else: das

        {win, event} =
          if adapt_metric,
            do: Adapt.learn_variances(win, positions(t, paths, n)),
            else: {win, :none}

        {das, inv} =
          case event do
            :none ->
              {das, inv}

            {:metric, var} ->
              # A new metric: re-run the step heuristic per chain and restart dual averaging around it.
              steps0 = Enum.map(das, &Adapt.step_size/1)

              eps =
                init_step_sizes(
                  t,
                  paths,
                  steps0,
                  metric_arrays(var, t, paths),
                  steps,
                  Mx.Random.fold_in(key, -2 - i),
                  compile?
                )

              {if(adapt_eps, do: Enum.zip_with(das, eps, &Adapt.restart/2), else: das), var}
          end

        {t, das, inv, win, [Enum.sum(alphas) / n | wacc]}
      end)

    eps = if adapt_eps and warmup > 0, do: Enum.map(das, &Adapt.final_step_size/1), else: eps

    {t, kept, sums} =
      Enum.reduce(0..(samples * thin - 1), {t, [], List.duplicate(0.0, n)}, fn j,
                                                                               {t, kept, sums} ->
        i = warmup + j
        {t, _acc, alpha} = step.(t, eps, inv, i)
        t = V.force(t)

        if callback,
          do:
            callback.(%{
              iteration: i,
              warmup?: false,
              trace: t,
              accept_prob: alpha,
              step_size: eps
            })

        keep? = rem(j + 1, thin) == 0
        kept = if keep?, do: [if(select, do: Mx.eval(select.(t)), else: t) | kept], else: kept
        {t, kept, Enum.zip_with(sums, Mx.to_list(alpha), &(&1 + &2))}
      end)

    rates = Enum.map(sums, &(&1 / (samples * thin)))
    warn_acceptance(rates, delta, who)

    %{
      samples: Enum.reverse(kept),
      trace: t,
      step_size: Mx.tensor(eps, type: :f64),
      inv_metric: inv,
      accept_rate: Mx.tensor(rates, type: :f64),
      warmup_accept: Enum.reverse(wacc)
    }
  end

  # One HMC move of every chain: {trace, accepted [n], acceptance probability f64 [n]}.
  defp hmc_move(trace, paths, eps, inv, steps, {k_move, k_accept}, compile?) do
    n = V.particles(trace)
    {proposed, log_alpha} = hmc_proposal(trace, paths, eps, inv, steps, k_move, n, compile?)
    # min(1, exp(log α)) per chain; a non-finite energy (NaN) has probability 0.
    alpha = log_alpha |> Mx.min(0.0) |> Mx.exp()
    alpha = Mx.select(Mx.is_nan(alpha), 0.0, alpha)
    {t, accepted} = decide(trace, proposed, log_alpha, k_accept, n)
    {t, accepted, Mx.eval(alpha)}
  end

  # Leapfrog from momenta p ~ N(0, M) (M = inv⁻¹): the proposed trace and log α = −ΔH per chain.
  defp hmc_proposal(trace, paths, eps, inv, steps, key, n, compile?) do
    xs = Enum.map(paths, &Gen.get_choices(trace)[&1])
    keys = Mx.Random.split(key, length(xs))

    ps =
      Enum.with_index(Enum.zip(xs, inv), fn {x, m}, i ->
        Mx.Random.normal(keys[i], shape: Mx.shape(x), type: Mx.type(x)) |> Mx.divide(Mx.sqrt(m))
      end)

    e = Enum.map(xs, &per_chain(eps, &1))
    half = Enum.map(e, &Mx.multiply(&1, 0.5))
    gs = gradients(trace, paths, xs, n, compile?)

    {xs1, ps1, _} =
      Enum.reduce(1..steps, {xs, ps, gs}, fn _, {x, p, g} ->
        p_half = Enum.zip_with([p, g, half], fn [p, g, h] -> Mx.add(p, Mx.multiply(h, g)) end)

        x2 =
          Enum.zip_with([x, p_half, inv, e], fn [x, p, m, e] ->
            Mx.add(x, Mx.multiply(e, Mx.multiply(m, p)))
          end)

        Mx.eval(x2)
        g2 = gradients(trace, paths, x2, n, compile?)
        p2 = Enum.zip_with([p_half, g2, half], fn [p, g, h] -> Mx.add(p, Mx.multiply(h, g)) end)
        Mx.eval(p2)
        {x2, p2, g2}
      end)

    {proposed, _} =
      generate_particles(trace.gen_fn, trace.args, with_values(trace, paths, xs1), n, compile?)

    log_alpha =
      Mx.add(
        Mx.subtract(proposed.score, trace.score),
        Mx.subtract(kinetic(ps, inv), kinetic(ps1, inv))
      )

    {proposed, log_alpha}
  end

  # ½ Σ M⁻¹ p² per chain.
  defp kinetic(ps, inv) do
    ps
    |> Enum.zip_with(inv, fn p, m -> p |> Mx.square() |> Mx.multiply(m) |> sum_per_chain() end)
    |> Enum.reduce(&Mx.add/2)
    |> Mx.multiply(0.5)
  end

  defp sum_per_chain(a),
    do: if(Mx.rank(a) > 1, do: Mx.sum(a, axes: Enum.to_list(1..(Mx.rank(a) - 1))), else: a)

  # The per-chain steps [n] laid along the chain axis of x: [n, 1, ...].
  defp per_chain(eps, x),
    do: Mx.reshape(eps, List.to_tuple([elem(Mx.shape(x), 0) | List.duplicate(1, Mx.rank(x) - 1)]))

  # Stan's heuristic for each chain: double (or halve) ε until one step's acceptance crosses 0.8.
  defp init_step_sizes(trace, paths, eps, inv, steps, key, compile?) do
    n = V.particles(trace)
    log08 = :math.log(0.8)

    dh = fn eps, i ->
      {_, log_alpha} =
        hmc_proposal(
          trace,
          paths,
          Mx.tensor(eps, type: :f64),
          inv,
          steps,
          Mx.Random.fold_in(key, i),
          n,
          compile?
        )

      # Erlang orders atoms above numbers: a non-finite energy change must stay a float.
      Enum.map(Mx.to_list(log_alpha), fn x ->
        if is_float(x), do: x, else: if(x == :infinity, do: 1.0e300, else: -1.0e300)
      end)
    end

    dirs = Enum.map(dh.(eps, 0), &if(&1 > log08, do: 1, else: -1))

    Enum.reduce_while(1..100, {eps, List.duplicate(true, n)}, fn i, {eps, active} ->
      ds = dh.(eps, i)

      {eps, active} =
        [eps, active, dirs, ds]
        |> Enum.zip_with(fn [e, a, dir, d] ->
          cond do
            not a or e > 1.0e7 or e < 1.0e-300 -> {e, false}
            dir == 1 and d > log08 -> {e * 2, true}
            dir == -1 and d < log08 -> {e / 2, true}
            true -> {e, false}
          end
        end)
        |> Enum.unzip()

      if Enum.any?(active), do: {:cont, {eps, active}}, else: {:halt, {eps, active}}
    end)
    |> elem(0)
  end

  # Each chain's selected values flattened in address order: n lists of floats.
  defp positions(trace, paths, n) do
    paths
    |> Enum.map(fn p ->
      Gen.get_choices(trace)[p] |> Mx.as_type(:f64) |> Mx.reshape({n, :auto})
    end)
    |> Mx.concatenate(axis: 1)
    |> Mx.to_list()
  end

  defp flat_metric(arrays),
    do: Enum.flat_map(arrays, &(&1 |> Mx.reshape({:auto}) |> Mx.to_list()))

  # The flat diagonal (one number per coordinate of a chain) as one array per path, shaped as a chain's value.
  defp metric_arrays(flat, trace, paths) do
    {arrays, []} =
      Enum.map_reduce(paths, flat, fn p, rest ->
        x = Gen.get_choices(trace)[p]
        shape = x |> Mx.shape() |> Tuple.delete_at(0)
        {mine, rest} = Enum.split(rest, Enum.reduce(Tuple.to_list(shape), 1, &(&1 * &2)))
        {Mx.reshape(Mx.tensor(mine, type: Mx.type(x)), shape), rest}
      end)

    arrays
  end

  defp inv_metric!(nil, trace, paths, _who),
    do:
      Enum.map(
        paths,
        &Mx.ones(Tuple.delete_at(Mx.shape(Gen.get_choices(trace)[&1]), 0),
          type: Mx.type(Gen.get_choices(trace)[&1])
        )
      )

  defp inv_metric!(list, trace, paths, who) when is_list(list) do
    d =
      Enum.sum(
        Enum.map(paths, fn p -> div(Mx.size(Gen.get_choices(trace)[p]), V.particles(trace)) end)
      )

    unless length(list) == d and Enum.all?(list, &(is_number(&1) and &1 > 0)) do
      raise ArgumentError,
            "#{who}: inv_metric: must be a list of #{d} positive numbers (one per coordinate of a chain's selected values), got #{inspect(list)}"
    end

    metric_arrays(Enum.map(list, &(&1 * 1.0)), trace, paths)
  end

  defp inv_metric!(other, _trace, _paths, who),
    do:
      raise(
        ArgumentError,
        "#{who}: inv_metric: must be a list of positive numbers, got #{inspect(other)}"
      )

  defp step_sizes!(x, n, _who) when is_number(x) and x > 0,
    do: Mx.broadcast(Mx.tensor(x * 1.0, type: :f64), {n})

  defp step_sizes!(%Mx.Array{shape: {n}} = a, n, _who), do: Mx.as_type(a, :f64)

  defp step_sizes!(other, n, who) do
    raise ArgumentError,
          "#{who}: step_size: must be a positive number or an f64 [#{n}] array of per-chain steps (required), got #{inspect(other)}"
  end

  defp flag!(opts, name, who) do
    case Keyword.get(opts, name, true) do
      b when is_boolean(b) ->
        b

      other ->
        raise ArgumentError, "#{who}: #{name}: must be true or false, got #{inspect(other)}"
    end
  end

  # Acceptance near 0 for a chain (it does not move) or near 1 for the chains together (their steps
  # are too small): say so. One chain near 1 is no alarm: over a few hundred draws a chain with a
  # well-adapted step can accept nearly everything.
  defp warn_acceptance(rates, delta, who) do
    n = length(rates)
    low = Enum.count(rates, &(&1 < 0.05))
    mean = Enum.sum(rates) / n

    if low > 0 do
      Logger.warning(
        "#{who}: #{low} of #{n} chains accepted under 5% of their proposals over the draws (mean acceptance " <>
          "#{Float.round(mean, 3)}, target #{delta}): their steps are too large where they are, so they barely move; " <>
          "lengthen the warmup, start the chains nearer the posterior, or reparameterize the model"
      )
    end

    if mean > 0.99 do
      Logger.warning(
        "#{who}: the chains accepted #{Float.round(100 * mean, 1)}% of their proposals over the draws (target #{delta}): " <>
          "their steps are too small to explore; keep adapt_step_size: true, or give a larger step_size:"
      )
    end
  end

  defp with_values(trace, paths, vals) do
    Enum.zip(paths, vals)
    |> Enum.reduce(Gen.get_choices(trace), fn {p, v}, acc -> Choicemap.put(acc, p, v) end)
  end

  # Per chain: log N(to; from + τ·g, sd²·I) summed over every element but the chain axis.
  defp log_q(to, from, gs, tau, sd) do
    Enum.zip_with([to, from, gs], fn [t, f, g] ->
      z = Mx.divide(Mx.subtract(t, Mx.add(f, Mx.multiply(g, tau))), sd)
      per_chain = div(Mx.size(t), elem(Mx.shape(t), 0))
      sq = Mx.square(z)
      sq = if Mx.rank(sq) > 1, do: Mx.sum(sq, axes: Enum.to_list(1..(Mx.rank(sq) - 1))), else: sq

      Mx.subtract(
        Mx.multiply(sq, -0.5),
        per_chain * (:math.log(sd) + 0.5 * :math.log(2 * :math.pi()))
      )
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
        unless match?(%Mx.Array{}, v) and Mx.Type.float?(Mx.type(v)) and Mx.rank(v) >= 1 and
                 elem(Mx.shape(v), 0) == n do
          raise ArgumentError,
                "Gen.Inference.Vectorized: the selected choice at #{Choicemap.format_path(path)} is #{inspect(v)}, " <>
                  "not a floating-point array with the particle axis #{n}; select only continuous choices"
        end

        path
      end

    if paths == [],
      do:
        none_selected!(
          trace,
          sel,
          "Gen.Inference.Vectorized",
          "select the continuous choices to move"
        )

    paths
  end

  # ---- options ------------------------------------------------------------------------------

  defp key(opts), do: Keyword.get_lazy(opts, :key, &Gen.next_key/0)

  defp add(:neg_infinity, _), do: :neg_infinity
  defp add(a, b) when is_number(a) and is_number(b), do: a + b
  defp add(_, _), do: :neg_infinity

  defp rejuvenation!(nil, _steps), do: nil

  defp rejuvenation!(%Selection{} = sel, steps),
    do: rejuvenation!(fn t, opts -> mh(t, sel, opts) end, steps)

  # A kernel as in Gen.Inference.Kernel, on vectorized traces: fn trace, opts -> {trace, accepted} end.
  defp rejuvenation!(kernel, steps)
       when is_function(kernel, 2) and is_integer(steps) and steps >= 1 do
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
