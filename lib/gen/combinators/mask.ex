defmodule Gen.Combinators.Mask do
  @moduledoc """
  The Mask combinator (GenJAX's `mask`, made by `Gen.Combinators.mask/1`):
  a generative function of `[flag | args]`. When `flag` is true (`true`,
  or a nonzero Mx scalar) it runs the inner generative function on `args`,
  with the inner choices at the top level of the trace as its own; when
  false it makes no choices, returns `nil`, and scores 0.

  Update from true to true updates the inner trace; from false to true
  generates it with the constraints (the generate weight); from true to
  false removes it (weight minus its score, its choices to the discard).
  Regenerate from false to true draws from the prior with weight 0, and
  from true to false adds nothing, as the dynamic handler treats new and
  removed calls. Constraints while the flag is false are an error: there
  is no choice for them to name.

      iex> import Gen
      iex> m = Gen.Combinators.mask(gen fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end)
      iex> {t, w} = Gen.generate(m, [false, 0.0], %{})
      iex> {Mx.to_number(w), Gen.get_retval(t)}
      {0.0, nil}
      iex> {t2, w2, _, _} = Gen.update(t, [true, 0.0], [:unknown_change, :no_change], %{x: 0.0})
      iex> {Float.round(Mx.to_number(w2), 10), Mx.to_number(t2[:x])}
      {-0.9189385332, 0.0}
  """

  @enforce_keys [:inner]
  defstruct [:inner]

  @type t :: %__MODULE__{inner: Gen.GenerativeFunction.t()}

  @doc false
  # {flag, inner_args} from [flag | args], checked.
  def args!(%__MODULE__{inner: inner} = gf, args, method) do
    case args do
      [flag | rest] ->
        Gen.Combinators.kernel_arity!(inner, length(rest), method, "the #{length(rest)} argument(s) after the flag")
        {flag!(gf, flag, method), rest}

      _ ->
        raise ArgumentError, "#{method}: #{inspect(gf)} takes [flag, args...] (a boolean first), got #{inspect(args)}"
    end
  end

  defp flag!(_gf, f, _method) when is_boolean(f), do: f

  defp flag!(gf, %Mx.Array{} = a, method) do
    if Mx.shape(a) != {} do
      raise ArgumentError, "#{method}: the flag of #{inspect(gf)} must be a boolean or an Mx scalar, got shape #{inspect(Mx.shape(a))}"
    end

    Mx.to_number(a) != 0
  end

  defp flag!(gf, other, method) do
    raise ArgumentError, "#{method}: the flag of #{inspect(gf)} must be a boolean or an Mx scalar, got #{inspect(other)}"
  end

  @doc false
  def to_trace(gf, args, nil), do: %Gen.Trace{gen_fn: gf, args: args, choices: Gen.Choicemap.new(), retval: nil, score: Gen.Handlers.zero()}

  def to_trace(gf, args, %Gen.Trace{} = it) do
    %Gen.Trace{gen_fn: gf, args: args, choices: it.choices, retval: it.retval, score: it.score, subtraces: %{[] => it}}
  end

  @doc false
  # With the flag false there is no choice for a constraint to name.
  def no_constraints!(gf, cm, method) do
    if not Gen.Choicemap.empty?(cm) do
      raise ArgumentError,
            "#{method}: constraints #{inspect(Enum.map(cm, &elem(&1, 0)))} name choices of #{inspect(gf)}, " <>
              "whose flag is false, so it makes no choices"
    end
  end
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Mask do
  alias Gen.{Choicemap, Trace}
  alias Gen.Combinators.Mask, as: M
  alias Gen.Combinators.Switch
  alias Gen.GenerativeFunction, as: GF
  alias Gen.Handlers, as: H

  def simulate(gf, args, key) do
    case M.args!(gf, args, "Gen.simulate") do
      {true, rest} -> M.to_trace(gf, args, GF.simulate(gf.inner, rest, key))
      {false, _} -> M.to_trace(gf, args, nil)
    end
  end

  def generate(gf, args, cm, key) do
    case M.args!(gf, args, "Gen.generate") do
      {true, rest} ->
        {it, w} = GF.generate(gf.inner, rest, cm, key)
        {M.to_trace(gf, args, it), w}

      {false, _} ->
        M.no_constraints!(gf, cm, "Gen.generate")
        {M.to_trace(gf, args, nil), H.zero()}
    end
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    {flag, rest} = M.args!(gf, args, "Gen.update")
    {old_flag, _} = M.args!(gf, prev.args, "Gen.update")
    old = prev.subtraces[[]]

    case {old_flag, flag} do
      {true, true} ->
        {it, w, retdiff, discard} = GF.update(gf.inner, old, rest, Switch.tail_diffs(argdiffs, length(rest)), cm, key)
        {M.to_trace(gf, args, it), w, retdiff, discard}

      {false, true} ->
        {it, w} = GF.generate(gf.inner, rest, cm, key)
        {M.to_trace(gf, args, it), w, :unknown_change, Choicemap.new()}

      {true, false} ->
        M.no_constraints!(gf, cm, "Gen.update")
        {M.to_trace(gf, args, nil), Mx.negate(old.score), :unknown_change, old.choices}

      {false, false} ->
        M.no_constraints!(gf, cm, "Gen.update")
        {M.to_trace(gf, args, nil), H.zero(), :no_change, Choicemap.new()}
    end
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    {flag, rest} = M.args!(gf, args, "Gen.regenerate")
    {old_flag, _} = M.args!(gf, prev.args, "Gen.regenerate")

    case {old_flag, flag} do
      {true, true} ->
        {it, w, retdiff} = GF.regenerate(gf.inner, prev.subtraces[[]], rest, Switch.tail_diffs(argdiffs, length(rest)), sel, key)
        {M.to_trace(gf, args, it), w, retdiff}

      {false, true} ->
        {M.to_trace(gf, args, GF.simulate(gf.inner, rest, key)), H.zero(), :unknown_change}

      {true, false} ->
        {M.to_trace(gf, args, nil), H.zero(), :unknown_change}

      {false, false} ->
        {M.to_trace(gf, args, nil), H.zero(), :no_change}
    end
  end

  def assess(gf, args, cm) do
    case M.args!(gf, args, "Gen.assess") do
      {true, rest} ->
        GF.assess(gf.inner, rest, cm)

      {false, _} ->
        M.no_constraints!(gf, cm, "Gen.assess")
        {H.zero(), nil}
    end
  end

  def project(_gf, trace, sel), do: H.project(trace, sel)

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end
end
