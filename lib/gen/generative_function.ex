defprotocol Gen.GenerativeFunction do
  @moduledoc """
  The Generative Function Interface (Gen.jl's `src/gen_fn_interface.jl`),
  as a protocol that every generative function fills. Inference code uses
  nothing else (STYLE.md 14). Call it through the `Gen` functions
  (`Gen.simulate/3`, `Gen.generate/4`, ...), which take care of keys,
  choicemap and argdiff normalization; the definitions of the weights are
  written there.

  Implemented for `Gen.DynamicFunction` (the `gen`/`defgen` DSL, run by the
  handlers in `Gen.Handlers`) and, through the `Any` fallback, for every
  value whose type implements `Gen.Distribution`: a distribution is a
  generative function with no arguments of its own (its parameters live in
  the value) whose one choice sits at the empty address `[]`. The fallback
  was chosen over one implementation per distribution struct so that a new
  distribution needs nothing but its `Gen.Distribution` implementation.

  Every function takes the generative function first, so the protocol
  dispatches on it (for update/regenerate/project on the trace's `gen_fn`).
  Keys are explicit here; weights are f64 Mx scalars.
  """

  @fallback_to_any true

  @doc "Runs `gf` on `args`, sampling every choice: a `Gen.Trace`."
  @spec simulate(t(), [term()], Mx.t()) :: Gen.Trace.t()
  def simulate(gf, args, key)

  @doc "A trace agreeing with `constraints`, and its weight."
  @spec generate(t(), [term()], Gen.Choicemap.t(), Mx.t()) :: {Gen.Trace.t(), Mx.t()}
  def generate(gf, args, constraints, key)

  @doc "Moves `trace` to new args and constraints: `{trace, weight, retdiff, discard}`."
  @spec update(t(), Gen.Trace.t(), [term()], [term()], Gen.Choicemap.t(), Mx.t()) ::
          {Gen.Trace.t(), Mx.t(), term(), Gen.Choicemap.t()}
  def update(gf, trace, args, argdiffs, constraints, key)

  @doc "Resamples the selected choices of `trace` from the prior: `{trace, weight, retdiff}`."
  @spec regenerate(t(), Gen.Trace.t(), [term()], [term()], Gen.Selection.t(), Mx.t()) :: {Gen.Trace.t(), Mx.t(), term()}
  def regenerate(gf, trace, args, argdiffs, selection, key)

  @doc "`{log joint density of choices, retval}`; every choice must be given."
  @spec assess(t(), [term()], Gen.Choicemap.t()) :: {Mx.t(), term()}
  def assess(gf, args, choices)

  @doc "The sum of the log-densities of the selected choices of `trace`."
  @spec project(t(), Gen.Trace.t(), Gen.Selection.t()) :: Mx.t()
  def project(gf, trace, selection)

  @doc "`{choices, weight, retval}`: a sample and its log-density (its score)."
  @spec propose(t(), [term()], Mx.t()) :: {Gen.Choicemap.t(), Mx.t(), term()}
  def propose(gf, args, key)
end

defmodule Gen.DynamicFunction do
  @moduledoc """
  A generative function written in the DSL: an Elixir function whose body
  calls `Gen.trace/2`, `Gen.trace/3` and `Gen.splice/2`. Made by
  `Gen.gen/1` (anonymous) and `Gen.defgen/2` (named); run by the handlers
  in `Gen.Handlers`.
  """

  @enforce_keys [:fun, :arity]
  defstruct [:fun, :arity, :name]

  @type t :: %__MODULE__{fun: function(), arity: non_neg_integer(), name: term()}

  @doc """
  Wraps `fun` (its arguments are the generative function's arguments).

      iex> gf = Gen.DynamicFunction.new(fn x -> x end)
      iex> gf.arity
      1
  """
  @spec new(function(), term()) :: t()
  def new(fun, name \\ nil) when is_function(fun) do
    {:arity, n} = Function.info(fun, :arity)
    %__MODULE__{fun: fun, arity: n, name: name}
  end
end

defimpl Inspect, for: Gen.DynamicFunction do
  def inspect(%{name: {m, f}, arity: a}, _), do: "#Gen.DynamicFunction<#{inspect(m)}.#{f}/#{a}>"
  def inspect(%{arity: a}, _), do: "#Gen.DynamicFunction<anonymous/#{a}>"
end

