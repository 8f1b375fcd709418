defmodule Gen.Combinators.Switch do
  @moduledoc """
  Gen.jl's Switch combinator (made by `Gen.Combinators.switch/1`): a
  generative function of `[index | args]` that runs branch `index`
  (0-based: an integer or an Mx integer scalar) on `args`. The branch's
  choices sit at the top level of the trace, as the branch's own; the
  return value and score are the branch's.

  Update with the same index updates the branch's trace. Update to another
  index follows Gen.jl's switch update: the new branch keeps the old
  branch's choices at the addresses it shares with it, takes the
  constraints, and draws its other choices from its prior; the weight is
  the new branch's generate weight on the kept and constrained choices minus
  the old trace's score, and the discard holds the old choices not kept
  (overwritten or not visited by the new branch). Addresses are shared
  between two gen-function branches or two distribution branches (a branch
  of another kind shares none).

  Regenerate to another index keeps the old branch's unselected choices at
  shared addresses, rescored under the new branch (the change of their
  log-density is the weight), and draws the selected, new ones from the
  prior with weight 0, as the dynamic handler does (their density cancels
  against the reverse proposal). Same index: the branch's own regenerate.

      iex> import Gen
      iex> b0 = gen fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end
      iex> b1 = gen fn mu -> {trace(:x, Gen.Dist.normal(mu, 2.0)), trace(:y, Gen.Dist.normal(mu, 2.0))} end
      iex> s = Gen.Combinators.switch([b0, b1])
      iex> {t, _} = Gen.generate(s, [0, 0.0], %{x: 1.0})
      iex> {t2, w, _, discard} = Gen.update(t, [1, 0.0], [:unknown_change, :no_change], %{y: 0.0})
      iex> # x = 1 is kept: w = log N(1; 0, 2) + log N(0; 0, 2) - log N(1; 0, 1)
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(t2[:x]), Gen.Choicemap.empty?(discard)}
      {-1.9302328943, 1.0, true}
  """

  @enforce_keys [:branches]
  defstruct [:branches]

  @type t :: %__MODULE__{branches: [Gen.GenerativeFunction.t()]}

  @doc false
  # {index, branch, branch_args} from [index | args], checked.
  def args!(%__MODULE__{branches: bs} = gf, args, method) do
    case args do
      [idx | rest] ->
        i = index!(gf, idx, method)
        branch = Enum.at(bs, i)
        Gen.Combinators.kernel_arity!(branch, length(rest), method, "the #{length(rest)} argument(s) after the index")
        {i, branch, rest}

      _ ->
        raise ArgumentError, "#{method}: #{inspect(gf)} takes [index, args...] (the branch index first), got #{inspect(args)}"
    end
  end

  defp index!(gf, %Mx.Array{} = a, method) do
    if Mx.shape(a) != {} or not Mx.Type.integer?(Mx.type(a)) do
      raise ArgumentError,
            "#{method}: the branch index of #{inspect(gf)} must be an integer or an integer Mx scalar, got #{inspect(a)}"
    end

    Gen.Vectorized.shared!(a, "#{method}: the branch index of #{inspect(gf)}")
    index!(gf, Mx.to_number(a), method)
  end

  defp index!(%{branches: bs} = gf, i, method) when is_integer(i) do
    if i < 0 or i >= length(bs) do
      raise ArgumentError,
            "#{method}: branch index #{i} is out of range for #{inspect(gf)}, which has #{length(bs)} branch(es): use 0..#{length(bs) - 1}"
    end

    i
  end

  defp index!(gf, other, method) do
    raise ArgumentError,
          "#{method}: the branch index of #{inspect(gf)} must be an integer or an integer Mx scalar, got #{inspect(other)}"
  end

  @doc false
  # The Switch trace wrapping the branch trace (kept at subtrace path [] for project).
  def to_trace(gf, args, %Gen.Trace{} = bt) do
    %Gen.Trace{gen_fn: gf, args: args, choices: bt.choices, retval: bt.retval, score: bt.score, subtraces: %{[] => bt}}
  end

  @doc false
  # The branch argdiffs: the given ones after the index's, or unknown.
  def tail_diffs(argdiffs, n) when is_list(argdiffs) and length(argdiffs) == n + 1, do: tl(argdiffs)
  def tail_diffs(_argdiffs, n), do: List.duplicate(:unknown_change, n)
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Switch do
  alias Gen.Trace
  alias Gen.Combinators.Switch, as: S
  alias Gen.GenerativeFunction, as: GF

  def simulate(gf, args, key) do
    {_i, b, rest} = S.args!(gf, args, "Gen.simulate")
    S.to_trace(gf, args, GF.simulate(b, rest, key))
  end

  def generate(gf, args, cm, key) do
    {_i, b, rest} = S.args!(gf, args, "Gen.generate")
    {bt, w} = GF.generate(b, rest, cm, key)
    {S.to_trace(gf, args, bt), w}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    {i, b, rest} = S.args!(gf, args, "Gen.update")
    {old_i, _, _} = S.args!(gf, prev.args, "Gen.update")
    old = prev.subtraces[[]]

    if i == old_i do
      {bt, w, retdiff, discard} = GF.update(b, old, rest, S.tail_diffs(argdiffs, length(rest)), cm, key)
      {S.to_trace(gf, args, bt), w, retdiff, discard}
    else
      {bt, w, _retdiff, discard} = Gen.Combinators.switch_update(b, old, rest, cm, key)
      {S.to_trace(gf, args, bt), w, :unknown_change, discard}
    end
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    {i, b, rest} = S.args!(gf, args, "Gen.regenerate")
    {old_i, _, _} = S.args!(gf, prev.args, "Gen.regenerate")

    if i == old_i do
      {bt, w, retdiff} = GF.regenerate(b, prev.subtraces[[]], rest, S.tail_diffs(argdiffs, length(rest)), sel, key)
      {S.to_trace(gf, args, bt), w, retdiff}
    else
      {bt, w, _retdiff} = Gen.Combinators.switch_regenerate(b, prev.subtraces[[]], rest, sel, key)
      {S.to_trace(gf, args, bt), w, :unknown_change}
    end
  end

  def assess(gf, args, cm) do
    {_i, b, rest} = S.args!(gf, args, "Gen.assess")
    GF.assess(b, rest, cm)
  end

  def project(_gf, trace, sel), do: Gen.Handlers.project(trace, sel)

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end
end
