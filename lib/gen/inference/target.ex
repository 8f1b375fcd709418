defmodule Gen.Inference.Target do
  @moduledoc """
  The log density of a trace's selected continuous choices as a function of
  one flat f64 vector on the unconstrained scale, with its gradient: the one
  target of the gradient-based algorithms (HMC, MALA, NUTS, MAP, ADVI).

  The selected choices are flattened in address order and concatenated
  (`blocks`); each moves through a `Gen.Transform` transform, taken from its
  distribution's support at its current parameters (so bounds computed from
  other choices follow them) or from `transforms:`, and the log-Jacobian is
  added to the log joint (`jacobian: false` leaves it out, for MAP). The log
  joint is `Gen.assess/3` on the trace's choicemap with the selected leaves
  replaced; everything else is fixed at the trace's values.

  ## Compiled and dynamic targets

  With `compile: true` (the default) `new/3` traces the value and gradient
  of the flat vector's log density once on a placeholder (`Mx.compile/2` of
  `Mx.value_and_grad/1`) and keeps the C tape, whose signature is
  f64[dim] → (f64[] log density, f64[dim] gradient): later evaluations replay
  it with no Elixir graph building, and a native sampler can replay `tape`
  itself. A model whose control flow reads a selected value (an `if` or a
  comparison on it through `Gen.Control`, `Mx.to_number/1` of it) cannot be
  traced; `new/3` detects that and the target runs uncompiled (`compiled?:
  false`, `why_dynamic:` the reason), with the same results. A target holds
  one structure: a model whose addresses change with its discrete choices
  gets one target per trace.

  Tapes are cached: a target of the same model, arguments, fixed choices'
  values, selection and options as one compiled before reuses its tape
  (only the probe pass runs), whatever the selected values; see
  `cache_stats/0` for the key and the bound.

      iex> import Gen
      iex> m = gen fn -> s = trace(:s, Gen.Dist.gamma(2.0, rate: 1.0)); trace(:y, Gen.Dist.normal(0.0, s)) end
      iex> {t, _} = Gen.generate(m, [], %{s: 1.0, y: 0.5})
      iex> target = Gen.Inference.Target.new(t, Gen.select(:s))
      iex> {target.dim, target.q0, target.compiled?, hd(target.blocks).transform}
      {1, [0.0], true, :log}
      iex> {lp, [g]} = Gen.Inference.Target.value_and_grad(target, [0.0])
      iex> # log Gamma(1; 2, 1) + log N(0.5; 0, 1) + log-Jacobian 0; d/du at s = e^u = 1: 1 - 1 - 1 + 0.25 + 1
      iex> {Float.round(lp, 10) == Float.round(-1.0 - 0.125 - 0.5 * :math.log(2 * :math.pi()), 10), Float.round(g, 12)}
      {true, 0.25}
  """

  import Bitwise
  alias Gen.{Choicemap, Selection, Trace, Transform}
  alias Gen.Inference.Unconstrained

  defmodule Block do
    @moduledoc false
    # One selected choice in the flat vector: q[offset, offset + size) is its unconstrained value
    # (shape u_shape); x_offset/x_size place its constrained value (shape, type) in constrain/2's list.
    defstruct [
      :path,
      :shape,
      :type,
      :offset,
      :size,
      :x_offset,
      :x_size,
      :u_shape,
      :transform,
      :override
    ]
  end

  @enforce_keys [:dim, :q0, :blocks, :compiled?]
  defstruct [
    :dim,
    :x_dim,
    :q0,
    :blocks,
    :tape,
    :compiled?,
    :why_dynamic,
    :caller,
    :jacobian?,
    :gen_fn,
    :args,
    :choices,
    :vg
  ]

  @type t :: %__MODULE__{
          dim: non_neg_integer(),
          x_dim: non_neg_integer(),
          q0: [float()],
          blocks: [%Block{}],
          tape: reference() | nil,
          compiled?: boolean(),
          why_dynamic: String.t() | nil,
          caller: String.t(),
          jacobian?: boolean(),
          gen_fn: Gen.gen_fn(),
          args: [term()],
          choices: Choicemap.t(),
          vg: (Mx.t() -> {Mx.t(), Mx.t()})
        }

  @value_needed "needs a value while tracing"

  @doc """
  The target of `trace`'s choices selected by `selection` (all continuous).

  Options:

    * `transforms:` — a map from address (or path) to a `Gen.Transform`
      transform overriding the automatic one (`%{}`);
    * `compile:` — trace and compile the value and gradient (`true`; a
      cache hit when the structure and data repeat), or always run them
      uncompiled (`false`; tracing and lowering cost about one uncompiled
      evaluation on the eight-schools model, bench/target.exs);
    * `jit:` — with `compile: true`, also build the tape as generated C and
      wait for it (`false` by default: the interpreter). The native tier rounds
      a little differently (within a few ulps), so the wait keeps a run on one
      tier from its first step: the same key repeats its draws. On a cache
      miss it costs about 1 ms from the disk cache (0.2–0.5 s to build once
      per model), worth it for a long run (`Gen.Inference.NUTS.sample/3` asks
      for it), not for one transition; a jit target and an interpreted one
      are cached apart;
    * `jacobian:` — add the log-Jacobians (`true`; `false` for the mode of
      the constrained density);
    * `choices:` — the choicemap assessed with the selected leaves replaced
      (the trace's choices by default; ADVI gives the observations alone,
      so that every other latent choice is missing and raises);
    * `caller:` — the function named in errors (`"Gen.Inference.Target.new"`).

  Raises `ArgumentError` when nothing continuous is selected, a selected
  choice is discrete or not a float array, or a starting value lies outside
  the support of its transform.

      iex> import Gen
      iex> m = gen fn -> trace(:p, Gen.Dist.dirichlet(Mx.tensor([1.0, 2.0, 3.0], type: :f64))) end
      iex> {t, _} = Gen.generate(m, [], %{p: Mx.tensor([0.2, 0.3, 0.5], type: :f64)})
      iex> target = Gen.Inference.Target.new(t, Gen.select(:p), compile: false)
      iex> {target.dim, target.compiled?, Gen.Inference.Target.constrain(target, target.q0) |> Enum.map(&Float.round(&1, 12))}
      {2, false, [0.2, 0.3, 0.5]}
  """
  @spec new(Trace.t(), Selection.t(), keyword()) :: t()
  def new(%Trace{} = trace, %Selection{} = sel, opts \\ []) do
    opts =
      Mx.Opts.validate!(
        opts,
        [
          transforms: %{},
          compile: true,
          jit: false,
          jacobian: true,
          choices: nil,
          caller: "Gen.Inference.Target.new"
        ],
        "Gen.Inference.Target.new"
      )

    caller = opts[:caller]

    unless is_binary(caller) do
      raise ArgumentError,
            "Gen.Inference.Target.new: caller: must be a string naming the function, got #{inspect(caller)}"
    end

    for key <- [:compile, :jit, :jacobian], not is_boolean(opts[key]) do
      raise ArgumentError, "#{caller}: #{key}: must be true or false, got #{inspect(opts[key])}"
    end

    unless opts[:choices] == nil or is_struct(opts[:choices], Choicemap) do
      raise ArgumentError,
            "#{caller}: choices: must be a Gen.Choicemap or nil, got #{inspect(opts[:choices])}"
    end

    overrides = overrides!(opts[:transforms], caller)
    paths = selected_paths!(trace, sel, caller)

    case Enum.reject(Map.keys(overrides), &(&1 in paths)) do
      [] ->
        :ok

      extra ->
        raise ArgumentError,
              "#{caller}: transforms: #{Enum.map_join(extra, ", ", &Choicemap.format_path/1)} is not a selected continuous choice; give transforms only for selected choices"
    end

    choices = Gen.get_choices(trace)

    target = %__MODULE__{
      dim: 0,
      q0: [],
      blocks: [],
      compiled?: false,
      caller: caller,
      jacobian?: opts[:jacobian],
      gen_fn: Gen.get_gen_fn(trace),
      args: Gen.get_args(trace),
      choices: choices
    }

    {blocks, u0} = blocks!(target, paths, overrides)
    last = List.last(blocks)

    target = %{
      target
      | blocks: blocks,
        dim: last.offset + last.size,
        x_dim: last.x_offset + last.x_size,
        q0: Enum.flat_map(u0, &Mx.to_flat_list/1),
        choices: opts[:choices] || choices
    }

    if opts[:compile], do: compile(target, opts[:jit]), else: dynamic(target, nil)
  end

  # {blocks, starting unconstrained values}: one probe pass at the trace's values records each
  # site's transform (at its distribution's current parameters) and start, checked inside the support.
  defp blocks!(target, paths, overrides) do
    sites =
      Enum.map(paths, fn p ->
        x = target.choices[p]

        %Unconstrained.Site{
          path: p,
          value: x,
          mode: :probe,
          override: Map.get(overrides, p),
          type: Mx.type(x)
        }
      end)

    {_w, seen} = Unconstrained.run(target, sites, true)
    insides = Enum.map(sites, &Map.fetch!(seen, &1.path).inside)
    Mx.eval(insides)

    Enum.zip(sites, insides)
    |> Enum.each(fn {s, ok} ->
      unless Mx.to_number(ok) do
        raise ArgumentError,
              "#{target.caller}: the value #{inspect(Mx.to_list(s.value))} at #{Choicemap.format_path(s.path)} is outside the support " <>
                "of its transform #{inspect(Map.fetch!(seen, s.path).transform)}; start from a trace inside the support or fix transforms:"
      end
    end)

    {blocks, {_, _, u0}} =
      Enum.map_reduce(sites, {0, 0, []}, fn s, {off, x_off, u0} ->
        %{transform: t, u: u} = Map.fetch!(seen, s.path)
        size = Mx.size(u)
        x_size = Mx.size(s.value)

        b = %Block{
          path: s.path,
          shape: Mx.shape(s.value),
          type: s.type,
          offset: off,
          size: size,
          x_offset: x_off,
          x_size: x_size,
          u_shape: Mx.shape(u),
          transform: t,
          override: s.override
        }

        {b, {off + size, x_off + x_size, [Mx.as_type(u, :f64) | u0]}}
      end)

    {blocks, Enum.reverse(u0)}
  end

  # The value and gradient's tape, from the shared cache when a target of the same structure and
  # data was compiled before (cache_key/2), else traced on a placeholder and cached; a model that
  # reads a selected value while tracing stays dynamic.
  defp compile(target, jit) do
    # One signature ever: f64[dim], beside the key. With jit, the wait keeps a run that repeats
    # its draws on one tier (see jit:).
    native = if jit, do: 120_000

    try do
      Mx.Compile.keyed_tape!(shared(), [q0_array(target), target], cache_key(target, jit),
        native: native
      )
    rescue
      e in Mx.Error ->
        if String.contains?(e.message, @value_needed),
          do: {:dynamic, e.message},
          else: reraise(e, __STACKTRACE__)
    end
    |> case do
      {:dynamic, why} ->
        dynamic(target, "the model reads a selected value while tracing (#{why})")

      tape ->
        vg = fn q ->
          [lp, g] = Mx.Compile.replay!(tape, [q])
          {lp, g}
        end

        %{target | tape: tape, compiled?: true, vg: vg}
    end
  end

  @cache_size 32

  # The compiled function whose cache holds every target's tape (Mx.compile's LRU cache, its
  # tapes counted in Mx.Memory), made once per node.
  defp shared do
    # Keyed by this module's code: a recompiled module gets a fresh cache.
    name = {__MODULE__, :cache, __MODULE__.module_info(:md5)}

    case :persistent_term.get(name, nil) do
      nil ->
        f =
          Mx.compile(
            fn q, target -> Mx.value_and_grad(&log_density(target, &1)).(q) end,
            cache_size: @cache_size,
            jit: false
          )

        :persistent_term.put(name, f)
        f

      f ->
        f
    end
  end

  @doc """
  The counters of the cache of compiled targets (`Mx.compile_stats/1`'s
  keys): `new/3` with `compile: true` looks each target up by everything
  its tape depends on — the generative function (its code and captured
  values), its arguments, the choices that stay fixed (their values), the
  selection's layout, the transforms, `jacobian:`, `jit:` and `caller:` —
  and traces only on a miss. Up to #{@cache_size} tapes are kept, the least
  recently used evicted; `Mx.Memory.report/0` counts them (`:tapes`).

  A model that reads state outside its arguments and choices (an ETS
  table, the process dictionary, a module recompiled since, other than
  the generative function's own) is keyed without it: give such values as
  arguments.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{mu: 0.0, y: 1.5})
      iex> _ = Gen.Inference.Target.new(t, Gen.select(:mu))
      iex> stats = Gen.Inference.Target.cache_stats()
      iex> {stats.cache_size, stats.entries >= 1, stats.tapes >= 1}
      {32, true, true}
  """
  @spec cache_stats() :: %{atom() => non_neg_integer()}
  def cache_stats, do: Mx.compile_stats(shared())

  @doc """
  Empties the cache of compiled targets (`cache_stats/0`; its counters
  stay): the next `new/3` of each structure traces again. A target keeps
  its own tape.

      iex> Gen.Inference.Target.clear_cache()
      :ok
  """
  @spec clear_cache() :: :ok
  def clear_cache, do: Mx.Compile.clear!(shared())

  # Everything the tape reads, as a digest: the model, its arguments, the choicemap assessed with
  # the selected leaves marked (their values are the tape's input), the blocks' layout and
  # whether each is transformed (the transform itself is taken from the support while tracing),
  # the overrides, jacobian?, the caller (named in errors while tracing) and the tier.
  defp cache_key(target, jit) do
    blocks =
      Enum.map(target.blocks, fn b ->
        {b.path, b.shape, b.type, b.offset, b.size, b.u_shape, b.transform == :identity,
         value_term(b.override)}
      end)

    marked =
      Enum.reduce(target.blocks, target.choices, fn b, cm ->
        Choicemap.put_submap(cm, b.path, %Choicemap{value: :"$selected"})
      end)

    term =
      {jit and System.get_env("MX_JIT") != "0", target.caller, target.jacobian?, blocks,
       value_term(target.gen_fn), value_term(target.args), value_term(marked)}

    :crypto.hash(:sha256, :erlang.term_to_binary(term))
  end

  # `x` as a term that equal values give equally: an Mx array by its dtype, shape and bytes, a
  # function by its code (module, its digest, the function's index) and captured values, not
  # by the process that made it (which term_to_binary/1 records).
  defp value_term(%Mx.Array{} = a), do: {:"$mx_array", Mx.type(a), Mx.shape(a), Mx.to_binary(a)}
  defp value_term(m) when is_map(m), do: :maps.map(fn _k, v -> value_term(v) end, m)
  defp value_term(l) when is_list(l), do: value_list(l)

  defp value_term(t) when is_tuple(t),
    do: t |> Tuple.to_list() |> value_list() |> List.to_tuple()

  defp value_term(f) when is_function(f) do
    info = Function.info(f)

    case info[:type] do
      :external ->
        m = info[:module]
        {:"$mx_fun", m, info[:name], info[:arity], :code.is_loaded(m) && m.module_info(:md5)}

      :local ->
        {:"$mx_fun", info[:module], info[:new_uniq], info[:new_index], value_term(info[:env])}
    end
  end

  defp value_term(other), do: other

  # Plain recursion: an improper list keeps its tail.
  defp value_list([h | t]), do: [value_term(h) | value_list(t)]
  defp value_list([]), do: []
  defp value_list(tail), do: value_term(tail)

  defp dynamic(target, why),
    do: %{target | vg: Mx.value_and_grad(fn q -> log_density(target, q) end), why_dynamic: why}

  @doc """
  The log density (log-Jacobians included unless `jacobian: false`) at the
  flat unconstrained vector `q`, an f64 array of shape `{dim}`, as an Mx
  graph: uncompiled and differentiable, for use inside another objective
  (ADVI's ELBO, an optimizer's step). The selected choices' NaN checks of
  `Gen.assess/3` apply outside a gradient.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{mu: 0.0, y: 1.0})
      iex> target = Gen.Inference.Target.new(t, Gen.select(:mu), compile: false)
      iex> lp = Gen.Inference.Target.log_density(target, Mx.tensor([1.0], type: :f64))
      iex> Float.round(Mx.to_number(lp), 12) == Float.round(-0.5 - :math.log(2 * :math.pi()), 12)
      true
  """
  @spec log_density(t(), Mx.t()) :: Mx.t()
  def log_density(%__MODULE__{} = target, %Mx.Array{} = q) do
    {w, _seen} = Unconstrained.run(target, sites_at(target, split(target, q)), target.jacobian?)
    # f64 whatever the choices' types: the tape's signature promises it.
    cast(w, :f64)
  end

  @doc """
  The log density and its gradient at the f64 array `q` of shape `{dim}`,
  evaluated: `{lp, grad}` (an f64 scalar and an f64 `{dim}` array), from the
  tape when the target is compiled. Raises `Mx.Error` where the model
  raises (a Cholesky of a matrix that is not positive definite, say): a
  sampler treats that as a rejected point.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{mu: 0.0, y: 1.0})
      iex> {_lp, g} = Gen.Inference.Target.value_and_grad_array(Gen.Inference.Target.new(t, Gen.select(:mu)), Mx.tensor([0.5], type: :f64))
      iex> Mx.to_list(g)
      [0.0]
  """
  @spec value_and_grad_array(t(), Mx.t()) :: {Mx.t(), Mx.t()}
  def value_and_grad_array(%__MODULE__{dim: dim} = target, %Mx.Array{} = q) do
    unless Mx.shape(q) == {dim} and Mx.type(q) == :f64 do
      raise ArgumentError,
            "#{target.caller}: the point must be an f64 array of shape {#{dim}} (the flat unconstrained vector), got #{Mx.describe(q)}"
    end

    {lp, g} = target.vg.(q)
    Mx.eval([lp, g])
    {lp, g}
  end

  @doc """
  The log density and its gradient at `q`, a list of `dim` floats: `{lp,
  grad}`, `lp` a float or `:neg_infinity`, `:infinity` or `:nan`, `grad` a
  list of floats (with those atoms where an entry is not finite). Raises
  `Mx.Error` where the model raises.

      iex> import Gen
      iex> m = gen fn -> x = trace(:x, Gen.Dist.broadcasted_normal(Mx.tensor([0.0, 0.0], type: :f64), 1.0)); x end
      iex> {t, _} = Gen.generate(m, [], %{x: Mx.tensor([0.0, 0.0], type: :f64)})
      iex> {_lp, g} = Gen.Inference.Target.value_and_grad(Gen.Inference.Target.new(t, Gen.select(:x)), [1.0, -2.0])
      iex> g
      [-1.0, 2.0]
  """
  @spec value_and_grad(t(), [number()]) :: {float() | atom(), [float() | atom()]}
  def value_and_grad(%__MODULE__{} = target, q) when is_list(q) do
    {lp, g} = value_and_grad_array(target, array!(target, q))
    {Mx.to_number(lp), Mx.to_flat_list(g)}
  end

  @doc """
  The log density and its gradient at `q`, `dim` native-endian f64s, as
  `dim + 1` native-endian f64s: the log density, then the gradient (a value
  that is not finite written as its IEEE bits). The form a native sampler
  reads; raises `Mx.Error` where the model raises.

      iex> import Gen
      iex> m = gen fn -> trace(:mu, Gen.Dist.normal(0.0, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{mu: 0.0})
      iex> <<_lp::float-64-native, g::float-64-native>> = Gen.Inference.Target.logp_grad(Gen.Inference.Target.new(t, Gen.select(:mu)), <<2.0::float-64-native>>)
      iex> g
      -2.0
  """
  @spec logp_grad(t(), binary()) :: binary()
  def logp_grad(%__MODULE__{dim: dim} = target, q) when is_binary(q) do
    unless byte_size(q) == 8 * dim do
      raise ArgumentError,
            "#{target.caller}: the point must be #{dim} f64s (#{8 * dim} bytes), got #{byte_size(q)} bytes"
    end

    {lp, g} = value_and_grad_array(target, Mx.from_binary(q, :f64, shape: {dim}))
    Mx.to_binary(lp) <> Mx.to_binary(g)
  end

  @doc false
  # The target as Gen.Inference.Sampler.run/2 takes it: its tape when compiled, this process's
  # gradients otherwise and at the tape's NaN points, which only the GFI can classify.
  @spec sampler_target(t()) :: map()
  def sampler_target(%__MODULE__{} = target),
    do: %{
      dim: target.dim,
      q0: target.q0,
      tape: target.tape,
      logp_grad: &sampler_logp_grad(target, &1)
    }

  @nan_mask 0x7FF0000000000000
  @neg_infinity <<0xFFF0000000000000::64-native>>

  # lp and gradient at q (binaries of f64). A NaN log density is a NaN energy when an input
  # is NaN (Gen.NaNError outside the gradient), else a parameter moved out of a distribution's
  # range (a built-in distribution's NaN, issue 10 item 6): -inf, a divergence, as in Stan.
  defp sampler_logp_grad(target, q) do
    <<lp::64-native, grad::binary>> = bin = logp_grad(target, q)

    if (lp &&& @nan_mask) == @nan_mask and (lp &&& 0xFFFFFFFFFFFFF) != 0 and
         not nan_input?(target, q),
       do: @neg_infinity <> grad,
       else: bin
  end

  @doc false
  # Whether the log density at q (a binary of f64) is NaN because a choice is (Gen.NaNError).
  @spec nan_input?(t(), binary()) :: boolean()
  def nan_input?(%__MODULE__{} = target, q) do
    _ = log_density(target, Mx.from_binary(q, :f64))
    false
  rescue
    Gen.NaNError -> true
  end

  @doc """
  The selected values at the flat unconstrained vector `q` (a list of
  floats or an f64 `{dim}` array) on the constrained scale, flattened in
  address order: `x_dim` floats.

      iex> import Gen
      iex> m = gen fn -> trace(:s, Gen.Dist.exponential(1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{s: 2.0})
      iex> Gen.Inference.Target.constrain(Gen.Inference.Target.new(t, Gen.select(:s), compile: false), [0.0])
      [1.0]
  """
  @spec constrain(t(), [number()] | Mx.t()) :: [float() | atom()]
  def constrain(%__MODULE__{} = target, q) do
    if identity?(target) and is_list(q),
      do: Enum.map(q, &(&1 * 1.0)),
      else:
        target |> constrained(q) |> Enum.flat_map(&(&1 |> Mx.as_type(:f64) |> Mx.to_flat_list()))
  end

  @doc """
  `constrain/2` of many points (a list of `q` lists, a sampler's draws): in
  one vectorized graph (`Mx.vmap/1`) when the target's structure is fixed
  (it compiled), point by point when the model reads a selected value.

      iex> import Gen
      iex> m = gen fn -> trace(:s, Gen.Dist.exponential(1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{s: 2.0})
      iex> Gen.Inference.Target.constrain_draws(Gen.Inference.Target.new(t, Gen.select(:s), compile: false), [[0.0], [1.0]])
      [[1.0], [2.718281828459045]]
  """
  @spec constrain_draws(t(), [[number()]]) :: [[float() | atom()]]
  def constrain_draws(%__MODULE__{} = target, draws) when is_list(draws) do
    cond do
      identity?(target) or draws == [] ->
        Enum.map(draws, &constrain(target, &1))

      # A fixed structure (the target compiled) has no control flow on the values: one batch.
      target.compiled? ->
        draws
        |> Mx.tensor(type: :f64)
        |> Mx.vmap(&flat_constrained(target, &1)).()
        |> Mx.to_flat_list()
        |> Enum.chunk_every(target.x_dim)

      true ->
        Enum.map(draws, &constrain(target, &1))
    end
  end

  defp flat_constrained(target, q) do
    target
    |> constrained_graph(q)
    |> Enum.zip_with(target.blocks, &(&1 |> Mx.as_type(:f64) |> Mx.reshape({&2.x_size})))
    |> Mx.concatenate()
  end

  @doc """
  The selected values at `q` as a choicemap of arrays of the choices' own
  shapes and types (on the constrained scale).

      iex> import Gen
      iex> m = gen fn -> trace(:s, Gen.Dist.exponential(1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{s: 2.0})
      iex> cm = Gen.Inference.Target.choices(Gen.Inference.Target.new(t, Gen.select(:s), compile: false), [0.0])
      iex> Mx.to_number(cm[:s])
      1.0
  """
  @spec choices(t(), [number()] | Mx.t()) :: Choicemap.t()
  def choices(%__MODULE__{} = target, q),
    do: Choicemap.new(Enum.zip(Enum.map(target.blocks, & &1.path), constrained(target, q)))

  @doc """
  `trace` with the selected choices moved to the constrained values at `q`
  (by `Gen.update/3`).

      iex> import Gen
      iex> m = gen fn -> s = trace(:s, Gen.Dist.exponential(1.0)); trace(:y, Gen.Dist.normal(0.0, s)) end
      iex> {t, _} = Gen.generate(m, [], %{s: 2.0, y: 0.5})
      iex> t2 = Gen.Inference.Target.write(Gen.Inference.Target.new(t, Gen.select(:s), compile: false), t, [0.0])
      iex> {Mx.to_number(t2[:s]), Mx.to_number(t2[:y])}
      {1.0, 0.5}
  """
  @spec write(t(), Trace.t(), [number()] | Mx.t()) :: Trace.t()
  def write(%__MODULE__{} = target, %Trace{} = trace, q) do
    {new, _w, _retdiff, _discard} = Gen.update(trace, choices(target, q))
    Gen.Inference.force(new)
  end

  @doc """
  The names of the constrained coordinates (`constrain/2`'s list): the path
  of a scalar choice, `{path, index}` for each element of an array choice.

      iex> import Gen
      iex> m = gen fn -> a = trace(:a, Gen.Dist.normal(0.0, 1.0)); trace(:x, Gen.Dist.broadcasted_normal(Mx.tensor([0.0, 0.0]), 1.0)); a end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> Gen.Inference.Target.names(Gen.Inference.Target.new(t, Gen.select([:a, :x]), compile: false))
      [[:a], {[:x], 0}, {[:x], 1}]
  """
  @spec names(t()) :: [Choicemap.path() | {Choicemap.path(), non_neg_integer()}]
  def names(%__MODULE__{blocks: blocks}) do
    Enum.flat_map(blocks, fn b ->
      if b.shape == {}, do: [b.path], else: for(i <- 0..(b.x_size - 1), do: {b.path, i})
    end)
  end

  @doc """
  Draws given as `constrain/2` lists, by path: `%{path => [value]}`, a
  float for a scalar choice, a (nested) list of the choice's shape for an
  array.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.broadcasted_normal(Mx.tensor([0.0, 0.0]), 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> Gen.Inference.Target.by_path(Gen.Inference.Target.new(t, Gen.select(:x), compile: false), [[1.0, 2.0], [3.0, 4.0]])
      %{[:x] => [[1.0, 2.0], [3.0, 4.0]]}
  """
  @spec by_path(t(), [[float()]]) :: %{Choicemap.path() => [term()]}
  def by_path(%__MODULE__{blocks: blocks}, flat) do
    Map.new(blocks, fn b ->
      vals =
        Enum.map(flat, fn xs ->
          piece = Enum.slice(xs, b.x_offset, b.x_size)
          if b.shape == {}, do: hd(piece), else: nest(piece, Tuple.to_list(b.shape))
        end)

      {b.path, vals}
    end)
  end

  defp nest(xs, [_]), do: xs

  defp nest(xs, [_ | rest]) do
    n = Enum.reduce(rest, 1, &(&1 * &2))
    xs |> Enum.chunk_every(n) |> Enum.map(&nest(&1, rest))
  end

  @doc """
  The flat vector `q` (an f64 `{dim}` array) cut into one array per block,
  each of its unconstrained shape; `join/2` is the inverse.

      iex> import Gen
      iex> m = gen fn -> a = trace(:a, Gen.Dist.normal(0.0, 1.0)); trace(:x, Gen.Dist.broadcasted_normal(Mx.tensor([0.0, 0.0]), 1.0)); a end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> target = Gen.Inference.Target.new(t, Gen.select([:a, :x]), compile: false)
      iex> pieces = Gen.Inference.Target.split(target, Mx.tensor([1.0, 2.0, 3.0], type: :f64))
      iex> {Enum.map(pieces, &Mx.to_list/1), Gen.Inference.Target.join(target, pieces) |> Mx.to_list()}
      {[1.0, [2.0, 3.0]], [1.0, 2.0, 3.0]}
  """
  @spec split(t(), Mx.t()) :: [Mx.t()]
  def split(%__MODULE__{blocks: blocks}, %Mx.Array{} = q),
    do: Enum.map(blocks, &(q |> Mx.slice_axis(&1.offset, &1.size, 0) |> Mx.reshape(&1.u_shape)))

  @doc "One array per block (each of its unconstrained shape) joined into the flat vector; see `split/2`."
  @spec join(t(), [Mx.t()]) :: Mx.t()
  def join(%__MODULE__{blocks: blocks}, pieces) when is_list(pieces) do
    blocks
    |> Enum.zip_with(pieces, &Mx.reshape(Mx.as_type(&2, :f64), {&1.size}))
    |> Mx.concatenate(axis: 0)
  end

  @doc false
  # The selected choices' paths, each checked to be a floating-point array.
  @spec selected_paths!(Trace.t(), Selection.t(), String.t()) :: [Choicemap.path()]
  def selected_paths!(trace, sel, caller) do
    paths =
      for {path, v} <- Choicemap.to_list(Gen.get_choices(trace)), Selection.member?(sel, path) do
        unless match?(%Mx.Array{}, v) and Mx.Type.float?(Mx.type(v)) do
          raise ArgumentError,
                "#{caller}: the selected choice at #{Choicemap.format_path(path)} is #{Gen.Inference.Common.describe(v)}, not a floating-point array; select only continuous choices"
        end

        path
      end

    if paths == [],
      do:
        Gen.Inference.Common.none_selected!(
          trace,
          sel,
          caller,
          "select the continuous choices to move"
        )

    paths
  end

  # ---- internals -------------------------------------------------------------------------

  defp identity?(target), do: Enum.all?(target.blocks, &(&1.transform == :identity))

  defp q0_array(target), do: array!(target, target.q0)

  defp array!(%{dim: dim} = target, q) do
    unless length(q) == dim do
      raise ArgumentError,
            "#{target.caller}: the point must be a list of #{dim} floats, got #{length(q)}"
    end

    Mx.from_binary(for(x <- q, into: <<>>, do: <<x * 1.0::float-64-native>>), :f64, shape: {dim})
  end

  # The constrained values at q, one array per block in the choice's type.
  defp constrained(target, q) when is_list(q), do: constrained(target, array!(target, q))

  defp constrained(target, %Mx.Array{} = q) do
    xs = constrained_graph(target, q)
    Mx.eval(xs)
    xs
  end

  defp constrained_graph(target, q) do
    us = split(target, q)

    xs =
      if identity?(target) do
        Enum.zip_with(target.blocks, us, &cast(&2, &1.type))
      else
        {_w, seen} = Unconstrained.run(target, sites_at(target, us), false)
        # An identity site is its own value (no site records it).
        Enum.zip_with(
          target.blocks,
          us,
          &Map.get_lazy(seen, &1.path, fn -> cast(&2, &1.type) end)
        )
      end

    xs
  end

  # Sites with u in place; an identity block takes u itself (no site, as without transforms).
  defp sites_at(target, us) do
    Enum.zip_with(target.blocks, us, fn b, u ->
      if b.transform == :identity,
        do: {b.path, cast(u, b.type)},
        else: %Unconstrained.Site{
          path: b.path,
          value: u,
          mode: :constrain,
          override: b.override,
          type: b.type
        }
    end)
  end

  defp cast(x, type), do: if(Mx.type(x) == type, do: x, else: Mx.as_type(x, type))

  defp overrides!(overrides, caller) when is_map(overrides),
    do:
      Map.new(overrides, fn {k, v} -> {Choicemap.path!(k), Transform.validate!(v, k, caller)} end)

  defp overrides!(other, caller) do
    raise ArgumentError,
          "#{caller}: transforms: must be a map from address (or path) to a transform, got #{inspect(other)}"
  end
end
