defmodule Gen.Inference.NUTS do
  @moduledoc """
  The No-U-Turn Sampler as Stan runs it (Hoffman & Gelman 2014; Betancourt
  2017), on the selected continuous choices of a trace, through the GFI
  alone.

    * **Multinomial NUTS.** The trajectory doubles in a random direction
      until it turns back on itself or reaches `max_depth` doublings
      (2^max_depth leapfrog steps). Within a new subtree the draw is
      multinomial (each half chosen in proportion to its weight
      Σ exp(−H)); between the old trajectory and the new subtree the
      sampling is biased progressive (the new subtree is taken with
      probability min(1, w_new / w_old)).
    * **Generalized U-turn criterion** with the inverse metric
      (p♯ = M⁻¹p, ρ = Σp): a (sub)trajectory stops when p♯₋·ρ ≤ 0 or
      p♯₊·ρ ≤ 0, checked on every merged subtree and, as Stan ≥ 2.2x does,
      also on each half extended by the first point of the other half, which
      catches U-turns that straddle the merge.
    * **Divergence** when the energy error H − H₀ exceeds 1000 (or the log
      density or its gradient is infinite); the subtree is then discarded
      and the trajectory stops. A NaN log density or gradient stops it the
      same way but is reported apart, as `nan_energy: true` (a bug in the
      model, such as NaN parameters, not a step size too large), and
      `sample/3` logs a warning counting such iterations; a parameter
      moved out of a distribution's range is a divergence, as in Stan.
    * **Warmup** (`sample/3`): the initial step size from Stan's doubling
      heuristic, dual averaging of the step size to `target_accept:`, a
      diagonal inverse metric from Welford variances in Stan's windows
      (the rules of `Gen.Inference.Adapt`, run in C).

  ## Coordinates and transforms

  The sampler works on one flat f64 vector: the selected choices,
  flattened in address order and concatenated (`Gen.Inference.Target`). The
  log density and its gradient come from `Gen.assess/3` on the trace's
  choicemap with the selected leaves replaced, under `Mx.value_and_grad/1`,
  one evaluation per leapfrog step, compiled once (`Mx.compile/2`) and
  replayed from the tape unless the model's control flow reads a selected
  value. The whole run — trajectories, U-turn checks, warmup — is C
  (`c_src/sampler.c`, through `Gen.Inference.Sampler`) on an engine thread:
  with a compiled target it replays the tape itself and never returns to
  Elixir until the run is done; on the dynamic path it asks this process for
  each gradient. Both paths run the same C code, so the same key gives the
  same draws. Dropping out of the call (an exception in a callback, the
  process exiting) cancels the run and frees its memory.

  Constrained choices (a scale, a probability, a simplex, a covariance
  matrix) are sampled on an unconstrained scale, as Stan does, and
  automatically: each distribution declares its support
  (`Gen.Distribution.support/1`) and the choice moves through the
  transform `Gen.Transform.default/1` picks for it (`:log` for a gamma,
  `:logit` for a beta, `{:interval, lo, hi}` for a uniform, stick-breaking
  for a Dirichlet, a Cholesky factor with log-diagonal for a Wishart …),
  taken at the distribution's current parameters, so bounds computed from
  other choices move with them. The log-Jacobian is added to the log
  joint, so the draws (reported on the constrained scale) have the
  model's posterior; the flat vector holds the unconstrained coordinates
  (a K-simplex has K − 1).

  `transforms:` overrides the choice of transform: a map from address (or
  path) to one of the transforms of `Gen.Transform` (`:identity`, `:log`,
  `:logit`, `{:interval, a, b}`, `{:lower, a}`, `{:upper, b}`,
  `:ordered`, `:simplex`, `:positive_definite`, `:cholesky_factor`,
  `:corr_cholesky`), a bound a number, an array or a function of the
  current choicemap (a bound that depends on other parameters).
  `:identity` samples a constrained choice on its own scale, where a step
  out of the support has log density −∞ and counts as a divergence.

      iex> import Gen
      iex> m = gen fn -> s = trace(:s, Gen.Dist.exponential(1.0)); trace(:y, Gen.Dist.normal(0.0, s)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5, s: 1.0})
      iex> r = Gen.Inference.NUTS.sample(t, Gen.select(:s), warmup: 30, samples: 20, key: Mx.Random.key(0), transforms: %{s: :log})
      iex> {length(r.draws[[:s]]), Enum.all?(r.draws[[:s]], &(&1 > 0)), length(r.stats), Map.keys(hd(r.stats))}
      {20, true, 20, [:accept_stat, :divergent, :energy, :n_leapfrog, :nan_energy, :step_size, :tree_depth]}
  """

  alias Gen.{Selection, Trace}
  alias Gen.Inference.Target
  require Logger
  import Gen.Inference.Common, only: [count!: 5, positive!: 4]

  @typedoc "A transform of one choice to the unconstrained scale (see the moduledoc and `Gen.Transform`)."
  @type transform :: Gen.Transform.t()

  @typedoc "Per-iteration statistics, as Stan reports them."
  @type stats :: %{
          step_size: float(),
          tree_depth: non_neg_integer(),
          n_leapfrog: pos_integer(),
          divergent: boolean(),
          nan_energy: boolean(),
          accept_stat: float(),
          energy: float()
        }

  # ---- public API ---------------------------------------------------------------------

  @doc """
  One NUTS transition from `trace` on the `selection`'s continuous choices,
  with a fixed step size (`Gen.Inference.nuts/3`, whose name its errors carry). Returns `{new_trace, accepted?}`, `accepted?`
  being whether the draw left the starting point.

  Options: `step_size:` (required), `inv_metric:` (the diagonal inverse
  metric, a list with one positive float per coordinate of the flat
  unconstrained vector; unit by default), `max_depth:` (10), `transforms:` (see the
  moduledoc), `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))
      iex> {t2, acc} = Gen.Inference.NUTS.nuts(t, Gen.select(:mu), step_size: 0.5, key: Mx.Random.key(1))
      iex> {is_boolean(acc), Mx.to_number(t2[:y])}
      {true, 0.5}
  """
  @spec nuts(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def nuts(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(
      opts,
      [:step_size, :inv_metric, :max_depth, :transforms, :key],
      "Gen.Inference.nuts"
    )

    eps = positive!(opts, :step_size, nil, "Gen.Inference.nuts")
    # Tracing costs a few uncompiled evaluations (bench/target.exs); one transition makes more.
    target = target!(trace, sel, opts, "nuts")
    start!(target, "nuts")

    r =
      run(target, key(opts), "nuts",
        warmup: 0,
        samples: 1,
        step_size: eps,
        adapt_metric: false,
        inv_metric: inv_metric!(opts, target, "nuts"),
        max_depth: depth!(opts, "nuts")
      )

    [q] = r.draws

    if q == target.q0,
      do: {trace, false},
      else: {Target.write(target, trace, q), true}
  end

  @doc """
  Runs NUTS with Stan's warmup adaptation and returns the draws.

  Options: `warmup:` (1000), `samples:` (1000), `key:`, `target_accept:`
  (0.8), `max_depth:` (10, at most 30), `step_size:` (1.0, the start of the
  doubling heuristic and of μ = log(10·ε₀)), `metric:` (`:diag`, or
  `:dense` for a full mass matrix learned from Welford covariances),
  `inv_metric:` (unit; for `:dense` a list of rows), `adapt_metric:`
  (true; false keeps `inv_metric:` fixed), `transforms:` (see the
  moduledoc), `callback:` (called after every iteration with `%{iteration:
  i, warmup?: bool, stats: stats}`; it makes the C run message every
  iteration, so leave it out of timed runs), `chains:` (k runs in k
  processes; chain j is exactly the run with key `Mx.Random.fold_in(key,
  j)`, and the result is a list of k maps) and `progress:` (`true`,
  `false` or `:auto`, as `Gen.Inference.run/3`).

  With a C compiler present the log density's tape is also built as
  generated C (cached on disk per user, see `Mx.compile/2`'s `jit:`), and
  the run waits for it so it never switches tiers midway: the same key
  repeats its draws on a machine. The interpreter and the generated code
  round differently (within a few ulps), so draws may differ between a
  machine with a compiler and one without, or with `MX_JIT=0`.

  Returns a map:

    * `draws` — `%{path => [value]}`, one value per draw on the
      constrained scale: a float for a scalar choice, a (nested) list for
      an array;
    * `flat` — the draws as lists of floats, each choice flattened on the
      constrained scale, in address order;
    * `names` — `[{path, index}]`, the coordinates of `flat`;
    * `stats` and `warmup_stats` — one `t:stats/0` map per iteration;
    * `step_size`, `inv_metric` — the adapted values;
    * `transforms` — `%{path => transform}`, the transform each choice moved
      through (`Gen.Transform`; at the starting trace's parameters);
    * `trace` — the trace at the last draw.
  """
  @spec sample(Trace.t(), Selection.t(), keyword()) :: map()
  def sample(%Trace{} = trace, %Selection{} = sel, opts \\ []) do
    Mx.Opts.validate!(
      opts,
      [
        :warmup,
        :samples,
        :key,
        :target_accept,
        :max_depth,
        :step_size,
        :inv_metric,
        :adapt_metric,
        :transforms,
        :callback,
        :metric,
        :chains,
        :progress
      ],
      "Gen.Inference.NUTS.sample"
    )

    warmup = count!(opts, :warmup, 1000, 0, "Gen.Inference.NUTS.sample")
    samples = count!(opts, :samples, 1000, 1, "Gen.Inference.NUTS.sample")
    delta = Keyword.get(opts, :target_accept, 0.8)

    unless is_number(delta) and delta > 0 and delta < 1 do
      raise ArgumentError,
            "Gen.Inference.NUTS.sample: target_accept: must lie in (0, 1), got #{inspect(delta)}"
    end

    eps0 = positive!(opts, :step_size, 1.0, "Gen.Inference.NUTS.sample")
    adapt_metric = Keyword.get(opts, :adapt_metric, true)
    callback = Keyword.get(opts, :callback)

    unless is_boolean(adapt_metric) do
      raise ArgumentError,
            "Gen.Inference.NUTS.sample: adapt_metric: must be true or false, got #{inspect(adapt_metric)}"
    end

    unless callback == nil or is_function(callback, 1) do
      raise ArgumentError,
            "Gen.Inference.NUTS.sample: callback: must be a function of one argument (a map of the iteration's stats) or nil, got #{inspect(callback)}"
    end

    metric = Keyword.get(opts, :metric, :diag)

    unless metric in [:diag, :dense] do
      raise ArgumentError,
            "Gen.Inference.NUTS.sample: metric: must be :diag or :dense, got #{inspect(metric)}"
    end

    # A whole run: worth the generated-C tier unless the application turned it off (Mx.compile's jit:).
    target =
      target!(trace, sel, opts, "NUTS.sample", jit: Application.get_env(:genmx, :jit, true))

    start!(target, "NUTS.sample")

    sampler_opts = [
      warmup: warmup,
      samples: samples,
      target_accept: delta,
      step_size: eps0,
      adapt_metric: adapt_metric,
      metric: metric,
      inv_metric: inv_metric!(opts, target, "NUTS.sample", metric),
      max_depth: depth!(opts, "NUTS.sample"),
      callback: callback
    ]

    key = key(opts)
    progress = Keyword.get(opts, :progress, :auto)

    case Keyword.get(opts, :chains) do
      nil ->
        Gen.Inference.with_progress(
          progress,
          warmup + samples,
          1,
          "Gen.Inference.NUTS.sample",
          fn counter ->
            result(
              target,
              trace,
              run(target, key, "NUTS.sample", [counter: counter] ++ sampler_opts)
            )
          end
        )

      k when is_integer(k) and k >= 1 ->
        # Chain j is exactly sample(trace, sel, key: fold_in(key, j)): one process each.
        Gen.Inference.with_progress(
          progress,
          (warmup + samples) * k,
          k,
          "Gen.Inference.NUTS.sample",
          fn counter ->
            0..(k - 1)
            |> Task.async_stream(
              fn j ->
                r =
                  run(
                    target,
                    Mx.Random.fold_in(key, j),
                    "NUTS.sample",
                    [counter: counter] ++ sampler_opts
                  )

                result(target, trace, r)
              end,
              timeout: :infinity,
              ordered: true,
              max_concurrency: k
            )
            |> Enum.map(fn {:ok, r} -> r end)
          end
        )

      other ->
        raise ArgumentError,
              "Gen.Inference.NUTS.sample: chains: must be a positive integer (the number of chains) or nil, got #{inspect(other)}"
    end
  end

  defp result(target, trace, r) do
    flat = Target.constrain_draws(target, r.draws)
    warn_nan_energy(r.warmup_stats ++ r.stats)

    %{
      draws: Target.by_path(target, flat),
      flat: flat,
      names: Target.names(target),
      stats: r.stats,
      warmup_stats: r.warmup_stats,
      step_size: r.step_size,
      inv_metric: r.inv_metric,
      transforms: Map.new(target.blocks, &{&1.path, &1.transform}),
      trace: Target.write(target, trace, List.last(r.draws))
    }
  end

  @doc """
  The draws of `sample/3` as `{name, [float]}` series, one per coordinate
  of the flat vector (`name` is the path, with the element index for an
  array choice) — the form `Gen.Diagnostics.ess/2` takes.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.broadcasted_normal(Mx.tensor([0.0, 0.0]), 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> r = Gen.Inference.NUTS.sample(t, Gen.select(:x), warmup: 10, samples: 5, key: Mx.Random.key(1))
      iex> Gen.Inference.NUTS.series(r) |> Enum.map(fn {name, xs} -> {name, length(xs)} end)
      [{{[:x], 0}, 5}, {{[:x], 1}, 5}]
  """
  @spec series(map()) :: [{term(), [float()]}]
  def series(%{flat: flat, names: names}) do
    cols = flat |> Enum.zip() |> Enum.map(&Tuple.to_list/1)
    Enum.zip(names, cols)
  end

  defp warn_nan_energy(stats) do
    case Enum.count(stats, & &1.nan_energy) do
      0 ->
        :ok

      k ->
        Logger.warning(
          "Gen.Inference.NUTS.sample: #{k} of #{length(stats)} iterations met a NaN log density or gradient (stats: nan_energy: true), " <>
            "apart from divergences: the model's density is NaN somewhere in the region explored; check its parameters"
        )
    end
  end

  # ---- the model on the flat vector ----------------------------------------------------

  defp target!(trace, sel, opts, fun, extra \\ []),
    do:
      Target.new(
        trace,
        sel,
        [transforms: Keyword.get(opts, :transforms, %{}), caller: "Gen.Inference.#{fun}"] ++ extra
      )

  # The phase point at the trace's selected values (on the unconstrained scale).
  # The starting point must have a finite log density and gradient; an engine error there is the model's.
  defp start!(target, fun) do
    {lp, g} =
      try do
        Target.value_and_grad(target, target.q0)
      rescue
        Mx.Error -> {:neg_infinity, []}
      end

    cond do
      is_float(lp) and Enum.all?(g, &is_float/1) ->
        :ok

      (is_float(lp) and :nan in g) or
          (lp == :nan and
             Target.nan_input?(target, target.q0 |> Mx.tensor(type: :f64) |> Mx.to_binary())) ->
        # Outside the gradient, assess names the NaN site (Gen.NaNError) when the density itself is NaN.
        _ = Gen.assess(target.gen_fn, target.args, target.choices)

        raise ArgumentError,
              "Gen.Inference.#{fun}: the gradient of the log density is NaN at the starting trace; check the model's parameters there"

      true ->
        raise ArgumentError,
              "Gen.Inference.#{fun}: the log density or its gradient is not finite at the starting trace; start from a trace with finite score"
    end
  end

  # ---- the C sampler -----------------------------------------------------------------------

  defp run(target, key, fun, opts) do
    Gen.Inference.Sampler.run(Target.sampler_target(target), [algorithm: :nuts, key: key] ++ opts)
  rescue
    e in ArgumentError ->
      reraise ArgumentError, [message: "Gen.Inference.#{fun}: " <> e.message], __STACKTRACE__
  end

  defp key(opts), do: Keyword.get_lazy(opts, :key, &Gen.next_key/0)

  defp depth!(opts, fun) do
    case Keyword.get(opts, :max_depth, 10) do
      n when is_integer(n) and n >= 1 and n <= 30 ->
        n

      other ->
        raise ArgumentError,
              "Gen.Inference.#{fun}: max_depth: must be an integer from 1 to 30 (2^30 leapfrog steps), got #{inspect(other)}"
    end
  end

  # A dense inverse metric (d rows of d floats, or nil: unit) is checked by the sampler.
  defp inv_metric!(opts, _target, _fun, :dense), do: Keyword.get(opts, :inv_metric)
  defp inv_metric!(opts, target, fun, :diag), do: inv_metric!(opts, target, fun)

  defp inv_metric!(opts, %{dim: dim}, fun) do
    case Keyword.get(opts, :inv_metric) do
      nil ->
        List.duplicate(1.0, dim)

      xs when is_list(xs) ->
        unless length(xs) == dim and Enum.all?(xs, &(is_number(&1) and &1 > 0)) do
          raise ArgumentError,
                "Gen.Inference.#{fun}: inv_metric: must be a list of #{dim} positive numbers (one per coordinate of the selected choices), got #{inspect(xs)}"
        end

        Enum.map(xs, &(&1 * 1.0))

      other ->
        raise ArgumentError,
              "Gen.Inference.#{fun}: inv_metric: must be a list of #{dim} positive numbers, got #{inspect(other)}"
    end
  end
end
