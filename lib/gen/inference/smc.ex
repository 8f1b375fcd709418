defmodule Gen.Inference.SMC do
  @moduledoc """
  A particle filter (Gen.jl's `initialize_particle_filter`,
  `maybe_resample!` and `particle_filter_step!`) on the GFI alone:
  `Gen.generate/4` at step 0, `Gen.update/5` to move each particle to the
  next step's arguments with the new observations. The weight increment of
  a step is the update weight, log p(new observations, new choices | old) −
  log q(new choices), q being the model's prior on the new choices.

  With `rejuvenate: kernel` (a `Gen.Inference.Kernel.t()`), every particle
  is moved by the kernel after each step, once the step's resampling (if
  any) is done: duplicates made by resampling spread out again, which keeps
  static parameters from collapsing onto the few values drawn at step 0.
  A kernel that leaves the step's posterior invariant keeps the weighted
  particles properly weighted, so the weights and the log marginal
  likelihood estimate are not changed by it.

  `filter/5` is the streaming form for long series: each particle holds
  only the trace of its latest step of a Markov kernel, so memory and the
  cost of a step do not grow with t.

  A NaN weight raises `Gen.NaNError` naming the site (from the GFI call)
  rather than giving NaN weights and a NaN log-ML: it is a bug in the model.

  Use `smc` through `Gen.Inference.smc/5`; SMCP3 (`Gen.Inference.SMCP3`)
  runs on the same loop with its own moves.
  """

  alias Gen.Choicemap
  alias Gen.Inference.Resample

  # The options of the particle-filter loop run/6, shared by smc/5, filter/5 and SMCP3.
  @run_opts [:key, :ess_threshold, :resampling, :rejuvenate, :callback]

  @doc false
  @spec run_opts() :: [atom()]
  def run_opts, do: @run_opts

  @doc false
  @spec smc(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
          {[Gen.Trace.t()], Mx.t(), Mx.t()}
  def smc(gf, args_fn, observations, n, opts) do
    where = "Gen.Inference.smc"
    Mx.Opts.validate!(opts, @run_opts, where)
    args_fn!(args_fn, where)
    observations!(observations, where)

    init = fn obs, k ->
      {tr, w} = Gen.generate(gf, args_fn.(0), obs, key: k)
      {Gen.Inference.force(tr), Mx.to_number(w)}
    end

    step = fn tr, t, obs, k ->
      {tr2, w, _, _} = Gen.update(tr, args_fn.(t), :unknown_change, obs, key: k)
      {Gen.Inference.force(tr2), Mx.to_number(w)}
    end

    {traces, lnw, lml} = run(init, step, observations, n, opts, where)
    {traces, Mx.tensor(lnw, type: :f64), Mx.tensor(lml, type: :f64)}
  end

  @doc """
  A particle filter over a long (or unbounded) series with memory and
  per-step cost that do not grow with the step t. The model is a Markov
  chain given by two generative functions:

    * `init_gf`, run on `init_args` (option, default `[]`) at step 0;
    * `step_gf`, run on `[t, state | params]` at step t ≥ 1, `state` being
      the return value of the particle's previous step (its latent state)
      and `params` the `params:` option (default `[]`).

  `observations` is any enumerable (a list or a `Stream`) of choicemaps,
  one per step, at the addresses of that step's function. A particle holds
  only its latest step's trace: step t is `Gen.generate/4` of `step_gf` on
  the previous state with the step's observations (the bootstrap proposal),
  weighted by the generate weight. With `proposal: q`, a generative
  function on `[t, state (nil at step 0), observations]` whose choices are
  addresses of the step, those choices are constrained too and the weight
  is the generate weight minus q's log density of them. Resampling as in `Gen.Inference.smc/5`
  (`ess_threshold:`, `resampling:`), with the same key scheme (`key:`).

  Returns `%{traces: [...], log_weights: f64[n], log_ml: f64, history:
  nil | [[term()]]}`: the last step's traces, their normalized log weights,
  the log marginal likelihood estimate, and with `keep: f` (a function of
  a step's trace) each particle's ancestral line `[f.(trace_0), ...,
  f.(trace_T)]` (which does grow with T). `callback: f` is called after
  every step with `%{step: t, ess: ess, log_ml: estimate so far, traces:
  the particles' traces}`.

      iex> import Gen
      iex> init = gen fn -> x = trace(:x, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(x, 0.5)); x end
      iex> step = gen fn _t, prev -> x = trace(:x, Gen.Dist.normal(Mx.multiply(prev, 0.9), 0.5)); trace(:y, Gen.Dist.normal(x, 0.5)); x end
      iex> obs = Stream.map(0..4, fn t -> %{y: 0.1 * t} end)
      iex> r = Gen.Inference.SMC.filter(init, step, obs, 8, key: Mx.Random.key(0), keep: &Mx.to_number(&1[:y]))
      iex> {length(r.traces), Mx.describe(r.log_weights), Mx.describe(r.log_ml), hd(r.history)}
      {8, "f64[8]", "f64", [0.0, 0.1, 0.2, 0.30000000000000004, 0.4]}
  """
  @spec filter(Gen.gen_fn(), Gen.gen_fn(), Enumerable.t(), pos_integer(), keyword()) :: %{
          traces: [Gen.Trace.t()],
          log_weights: Mx.t(),
          log_ml: Mx.t(),
          history: nil | [[term()]]
        }
  def filter(init_gf, step_gf, observations, n, opts \\ []) do
    where = "Gen.Inference.SMC.filter"
    Mx.Opts.validate!(opts, @run_opts ++ [:init_args, :params, :keep, :proposal], where)

    unless Enumerable.impl_for(observations),
      do:
        raise(
          ArgumentError,
          "#{where}: observations must be an enumerable of choicemaps, one per step, got #{inspect(observations)}"
        )

    if Keyword.has_key?(opts, :rejuvenate),
      do:
        raise(
          ArgumentError,
          "#{where}: rejuvenate: is not supported (a particle holds only its latest step); use Gen.Inference.smc/5"
        )

    init_args = list_opt!(opts, :init_args, where)
    params = list_opt!(opts, :params, where)
    keep = Keyword.get(opts, :keep)

    unless keep == nil or is_function(keep, 1),
      do:
        raise(
          ArgumentError,
          "#{where}: keep: must be a function of a step's trace, or nil, got #{inspect(keep)}"
        )

    # A particle is {trace of its latest step, reversed kept values or nil}.
    hist = fn tr, past -> if keep, do: [Mx.eval(keep.(tr)) | past || []], else: nil end

    proposal = Keyword.get(opts, :proposal)

    unless proposal == nil or
             Gen.GenerativeFunction.impl_for(proposal) not in [nil, Gen.GenerativeFunction.Any],
           do:
             raise(
               ArgumentError,
               "#{where}: proposal: must be a generative function on [t, state (nil at step 0), observations], got #{inspect(proposal)}"
             )

    init = fn obs, k ->
      {tr, w} = propose_generate(init_gf, init_args, proposal, [0, nil, obs], obs, k)
      {{tr, hist.(tr, nil)}, w}
    end

    step = fn {prev, past}, t, obs, k ->
      state = Gen.get_retval(prev)
      {tr, w} = propose_generate(step_gf, [t, state | params], proposal, [t, state, obs], obs, k)
      {{tr, hist.(tr, past)}, w}
    end

    {particles, lnw, lml} =
      run(init, step, observations, n, Keyword.delete(opts, :rejuvenate), where)

    {traces, pasts} = Enum.unzip(particles)

    %{
      traces: traces,
      log_weights: Mx.tensor(lnw, type: :f64),
      log_ml: Mx.tensor(lml, type: :f64),
      history: if(keep, do: Enum.map(pasts, &Enum.reverse/1))
    }
  end

  # One step of one particle: the prior (bootstrap) or the proposal's choices, weighed generate − log q.
  defp propose_generate(gf, args, nil, _q_args, obs, key) do
    {tr, w} = Gen.generate(gf, args, obs, key: key)
    {Gen.Inference.force(tr), Mx.to_number(w)}
  end

  defp propose_generate(gf, args, q, q_args, obs, key) do
    ks = Mx.Random.split(key, 2)
    {u, log_q, _} = Gen.propose(q, q_args, key: ks[0])
    {tr, w} = Gen.generate(gf, args, Choicemap.merge(obs, u), key: ks[1])
    {Gen.Inference.force(tr), Mx.to_number(w) - Mx.to_number(log_q)}
  end

  @doc false
  # The particle-filter loop on generic moves: init.(obs, key) and step.(particle, t, obs, key)
  # return {particle, log weight (increment)}. Returns {particles, normalized log weights, log ML}.
  @spec run(function(), function(), Enumerable.t(), pos_integer(), keyword(), String.t()) ::
          {[term()], [float() | :neg_infinity], float()}
  def run(init, step, observations, n, opts, where) do
    n!(n, where)
    threshold = threshold!(Keyword.get(opts, :ess_threshold, 0.5), where)
    resample = scheme!(Keyword.get(opts, :resampling, :multinomial), where)
    kernel = kernel!(Keyword.get(opts, :rejuvenate), where)
    callback = callback!(Keyword.get(opts, :callback), where)
    key = Keyword.get_lazy(opts, :key, &Gen.next_key/0)

    # Step t draws with fold_in(key, t): per-particle keys, the resampling and rejuvenation keys.
    {particles, log_w, lml, steps} =
      Enum.reduce(observations, nil, fn obs, acc ->
        obs = Choicemap.new(obs)

        case acc do
          nil ->
            {pkeys, _, _} = step_keys(key, 0, n)
            {ps, lw} = pkeys |> Enum.map(&init.(obs, &1)) |> Enum.unzip()
            report(callback, 0, ps, lw, 0.0, where)
            {ps, lw, 0.0, 1}

          {ps, lw, lml, t} ->
            {pkeys, rkey, jkey} = step_keys(key, t, n)
            check_weights!(logsumexp(lw), t - 1, where)
            {ps, lw, lml} = maybe_resample(ps, lw, lml, threshold, resample, rkey)
            # Rejuvenation of step t - 1's particles, after its resampling, before step t's move.
            ps = rejuvenate(ps, kernel, jkey)

            {ps, incs} =
              ps
              |> Enum.zip(pkeys)
              |> Enum.map(fn {p, k} -> step.(p, t, obs, k) end)
              |> Enum.unzip()

            lw = Enum.zip_with(lw, incs, &add(&1, &2, where))
            report(callback, t, ps, lw, lml, where)
            {ps, lw, lml, t + 1}
        end
      end) ||
        raise(
          ArgumentError,
          "#{where}: observations must be a non-empty enumerable of choicemaps, one per step, got none"
        )

    {_, _, jkey} = step_keys(key, steps, n)
    particles = rejuvenate(particles, kernel, jkey)
    lse = logsumexp(log_w)
    check_weights!(lse, steps - 1, where)
    lnw = Enum.map(log_w, &add(&1, -lse, where))
    {particles, lnw, lml + lse - :math.log(n)}
  end

  defp report(nil, _t, _ps, _lw, _lml, _where), do: :ok

  defp report(callback, t, ps, lw, lml, where) do
    lse = logsumexp(lw)
    check_weights!(lse, t, where)
    traces = Enum.map(ps, fn p -> if is_tuple(p), do: elem(p, 0), else: p end)

    callback.(%{
      step: t,
      ess: Resample.ess(lw),
      log_ml: lml + lse - :math.log(length(lw)),
      traces: traces
    })
  end

  # Resampling folds the mean incremental weight into the estimate and resets the weights.
  defp maybe_resample(particles, log_w, lml, threshold, resample, rkey) do
    n = length(log_w)

    if Resample.ess(log_w) < threshold * n do
      lse = logsumexp(log_w)
      idx = resample.(log_w, rkey)
      pv = List.to_tuple(particles)
      {Enum.map(idx, &elem(pv, &1)), List.duplicate(0.0, n), lml + lse - :math.log(n)}
    else
      {particles, log_w, lml}
    end
  end

  @doc false
  # The kernel applied to every particle, particle i with fold_in(key, i); traces evaluated.
  @spec rejuvenate([Gen.Trace.t()], Gen.Inference.Kernel.t() | nil, Mx.t()) :: [Gen.Trace.t()]
  def rejuvenate(traces, nil, _key), do: traces

  def rejuvenate(traces, kernel, key) do
    traces
    |> Enum.with_index()
    |> Enum.map(fn {tr, i} ->
      {tr2, _acc} = Gen.Inference.Kernel.call!(kernel, tr, key: Mx.Random.fold_in(key, i))
      Gen.Inference.force(tr2)
    end)
  end

  @doc false
  # n particle keys, a resampling key and a rejuvenation key for step t.
  @spec step_keys(Mx.t(), non_neg_integer(), pos_integer()) :: {[Mx.t()], Mx.t(), Mx.t()}
  def step_keys(key, t, n) do
    ks = Mx.Random.split(Mx.Random.fold_in(key, t), n + 2) |> Mx.eval()
    {for(i <- 0..(n - 1), do: ks[i]), ks[n], ks[n + 1]}
  end

  @doc false
  # log Σ exp over a list of floats and :neg_infinity.
  @spec logsumexp([float() | :neg_infinity]) :: float() | :neg_infinity
  def logsumexp(lw) do
    finite = Enum.filter(lw, &is_float/1)

    case finite do
      [] ->
        :neg_infinity

      _ ->
        m = Enum.max(finite)
        m + :math.log(Enum.reduce(finite, 0.0, &(&2 + :math.exp(&1 - m))))
    end
  end

  @doc false
  # Sum of two log weights, -infinity absorbing; NaN or +infinity raise.
  @spec add(term(), term(), String.t()) :: float() | :neg_infinity
  def add(a, b, where \\ "Gen.Inference.smc")
  def add(:neg_infinity, _, _), do: :neg_infinity
  def add(_, :neg_infinity, _), do: :neg_infinity
  def add(a, b, _) when is_number(a) and is_number(b), do: a + b

  def add(a, b, where),
    do:
      raise(
        ArgumentError,
        "#{where}: a weight is not a number (#{inspect(a)}, #{inspect(b)}): NaN or +infinity from the model"
      )

  defp check_weights!(:neg_infinity, t, where) do
    raise ArgumentError,
          "#{where}: every particle has weight zero after step #{t}; the observations are impossible under the model (or under every particle)"
  end

  defp check_weights!(_lse, _t, _where), do: :ok

  @doc false
  def args_fn!(args_fn, where) do
    unless is_function(args_fn, 1),
      do:
        raise(
          ArgumentError,
          "#{where}: args_fn must be a function of the step t returning the model's argument list, got #{inspect(args_fn)}"
        )
  end

  @doc false
  def observations!(observations, where) do
    unless is_list(observations) and observations != [],
      do:
        raise(
          ArgumentError,
          "#{where}: observations must be a non-empty list of choicemaps, one per step, got #{inspect(observations)}"
        )
  end

  defp n!(n, where) do
    unless is_integer(n) and n >= 1,
      do:
        raise(
          ArgumentError,
          "#{where}: the number of particles must be a positive integer, got #{inspect(n)}"
        )
  end

  defp list_opt!(opts, name, where) do
    case Keyword.get(opts, name, []) do
      l when is_list(l) ->
        l

      other ->
        raise ArgumentError, "#{where}: #{name}: must be an argument list, got #{inspect(other)}"
    end
  end

  defp threshold!(x, _where) when is_number(x) and x >= 0 and x <= 1, do: x

  defp threshold!(x, where),
    do:
      raise(
        ArgumentError,
        "#{where}: ess_threshold: must be a number in [0, 1] (resample when ESS < threshold · n), got #{inspect(x)}"
      )

  defp kernel!(nil, _where), do: nil
  defp kernel!(k, _where) when is_function(k, 2), do: k

  defp kernel!(k, where),
    do:
      raise(
        ArgumentError,
        "#{where}: rejuvenate: must be a kernel, fn trace, opts -> {trace, accepted?} end (e.g. Gen.Inference.Kernel.mh(Gen.select(...))), got #{inspect(k)}"
      )

  defp callback!(nil, _where), do: nil
  defp callback!(f, _where) when is_function(f, 1), do: f

  defp callback!(f, where),
    do:
      raise(
        ArgumentError,
        "#{where}: callback: must be a function of one argument or nil, got #{inspect(f)}"
      )

  defp scheme!(:multinomial, _where), do: &Resample.multinomial/2
  defp scheme!(:systematic, _where), do: &Resample.systematic/2
  defp scheme!(:residual, _where), do: &Resample.residual/2

  defp scheme!(s, where),
    do:
      raise(
        ArgumentError,
        "#{where}: resampling: must be :multinomial, :systematic or :residual, got #{inspect(s)}"
      )
end
