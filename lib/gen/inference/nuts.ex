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
      (`Gen.Inference.Adapt`).

  ## Coordinates and transforms

  The sampler works on one flat f64 vector: the selected choices,
  flattened in address order and concatenated (`Gen.Inference.Target`). The
  log density and its gradient come from `Gen.assess/3` on the trace's
  choicemap with the selected leaves replaced, under `Mx.value_and_grad/1`,
  one evaluation per leapfrog step, compiled once (`Mx.compile/2`) and
  replayed from the tape unless the model's control flow reads a selected
  value. The trajectory arithmetic (momenta, U-turn checks, adaptation) is plain
  Elixir floats on that vector: at the dimensions these models have it is
  cheaper than a NIF call per vector operation.

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
  alias Gen.Inference.{Adapt, Target}
  require Logger
  import Gen.Inference.Common, only: [count!: 5, positive!: 4]

  @max_delta_h 1000.0
  @log_08 :math.log(0.8)

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
    ctx = context(target, inv_metric!(opts, target, "nuts"), depth!(opts, "nuts"))
    z0 = start!(ctx, "nuts")
    {z, _stats, _rng} = transition(z0, eps, ctx, rng(key(opts)))

    if elem(z, 0) == elem(z0, 0),
      do: {trace, false},
      else: {Target.write(target, trace, elem(z, 0)), true}
  end

  @doc """
  Runs NUTS with Stan's warmup adaptation and returns the draws.

  Options: `warmup:` (1000), `samples:` (1000), `key:`, `target_accept:`
  (0.8), `max_depth:` (10), `step_size:` (1.0, the start of the doubling
  heuristic and of μ = log(10·ε₀)), `inv_metric:` (unit), `adapt_metric:`
  (true; false keeps `inv_metric:` fixed), `transforms:` (see the
  moduledoc), `callback:` (called after every iteration with `%{iteration:
  i, warmup?: bool, stats: stats}`).

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
        :callback
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

    target = target!(trace, sel, opts, "NUTS.sample")
    ctx = context(target, inv_metric!(opts, target, "NUTS.sample"), depth!(opts, "NUTS.sample"))
    z = start!(ctx, "NUTS.sample")
    key = key(opts)

    # Warmup: Stan's init_stepsize, then dual averaging and windowed metric adaptation.
    {eps, _} =
      if warmup > 0,
        do: init_step_size(eps0, z, ctx, rng(Mx.Random.fold_in(key, -1))),
        else: {eps0, nil}

    da = Adapt.dual_averaging(eps0, delta: delta) |> Map.put(:x, :math.log(eps))
    win = Adapt.windows(warmup)

    {z, ctx, da, _win, wstats} =
      Enum.reduce(0..(warmup - 1)//1, {z, ctx, da, win, []}, fn i, {z, ctx, da, win, acc} ->
        eps = Adapt.step_size(da)
        {z, st, _} = transition(z, eps, ctx, rng(Mx.Random.fold_in(key, i)))
        if callback, do: callback.(%{iteration: i, warmup?: true, stats: st})
        da = Adapt.learn_step_size(da, st.accept_stat)

        {win, event} =
          if adapt_metric, do: Adapt.learn_variance(win, elem(z, 0)), else: {win, :none}

        case event do
          :none ->
            {z, ctx, da, win, [st | acc]}

          {:metric, var} ->
            # New metric: re-run the step-size heuristic and restart dual averaging around it.
            ctx = %{ctx | inv: var}

            {eps, _} =
              init_step_size(Adapt.step_size(da), z, ctx, rng(Mx.Random.fold_in(key, -2 - i)))

            {z, ctx, Adapt.restart(da, eps), win, [st | acc]}
        end
      end)

    eps = if warmup > 0, do: Adapt.final_step_size(da), else: eps

    {z, draws, stats} =
      Enum.reduce(0..(samples - 1), {z, [], []}, fn j, {z, draws, acc} ->
        {z, st, _} = transition(z, eps, ctx, rng(Mx.Random.fold_in(key, warmup + j)))
        if callback, do: callback.(%{iteration: warmup + j, warmup?: false, stats: st})
        {z, [Target.constrain(target, elem(z, 0)) | draws], [st | acc]}
      end)

    flat = Enum.reverse(draws)
    warn_nan_energy(wstats ++ stats)

    %{
      draws: Target.by_path(target, flat),
      flat: flat,
      names: Target.names(target),
      stats: Enum.reverse(stats),
      warmup_stats: Enum.reverse(wstats),
      step_size: eps,
      inv_metric: ctx.inv,
      transforms: Map.new(target.blocks, &{&1.path, &1.transform}),
      trace: Target.write(target, trace, elem(z, 0))
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

  defp target!(trace, sel, opts, fun),
    do:
      Target.new(trace, sel,
        transforms: Keyword.get(opts, :transforms, %{}),
        caller: "Gen.Inference.#{fun}"
      )

  # The phase point at the trace's selected values (on the unconstrained scale).
  defp start!(%{target: target} = ctx, fun) do
    # Not point/2: an engine error at the start is the model's, and raises.
    case eval_point(ctx, target.q0, nil) do
      {_, _, lp, _} = z when is_float(lp) ->
        z

      {_, _, :nan, _} ->
        # Outside the gradient, assess names the NaN site (Gen.NaNError) when the density itself is NaN.
        _ = Gen.assess(target.gen_fn, target.args, target.choices)

        raise ArgumentError,
              "Gen.Inference.#{fun}: the gradient of the log density is NaN at the starting trace; check the model's parameters there"

      _ ->
        raise ArgumentError,
              "Gen.Inference.#{fun}: the log density or its gradient is not finite at the starting trace; start from a trace with finite score"
    end
  end

  # ---- the sampler --------------------------------------------------------------------------

  defp context(target, inv, max_depth),
    do: %{target: target, inv: inv, max_depth: max_depth, h0: 0.0}

  # A phase point {q, p, lp, grad}; lp is :neg_infinity (and grad nil) where the density or its
  # gradient is infinite or its evaluation raised Mx.Error (a divergence, as Stan rejects such a
  # proposal), :nan where either is NaN (a NaN energy, reported apart from divergences).
  defp point(ctx, q, p) do
    case Gen.Inference.Common.at_proposal(fn -> eval_point(ctx, q, p) end) do
      {:ok, z} -> z
      :rejected -> {q, p, :neg_infinity, nil}
    end
  end

  defp eval_point(ctx, q, p) do
    case Target.value_and_grad(ctx.target, q) do
      {lp, g} when is_float(lp) ->
        cond do
          Enum.all?(g, &is_float/1) -> {q, p, lp, g}
          :nan in g -> {q, p, :nan, nil}
          true -> {q, p, :neg_infinity, nil}
        end

      {:nan, _g} ->
        if nan_input?(ctx, q), do: {q, p, :nan, nil}, else: {q, p, :neg_infinity, nil}

      _ ->
        {q, p, :neg_infinity, nil}
    end
  rescue
    # A density that cannot be evaluated there (a singular matrix far out on a divergent
    # trajectory) rejects the point, as Stan rejects on an exception.
    Mx.Error -> {q, p, :neg_infinity, nil}
  end

  # Outside the gradient the GFI tells a NaN input (Gen.NaNError) from a parameter moved out of
  # range (a built-in distribution's NaN, issue 10 item 6), which is a step out of the support.
  defp nan_input?(ctx, q) do
    _ = Target.log_density(ctx.target, Mx.tensor(q, type: :f64))
    false
  rescue
    Gen.NaNError -> true
  end

  # Leapfrog with the diagonal inverse metric: p += ε/2·∇, q += ε·M⁻¹p, p += ε/2·∇.
  defp leapfrog({q, p, _lp, g}, e, ctx) do
    h = e / 2
    p_half = zip3(p, g, fn pi, gi -> pi + h * gi end)
    q2 = zip3(q, ctx.inv, p_half, fn qi, mi, pi -> qi + e * mi * pi end)

    case point(ctx, q2, p_half) do
      {_, _, lp, _} = z when not is_float(lp) -> z
      {q2, _, lp, g2} -> {q2, zip3(p_half, g2, fn pi, gi -> pi + h * gi end), lp, g2}
    end
  end

  # BEAM floats raise on overflow instead of becoming ±inf: a step whose momentum, position or
  # kinetic energy overflows is a point of infinite energy (a divergence), as in Stan.
  defp safe_leapfrog({_q, p, _lp, _g} = z, e, ctx) do
    {_q2, _p2, lp2, _g2} = z2 = leapfrog(z, e, ctx)
    if is_float(lp2), do: _ = hamiltonian(z2, ctx.inv)
    z2
  rescue
    ArithmeticError -> {elem(z, 0), p, :neg_infinity, nil}
  end

  defp hamiltonian({_q, _p, :neg_infinity, _g}, _inv), do: :infinity
  defp hamiltonian({_q, _p, :nan, _g}, _inv), do: :nan

  defp hamiltonian({_q, p, lp, _g}, inv),
    do: -lp + 0.5 * sum_zip(p, inv, fn pi, mi -> mi * pi * pi end)

  defp sharp(p, inv), do: zip3(p, inv, &(&1 * &2))

  defp momentum(rng, inv) do
    {zs, rng} = normals(rng, length(inv))
    {zip3(zs, inv, fn z, m -> z / :math.sqrt(m) end), rng}
  end

  # One NUTS transition from z (its momentum ignored): returns {z_sample, stats, rng}.
  defp transition({q, _p, lp, g}, eps, ctx, rng) do
    {p0, rng} = momentum(rng, ctx.inv)
    z0 = {q, p0, lp, g}
    h0 = hamiltonian(z0, ctx.inv)
    ctx = %{ctx | h0: h0}
    s0 = sharp(p0, ctx.inv)

    traj = %{
      left: z0,
      right: z0,
      p_left: p0,
      p_right: p0,
      s_left: s0,
      s_right: s0,
      rho: p0,
      log_w: 0.0,
      sample: z0
    }

    acc = %{n_leapfrog: 0, sum_metro: 0.0, divergent: false, nan_energy: false}
    {traj, depth, acc, rng} = grow(traj, 0, eps, ctx, rng, acc)
    z = traj.sample

    stats = %{
      step_size: eps,
      tree_depth: depth,
      n_leapfrog: acc.n_leapfrog,
      divergent: acc.divergent,
      nan_energy: acc.nan_energy,
      accept_stat: acc.sum_metro / acc.n_leapfrog,
      energy: hamiltonian(z, ctx.inv)
    }

    {z, stats, rng}
  end

  defp grow(traj, depth, _eps, %{max_depth: max}, rng, acc) when depth >= max,
    do: {traj, depth, acc, rng}

  defp grow(traj, depth, eps, ctx, rng, acc) do
    {u, rng} = uniform(rng)
    forward? = u > 0.5
    {start, e} = if forward?, do: {traj.right, eps}, else: {traj.left, -eps}

    case build(depth, start, e, ctx, rng, acc) do
      {false, _z, _t, rng, acc} ->
        {traj, depth, acc, rng}

      {true, z_end, t, rng, acc} ->
        # Biased progressive sampling: the new subtree replaces the draw with probability min(1, w_new/w_old).
        {sample, rng} =
          if t.log_w > traj.log_w do
            {t.propose, rng}
          else
            {u2, rng} = uniform(rng)
            {if(u2 < :math.exp(t.log_w - traj.log_w), do: t.propose, else: traj.sample), rng}
          end

        rho = add(traj.rho, t.rho)

        # The new subtree's beginning (beg) adjoins the old trajectory; its end is the new outer end.
        {persist?, traj} =
          if forward? do
            {uturn_ok?(traj.s_left, t.s_end, rho) and
               uturn_ok?(traj.s_left, t.s_beg, add(traj.rho, t.p_beg)) and
               uturn_ok?(traj.s_right, t.s_end, add(t.rho, traj.p_right)),
             %{traj | right: z_end, p_right: t.p_end, s_right: t.s_end}}
          else
            {uturn_ok?(t.s_end, traj.s_right, rho) and
               uturn_ok?(t.s_beg, traj.s_right, add(traj.rho, t.p_beg)) and
               uturn_ok?(t.s_end, traj.s_left, add(t.rho, traj.p_left)),
             %{traj | left: z_end, p_left: t.p_end, s_left: t.s_end}}
          end

        traj = %{traj | rho: rho, log_w: log_add(traj.log_w, t.log_w), sample: sample}

        if persist?,
          do: grow(traj, depth + 1, eps, ctx, rng, acc),
          else: {traj, depth + 1, acc, rng}
    end
  end

  # A subtree of 2^depth leapfrog steps of signed size e from z: {valid?, last point, tree, rng, acc}.
  defp build(0, z, e, ctx, rng, acc) do
    {_q, p, lp, _g} = z1 = safe_leapfrog(z, e, ctx)
    acc = %{acc | n_leapfrog: acc.n_leapfrog + 1}

    case lp do
      :neg_infinity ->
        {false, z1, nil, rng, %{acc | divergent: true}}

      :nan ->
        # The subtree stops as at a divergence, but the cause is a NaN in the model, not the step size.
        {false, z1, nil, rng, %{acc | nan_energy: true}}

      _ ->
        dh = ctx.h0 - hamiltonian(z1, ctx.inv)
        acc = %{acc | sum_metro: acc.sum_metro + if(dh > 0, do: 1.0, else: :math.exp(dh))}

        if -dh > @max_delta_h do
          {false, z1, nil, rng, %{acc | divergent: true}}
        else
          s = sharp(p, ctx.inv)

          {true, z1, %{propose: z1, log_w: dh, rho: p, p_beg: p, p_end: p, s_beg: s, s_end: s},
           rng, acc}
        end
    end
  end

  defp build(depth, z, e, ctx, rng, acc) do
    case build(depth - 1, z, e, ctx, rng, acc) do
      {false, _, _, _, _} = bad ->
        bad

      {true, z1, t1, rng, acc} ->
        case build(depth - 1, z1, e, ctx, rng, acc) do
          {false, _, _, _, _} = bad ->
            bad

          {true, z2, t2, rng, acc} ->
            log_w = log_add(t1.log_w, t2.log_w)

            # Multinomial within the subtree: the second half with probability w₂/(w₁ + w₂).
            {propose, rng} =
              if t2.log_w > log_w do
                {t2.propose, rng}
              else
                {u, rng} = uniform(rng)
                {if(u < :math.exp(t2.log_w - log_w), do: t2.propose, else: t1.propose), rng}
              end

            rho = add(t1.rho, t2.rho)

            persist? =
              uturn_ok?(t1.s_beg, t2.s_end, rho) and
                uturn_ok?(t1.s_beg, t2.s_beg, add(t1.rho, t2.p_beg)) and
                uturn_ok?(t1.s_end, t2.s_end, add(t2.rho, t1.p_end))

            tree = %{
              propose: propose,
              log_w: log_w,
              rho: rho,
              p_beg: t1.p_beg,
              s_beg: t1.s_beg,
              p_end: t2.p_end,
              s_end: t2.s_end
            }

            {persist?, z2, tree, rng, acc}
        end
    end
  end

  # No U-turn yet: both ends still move along the summed momentum.
  defp uturn_ok?(s_minus, s_plus, rho), do: dot(s_plus, rho) > 0 and dot(s_minus, rho) > 0

  # Stan's init_stepsize: double or halve ε until one leapfrog's acceptance crosses 0.8.
  defp init_step_size(eps, {q, _p, lp, g}, ctx, rng) do
    {dh, rng} = one_step_dh(eps, {q, nil, lp, g}, ctx, rng)
    dir = if dh > @log_08, do: 1, else: -1
    init_step_loop(eps, dir, {q, nil, lp, g}, ctx, rng)
  end

  defp init_step_loop(eps, dir, z, ctx, rng) do
    {dh, rng} = one_step_dh(eps, z, ctx, rng)

    cond do
      dir == 1 and not (dh > @log_08) ->
        {eps, rng}

      dir == -1 and not (dh < @log_08) ->
        {eps, rng}

      true ->
        eps = if dir == 1, do: eps * 2, else: eps * 0.5

        cond do
          eps > 1.0e7 ->
            raise ArgumentError,
                  "Gen.Inference.NUTS: the step-size search diverged (ε > 1e7): the posterior looks improper; check the model and its transforms:"

          eps < 1.0e-300 ->
            raise ArgumentError,
                  "Gen.Inference.NUTS: no step size gives a finite leapfrog step from the starting point; start from a trace with finite gradient"

          true ->
            init_step_loop(eps, dir, z, ctx, rng)
        end
    end
  end

  defp one_step_dh(eps, {q, _, lp, g}, ctx, rng) do
    {p, rng} = momentum(rng, ctx.inv)
    z = {q, p, lp, g}
    h0 = hamiltonian(z, ctx.inv)

    case hamiltonian(safe_leapfrog(z, eps, ctx), ctx.inv) do
      h when is_float(h) -> {h0 - h, rng}
      _infinity_or_nan -> {-1.0e300, rng}
    end
  end

  # ---- randomness: a stream of uniforms and normals from one key --------------------------------

  @block 64

  defp rng(key), do: {key, 0, []}

  defp uniform({key, n, [u | rest]}), do: {u, {key, n, rest}}

  defp uniform({key, n, []}) do
    us =
      key
      |> Mx.Random.fold_in(n)
      |> Mx.Random.uniform(shape: {@block}, type: :f64)
      |> Mx.to_flat_list()

    uniform({key, n + 1, us})
  end

  defp normals({key, n, buf}, d) do
    zs =
      key |> Mx.Random.fold_in(n) |> Mx.Random.normal(shape: {d}, type: :f64) |> Mx.to_flat_list()

    {zs, {key, n + 1, buf}}
  end

  # ---- float vectors -------------------------------------------------------------------------

  defp zip3(a, b, f), do: :lists.zipwith(f, a, b)
  defp zip3(a, b, c, f), do: :lists.zipwith3(f, a, b, c)
  defp add(a, b), do: :lists.zipwith(&(&1 + &2), a, b)
  defp dot(a, b), do: sum_zip(a, b, &(&1 * &2))
  defp sum_zip(a, b, f), do: sum_zip(a, b, f, 0.0)
  defp sum_zip([x | a], [y | b], f, s), do: sum_zip(a, b, f, s + f.(x, y))
  defp sum_zip([], [], _f, s), do: s

  defp log_add(a, b) when a > b, do: a + :math.log(1.0 + :math.exp(b - a))
  defp log_add(a, b), do: b + :math.log(1.0 + :math.exp(a - b))

  # ---- options ---------------------------------------------------------------------------

  defp key(opts), do: Keyword.get_lazy(opts, :key, &Gen.next_key/0)

  defp depth!(opts, fun) do
    case Keyword.get(opts, :max_depth, 10) do
      n when is_integer(n) and n >= 1 ->
        n

      other ->
        raise ArgumentError,
              "Gen.Inference.#{fun}: max_depth: must be a positive integer, got #{inspect(other)}"
    end
  end

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
