defmodule Gen do
  @moduledoc """
  Gen: probabilistic programming on Mx arrays, with the Generative Function
  Interface (GFI) of Gen.jl.

  ## Modelling

      import Gen

      model = gen fn xs ->
        slope = trace(:slope, Gen.Dist.normal(0.0, 10.0))
        intercept = trace(:intercept, Gen.Dist.normal(0.0, 10.0))
        for {x, j} <- Enum.with_index(xs) do
          trace({:y, j}, Gen.Dist.normal(Mx.add(Mx.multiply(slope, x), intercept), 1.0))
        end
        slope
      end

  With every choice constrained, generate's weight is the log joint
  density, here log N(1; 0, 10) + log N(0; 0, 10) + log N(1; 1, 1) +
  log N(2.5; 2, 1); with only the observations constrained, slope and
  intercept are drawn with the key:

      iex> import Gen
      iex> model = gen fn xs ->
      ...>   slope = trace(:slope, Gen.Dist.normal(0.0, 10.0))
      ...>   intercept = trace(:intercept, Gen.Dist.normal(0.0, 10.0))
      ...>   for {x, j} <- Enum.with_index(xs) do
      ...>     trace({:y, j}, Gen.Dist.normal(Mx.add(Mx.multiply(slope, x), intercept), 1.0))
      ...>   end
      ...>   slope
      ...> end
      iex> all = Gen.choicemap(%{:slope => 1.0, :intercept => 0.0, {:y, 0} => 1.0, {:y, 1} => 2.5})
      iex> {trace, weight} = Gen.generate(model, [[1.0, 2.0]], all)
      iex> Mx.to_number(weight) |> Float.round(10)
      -8.4109243188
      iex> Mx.to_number(Gen.get_score(trace)) == Mx.to_number(weight)
      true
      iex> ys = Gen.choicemap(%{{:y, 0} => 1.0, {:y, 1} => 2.5})
      iex> {t1, _} = Gen.generate(model, [[1.0, 2.0]], ys, key: Mx.Random.key(7))
      iex> {t2, _} = Gen.generate(model, [[1.0, 2.0]], ys, key: Mx.Random.key(7))
      iex> Mx.to_number(t1[:slope]) == Mx.to_number(t2[:slope])
      true

  `gen fn ... end` makes an anonymous generative function, `defgen name(args)
  do ... end` a named one. In a body, `trace(addr, dist)` makes a random
  choice, `trace(addr, gen_fn, args)` calls a generative function under a
  nested address, and `splice(gen_fn, args)` calls one at the current level.
  Addresses are any term but a list; a list is a path (`[:sub, :x]`).
  Visiting an address twice in one call raises at once. A body may branch
  on a sampled value (`if z`, `case k`, `x > 0`): `Gen.Control` reads a
  rank-0 value and raises, naming the address, where it cannot.

  ## The GFI (weights are f64 Mx scalars, log space)

    * `simulate/3` → trace
    * `generate/4` → `{trace, weight}`
    * `update/5` (and `update/3`) → `{trace, weight, retdiff, discard}`
    * `regenerate/5` (and `regenerate/3`) → `{trace, weight, retdiff}`
    * `assess/3` → `{weight, retval}`
    * `project/2` → weight
    * `propose/3` → `{choices, weight, retval}`
    * `edit/3` → `{trace, weight, discard}` for GenJAX-style requests (`Gen.Edit`)
    * trace accessors `get_choices/1`, `get_score/1`, `get_retval/1`,
      `get_args/1`, `get_gen_fn/1`, and `trace[addr]` (a `KeyError` for an
      address without a choice)

  Every function that draws takes an optional `key:`; without one, a
  per-process key (set by `seed/1`, or from the system at first use) is
  split.

  A score or weight never comes back NaN: a GFI call reads its score and
  weight once, and when one is NaN runs again (same key) checking every
  site, then raises `Gen.NaNError` naming the first site whose log density
  (or weight) is NaN, its distribution's parameters and the value. Calls
  made inside a `gen` body or under an Mx transform (a gradient) are not
  checked: their caller is.

  ## Where things are

    * `Gen.GenerativeFunction` — the GFI as a protocol (dynamic functions and distributions fill it)
    * `Gen.DynamicFunction` — functions written with `gen`/`defgen`
    * `Gen.Handlers` — one handler per GFI method; per-process state
    * `Gen.Trace`, `Gen.Choicemap`, `Gen.Selection` — the data
    * `Gen.Edit` — edit requests: constraint, selection, proposal
    * `Gen.Distribution`, `Gen.Dist` — the distribution contract and the distributions
    * `Gen.Transform` — supports and the constraining transforms gradient-based inference moves through
    * `Gen.Vectorized` — `vsimulate/4`, `vgenerate/5`: n particles in one run of the body
  """

  alias Gen.{Choicemap, GenerativeFunction, Handlers, Selection, Trace}

  @type gen_fn :: GenerativeFunction.t()
  @type weight :: Mx.t()
  @type argdiff :: :no_change | :unknown_change | term()

  # ---- the DSL --------------------------------------------------------------------

  @doc """
  An anonymous generative function from `fn args -> body end`.

      iex> import Gen
      iex> coin = gen fn p -> trace(:flip, Gen.Dist.bernoulli(p)) end
      iex> Gen.get_choices(Gen.simulate(coin, [0.5], key: Mx.Random.key(1))) |> Enum.count()
      1
  """
  defmacro gen({:fn, _, _} = fun) do
    quote do: Gen.DynamicFunction.new(unquote(Gen.Control.rewrite(fun, __CALLER__)))
  end

  defmacro gen(other) do
    raise ArgumentError, "gen expects an anonymous function, gen fn args -> ... end, got: #{Macro.to_string(other)}"
  end

  @doc """
  Defines a named generative function: `defgen model(xs) do ... end` makes
  `model/0` return the `Gen.DynamicFunction` (so a body can call itself
  recursively with `trace(addr, model(), args)`). Guards are allowed.
  """
  defmacro defgen(head, do: body) do
    {call, guard} =
      case head do
        {:when, _, [call, guard]} -> {call, guard}
        call -> {call, nil}
      end

    {name, meta, params} = call
    params = if is_list(params), do: params, else: []
    impl = :"__gen_#{name}__"
    n = length(params)
    impl_head = if guard, do: {:when, meta, [{impl, meta, params}, guard]}, else: {impl, meta, params}

    quote do
      def unquote(name)(), do: Gen.DynamicFunction.new(Function.capture(__MODULE__, unquote(impl), unquote(n)), {__MODULE__, unquote(name)})
      @doc false
      def unquote(impl_head), do: unquote(Gen.Control.rewrite(body, __CALLER__))
    end
  end

  @doc """
  At a trace site: `trace(addr, dist)` makes the random choice `addr` from a
  distribution (sampled, constrained or reused, as the running GFI method
  decides) and returns its value; `trace(addr, gen_fn)` calls a generative
  function of no arguments under `addr`. Only valid inside a `gen` body.
  """
  @spec trace(Choicemap.path(), gen_fn()) :: term()
  def trace(addr, gf), do: Handlers.visit(addr, gf, [])

  @doc """
  Calls generative function `gf` on `args` with its choices under the
  address `addr`; returns its return value. Only valid inside a `gen` body.

      iex> import Gen
      iex> inner = gen fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end
      iex> outer = gen fn -> trace(:sub, inner, [3.0]) end
      iex> t = Gen.simulate(outer, [], key: Mx.Random.key(0))
      iex> Gen.Choicemap.has_value?(t.choices, [:sub, :x])
      true
  """
  @spec trace(Choicemap.path(), gen_fn(), [term()]) :: term()
  def trace(addr, gf, args), do: Handlers.visit(addr, gf, args)

  @doc """
  Calls the dynamic generative function `gf` on `args` with its choices at
  the current level (Gen.jl's splice); returns its return value.

      iex> import Gen
      iex> inner = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> outer = gen fn -> splice(inner, []) end
      iex> Gen.simulate(outer, [], key: Mx.Random.key(0)).choices |> Gen.Choicemap.has_value?(:x)
      true
  """
  @spec splice(Gen.DynamicFunction.t(), [term()]) :: term()
  def splice(gf, args), do: Handlers.splice(gf, args)

  @doc """
  Adds `logp` (a number or an Mx array, summed) to the log joint density,
  Stan's `target += logp`: a `Gen.Factor` at the address `{:factor, i}`
  (the i-th factor of this call), scored by every GFI method as an
  observation is (generate, update and regenerate weights, assess,
  project when selected) and differentiated by gradient-based inference.
  Returns `nil`. Only valid inside a `gen` body.

      iex> import Gen
      iex> m = gen fn -> x = trace(:x, Gen.Dist.normal(0.0, 1.0)); Gen.factor(Mx.multiply(x, -1.0)) end
      iex> {t, w} = Gen.generate(m, [], %{x: 0.5})
      iex> {t2, w2, _, _} = Gen.update(t, %{x: 1.5})
      iex> # log N(0.5; 0, 1) - 0.5, then the change (log N(1.5) - 1.5) - (log N(0.5) - 0.5)
      iex> {Float.round(Mx.to_number(w), 10), Float.round(Mx.to_number(w2), 10), Float.round(Mx.to_number(t2.score), 10)}
      {-1.5439385332, -2.0, -3.5439385332}
  """
  @spec factor(Mx.tensor_like()) :: nil
  def factor(logp), do: Handlers.factor(logp)

  @doc """
  `factor/1` at the address `addr` (a selection can then name it, and
  errors name it).

      iex> import Gen
      iex> m = gen fn -> Gen.factor(:prior, -2.0); trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> {Mx.to_number(Gen.project(t, Gen.select(:prior))), Mx.to_number(Gen.project(t, Gen.select(:x))) == Mx.to_number(t.score) + 2.0}
      {-2.0, true}
  """
  @spec factor(Choicemap.path(), Mx.tensor_like()) :: nil
  def factor(addr, logp), do: Handlers.visit(addr, Gen.Factor.new(logp), [])

  # ---- data -----------------------------------------------------------------------

  @doc """
  A choicemap (see `Gen.Choicemap.new/1`).

      iex> Gen.choicemap([{:a, 1.0}, {[:b, :c], 2}]) |> Gen.Choicemap.get([:b, :c]) |> Mx.to_number()
      2
  """
  @spec choicemap(map() | list() | Choicemap.t()) :: Choicemap.t()
  def choicemap(spec \\ []), do: Choicemap.new(spec)

  @doc """
  A selection of addresses and paths (see `Gen.Selection.new/1`).

      iex> Gen.select([:a, [:b, :c]]) |> Gen.Selection.member?([:b, :c])
      true
  """
  @spec select(Choicemap.path() | [Choicemap.path()]) :: Selection.t()
  def select(addrs), do: Selection.new(addrs)

  @doc """
  Seeds this process's key, used by GFI calls without `key:`.

      iex> Gen.seed(3)
      iex> a = Gen.next_key() |> Mx.to_list()
      iex> Gen.seed(3)
      iex> a == Mx.to_list(Gen.next_key())
      true
  """
  @spec seed(integer()) :: :ok
  def seed(seed) do
    Process.put(:gen_key, Mx.Random.key(seed))
    :ok
  end

  @doc """
  A fresh key split from this process's key (seeded from the system at
  first use unless `seed/1` was called).
  """
  @spec next_key() :: Mx.t()
  def next_key do
    k = Process.get(:gen_key) || Mx.Random.key(:rand.uniform(0xFFFF_FFFF_FFFF_FFF) - 1)
    keys = Mx.Random.split(k)
    # Evaluated now, so the process key never grows a chain of pending splits.
    Process.put(:gen_key, Mx.eval(keys[0]))
    keys[1]
  end

  defp key(opts, where) do
    case Keyword.fetch(Mx.Opts.validate!(opts, [:key], where), :key) do
      {:ok, k} -> k
      :error -> next_key()
    end
  end

  # ---- the GFI --------------------------------------------------------------------

  @doc """
  Runs `gf` on `args`, sampling every choice; returns a `Gen.Trace` whose
  score is the log joint density of its choices. Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(5))
      iex> x = Mx.to_number(t[:x])
      iex> abs(Mx.to_number(t.score) - (-0.5 * x * x - 0.5 * :math.log(2 * :math.pi()))) < 1.0e-12
      true
  """
  @spec simulate(gen_fn(), [term()], keyword()) :: Trace.t()
  def simulate(gf, args, opts \\ []) do
    k = key(opts, "Gen.simulate")
    t = GenerativeFunction.simulate(gf, args, k)
    Gen.NaN.check!("Gen.simulate", [t.score], fn -> GenerativeFunction.simulate(gf, args, k) end)
    t
  end

  @doc """
  A trace of `gf` on `args` whose choices agree with `constraints` (a
  choicemap, or a map or list for `choicemap/1`); the other choices are
  sampled from the prior. Returns `{trace, weight}` with

      weight = log p(constrained choices | sampled choices; args)

  the sum of the log-densities of the constrained choices (Gen.jl's
  generate with the internal proposal). A constraint at an address the run
  never visits raises. Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> {_t, w} = Gen.generate(m, [], %{x: 0.0})
      iex> Mx.to_number(w) |> Float.round(10)
      -0.9189385332
  """
  @spec generate(gen_fn(), [term()], Choicemap.t() | map() | list(), keyword()) :: {Trace.t(), weight()}
  def generate(gf, args, constraints \\ Choicemap.new(), opts \\ []) do
    {cm, k} = {Choicemap.new(constraints), key(opts, "Gen.generate")}
    {t, w} = GenerativeFunction.generate(gf, args, cm, k)
    Gen.NaN.check!("Gen.generate", [t.score, w], fn -> GenerativeFunction.generate(gf, args, cm, k) end)
    {t, w}
  end

  @doc """
  Moves `trace` to new `args` and `constraints` (Gen.jl's update). Returns
  `{new_trace, weight, retdiff, discard}` where

      weight = new score − old score − Σ log p(choices newly sampled)

  the choices newly sampled being those the new run made at addresses that
  neither the old trace nor the constraints hold (so a constrained choice
  counts with its new log-density, a kept one with the change of its
  log-density, a removed one with minus its old log-density). `discard`
  holds the old values of the constrained (replaced) and removed choices.
  `argdiffs` (one per argument, `:no_change` or `:unknown_change`; or one
  atom for all) say which arguments changed: with all `:no_change` and no
  constraints the trace is returned as it is; unchanged sub-calls (same
  callee, same args, no constraints under them) are kept without running
  them again. Constraints at addresses the new run never visits raise.
  Options: `key:`.
  """
  @spec update(Trace.t(), [term()], [argdiff()] | argdiff(), Choicemap.t() | map() | list(), keyword()) ::
          {Trace.t(), weight(), argdiff(), Choicemap.t()}
  def update(%Trace{} = trace, args, argdiffs, constraints, opts \\ []) do
    Mx.Opts.validate!(opts, [:key], "Gen.update")
    cm = Choicemap.new(constraints)
    diffs = argdiffs!(args, argdiffs, "Gen.update/5")

    if Enum.all?(diffs, &(&1 == :no_change)) and Choicemap.empty?(cm) do
      {trace, Handlers.zero(), :no_change, Choicemap.new()}
    else
      k = key(opts, "Gen.update")
      {t, w, _, _} = result = GenerativeFunction.update(trace.gen_fn, trace, args, diffs, cm, k)
      Gen.NaN.check!("Gen.update", [t.score, w], fn -> GenerativeFunction.update(trace.gen_fn, trace, args, diffs, cm, k) end, trace)
      result
    end
  end

  @doc """
  `update/5` with the trace's own arguments, all unchanged.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{x: 1.0})
      iex> {t2, w, _, discard} = Gen.update(t, %{x: 0.0})
      iex> {Float.round(Mx.to_number(w), 12), Mx.to_number(t2[:x]), Mx.to_number(discard[:x])}
      {0.5, 0.0, 1.0}
  """
  @spec update(Trace.t(), Choicemap.t() | map() | list(), keyword()) :: {Trace.t(), weight(), argdiff(), Choicemap.t()}
  def update(%Trace{} = trace, constraints, opts \\ []) when is_list(opts) do
    update(trace, trace.args, :no_change, constraints, opts)
  end

  @doc """
  Resamples the selected choices of `trace` from their prior under new
  `args` (Gen.jl's regenerate). Returns `{new_trace, weight, retdiff}` with

      weight = Σ over kept, unselected choices (new log-density − old log-density)

  that is, log p(new trace) − log p(old trace) minus the log-densities of
  the resampled and newly sampled choices plus those of the removed ones
  (the Metropolis–Hastings ratio of the move). Options: `key:`.
  """
  @spec regenerate(Trace.t(), [term()], [argdiff()] | argdiff(), Selection.t(), keyword()) :: {Trace.t(), weight(), argdiff()}
  def regenerate(%Trace{} = trace, args, argdiffs, %Selection{} = selection, opts \\ []) do
    Mx.Opts.validate!(opts, [:key], "Gen.regenerate")
    diffs = argdiffs!(args, argdiffs, "Gen.regenerate/5")

    if Enum.all?(diffs, &(&1 == :no_change)) and Selection.empty?(selection) do
      {trace, Handlers.zero(), :no_change}
    else
      k = key(opts, "Gen.regenerate")
      {t, w, _} = result = GenerativeFunction.regenerate(trace.gen_fn, trace, args, diffs, selection, k)
      Gen.NaN.check!("Gen.regenerate", [t.score, w], fn -> GenerativeFunction.regenerate(trace.gen_fn, trace, args, diffs, selection, k) end, trace)
      result
    end
  end

  @doc """
  `regenerate/5` with the trace's own arguments, all unchanged.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(1))
      iex> {t2, w, _} = Gen.regenerate(t, Gen.select(:x), key: Mx.Random.key(2))
      iex> {Mx.to_number(w), Mx.to_number(t2[:x]) != Mx.to_number(t[:x])}
      {0.0, true}
  """
  @spec regenerate(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), weight(), argdiff()}
  def regenerate(%Trace{} = trace, %Selection{} = selection, opts \\ []) do
    regenerate(trace, trace.args, :no_change, selection, opts)
  end

  @doc """
  `{weight, retval}`: the log joint density of `choices` (every choice the
  run visits must be given, and every given choice visited) and the return
  value.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> {w, x} = Gen.assess(m, [], %{x: 0.0})
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(x)}
      {-0.9189385332, 0.0}
  """
  @spec assess(gen_fn(), [term()], Choicemap.t() | map() | list()) :: {weight(), term()}
  def assess(gf, args, choices) do
    cm = Choicemap.new(choices)
    {w, _} = result = GenerativeFunction.assess(gf, args, cm)
    Gen.NaN.check!("Gen.assess", [w], fn -> GenerativeFunction.assess(gf, args, cm) end)
    result
  end

  @doc """
  The sum of the log-densities of the selected choices of `trace`;
  `project(trace, Gen.Selection.all())` is the score.

      iex> import Gen
      iex> m = gen fn -> {trace(:x, Gen.Dist.normal(0.0, 1.0)), trace(:y, Gen.Dist.normal(0.0, 1.0))} end
      iex> {t, _} = Gen.generate(m, [], %{x: 0.0, y: 0.0})
      iex> Gen.project(t, Gen.select(:x)) |> Mx.to_number() |> Float.round(10)
      -0.9189385332
  """
  @spec project(Trace.t(), Selection.t()) :: weight()
  def project(%Trace{} = trace, %Selection{} = selection), do: GenerativeFunction.project(trace.gen_fn, trace, selection)

  @doc """
  Samples `gf` on `args`: `{choices, weight, retval}`, with weight the log
  joint density of the choices (the score). Options: `key:`.
  """
  @spec propose(gen_fn(), [term()], keyword()) :: {Choicemap.t(), weight(), term()}
  def propose(gf, args, opts \\ []) do
    k = key(opts, "Gen.propose")
    {_, w, _} = result = GenerativeFunction.propose(gf, args, k)
    Gen.NaN.check!("Gen.propose", [w], fn -> GenerativeFunction.propose(gf, args, k) end)
    result
  end

  @doc """
  Edits `trace` with a GenJAX-style request (see `Gen.Edit`): returns
  `{new_trace, weight, discard}`. `Gen.Edit.constraint(cm)` is `update/3`,
  `Gen.Edit.selection(sel)` is `regenerate/3`, `Gen.Edit.proposal(q, args)`
  a Metropolis–Hastings move whose weight is the log acceptance ratio.
  Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{x: 1.0})
      iex> {t2, w, discard} = Gen.edit(t, Gen.Edit.constraint(%{x: 0.0}))
      iex> {Float.round(Mx.to_number(w), 12), Mx.to_number(t2[:x]), Mx.to_number(discard[:x])}
      {0.5, 0.0, 1.0}
  """
  @spec edit(Trace.t(), Gen.Edit.request(), keyword()) :: {Trace.t(), weight(), Choicemap.t()}
  def edit(%Trace{} = trace, request, opts \\ []), do: Gen.Edit.run(trace, request, Mx.Opts.validate!(opts, [:key], "Gen.edit"))

  # ---- vectorized over particles --------------------------------------------------

  @doc """
  Runs `gf` on `args` for `n` particles at once: the body runs once with
  `[n]`-shaped values at every trace site (`Gen.Vectorized`, DESIGN.md
  decision 9). Returns a vectorized trace: a `Gen.Trace` whose choices have
  a leading particle axis `n` and whose score is an f64 `[n]` array, the
  log joint density of each particle. Elixir control flow on sampled values
  cannot be vectorized (reading an `[n]` value with `Mx.to_number/1` raises,
  naming the cause). Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> t = Gen.vsimulate(m, [], 4, key: Mx.Random.key(0))
      iex> {Mx.describe(t[:mu]), Mx.describe(t[:y]), Mx.describe(Gen.get_score(t))}
      {"f64[4]", "f64[4]", "f64[4]"}
      iex> # Each particle's score is log N(mu; 0, 1) + log N(y; mu, 1).
      iex> lp = fn x, m -> -0.5 * (x - m) * (x - m) - 0.5 * :math.log(2 * :math.pi()) end
      iex> [mus, ys, s] = Enum.map([t[:mu], t[:y], Gen.get_score(t)], &Mx.to_list/1)
      iex> Enum.zip_with([mus, ys, s], fn [mu, y, si] -> abs(si - lp.(mu, 0.0) - lp.(y, mu)) < 1.0e-12 end)
      [true, true, true, true]
  """
  @spec vsimulate(gen_fn(), [term()], pos_integer(), keyword()) :: Trace.t()
  def vsimulate(gf, args, n, opts \\ []), do: Gen.Vectorized.simulate(gf, args, n, opts)

  @doc """
  `n` particles of `gf` on `args` agreeing with `observations`, the body run
  once with `[n]`-shaped values at every site (`Gen.Vectorized`): `{trace,
  weights}` with a vectorized trace and f64 `[n]` weights, particle i's
  weight being its `generate/4` weight. Observations are shared by every
  particle (broadcast to `[n]`). Options: `key:`.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, w} = Gen.vgenerate(m, [], %{y: 0.5}, 3, key: Mx.Random.key(1))
      iex> {Mx.to_list(t[:y]), Mx.describe(w)}
      {[0.5, 0.5, 0.5], "f64[3]"}
      iex> # weight = log N(0.5; mu, 1) per particle
      iex> Enum.zip_with(Mx.to_list(w), Mx.to_list(t[:mu]), fn wi, mu -> abs(wi + 0.5 * (0.5 - mu) ** 2 + 0.5 * :math.log(2 * :math.pi())) < 1.0e-12 end)
      [true, true, true]
  """
  @spec vgenerate(gen_fn(), [term()], Choicemap.t() | map() | list(), pos_integer(), keyword()) :: {Trace.t(), Mx.t()}
  def vgenerate(gf, args, observations, n, opts \\ []), do: Gen.Vectorized.generate(gf, args, observations, n, opts)

  # ---- trace accessors ------------------------------------------------------------

  @doc "The choices of a trace, a `Gen.Choicemap`."
  @spec get_choices(Trace.t()) :: Choicemap.t()
  def get_choices(%Trace{choices: c}), do: c

  @doc "The score of a trace: the log joint density of its choices (f64 scalar)."
  @spec get_score(Trace.t()) :: Mx.t()
  def get_score(%Trace{score: s}), do: s

  @doc "The return value of a trace."
  @spec get_retval(Trace.t()) :: term()
  def get_retval(%Trace{retval: r}), do: r

  @doc "The arguments of a trace."
  @spec get_args(Trace.t()) :: [term()]
  def get_args(%Trace{args: a}), do: a

  @doc "The generative function of a trace."
  @spec get_gen_fn(Trace.t()) :: gen_fn()
  def get_gen_fn(%Trace{gen_fn: g}), do: g

  defp argdiffs!(args, diff, _where) when is_atom(diff) and is_list(args), do: Enum.map(args, fn _ -> diff end)

  defp argdiffs!(args, diffs, where) when is_list(args) and is_list(diffs) do
    if length(args) != length(diffs) do
      raise ArgumentError, "#{where}: #{length(args)} argument(s) but #{length(diffs)} argdiff(s): give one per argument"
    end

    diffs
  end

  defp argdiffs!(args, diffs, where) do
    raise ArgumentError, "#{where}: args must be a list and argdiffs a list or an atom, got #{inspect(args)} and #{inspect(diffs)}"
  end
end
