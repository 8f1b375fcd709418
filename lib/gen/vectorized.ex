defmodule Gen.Vectorized do
  @moduledoc """
  Vectorized execution of generative functions over `n` particles: the
  model is written for one particle and runs for `n` in one graph, as
  GenJAX runs a model under `vmap`. The result is a plain `Gen.Trace` whose
  choices carry a leading particle axis `n` and whose score is an f64 `[n]`
  array (a *vectorized trace*); particle `i` is row `i` of every choice, and
  its score and weights are those the scalar GFI gives for that row.

  `Gen.vsimulate/4` and `Gen.vgenerate/5` are the entry points; `update/5`,
  `regenerate/3`, `assess/4`, `propose/4`, `take/2` and `select/3` here
  complete the interface the vectorized algorithms
  (`Gen.Inference.Vectorized`) are written on.

      iex> import Gen
      iex> xs = Mx.tensor([1.0, 2.0, 3.0], type: :f64)
      iex> m = gen fn xs -> slope = trace(:slope, Gen.Dist.normal(0.0, 1.0)); trace(:ys, Gen.Dist.normal(Mx.multiply(slope, xs), 1.0)) end
      iex> t = Gen.vsimulate(m, [xs], 5, key: Mx.Random.key(0))
      iex> {Mx.describe(t[:slope]), Mx.describe(t[:ys]), Mx.describe(Gen.get_score(t))}
      {"f64[5]", "f64[5][3]", "f64[5]"}

  ## How it works: one particle's body, replayed for n

  A vectorized call runs the scalar GFI method once, inside a particle
  context, on *one particle's* values: every per-particle array (a choice
  of the vectorized trace being updated, a per-particle constraint, a
  value drawn at a site) reaches the body as a placeholder of its
  per-particle shape (`Mx.Transforms.placeholder/2`). Whatever the body
  computes from placeholders is a graph that `Mx.vmap`'s batching rules
  (`c_src/vmap.c`) replay on the `[n | shape]` arrays, so the body sees the
  shapes a scalar run sees: a per-particle scalar times a shared `[k]`
  vector is a `[k]` vector, as in `Gen.simulate/3`.

  Arguments and observations are shared by every particle (as in `n`
  scalar runs with the same arguments), whatever their shape. A
  per-particle input is a choice: a constraint of `Gen.Vectorized.update/5`
  or `generate_particles` whose leading axis has size `n`, or a choice of
  the vectorized trace itself.

  ## What stays shape-based

  Distribution sites, where values are drawn and scored (`draw/2`,
  `constrain/2`, `rescore/2`, called by the distribution-as-generative-
  function implementation in `Gen.GenerativeFunction`), keep the
  shape-based form: the site's parameters are replayed over the particles,
  every per-particle operand is laid out `[n, 1.., shape]` (the particle
  axis in front of the site's batch axes, found from lazy log-densities
  that are never evaluated), and one `Gen.Distribution.sample/2` of that
  batched distribution, or one `Gen.Distribution.sample_n/3` when the
  parameters are shared, draws for every particle; the log-density is
  computed on the same batched operands and summed per particle. This is
  the same distribution as `n` scalar draws, not the same numbers as
  scalar runs with split keys: the engine's random primitives have no
  batching rule, so replaying a scalar draw runs it once per particle.
  Measured (one normal site, this engine, CPU): `n = 1000`, 6.9 ms per
  site for the replayed scalar draw against 0.03 ms for `sample_n`; `n =
  4000`, 46 ms against 0.08 ms. The value and score drawn become
  placeholders for the rest of the body.

  The whole call costs more than the former shape-only form (still run by
  `with_batch/2`, below), for the replays and the walks over the trace:
  `vgenerate` of the normal–normal model (6 sites) 0.28 ms against 0.14 ms
  at `n = 1000`; `vsimulate` of a 15-step state-space model (30 sites)
  5.3 ms against 2.8 ms. The shape-only form is kept only under
  `with_batch/2`, whose callers (the vectorized switch given `[N]`
  arguments outside a vectorized call) hold every value with the particle
  axis already; it is not equivalent for a model written for one particle.

  The engine's vmap replays at most `Mx.Transforms.max_batched/0` (1024)
  per-particle arrays at once, so placeholders are packed: one per element
  type for a trace's choices, and one for a site's value and score once
  the call holds more than 256. A call that draws or scores per particle at
  more than about 1000 sites raises, saying so (write vector-valued sites).

  Copying and merging particles (`take/2` for resampling, `select/3` for
  per-chain acceptance) work on the trace tree in place, one gather or
  `Mx.select/3` per array, so neither runs the model.

  ## The particle axis in a vectorized trace

  Every choice and score of a vectorized trace (at every depth) carries
  the particle axis: a shared value at a site (an observation, or a draw
  from shared parameters) is stored broadcast to `[n | natural shape]`.
  Other arrays of its records (parameters, return values, sub-call
  arguments) carry it when they are per-particle, and so does a shared one
  whose leading axis has size `n`, so that in a vectorized trace "leading
  axis `n`" always means "per particle" (the trace's own arguments are kept
  as given). Constraints passed to `update/5`, `generate_particles` and
  `assess/4` follow the same rule: leading axis `n` means per-particle,
  unless named in `shared_observations:`.

  ## What cannot be vectorized

  Elixir control flow on sampled values: the body runs once for all
  particles, so reading a per-particle value as an Elixir number
  (`Mx.to_number/1`, `Mx.to_list/1`, anything that reads data) raises an
  `ArgumentError` saying so, and so does a combinator that wants one index
  or flag for every particle (`Gen.Combinators.switch/1`, `mix/2`,
  `mask/1` given a sampled value). Write such branches with `Mx.select/3`,
  or use the vectorized switch, or run the scalar GFI per particle. A
  shape error in the body is the model's own (the body sees one particle's
  shapes): the vectorized call's message says it was raised under a
  particle batch of `n` and to check the model with the scalar GFI.
  (In a `gen` body, `if` and the other forms of `Gen.Control` raise on an
  array under a batch.)
  """

  alias Gen.{Choicemap, Distribution, GenerativeFunction, Handlers, Selection, Trace}

  @batch :gen_particle_batch
  @vmap :gen_vmap_particles
  @spread_log :gen_vmap_spread_log
  @event_ranks :gen_event_ranks

  # ---- the particle-batch context -------------------------------------------------

  @doc """
  The number of particles of the current vectorized call, or nil.

      iex> Gen.Vectorized.batch()
      nil
      iex> Gen.Vectorized.with_batch(8, fn -> Gen.Vectorized.batch() end)
      8
  """
  @spec batch() :: pos_integer() | nil
  def batch, do: Process.get(@batch)

  @doc """
  Runs `fun` with the particle batch `n` in the shape-based form
  (restoring the caller's batch afterwards, also when `fun` raises): a GFI
  call made inside expects every per-particle value to carry the particle
  axis `n` in front already, as the vectorized switch's `[N]` arguments do;
  results are not broadcast. A model written for one particle runs with
  `Gen.vsimulate/4`, `Gen.vgenerate/5` and the functions of this module
  instead. An engine error inside says it was raised under the batch.
  """
  @spec with_batch(pos_integer(), (-> result)) :: result when result: term()
  def with_batch(n, fun) when is_function(fun, 0) do
    check_n!(n, "Gen.Vectorized.with_batch/2")
    prev = Process.get(@batch)
    # Inside, values carry the particle axis (the shape-based form): no vmap context applies.
    vmap = Process.delete(@vmap)
    Process.put(@batch, n)

    try do
      fun.()
    rescue
      e in Mx.Error ->
        reraise Mx.Error,
                [
                  message:
                    "#{e.message} (raised under a particle batch of #{n} (Gen.Vectorized.with_batch/2): values here carry " <>
                      "the particle axis in front, so a per-particle [#{n}] value meets a shared [k] array only as " <>
                      "Mx.new_axis(value, -1); or write the model for one particle and run it with Gen.vsimulate/4 or Gen.vgenerate/5)"
                ],
                __STACKTRACE__
    after
      if prev, do: Process.put(@batch, prev), else: Process.delete(@batch)
      if vmap, do: Process.put(@vmap, vmap)
    end
  end

  # ---- the drawing path (called from Gen.GenerativeFunction's distribution impl) -----

  @doc false
  # A draw from d and its log-density: per particle under a batch, as documented above.
  @spec draw(Distribution.t(), Mx.t()) :: {Mx.t(), Mx.t()}
  def draw(d, key) do
    if Process.get(@vmap), do: vmap_draw(d, key), else: shape_draw(d, key)
  end

  defp shape_draw(d, key) do
    case batch() do
      nil ->
        v = Distribution.sample(d, key)
        {v, total(Distribution.logpdf(d, v))}

      n ->
        if scalar_params?(d) do
          # Scalar parameters: the batch shape is [], shared by every particle; no probe needed.
          v = Distribution.sample_n(d, key, n)
          {v, per_particle(Distribution.logpdf(d, v), n)}
        else
          draw_batched(d, key, n)
        end
    end
  end

  defp draw_batched(d, key, n) do
    # Both are lazy nodes: when the parameters are shared they are dropped unevaluated.
    v = Distribution.sample(d, key)
    lp = Distribution.logpdf(d, v)

    if leads?(lp, n) do
      {v, per_particle(lp, n)}
    else
      v = Distribution.sample_n(d, key, n)
      {v, per_particle(Distribution.logpdf(d, v), n)}
    end
  end

  @doc false
  # A given value (constraint) and its log-density; under a batch the value is broadcast to [n | shape].
  @spec constrain(Distribution.t(), term()) :: {term(), Mx.t()}
  def constrain(d, v) do
    if Process.get(@vmap), do: vmap_constrain(d, v), else: shape_constrain(d, v)
  end

  defp shape_constrain(d, v) do
    lp = Distribution.logpdf(d, v)

    case batch() do
      nil ->
        {v, total(lp)}

      n ->
        a = Mx.tensor(v)
        batch_shape = if leads?(lp, n), do: tl(Tuple.to_list(Mx.shape(lp))), else: Tuple.to_list(Mx.shape(lp))
        e = event_rank(d, a, lp)
        event = a |> Mx.shape() |> Tuple.to_list() |> Enum.take(-e) |> then(&if(e == 0, do: [], else: &1))
        target = List.to_tuple([n | batch_shape ++ event])
        a = if Mx.shape(a) == target, do: a, else: Mx.broadcast(a, target)
        {a, per_particle(lp, n)}
    end
  end

  @doc false
  # The log-density of an existing value (per particle under a batch).
  @spec rescore(Distribution.t(), term()) :: Mx.t()
  def rescore(d, v) do
    if Process.get(@vmap), do: elem(vmap_constrain(d, v), 1), else: shape_rescore(d, v)
  end

  defp shape_rescore(d, v) do
    lp = Distribution.logpdf(d, v)

    case batch() do
      nil -> total(lp)
      n -> per_particle(lp, n)
    end
  end

  @doc false
  # A log-density term as a site's score: summed to a scalar, or per particle (f64 [n]) under a batch.
  @spec site_total(Mx.t()) :: Mx.t()
  def site_total(lp) do
    # under the vmapped GFI the body holds one particle's values: the replay adds the particle axis
    case {batch(), Process.get(@vmap)} do
      {nil, _} -> total(lp)
      {_n, %{}} -> total(lp)
      {n, nil} -> per_particle(lp, n)
    end
  end

  defp leads?(a, n), do: Mx.rank(a) >= 1 and elem(Mx.shape(a), 0) == n

  # nil: a parameter form not in use (bernoulli's logits: when p is given).
  defp scalar_params?(d), do: d |> Map.from_struct() |> Enum.all?(fn {_k, v} -> v == nil or match?(%Mx.Array{shape: {}}, v) end)

  # f64 [n]: the site's log-density summed over every axis but the particle axis.
  defp per_particle(lp, n) do
    lp = Handlers.f64(lp)
    r = Mx.rank(lp)

    cond do
      leads?(lp, n) and r == 1 -> lp
      leads?(lp, n) -> Mx.sum(lp, axes: Enum.to_list(1..(r - 1)))
      r == 0 -> Mx.broadcast(lp, {n})
      true -> Mx.broadcast(Mx.sum(lp), {n})
    end
  end

  # The number of event axes of a value of d: the rank of a draw minus the rank of its log-density,
  # from a lazy probe (never evaluated), memoized per distribution type and parameter shapes.
  # A distribution that cannot be sampled (an improper prior) is probed with the given value instead.
  defp event_rank(d, value, lp) do
    sig = {d.__struct__, signature(Map.from_struct(d))}
    cache = Process.get(@event_ranks, %{})

    case Map.fetch(cache, sig) do
      {:ok, e} ->
        e

      :error ->
        e =
          try do
            v = Distribution.sample(d, Mx.Random.key(0))
            Mx.rank(v) - Mx.rank(Distribution.logpdf(d, v))
          rescue
            ArgumentError -> max(Mx.rank(value) - Mx.rank(lp), 0)
          end

        # Bounded: a run meets few distinct (type, shapes) pairs, but never let the cache grow without limit.
        cache = if map_size(cache) > 1000, do: %{}, else: cache
        Process.put(@event_ranks, Map.put(cache, sig, e))
        e
    end
  end

  defp signature(%Mx.Array{} = a), do: Mx.shape(a)
  defp signature(%_{} = s), do: {s.__struct__, signature(Map.from_struct(s))}
  defp signature(m) when is_map(m), do: m |> Enum.sort() |> Enum.map(fn {k, v} -> {k, signature(v)} end)
  defp signature(l) when is_list(l), do: Enum.map(l, &signature/1)
  defp signature(t) when is_tuple(t), do: t |> Tuple.to_list() |> signature()
  defp signature(x), do: x

  # ---- one particle's body, run for n particles (the vmap path) -------------------------

  # The vectorized GFI runs the scalar GFI once on one particle's values: every per-particle array
  # ([n | shape]: a choice of a vectorized trace, a per-particle constraint, a draw) is stood for
  # by a placeholder of its per-particle shape (Mx.Transforms.placeholder/2), and whatever the
  # body computes from placeholders is replayed on the [n | shape] arrays by Mx's batching rules.
  # The context: the placeholders, the arrays they stand for, and both maps.

  defp vmapped(who, n, fun) do
    prev = {Process.get(@batch), Process.get(@vmap)}
    Process.put(@batch, n)
    Process.put(@vmap, %{n: n, who: who, holders: [], inputs: [], view: %{}, of: %{}})

    try do
      Mx.Transforms.checking_reads(&per_particle_read!/1, fn -> unview(fun.()) end)
    after
      {b, v} = prev
      if b, do: Process.put(@batch, b), else: Process.delete(@batch)
      if v, do: Process.put(@vmap, v), else: Process.delete(@vmap)
    end
  end

  # Placeholders for per-particle arrays [n | shape] (the same array, the same view): one placeholder per
  # element type stands for all of them packed ([n, total]), each array's view a slice of it. Packing
  # keeps the placeholders few: the engine's vmap replays at most Mx.Transforms.max_batched() at once.
  defp holes(arrays) do
    c = Process.get(@vmap)
    fresh = arrays |> Enum.reject(&Map.has_key?(c.view, &1)) |> Enum.uniq()

    # Separate placeholders cost no copy; packing starts once they would take a quarter of the engine's budget.
    groups =
      if length(c.holders) + length(fresh) <= div(Mx.Transforms.max_batched(), 4),
        do: Enum.map(fresh, &{Mx.type(&1), [&1]}),
        else: Enum.group_by(fresh, &Mx.type/1)

    c = Enum.reduce(groups, c, fn {type, group}, c -> pack(c, type, group) end)

    if length(c.holders) > Mx.Transforms.max_batched() do
      raise ArgumentError,
            "#{c.who}: more per-particle arrays than the engine's vmap replays at once (#{Mx.Transforms.max_batched()}; " <>
              "about one per site drawn or scored per particle): give the model fewer, vector-valued sites " <>
              "(one site for a vector of values), or split the work into several vectorized calls"
    end

    Process.put(@vmap, c)
    Enum.map(arrays, &Map.fetch!(c.view, &1))
  end

  defp pack(c, type, [a]) do
    h = Mx.Transforms.placeholder(per_particle_shape(a), type)

    %{
      c
      | holders: [h | c.holders],
        inputs: [a | c.inputs],
        view: Map.put(c.view, a, h),
        of: Map.put(c.of, h, a)
    }
  end

  defp pack(c, type, group) do
    n = c.n
    sizes = Enum.map(group, &div(Mx.size(&1), n))
    total = Enum.sum(sizes)
    h = Mx.Transforms.placeholder({total}, type)

    input =
      group
      |> Enum.zip(sizes)
      |> Enum.map(fn {a, k} -> Mx.reshape(a, {n, k}) end)
      |> Mx.concatenate(axis: 1)

    {c, _} =
      group
      |> Enum.zip(sizes)
      |> Enum.reduce({c, 0}, fn {a, k}, {c, off} ->
        v = h |> Mx.slice([off], [k]) |> Mx.reshape(per_particle_shape(a))
        {%{c | view: Map.put(c.view, a, v), of: Map.put(c.of, v, a)}, off + k}
      end)

    %{c | holders: [h | c.holders], inputs: [input | c.inputs]}
  end

  defp per_particle_shape(a), do: a |> Mx.shape() |> Tuple.delete_at(0)

  # Values of the running body as arrays over the particles: {[n | shape] array, true} for a value
  # computed from per-particle ones, {value, false} for one every particle shares.
  defp particles_of(values) do
    c = Process.get(@vmap)

    computed =
      values
      |> Enum.filter(&(is_struct(&1, Mx.Array) and not Map.has_key?(c.of, &1)))
      |> Enum.uniq()

    replayed =
      Mx.Transforms.replay(computed, c.holders, c.inputs, c.n)
      |> Enum.zip(computed)
      |> Map.new(fn {r, a} -> {a, r} end)

    Enum.map(values, fn v ->
      cond do
        Map.has_key?(c.of, v) -> {Map.fetch!(c.of, v), true}
        Map.has_key?(replayed, v) -> Map.fetch!(replayed, v)
        true -> {v, false}
      end
    end)
  end

  @doc """
  Inside a vectorized call, the values of `a` over the particles: an
  `[n | shape]` array when `a` is computed from per-particle values, else
  `a` itself (shared); outside one, `a`. For code that must read a value
  while the body runs for one particle, such as a combinator checking an
  index against its branches for every particle.

      iex> import Gen
      iex> m = gen fn -> x = trace(:x, Gen.Dist.normal(0.0, 1.0)); send(self(), Mx.describe(Gen.Vectorized.particle_values(x))); x end
      iex> _ = Gen.vsimulate(m, [], 3, key: Mx.Random.key(0))
      iex> receive do: (d -> d)
      "f64[3]"
  """
  @spec particle_values(Mx.t()) :: Mx.t()
  def particle_values(%Mx.Array{} = a) do
    if Process.get(@vmap), do: elem(hd(particles_of([a])), 0), else: a
  end

  @doc """
  Raises when `a` is a per-particle value inside a vectorized call: for code
  that needs one value for every particle, such as a combinator's branch
  index. `what` names the value in the message. Returns `a`.

      iex> Gen.Vectorized.shared!(Mx.tensor(1), "the index") |> Mx.to_number()
      1
      iex> import Gen
      iex> m = gen fn -> k = trace(:k, Gen.Dist.bernoulli(0.5)); Gen.Vectorized.shared!(k, "the flag") end
      iex> Gen.vsimulate(m, [], 3)
      ** (ArgumentError) Gen.vsimulate: the flag is a per-particle value (bool[3] over a particle batch of 3); Elixir control flow on sampled values cannot run vectorized over 3 particles: write the branch with Mx.select/3 (or the vectorized switch), or run the scalar GFI once per particle
  """
  @spec shared!(Mx.t(), String.t()) :: Mx.t()
  def shared!(%Mx.Array{} = a, what) do
    c = Process.get(@vmap)

    case c && particles_of([a]) do
      [{b, true}] ->
        raise ArgumentError,
              "#{c.who}: #{what} is a per-particle value (#{Mx.describe(b)} over a particle batch of #{c.n}); " <>
                control_flow_hint(c.n)

      _ ->
        a
    end
  end

  defp per_particle_read!(a) do
    c = Process.get(@vmap)

    if c && Mx.Transforms.depends?(a, c.holders) do
      raise ArgumentError,
            "#{c.who}: the model (or a combinator it calls, such as switch, mix or mask) read a per-particle value as an " <>
              "Elixir number (#{Mx.describe(a)} per particle, under a particle batch of #{c.n}); " <>
              control_flow_hint(c.n)
    end
  end

  defp control_flow_hint(n) do
    "Elixir control flow on sampled values cannot run vectorized over #{n} particles: write the branch " <>
      "with Mx.select/3 (or the vectorized switch), or run the scalar GFI once per particle"
  end

  # A draw per particle: the site's parameters over the particles, then one shape-based draw (sample_n
  # when they are shared, one draw of the batched distribution otherwise); value and score become placeholders.
  defp vmap_draw(%Gen.Dist.Custom{} = d, key) do
    # its parameters live inside its functions: they cannot be batched, so only a shared one draws
    if particle_site(d, nil, false) != :shared do
      raise ArgumentError,
            "Gen.Dist.custom (#{d.name}): a custom distribution whose parameters are per particle cannot draw under a " <>
              "particle batch yet (its functions take one particle's parameters); run the scalar GFI per particle"
    end

    vmap_draw_batched(d, key)
  end

  defp vmap_draw(d, key), do: vmap_draw_batched(d, key)

  defp vmap_draw_batched(d, key) do
    n = Process.get(@vmap).n

    {v, lp} =
      case particle_site(d, nil, false) do
        :shared ->
          v = Distribution.sample_n(d, key, n)
          {v, Distribution.logpdf(d, v)}

        {db, _} ->
          v = Distribution.sample(db, key)
          {v, Distribution.logpdf(db, v)}
      end

    unless leads?(v, n) do
      raise ArgumentError, "#{inspect(d.__struct__)}: a draw for #{n} particles has shape #{Mx.describe(v)}, not [#{n} | shape]"
    end

    [v, score] = holes([v, particle_sum(lp, n, d)])
    {v, score}
  end

  # A given value's log-density per particle: shared (a plain scalar) when neither the value nor the
  # parameters are per-particle, else a placeholder for the f64 [n] scores.
  defp vmap_constrain(d, v) do
    a = if is_struct(v, Mx.Array), do: v, else: Mx.tensor(v)

    case particle_site(d, a, true) do
      :shared -> {a, total(Distribution.logpdf(d, a))}
      {db, ab} -> {a, hd(holes([particle_sum(Distribution.logpdf(db, ab), Process.get(@vmap).n, d)]))}
    end
  end

  # The site over the particles: :shared when neither the parameters nor (with value? true) the value
  # are per-particle, else {distribution, value} with every per-particle operand laid out as
  # [n, 1.., shape]: the particle axis in front of the site's batch axes, with as many 1s as the
  # site's batch rank exceeds the operand's own (read from a lazy log-density, never evaluated).
  defp particle_site(d, v, value?) do
    params = params_of(d)
    operands = if value?, do: params ++ [v], else: params
    over = particles_of(operands)

    if Enum.all?(over, fn {_, b?} -> not b? end) do
      :shared
    else
      n = Process.get(@vmap).n
      # A draw's batch shape is its parameters': scalars give rank 0 with no probe.
      site_rank = if not value? and Enum.all?(params, &(Mx.rank(&1) == 0)), do: 0, else: Mx.rank(site_logpdf(d, operands, value?))

      aligned =
        operands
        |> Enum.zip(over)
        |> Enum.with_index()
        |> Enum.map(fn
          {{_op, {a, false}}, _i} ->
            a

          {{op, {a, true}}, i} ->
            pad = site_rank - batch_rank(d, operands, value?, i, site_rank)
            if pad > 0, do: Mx.reshape(a, List.to_tuple([n | List.duplicate(1, pad)] ++ Tuple.to_list(Mx.shape(op)))), else: a
        end)

      if value?, do: {put_params(d, Enum.drop(aligned, -1)), List.last(aligned)}, else: {put_params(d, aligned), nil}
    end
  end

  # The log-density of one particle's operands (the value last when value? is true; else a lazy draw).
  defp site_logpdf(d, operands, true), do: Distribution.logpdf(put_params(d, Enum.drop(operands, -1)), List.last(operands))

  defp site_logpdf(d, operands, false) do
    d = put_params(d, operands)
    Distribution.logpdf(d, Distribution.sample(d, Mx.Random.key(0)))
  end

  # How many leading axes of operand i broadcast against the site's batch axes: with site_rank + 1
  # unit axes in front of it, the log-density's rank is that number + site_rank + 1.
  defp batch_rank(d, operands, value?, i, site_rank) do
    op = Enum.at(operands, i)

    if site_rank == 0 or Mx.rank(op) == 0 do
      0
    else
      probe = Mx.reshape(op, List.to_tuple(List.duplicate(1, site_rank + 1) ++ Tuple.to_list(Mx.shape(op))))
      r = Mx.rank(site_logpdf(d, List.replace_at(operands, i, probe), value?)) - site_rank - 1
      r |> max(0) |> min(Mx.rank(op))
    end
  end

  # f64 [n]: a per-particle log-density [n | batch shape] summed over its batch axes.
  defp particle_sum(lp, n, d) do
    lp = Handlers.f64(lp)

    unless leads?(lp, n) do
      raise ArgumentError,
            "#{inspect(d.__struct__)}: the log-density for #{n} particles has shape #{Mx.describe(lp)}, not [#{n} | batch shape]"
    end

    if Mx.rank(lp) == 1, do: lp, else: Mx.sum(lp, axes: Enum.to_list(1..(Mx.rank(lp) - 1)))
  end

  # A distribution's parameter arrays (nested distributions included), in a fixed order, and back.
  defp params_of(%Mx.Array{} = a), do: [a]
  defp params_of(l) when is_list(l), do: Enum.flat_map(l, &params_of/1)
  defp params_of(t) when is_tuple(t), do: t |> Tuple.to_list() |> params_of()

  defp params_of(%_{} = s) do
    if Distribution.impl_for(s) != nil, do: s |> Map.from_struct() |> params_of(), else: []
  end

  defp params_of(m) when is_map(m),
    do: m |> Enum.sort() |> Enum.flat_map(fn {_k, v} -> params_of(v) end)

  defp params_of(_), do: []

  defp put_params(d, arrays) do
    {d, []} = put_params_in(d, arrays)
    d
  end

  defp put_params_in(%Mx.Array{}, [a | rest]), do: {a, rest}
  defp put_params_in(l, arrays) when is_list(l), do: Enum.map_reduce(l, arrays, &put_params_in/2)

  defp put_params_in(t, arrays) when is_tuple(t) do
    {l, rest} = put_params_in(Tuple.to_list(t), arrays)
    {List.to_tuple(l), rest}
  end

  defp put_params_in(%mod{} = s, arrays) do
    if Distribution.impl_for(s) != nil do
      {fields, rest} = s |> Map.from_struct() |> put_params_in(arrays)
      {struct(mod, fields), rest}
    else
      {s, arrays}
    end
  end

  defp put_params_in(m, arrays) when is_map(m) do
    {kvs, rest} =
      m
      |> Enum.sort()
      |> Enum.map_reduce(arrays, fn {k, v}, acc ->
        {v, acc} = put_params_in(v, acc)
        {{k, v}, acc}
      end)

    {Map.new(kvs), rest}
  end

  defp put_params_in(other, arrays), do: {other, arrays}

  # ---- per-particle inputs and results of the vmap path ------------------------------------

  # One particle's view of a term of a vectorized trace: every array with the particle axis becomes
  # its placeholder. A vectorized trace's own arguments and generative function are shared, as given.
  defp view_trace(%Trace{} = t) do
    %{view(%{t | args: [], gen_fn: nil}) | args: t.args, gen_fn: t.gen_fn}
  end

  defp view(term), do: view_where(term, fn _a -> true end)

  # Views of the arrays of term with the particle axis for which keep? holds, all packed at once.
  defp view_where(term, keep?) do
    n = Process.get(@vmap).n
    per_particle = term |> collect_leaves() |> Enum.filter(&(leads?(&1, n) and keep?.(&1)))
    views = per_particle |> Enum.zip(holes(per_particle)) |> Map.new()
    map_tree(term, fn a -> Map.get(views, a, a) end)
  end

  # Constraints for one particle: those with the particle axis are per-particle, except the shared ones.
  defp view_choices(%Choicemap{} = cm, shared) do
    shared =
      if shared, do: MapSet.new(Choicemap.to_list(shared), &elem(&1, 1)), else: MapSet.new()

    view_where(cm, &(not MapSet.member?(shared, &1)))
  end

  # The body's results for every particle: placeholders give back their arrays, computed values are
  # replayed on them (one replay of every result), shared values stay shared. Every choice and score of
  # a trace carries the particle axis, and so does a shared value whose leading axis has size n, so
  # that in a vectorized trace "leading axis n" always means "per particle". The arguments and
  # generative function of a returned trace are kept as given.
  defp unview(out) do
    c = Process.get(@vmap)
    n = c.n
    {stripped, tops} = strip_tops(out)
    leaves = collect_leaves(stripped)
    must = stripped |> record_leaves() |> MapSet.new()
    over = leaves |> particles_of() |> Enum.zip(leaves) |> Map.new(fn {r, a} -> {a, r} end)

    # One broadcast per shared value, however many places of the result hold it.
    spread =
      for {a, {a, false}} <- over, MapSet.member?(must, a) or leads?(a, n), into: %{} do
        {a, Mx.broadcast(a, List.to_tuple([n | Tuple.to_list(Mx.shape(a))]))}
      end

    if log = Process.get(@spread_log),
      do: Process.put(@spread_log, Enum.reduce(spread, log, fn {a, b}, acc -> Map.put(acc, b, a) end))

    stripped
    |> map_tree(fn a ->
      case Map.fetch!(over, a) do
        {b, true} -> b
        {a, false} -> Map.get(spread, a, a)
      end
    end)
    |> restore_tops(tops)
  end

  @doc false
  # Runs fun and returns {its result, %{broadcast => shared value}}: the broadcasts of shared values
  # (observations, draws from shared parameters) that vectorized calls made, for callers that rebuild
  # them instead of storing them (Gen.Inference.Vectorized's compiled tapes).
  @spec with_spread_log((-> term())) :: {term(), %{Mx.t() => Mx.t()}}
  def with_spread_log(fun) do
    outer = Process.put(@spread_log, %{})

    try do
      result = fun.()
      {result, Process.get(@spread_log)}
    after
      log = Process.delete(@spread_log)
      if outer, do: Process.put(@spread_log, Map.merge(outer, log || %{}))
    end
  end

  defp strip_tops(%Trace{} = t), do: {%{t | args: [], gen_fn: nil}, {t.args, t.gen_fn}}

  defp strip_tops(t) when is_tuple(t) do
    {items, tops} = t |> Tuple.to_list() |> Enum.map(&strip_tops/1) |> Enum.unzip()
    {List.to_tuple(items), tops}
  end

  defp strip_tops(other), do: {other, nil}

  defp restore_tops(%Trace{} = t, {args, gen_fn}), do: %{t | args: args, gen_fn: gen_fn}

  defp restore_tops(t, tops) when is_tuple(t) do
    t |> Tuple.to_list() |> Enum.zip_with(tops, &restore_tops/2) |> List.to_tuple()
  end

  defp restore_tops(other, nil), do: other

  # The distinct arrays of a term.
  defp collect_leaves(term) do
    {_, acc} = map_tree_acc(term, %{}, fn a, acc -> {a, Map.put(acc, a, true)} end)
    Map.keys(acc)
  end

  # The arrays that are choices or scores of a trace record (at any depth).
  defp record_leaves(%Trace{} = t) do
    collect_leaves(t.choices) ++
      collect_leaves(t.score) ++ Enum.flat_map(t.subtraces, fn {_p, s} -> record_leaves(s) end)
  end

  defp record_leaves(t) when is_tuple(t),
    do: t |> Tuple.to_list() |> Enum.flat_map(&record_leaves/1)

  defp record_leaves(_), do: []

  # The arrays of a trace tree (records, choicemaps, distributions, lists, tuples and maps of them).
  defp map_tree(term, fun) do
    {t, nil} = map_tree_acc(term, nil, fn a, nil -> {fun.(a), nil} end)
    t
  end

  defp map_tree_acc(%Mx.Array{} = a, acc, fun), do: fun.(a, acc)

  defp map_tree_acc(%Trace{} = t, acc, fun) do
    {[gen_fn, args, choices, retval, score], acc} =
      map_tree_acc([t.gen_fn, t.args, t.choices, t.retval, t.score], acc, fun)

    {subs, acc} =
      Enum.map_reduce(t.subtraces, acc, fn {p, s}, acc ->
        {s, acc} = map_tree_acc(s, acc, fun)
        {{p, s}, acc}
      end)

    {%{
       t
       | gen_fn: gen_fn,
         args: args,
         choices: choices,
         retval: retval,
         score: score,
         subtraces: Map.new(subs)
     }, acc}
  end

  defp map_tree_acc(%Choicemap{value: v, subs: subs} = cm, acc, fun) do
    {v, acc} = if v == nil, do: {nil, acc}, else: map_tree_acc(v, acc, fun)

    {subs, acc} =
      Enum.map_reduce(subs, acc, fn {k, sub}, acc ->
        {sub, acc} = map_tree_acc(sub, acc, fun)
        {{k, sub}, acc}
      end)

    {%{cm | value: v, subs: Map.new(subs)}, acc}
  end

  defp map_tree_acc(l, acc, fun) when is_list(l),
    do: Enum.map_reduce(l, acc, &map_tree_acc(&1, &2, fun))

  defp map_tree_acc(t, acc, fun) when is_tuple(t) do
    {l, acc} = map_tree_acc(Tuple.to_list(t), acc, fun)
    {List.to_tuple(l), acc}
  end

  defp map_tree_acc(%mod{} = d, acc, fun) do
    if Distribution.impl_for(d) != nil do
      {fields, acc} = d |> Map.from_struct() |> map_tree_acc(acc, fun)
      {struct(mod, fields), acc}
    else
      {d, acc}
    end
  end

  defp map_tree_acc(m, acc, fun) when is_map(m) do
    {kvs, acc} =
      Enum.map_reduce(m, acc, fn {k, v}, acc ->
        {v, acc} = map_tree_acc(v, acc, fun)
        {{k, v}, acc}
      end)

    {Map.new(kvs), acc}
  end

  defp map_tree_acc(other, acc, _fun), do: {other, acc}

  # ---- the vectorized GFI -----------------------------------------------------------

  @doc """
  `n` particles of `gf` on `args` in one run of the body: a vectorized
  trace (every choice `[n | shape]`, score f64 `[n]`). Options: `key:`.
  Same as `Gen.vsimulate/4`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> t = Gen.Vectorized.simulate(m, [], 5, key: Mx.Random.key(0))
      iex> {Mx.describe(t[:mu]), Mx.describe(t[:y]), Mx.describe(Gen.get_score(t))}
      {"f64[5]", "f64[5]", "f64[5]"}
  """
  @spec simulate(Gen.gen_fn(), [term()], pos_integer(), keyword()) :: Trace.t()
  def simulate(gf, args, n, opts \\ []) do
    check_n!(n, "Gen.vsimulate")
    Mx.Opts.validate!(opts, [:key], "Gen.vsimulate")
    t = run("Gen.vsimulate", n, fn -> GenerativeFunction.simulate(gf, args, key(opts)) end) |> particles!(n)
    nan_rows!("Gen.vsimulate", [t.score], gf, args, t.choices, n)
    t
  end

  @doc """
  `n` particles of `gf` on `args` agreeing with `observations`, in one run of
  the body: `{trace, weights}`, the weights an f64 `[n]` array (each
  particle's `Gen.generate/4` weight). Observations are shared by every
  particle and broadcast; one whose batch axes (those before the event
  axes of its distribution) lead with size `n` (n > 1) would be taken for a
  per-particle value and raises. Options: `key:`. Same as
  `Gen.vgenerate/5`.
  """
  @spec generate(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), pos_integer(), keyword()) :: {Trace.t(), Mx.t()}
  def generate(gf, args, observations, n, opts \\ []) do
    check_n!(n, "Gen.vgenerate")
    Mx.Opts.validate!(opts, [:key], "Gen.vgenerate")
    cm = Choicemap.new(observations)
    {t, w} = per_particle_generate(gf, args, cm, n, key(opts), "Gen.vgenerate", cm)
    nan_rows!("Gen.vgenerate", [t.score, w], gf, args, t.choices, n)
    {t, w}
  end

  @doc false
  # generate whose constraints may be per-particle (leading axis n), for the vectorized algorithms;
  # `shared_observations:` names the shared ones (checked as vgenerate checks its observations).
  @spec generate_particles(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), pos_integer(), keyword()) ::
          {Trace.t(), Mx.t()}
  def generate_particles(gf, args, constraints, n, opts \\ []) do
    check_n!(n, "Gen.Vectorized.generate_particles")
    Mx.Opts.validate!(opts, [:key, :shared_observations], "Gen.Vectorized.generate_particles")
    shared = Keyword.get(opts, :shared_observations)
    per_particle_generate(gf, args, Choicemap.new(constraints), n, key(opts), "Gen.Vectorized.generate", shared)
  end

  defp per_particle_generate(gf, args, cm, n, key, who, shared \\ nil) do
    {t, w} = run(who, n, fn -> GenerativeFunction.generate(gf, args, view_choices(cm, shared), key) end)
    {particles!(t, n), broadcast(w, n)}
  end

  # NaN diagnostics of a vectorized call (Gen.NaN.check_rows!/3): the first NaN particle's choices
  # (per-particle ones indexed, shared ones as they are) go through the scalar GFI.
  defp nan_rows!(who, values, gf, args, choices, n) do
    Gen.NaN.check_rows!(who, values, fn i ->
      row =
        choices
        |> Choicemap.to_list()
        |> Enum.reduce(Choicemap.new(), fn {p, v}, acc ->
          per_particle? = match?(%Mx.Array{}, v) and Mx.rank(v) >= 1 and elem(Mx.shape(v), 0) == n
          Choicemap.put(acc, p, if(per_particle?, do: v[i], else: v))
        end)

      {gf, args, row}
    end)
  end

  @doc """
  `Gen.update/5` of every particle of the vectorized trace `trace`, in one
  run: `{trace, weights, retdiff, discard}` with f64 `[n]` weights.
  Constraints are shared (broadcast) or per-particle (leading axis `n`).
  Options: `key:`, `shared_observations:` (a choicemap: constraints known to
  be shared, checked as `Gen.vgenerate/5` checks its observations).

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.vgenerate(m, [], %{y: 0.0}, 3, key: Mx.Random.key(0))
      iex> {t2, w, _, _} = Gen.Vectorized.update(t, [], :no_change, %{y: 1.0})
      iex> # weight = log N(1; mu, 1) - log N(0; mu, 1) = mu - 1/2, per particle
      iex> Enum.zip_with(Mx.to_list(w), Mx.to_list(t2[:mu]), fn wi, mu -> abs(wi - (mu - 0.5)) < 1.0e-12 end)
      [true, true, true]
  """
  @spec update(Trace.t(), [term()], [Gen.argdiff()] | Gen.argdiff(), Choicemap.t() | map() | list(), keyword()) ::
          {Trace.t(), Mx.t(), Gen.argdiff(), Choicemap.t()}
  def update(%Trace{} = trace, args, argdiffs, constraints, opts \\ []) do
    n = particles(trace)
    {shared, opts} = opts |> Mx.Opts.validate!([:key, :shared_observations], "Gen.Vectorized.update") |> Keyword.pop(:shared_observations)
    shared = if shared, do: Choicemap.new(shared)

    {t, w, rd, d} =
      run("Gen.Vectorized.update", n, fn ->
        Gen.update(view_trace(trace), args, argdiffs, view_choices(Choicemap.new(constraints), shared), opts)
      end)

    {t, w} = {particles!(t, n), broadcast(w, n)}
    nan_rows!("Gen.Vectorized.update", [t.score, w], t.gen_fn, t.args, t.choices, n)
    {t, w, rd, d}
  end

  @doc """
  `Gen.regenerate/3` of every particle of `trace` (the selection resampled
  from its prior under each particle's values), in one run: `{trace,
  weights, retdiff}` with f64 `[n]` weights. Options: `key:`.
  """
  @spec regenerate(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), Mx.t(), Gen.argdiff()}
  def regenerate(%Trace{} = trace, %Selection{} = selection, opts \\ []) do
    Mx.Opts.validate!(opts, [:key], "Gen.Vectorized.regenerate")
    n = particles(trace)
    {t, w, rd} = run("Gen.Vectorized.regenerate", n, fn -> Gen.regenerate(view_trace(trace), selection, opts) end)
    {t, w} = {particles!(t, n), broadcast(w, n)}
    nan_rows!("Gen.Vectorized.regenerate", [t.score, w], t.gen_fn, t.args, t.choices, n)
    {t, w, rd}
  end

  @doc """
  `{weights, retval}`: the log joint density of each particle's `choices`
  (an f64 `[n]` array), in one run of the body. Choices are per-particle
  (leading axis `n`) or shared.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> {w, _} = Gen.Vectorized.assess(m, [], %{x: Mx.tensor([0.0, 1.0], type: :f64)}, 2)
      iex> Mx.to_list(w) |> Enum.map(&Float.round(&1, 10))
      [-0.9189385332, -1.4189385332]
  """
  @spec assess(Gen.gen_fn(), [term()], Choicemap.t() | map() | list(), pos_integer()) :: {Mx.t(), term()}
  def assess(gf, args, choices, n) do
    check_n!(n, "Gen.Vectorized.assess")
    cm = Choicemap.new(choices)
    {w, r} = run("Gen.Vectorized.assess", n, fn -> Gen.assess(gf, args, view_choices(cm, nil)) end)
    w = broadcast(w, n)
    nan_rows!("Gen.Vectorized.assess", [w], gf, args, cm, n)
    {w, r}
  end

  @doc """
  `{choices, weights, retval}`: `n` samples of `gf` on `args` in one run and
  each one's log-density (f64 `[n]`). Options: `key:`.
  """
  @spec propose(Gen.gen_fn(), [term()], pos_integer(), keyword()) :: {Choicemap.t(), Mx.t(), term()}
  def propose(gf, args, n, opts \\ []) do
    t = simulate(gf, args, n, Mx.Opts.validate!(opts, [:key], "Gen.Vectorized.propose"))
    {t.choices, t.score, t.retval}
  end

  # ---- particles ----------------------------------------------------------------------

  @doc """
  The number of particles of a vectorized trace (the size of its f64 `[n]`
  score); raises for a trace that is not vectorized.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> Gen.Vectorized.particles(Gen.vsimulate(m, [], 7, key: Mx.Random.key(0)))
      7
  """
  @spec particles(Trace.t()) :: pos_integer()
  def particles(%Trace{score: %Mx.Array{shape: {n}}}), do: n

  def particles(%Trace{score: s} = t) do
    raise ArgumentError,
          "Gen.Vectorized: expected a vectorized trace (score f64[n], from Gen.vsimulate/4 or Gen.vgenerate/5), " <>
            "got a trace of #{inspect(t.gen_fn)} with score #{describe(s)}"
  end

  def particles(other), do: raise(ArgumentError, "Gen.Vectorized: expected a vectorized Gen.Trace, got #{inspect(other)}")

  @doc """
  The particles `indices` (a list or integer array of positions in
  `0..n-1`, repeats allowed) of a vectorized trace, as a vectorized trace of
  `length(indices)` particles: how resampling copies ancestors.

  The trace tree (`Gen.Trace` records of the dynamic functions and the
  combinators) is gathered in place: every array with the particle axis
  (leading size `n`) in its choices, scores, return values and arguments
  is taken along axis 0, each array once however many records share it.
  That costs one gather per array, not a run of the model. A trace holding
  records of another type is rebuilt instead by a vectorized generate of
  its gathered choices.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.vsimulate(m, [], 3, key: Mx.Random.key(0))
      iex> t2 = Gen.Vectorized.take(t, [2, 2, 0, 1])
      iex> xs = Mx.to_list(t[:x])
      iex> Mx.to_list(t2[:x]) == [Enum.at(xs, 2), Enum.at(xs, 2), Enum.at(xs, 0), Enum.at(xs, 1)]
      true
  """
  @spec take(Trace.t(), [non_neg_integer()] | Mx.t()) :: Trace.t()
  def take(%Trace{} = trace, indices) do
    n = particles(trace)
    idx = if is_list(indices), do: Mx.tensor(indices, type: :s64), else: indices

    if gatherable?(trace) do
      {t, memo} = gather(trace, {idx, n}, %{})
      # Evaluated now: a pending gather would keep the old trace's arrays alive (and chain traces in loops).
      Mx.eval(Map.values(memo))
      t
    else
      rebuild_take(trace, idx)
    end
  end

  @doc false
  # take/2 by a vectorized generate of the gathered choices (for traces of other record types).
  def rebuild_take(%Trace{} = trace, idx) do
    m = elem(Mx.shape(idx), 0)

    cm =
      trace.choices
      |> Choicemap.to_list()
      |> Enum.reduce(Choicemap.new(), fn {p, v}, acc -> Choicemap.put(acc, p, Mx.take(v, idx, axis: 0)) end)

    {t, _w} = per_particle_generate(trace.gen_fn, trace.args, cm, m, Mx.Random.key(0), "Gen.Vectorized.take")
    t
  end

  defp gatherable?(%Trace{subtraces: subs}), do: Enum.all?(subs, fn {_p, s} -> match?(%Trace{}, s) and gatherable?(s) end)

  # Arrays are memoized by term (equal terms are the same graph node), so shared arrays stay shared.
  defp gather(%Mx.Array{} = a, {idx, n}, memo) do
    case memo do
      %{^a => g} ->
        {g, memo}

      _ ->
        g = if leads?(a, n), do: Mx.take(a, idx, axis: 0), else: a
        {g, Map.put(memo, a, g)}
    end
  end

  defp gather(%Trace{} = t, ctx, memo) do
    {gen_fn, memo} = gather(t.gen_fn, ctx, memo)
    {args, memo} = gather(t.args, ctx, memo)
    {choices, memo} = gather(t.choices, ctx, memo)
    {retval, memo} = gather(t.retval, ctx, memo)
    {score, memo} = gather(t.score, ctx, memo)

    {subs, memo} =
      Enum.map_reduce(t.subtraces, memo, fn {p, s}, memo ->
        {s, memo} = gather(s, ctx, memo)
        {{p, s}, memo}
      end)

    {%{t | gen_fn: gen_fn, args: args, choices: choices, retval: retval, score: score, subtraces: Map.new(subs)}, memo}
  end

  defp gather(%Choicemap{value: v, subs: subs} = cm, ctx, memo) do
    {v, memo} = if v == nil, do: {nil, memo}, else: gather(v, ctx, memo)

    {subs, memo} =
      Enum.map_reduce(subs, memo, fn {k, sub}, memo ->
        {sub, memo} = gather(sub, ctx, memo)
        {{k, sub}, memo}
      end)

    {%{cm | value: v, subs: Map.new(subs)}, memo}
  end

  defp gather(l, ctx, memo) when is_list(l), do: Enum.map_reduce(l, memo, &gather(&1, ctx, &2))

  defp gather(t, ctx, memo) when is_tuple(t) do
    {l, memo} = gather(Tuple.to_list(t), ctx, memo)
    {List.to_tuple(l), memo}
  end

  defp gather(m, ctx, memo) when is_map(m) and not is_struct(m) do
    {kvs, memo} =
      Enum.map_reduce(m, memo, fn {k, v}, memo ->
        {v, memo} = gather(v, ctx, memo)
        {{k, v}, memo}
      end)

    {Map.new(kvs), memo}
  end

  # A distribution's parameters may be per-particle (a site's record keeps its distribution).
  defp gather(%mod{} = d, ctx, memo) when mod != Mx.Array do
    if Distribution.impl_for(d) != nil do
      {fields, memo} = d |> Map.from_struct() |> gather(ctx, memo)
      {struct(mod, fields), memo}
    else
      {d, memo}
    end
  end

  # Other terms (numbers, atoms, generative functions) are shared by every particle.
  defp gather(other, _ctx, memo), do: {other, memo}

  @doc """
  Per particle, `on_true` where `mask` (a boolean `[n]` array) is true and
  `on_false` elsewhere: how MCMC accepts per chain. Both traces must have
  the same addresses (true of two traces of one model whose structure does
  not depend on sampled values).

  The two trace trees are merged in place: arrays that are the same term
  are kept, the others become `Mx.select(mask, a, b)` with the mask along
  the particle axis, so the merged trace's choices, scores and records
  agree particle by particle. When the trees differ in shape (another
  record type, or different sub-calls) the trace is rebuilt instead by a
  vectorized generate of the merged choices.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> a = Gen.vsimulate(m, [], 3, key: Mx.Random.key(0))
      iex> b = Gen.vsimulate(m, [], 3, key: Mx.Random.key(1))
      iex> t = Gen.Vectorized.select(Mx.tensor([true, false, true]), a, b)
      iex> [xa, xb, xt] = Enum.map([a, b, t], &Mx.to_list(&1[:x]))
      iex> xt == [Enum.at(xa, 0), Enum.at(xb, 1), Enum.at(xa, 2)]
      true
  """
  @spec select(Mx.t(), Trace.t(), Trace.t()) :: Trace.t()
  def select(mask, %Trace{} = on_true, %Trace{} = on_false) do
    n = particles(on_false)
    check_same_addresses!(on_true, on_false)

    try do
      {t, memo} = blend(on_true, on_false, {mask, n}, %{})
      # Evaluated now, every record's arrays: pending selects would chain each trace to the last.
      Mx.eval(Map.values(memo))
      t
    catch
      :mismatch -> rebuild_select(mask, on_true, on_false)
    end
  end

  @doc false
  # select/3 by a vectorized generate of the merged choices.
  def rebuild_select(mask, %Trace{} = on_true, %Trace{} = on_false) do
    n = particles(on_false)
    check_same_addresses!(on_true, on_false)
    new = Map.new(Choicemap.to_list(on_true.choices))

    cm =
      on_false.choices
      |> Choicemap.to_list()
      |> Enum.reduce(Choicemap.new(), fn {p, v}, acc -> Choicemap.put(acc, p, where(mask, Map.fetch!(new, p), v, n)) end)

    {t, _w} = per_particle_generate(on_false.gen_fn, on_false.args, cm, n, Mx.Random.key(0), "Gen.Vectorized.select")
    t
  end

  defp check_same_addresses!(a, b) do
    pa = a.choices |> Choicemap.to_list() |> Enum.map(&elem(&1, 0)) |> Enum.sort()
    pb = b.choices |> Choicemap.to_list() |> Enum.map(&elem(&1, 0)) |> Enum.sort()

    if pa != pb do
      raise ArgumentError, "Gen.Vectorized.select/3: the two traces have different addresses (#{inspect(pa)} and #{inspect(pb)})"
    end
  end

  # The mask along the particle axis of a value: [n, 1, ..., 1].
  defp where(mask, a, b, n) do
    r = max(Mx.rank(a), Mx.rank(b))
    m = if r <= 1, do: mask, else: Mx.reshape(mask, List.to_tuple([n | List.duplicate(1, r - 1)]))
    Mx.select(m, a, b)
  end

  defp blend(a, b, _ctx, memo) when a === b, do: {a, memo}

  defp blend(%Mx.Array{} = a, %Mx.Array{} = b, {mask, n}, memo) do
    case memo do
      %{{^a, ^b} => g} ->
        {g, memo}

      _ ->
        # Values with and without the particle axis broadcast; a shape clash means different records.
        sa = if leads?(a, n), do: tl(Tuple.to_list(Mx.shape(a))), else: Tuple.to_list(Mx.shape(a))
        sb = if leads?(b, n), do: tl(Tuple.to_list(Mx.shape(b))), else: Tuple.to_list(Mx.shape(b))
        if sa != sb, do: throw(:mismatch)
        a2 = if leads?(a, n), do: a, else: Mx.new_axis(a, 0)
        b2 = if leads?(b, n), do: b, else: Mx.new_axis(b, 0)
        g = where(mask, a2, b2, n)
        {g, Map.put(memo, {a, b}, g)}
    end
  end

  defp blend(%Trace{} = a, %Trace{} = b, ctx, memo) do
    if Map.keys(a.subtraces) |> Enum.sort() != Map.keys(b.subtraces) |> Enum.sort(), do: throw(:mismatch)
    {gen_fn, memo} = blend(a.gen_fn, b.gen_fn, ctx, memo)
    {args, memo} = blend(a.args, b.args, ctx, memo)
    {choices, memo} = blend(a.choices, b.choices, ctx, memo)
    {retval, memo} = blend(a.retval, b.retval, ctx, memo)
    {score, memo} = blend(a.score, b.score, ctx, memo)

    {subs, memo} =
      Enum.map_reduce(b.subtraces, memo, fn {p, sb}, memo ->
        {s, memo} = blend(Map.fetch!(a.subtraces, p), sb, ctx, memo)
        {{p, s}, memo}
      end)

    {%{b | gen_fn: gen_fn, args: args, choices: choices, retval: retval, score: score, subtraces: Map.new(subs)}, memo}
  end

  defp blend(%Choicemap{} = a, %Choicemap{} = b, ctx, memo) do
    if (a.value == nil) != (b.value == nil) or Enum.sort(Map.keys(a.subs)) != Enum.sort(Map.keys(b.subs)), do: throw(:mismatch)
    {v, memo} = if b.value == nil, do: {nil, memo}, else: blend(a.value, b.value, ctx, memo)

    {subs, memo} =
      Enum.map_reduce(b.subs, memo, fn {k, sb}, memo ->
        {s, memo} = blend(Map.fetch!(a.subs, k), sb, ctx, memo)
        {{k, s}, memo}
      end)

    {%{b | value: v, subs: Map.new(subs)}, memo}
  end

  defp blend([_ | _] = a, [_ | _] = b, ctx, memo) when length(a) == length(b) do
    Enum.zip(a, b) |> Enum.map_reduce(memo, fn {x, y}, memo -> blend(x, y, ctx, memo) end)
  end

  defp blend(a, b, ctx, memo) when is_tuple(a) and is_tuple(b) and tuple_size(a) == tuple_size(b) do
    {l, memo} = blend(Tuple.to_list(a), Tuple.to_list(b), ctx, memo)
    {List.to_tuple(l), memo}
  end

  defp blend(%mod{} = a, %mod{} = b, ctx, memo) do
    # Distributions (a site's record) and other records of the same type, field by field.
    {fields, memo} = blend(Map.from_struct(a), Map.from_struct(b), ctx, memo)
    {struct(mod, fields), memo}
  end

  defp blend(a, b, ctx, memo) when is_map(a) and is_map(b) and not is_struct(a) and not is_struct(b) do
    if Enum.sort(Map.keys(a)) != Enum.sort(Map.keys(b)), do: throw(:mismatch)

    {kvs, memo} =
      Enum.map_reduce(b, memo, fn {k, vb}, memo ->
        {v, memo} = blend(Map.fetch!(a, k), vb, ctx, memo)
        {{k, v}, memo}
      end)

    {Map.new(kvs), memo}
  end

  # Equal plain terms are kept; anything else differs in shape between the two records.
  defp blend(a, b, _ctx, memo) do
    if a == b, do: {b, memo}, else: throw(:mismatch)
  end

  @doc false
  # Evaluates a vectorized trace's arrays so no pending graph chains it to older ones.
  def force(%Trace{} = t), do: Gen.Inference.force(t)

  # ---- helpers -------------------------------------------------------------------------

  defp key(opts), do: Keyword.get_lazy(opts, :key, &Gen.next_key/0)

  defp broadcast(w, n) do
    w = Handlers.f64(w)
    if Mx.shape(w) == {n}, do: w, else: Mx.broadcast(w, {n})
  end

  defp particles!(%Trace{} = t, n), do: %{t | score: broadcast(t.score, n)}

  defp describe(%Mx.Array{} = a), do: Mx.describe(a)
  defp describe(x), do: inspect(x)

  # The vmap path, with errors that say they happened under a particle batch and what to do.
  defp run(who, n, fun) do
    vmapped(who, n, fun)
  rescue
    e in [ArgumentError, Mx.Error] ->
      msg = Exception.message(e)

      if String.starts_with?(msg, who) do
        reraise e, __STACKTRACE__
      else
        reraise e.__struct__,
                [
                  message:
                    "#{who}: #{msg} (raised under a particle batch of #{n}: the model body ran once on one particle's " <>
                      "values and shapes, as the scalar GFI runs it; if Gen.simulate/3 or Gen.generate/4 fails the same " <>
                      "way, fix the model there; if only the vectorized call fails, write Elixir control flow on sampled " <>
                      "values with Mx.select/3)"
                ],
                __STACKTRACE__
      end
  end

  # Outside a batch a site's log-density is summed to the scalar the trace's score needs.
  defp total(lp) do
    lp = Handlers.f64(lp)
    if Mx.rank(lp) == 0, do: lp, else: Mx.sum(lp)
  end

  defp check_n!(n, _who) when is_integer(n) and n >= 1, do: :ok

  defp check_n!(n, who),
    do: raise(ArgumentError, "#{who}: the number of particles must be a positive integer, got #{inspect(n)}")
end
