defmodule Gen.Combinators.Mix do
  @moduledoc """
  A first-class mixture (GenJAX's `mix`, made by `Gen.Combinators.mix/2`):
  a generative function of `args` that chooses a component index with a
  categorical choice over `0..k-1` from the log-weights (unnormalized,
  normalized by logsumexp), then runs that component on `args`. (The
  log-weights are fixed when the mixture is made; GenJAX's form that takes
  them from a generative function of the arguments is not provided.)

  Addressing: the index is the choice at `:component` (an `:s64` scalar);
  the component's choices sit under `:value` (`[:value | its address]`, or
  `:value` itself when the component is a distribution). The score is the
  categorical's plus the component's; the return value is the component's.

  Update with a new `:component` value moves to that component: its choices
  are generated under the `:value` constraints, the old component's
  choices go to the discard under `:value`, and the weight is the
  categorical's update weight plus the new component's generate weight
  minus the old component's score (Switch's rule). Regenerate with
  `:component` selected draws a new index; if it differs the new
  component is drawn from its prior and contributes weight 0.

      iex> import Gen
      iex> comps = [Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(5.0, 1.0)]
      iex> m = Gen.Combinators.mix(comps, Mx.log(Mx.tensor([0.25, 0.75], type: :f64)))
      iex> {t, w} = Gen.generate(m, [], %{component: 1, value: 5.0})
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(t[:component])}
      {-1.2066206057, 1}
  """

  @enforce_keys [:components, :log_weights]
  defstruct [:components, :log_weights]

  @type t :: %__MODULE__{components: [Gen.GenerativeFunction.t()], log_weights: Mx.t()}

  @doc false
  def categorical(%__MODULE__{log_weights: lw}), do: Gen.Dist.categorical(lw)

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
  # Constraints may name only :component and :value.
  def check_constraints!(gf, %Gen.Choicemap{} = cm, method) do
    bad = if cm.value != nil, do: [[]], else: Map.keys(cm.subs) -- [:component, :value]

    if bad != [] do
      raise ArgumentError,
            "#{method}: the constraint at #{inspect(hd(bad))} names no choice of #{inspect(gf)}: " <>
              "its choices are :component (the index) and those under :value"
    end
  end

  @doc false
  def to_trace(gf, args, %Gen.Trace{} = ct, %Gen.Trace{} = vt) do
    choices = Gen.Choicemap.new() |> Gen.Choicemap.put_submap([:component], ct.choices) |> Gen.Choicemap.put_submap([:value], vt.choices)
    subtraces = %{[:component] => ct, [:value] => vt}
    %Gen.Trace{gen_fn: gf, args: args, choices: choices, retval: vt.retval, score: Mx.add(ct.score, vt.score), subtraces: subtraces}
  end

  @doc false
  def key(key, i), do: Mx.Random.fold_in(key, i)
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Mix do
  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Combinators.Mix, as: M
  alias Gen.GenerativeFunction, as: GF

  def simulate(gf, args, key) do
    ct = GF.simulate(M.categorical(gf), [], M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.simulate")
    M.to_trace(gf, args, ct, GF.simulate(c, args, M.key(key, 1)))
  end

  def generate(gf, args, cm, key) do
    M.check_constraints!(gf, cm, "Gen.generate")
    {ct, w1} = GF.generate(M.categorical(gf), [], Choicemap.get_submap(cm, :component), M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.generate")
    {vt, w2} = GF.generate(c, args, Choicemap.get_submap(cm, :value), M.key(key, 1))
    {M.to_trace(gf, args, ct, vt), Mx.add(w1, w2)}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    M.check_constraints!(gf, cm, "Gen.update")
    old_ct = prev.subtraces[[:component]]
    old_vt = prev.subtraces[[:value]]
    {ct, w1, _, d1} = GF.update(M.categorical(gf), old_ct, [], [], Choicemap.get_submap(cm, :component), M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.update")
    value_cm = Choicemap.get_submap(cm, :value)

    {vt, w2, retdiff, d2} =
      if Mx.to_number(ct.retval) == Mx.to_number(old_ct.retval) do
        diffs = if is_list(argdiffs) and length(argdiffs) == length(args), do: argdiffs, else: Enum.map(args, fn _ -> :unknown_change end)
        GF.update(c, old_vt, args, diffs, value_cm, M.key(key, 1))
      else
        {vt, w} = GF.generate(c, args, value_cm, M.key(key, 1))
        {vt, Mx.subtract(w, old_vt.score), :unknown_change, old_vt.choices}
      end

    discard = Choicemap.new() |> Choicemap.put_submap([:component], d1) |> Choicemap.put_submap([:value], d2)
    {M.to_trace(gf, args, ct, vt), Mx.add(w1, w2), retdiff, discard}
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    old_ct = prev.subtraces[[:component]]
    old_vt = prev.subtraces[[:value]]
    {ct, w1, _} = GF.regenerate(M.categorical(gf), old_ct, [], [], Selection.subselection(sel, :component), M.key(key, 0))
    c = M.component!(gf, ct.retval, args, "Gen.regenerate")

    {vt, w2, retdiff} =
      if Mx.to_number(ct.retval) == Mx.to_number(old_ct.retval) do
        diffs = if is_list(argdiffs) and length(argdiffs) == length(args), do: argdiffs, else: Enum.map(args, fn _ -> :unknown_change end)
        GF.regenerate(c, old_vt, args, diffs, Selection.subselection(sel, :value), M.key(key, 1))
      else
        {GF.simulate(c, args, M.key(key, 1)), Gen.Handlers.zero(), :unknown_change}
      end

    {M.to_trace(gf, args, ct, vt), Mx.add(w1, w2), retdiff}
  end

  def assess(gf, args, cm) do
    M.check_constraints!(gf, cm, "Gen.assess")
    {w1, idx} = GF.assess(M.categorical(gf), [], Choicemap.get_submap(cm, :component))
    c = M.component!(gf, idx, args, "Gen.assess")
    {w2, retval} = GF.assess(c, args, Choicemap.get_submap(cm, :value))
    {Mx.add(w1, w2), retval}
  end

  def project(_gf, trace, sel), do: Gen.Handlers.project(trace, sel)

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end
end