defimpl Gen.GenerativeFunction, for: Gen.DynamicFunction do
  alias Gen.Handlers

  def simulate(gf, args, key), do: Handlers.Simulate.run(gf, args, key)
  def generate(gf, args, cm, key), do: Handlers.Generate.run(gf, args, cm, key)
  def update(gf, trace, args, argdiffs, cm, key), do: Handlers.Update.run(gf, trace, args, argdiffs, cm, key)
  def regenerate(gf, trace, args, argdiffs, sel, key), do: Handlers.Regenerate.run(gf, trace, args, argdiffs, sel, key)
  def assess(gf, args, cm), do: Handlers.Assess.run(gf, args, cm)
  def project(_gf, trace, sel), do: Handlers.project(trace, sel)

  def propose(gf, args, key) do
    t = Handlers.Simulate.run(gf, args, key)
    {t.choices, t.score, t.retval}
  end
end

defimpl Gen.GenerativeFunction, for: Any do
  # A distribution as a generative function: one choice at the empty address.
  alias Gen.{Choicemap, Distribution, Selection, Trace}

  def simulate(d, _args, key) do
    check!(d)
    # Gen.Vectorized.draw/2 is the one drawing path: per particle under a particle batch.
    {v, score} = Gen.Vectorized.draw(d, key)
    trace(d, v, score)
  end

  def generate(d, args, %Choicemap{value: nil} = cm, key) do
    check!(d)
    no_submap!(cm)
    {simulate(d, args, key), Gen.Handlers.zero()}
  end

  def generate(d, _args, %Choicemap{value: v}, _key) do
    check!(d)
    {v, score} = Gen.Vectorized.constrain(d, v)
    t = trace(d, v, score)
    {t, t.score}
  end

  def update(d, %Trace{} = prev, _args, _argdiffs, %Choicemap{value: nil} = cm, _key) do
    check!(d)
    no_submap!(cm)
    {t, w} = rescore(d, prev)
    {t, w, :no_change, Choicemap.new()}
  end

  def update(d, %Trace{} = prev, _args, _argdiffs, %Choicemap{value: v}, _key) do
    check!(d)
    {v, score} = Gen.Vectorized.constrain(d, v)
    t = trace(d, v, score)
    {t, weight(d, t, prev), :unknown_change, Choicemap.leaf(prev.retval)}
  end

  def regenerate(d, %Trace{} = prev, args, _argdiffs, sel, key) do
    check!(d)

    if Selection.member?(sel, []) do
      {simulate(d, args, key), Gen.Handlers.zero(), :unknown_change}
    else
      {t, w} = rescore(d, prev)
      {t, w, :no_change}
    end
  end

  def assess(d, _args, %Choicemap{value: nil}) do
    check!(d)
    raise ArgumentError, "Gen.assess/3: no value for the choice of #{inspect(d)}: assess needs every choice"
  end

  # A selected choice on the unconstrained scale of a gradient-based algorithm (Gen.Transform).
  def assess(d, _args, %Choicemap{value: %Gen.Inference.Unconstrained.Site{} = site}) do
    check!(d)
    Gen.Inference.Unconstrained.assess_site(d, site)
  end

  def assess(d, _args, %Choicemap{value: v}) do
    check!(d)
    lp = Gen.Vectorized.rescore(d, v)
    Gen.NaN.site(d, v, lp)
    {lp, v}
  end

  def project(_d, %Trace{score: s}, sel), do: if(Selection.member?(sel, []), do: s, else: Gen.Handlers.zero())

  def propose(d, args, key) do
    t = simulate(d, args, key)
    {t.choices, t.score, t.retval}
  end

  # The old value under (possibly new) parameters. Always recomputed: Mx arrays
  # compare equal as terms whatever their values, so parameters cannot be compared.
  defp rescore(d, prev) do
    t = trace(d, prev.retval, Gen.Vectorized.rescore(d, prev.retval))
    {t, weight(d, t, prev)}
  end

  defp weight(d, t, prev) do
    w = Mx.subtract(t.score, prev.score)
    Gen.NaN.site_weight(d, t.retval, w, t.score, prev.score)
    w
  end

  # Every site's score passes here: Gen.NaN names it when a diagnosing re-run finds it NaN.
  defp trace(d, v, score) do
    Gen.NaN.site(d, v, score)
    %Trace{gen_fn: d, args: [], choices: Choicemap.leaf(v), retval: v, score: score}
  end

  defp no_submap!(cm) do
    unless Choicemap.empty?(cm) do
      raise ArgumentError,
            "constraints #{inspect(Enum.map(cm, &elem(&1, 0)))} lie under a single random choice, which has no sub-addresses"
    end
  end

  defp check!(d) do
    if Distribution.impl_for(d) == nil do
      raise ArgumentError,
            "#{inspect(d)} is not a generative function: expected a Gen.DynamicFunction (made with gen/defgen), " <>
              "a distribution (Gen.Dist), or a type implementing Gen.GenerativeFunction"
    end
  end
end
