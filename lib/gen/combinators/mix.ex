defmodule Gen.Combinators.Mix do
  @moduledoc """
  A first-class mixture (GenJAX's `mix`, made by `Gen.Combinators.mix/2`):
  a generative function of `args` that chooses a component index with a
  categorical choice over `0..k-1` from log-weights (unnormalized,
  normalized by logsumexp), then runs that component on `args`.

  The log-weights are either fixed when the mixture is made (a list or an
  Mx vector), or computed by a generative function (GenJAX's form): it
  runs on the same `args` and returns the logits, an Mx vector of `k`
  entries, and its choices are traced under `:logits` (so the mixture
  weights can be random and inferred).

  Addressing: the index is the choice at `:component` (an `:s64` scalar);
  the component's choices sit under `:value` (`[:value | its address]`, or
  `:value` itself when the component is a distribution); the logits
  function's choices under `:logits`. The score is the sum of the logits
  function's, the categorical's and the component's; the return value is
  the component's.

  Update with a new `:component` value moves to that component by Switch's
  rule (Gen.jl's switch update): the new component keeps the old one's
  choices under `:value` at the addresses they share, takes the `:value`
  constraints and draws the rest from its prior; the weight is the
  categorical's update weight plus the new component's generate weight on
  the kept and constrained choices minus the old component's score, and the
  old choices not kept go to the discard under `:value`. A change under
  `:logits` (or of the arguments) rescores the kept index under the new
  logits. Regenerate with `:component` selected draws a new index; if it
  differs the new component keeps the old one's unselected shared choices,
  rescored (the weight), and draws the others from its prior (weight 0).

      iex> import Gen
      iex> comps = [Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(5.0, 1.0)]
      iex> m = Gen.Combinators.mix(comps, Mx.log(Mx.tensor([0.25, 0.75], type: :f64)))
      iex> {t, w} = Gen.generate(m, [], %{component: 1, value: 5.0})
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(t[:component])}
      {-1.2066206057, 1}

  With random weights: `p ~ Beta(2, 2)`, logits `[log p, log(1 - p)]`; the
  choices below score log Beta(0.25; 2, 2) + log 0.25 + log N(0; 0, 1).

      iex> import Gen
      iex> lw = gen fn -> p = trace(:p, Gen.Dist.beta(2.0, 2.0)); Mx.log(Mx.stack([p, Mx.subtract(1.0, p)])) end
      iex> m = Gen.Combinators.mix([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(5.0, 1.0)], lw)
      iex> {w, _} = Gen.assess(m, [], %{logits: %{p: 0.25}, component: 0, value: 0.0})
      iex> Float.round(Mx.to_number(w), 10)
      -2.1874498587
  """

  @enforce_keys [:components]
  defstruct [:components, :log_weights, :logits]

  @type t :: %__MODULE__{components: [Gen.GenerativeFunction.t()], log_weights: Mx.t() | nil, logits: Gen.GenerativeFunction.t() | nil}

  @doc false
  # The categorical over the components from fixed log-weights or a logits value, checked.
  def categorical(%__MODULE__{log_weights: nil, components: cs} = gf, logits, method) do
    l = if is_list(logits) or is_number(logits), do: Mx.tensor(logits, type: :f64), else: logits

    if not match?(%Mx.Array{}, l) or Mx.shape(l) != {length(cs)} do
      raise ArgumentError,
            "#{method}: the logits function of #{inspect(gf)} must return an Mx vector with one entry per component " <>
              "(#{length(cs)}), got #{inspect(logits)}"
    end

    Gen.Dist.categorical(logits: Gen.Handlers.f64(l))
  end

  def categorical(%__MODULE__{log_weights: lw}, _logits, _method), do: Gen.Dist.categorical(logits: lw)

  @doc false
  # The component at the index held by a categorical trace (or value), with its arity checked.
  def component!(%__MODULE__{components: cs} = gf, idx, args, method) do
    i = Mx.to_number(idx)

    if not (is_integer(i) and i >= 0 and i < length(cs)) do
      raise ArgumentError,
            "#{method}: component index #{inspect(i)} is out of range for #{inspect(gf)}, which has #{length(cs)} component(s): use 0..#{length(cs) - 1}"
    end

    c = Enum.at(cs, i)
    Gen.Combinators.kernel_arity!(c, length(args), method, "#{length(args)} argument(s)")
    c
  end

  @doc false
  # Constraints may name only :component, :value and (with a logits function) :logits.
  def check_constraints!(gf, %Gen.Choicemap{} = cm, method) do
    allowed = if gf.logits, do: [:logits, :component, :value], else: [:component, :value]
    bad = if cm.value != nil, do: [[]], else: Map.keys(cm.subs) -- allowed

    if bad != [] do
      raise ArgumentError,
            "#{method}: the constraint at #{inspect(hd(bad))} names no choice of #{inspect(gf)}: " <>
              "its choices are #{Enum.map_join(allowed -- [:value], ", ", &inspect/1)} and those under :value"
    end
  end

  @doc false
  # lt is the logits function's trace, or nil for fixed log-weights.
  def to_trace(gf, args, lt, %Gen.Trace{} = ct, %Gen.Trace{} = vt) do
    choices = Gen.Choicemap.new() |> Gen.Choicemap.put_submap([:component], ct.choices) |> Gen.Choicemap.put_submap([:value], vt.choices)
    subtraces = %{[:component] => ct, [:value] => vt}
    score = Mx.add(ct.score, vt.score)

    if lt do
      choices = Gen.Choicemap.put_submap(choices, [:logits], lt.choices)
      %Gen.Trace{gen_fn: gf, args: args, choices: choices, retval: vt.retval, score: Mx.add(score, lt.score), subtraces: Map.put(subtraces, [:logits], lt)}
    else
      %Gen.Trace{gen_fn: gf, args: args, choices: choices, retval: vt.retval, score: score, subtraces: subtraces}
    end
  end

  @doc false
  def key(key, i), do: Mx.Random.fold_in(key, i)

  @doc false
  def diffs(argdiffs, args) do
    if is_list(argdiffs) and length(argdiffs) == length(args), do: argdiffs, else: Enum.map(args, fn _ -> :unknown_change end)
  end
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Mix do
  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Combinators.Mix, as: M
  alias Gen.GenerativeFunction, as: GF
  alias Gen.Handlers, as: H

  def simulate(gf, args, key) do
    lt = if gf.logits, do: GF.simulate(gf.logits, args, M.key(key, 2))
    ct = GF.simulate(M.categorical(gf, lt && lt.retval, "Gen.simulate"), [], M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.simulate")
    M.to_trace(gf, args, lt, ct, GF.simulate(c, args, M.key(key, 1)))
  end

  def generate(gf, args, cm, key) do
    M.check_constraints!(gf, cm, "Gen.generate")
    {lt, w0} = if gf.logits, do: GF.generate(gf.logits, args, Choicemap.get_submap(cm, :logits), M.key(key, 2)), else: {nil, H.zero()}
    cat = M.categorical(gf, lt && lt.retval, "Gen.generate")
    {ct, w1} = GF.generate(cat, [], Choicemap.get_submap(cm, :component), M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.generate")
    {vt, w2} = GF.generate(c, args, Choicemap.get_submap(cm, :value), M.key(key, 1))
    {M.to_trace(gf, args, lt, ct, vt), w0 |> Mx.add(w1) |> Mx.add(w2)}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    M.check_constraints!(gf, cm, "Gen.update")
    old_ct = prev.subtraces[[:component]]
    old_vt = prev.subtraces[[:value]]
    diffs = M.diffs(argdiffs, args)

    {lt, w0, d0} =
      if gf.logits do
        {lt, w, _, d} = GF.update(gf.logits, prev.subtraces[[:logits]], args, diffs, Choicemap.get_submap(cm, :logits), M.key(key, 2))
        {lt, w, d}
      else
        {nil, H.zero(), Choicemap.new()}
      end

    cat = M.categorical(gf, lt && lt.retval, "Gen.update")
    {ct, w1, _, d1} = GF.update(cat, old_ct, [], [], Choicemap.get_submap(cm, :component), M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.update")
    value_cm = Choicemap.get_submap(cm, :value)

    {vt, w2, retdiff, d2} =
      if Mx.to_number(ct.retval) == Mx.to_number(old_ct.retval) do
        GF.update(c, old_vt, args, diffs, value_cm, M.key(key, 1))
      else
        Gen.Combinators.switch_update(c, old_vt, args, value_cm, M.key(key, 1))
      end

    discard =
      Choicemap.new()
      |> Choicemap.put_submap([:logits], d0)
      |> Choicemap.put_submap([:component], d1)
      |> Choicemap.put_submap([:value], d2)

    {M.to_trace(gf, args, lt, ct, vt), w0 |> Mx.add(w1) |> Mx.add(w2), retdiff, discard}
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    old_ct = prev.subtraces[[:component]]
    old_vt = prev.subtraces[[:value]]
    diffs = M.diffs(argdiffs, args)

    {lt, w0} =
      if gf.logits do
        {lt, w, _} = GF.regenerate(gf.logits, prev.subtraces[[:logits]], args, diffs, Selection.subselection(sel, :logits), M.key(key, 2))
        {lt, w}
      else
        {nil, H.zero()}
      end

    cat = M.categorical(gf, lt && lt.retval, "Gen.regenerate")
    {ct, w1, _} = GF.regenerate(cat, old_ct, [], [], Selection.subselection(sel, :component), M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.regenerate")

    {vt, w2, retdiff} =
      if Mx.to_number(ct.retval) == Mx.to_number(old_ct.retval) do
        GF.regenerate(c, old_vt, args, diffs, Selection.subselection(sel, :value), M.key(key, 1))
      else
        Gen.Combinators.switch_regenerate(c, old_vt, args, Selection.subselection(sel, :value), M.key(key, 1))
      end

    {M.to_trace(gf, args, lt, ct, vt), w0 |> Mx.add(w1) |> Mx.add(w2), retdiff}
  end

  def assess(gf, args, cm) do
    M.check_constraints!(gf, cm, "Gen.assess")
    {w0, logits} = if gf.logits, do: GF.assess(gf.logits, args, Choicemap.get_submap(cm, :logits)), else: {H.zero(), nil}
    {w1, idx} = GF.assess(M.categorical(gf, logits, "Gen.assess"), [], Choicemap.get_submap(cm, :component))
    c = M.component!(gf, idx, args, "Gen.assess")
    {w2, retval} = GF.assess(c, args, Choicemap.get_submap(cm, :value))
    {w0 |> Mx.add(w1) |> Mx.add(w2), retval}
  end

  def project(_gf, trace, sel), do: H.project(trace, sel)

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end
end
