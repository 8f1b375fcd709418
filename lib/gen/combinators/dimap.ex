defmodule Gen.Combinators.Dimap do
  @moduledoc """
  Contramap / Dimap (GenJAX's `contramap`, `map` and `dimap`; made by
  `Gen.Combinators.dimap/2`, `contramap/2` and `map_retval/2`): a
  generative function whose arguments are transformed by `pre` (a function
  of the argument list returning the inner function's argument list)
  before the inner generative function runs, and whose return value is
  transformed by `post` (a function of the inner return value). Its
  choices, score and weights are the inner function's, at the top level
  of the trace; `pre` and `post` must be deterministic.

  Update and regenerate pass argdiffs through: with every outer argdiff
  `:no_change` the inner arguments are the old ones, unchanged; otherwise
  `pre` is applied to the new arguments and each inner argument is
  compared with the old one: unchanged if it is the same term, or an Mx
  array of the same shape, type and values (one evaluation, so a value
  `pre` recomputes from unchanged inputs does not count as changed). When
  the inner return value is the very same term as before, the old
  transformed return value is kept and `post` is not called.

      iex> import Gen
      iex> inner = gen fn mu, sigma -> trace(:x, Gen.Dist.normal(mu, sigma)) end
      iex> d = Gen.Combinators.dimap(inner, pre: fn [m] -> [Mx.multiply(m, 2.0), 1.0] end, post: &Mx.exp/1)
      iex> {t, w} = Gen.generate(d, [0.5], %{x: 0.0})
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(Gen.get_retval(t))}
      {-1.4189385332, 1.0}
  """

  @enforce_keys [:inner, :pre, :post]
  defstruct [:inner, :pre, :post]

  @type t :: %__MODULE__{inner: Gen.GenerativeFunction.t(), pre: ([term()] -> [term()]) | nil, post: (term() -> term()) | nil}

  @doc false
  # The inner arguments: pre applied to args, checked to be a list.
  def inner_args!(%__MODULE__{pre: nil}, args, _method), do: args

  def inner_args!(%__MODULE__{pre: pre} = gf, args, method) do
    case pre.(args) do
      l when is_list(l) ->
        l

      other ->
        raise ArgumentError,
              "#{method}: the pre function of #{inspect(gf)} must return the inner function's argument list, " <>
                "got #{inspect(other)} for the arguments #{inspect(args)}"
    end
  end

  @doc false
  def retval(%__MODULE__{post: nil}, r), do: r
  def retval(%__MODULE__{post: post}, r), do: post.(r)

  @doc false
  def to_trace(gf, args, %Gen.Trace{} = it, retval) do
    %Gen.Trace{gen_fn: gf, args: args, choices: it.choices, retval: retval, score: it.score, subtraces: %{[] => it}}
  end

  @doc false
  # The inner arguments and their argdiffs for a move from prev to args.
  def inner_diffs(gf, prev, args, argdiffs, method) do
    old = prev.subtraces[[]]

    if is_list(argdiffs) and length(argdiffs) == length(args) and Enum.all?(argdiffs, &(&1 == :no_change)) do
      {old.args, Enum.map(old.args, fn _ -> :no_change end)}
    else
      new = inner_args!(gf, args, method)

      diffs =
        if length(new) == length(old.args),
          do: Enum.zip_with(old.args, new, fn o, n -> if same?(o, n), do: :no_change, else: :unknown_change end),
          else: Enum.map(new, fn _ -> :unknown_change end)

      {new, diffs}
    end
  end

  defp same?(a, a), do: true

  defp same?(%Mx.Array{} = a, %Mx.Array{} = b) do
    # Inside a vectorized call: the same for every particle.
    Mx.shape(a) == Mx.shape(b) and Mx.type(a) == Mx.type(b) and
      Mx.to_number(Mx.all(Gen.Vectorized.particle_values(Mx.equal(a, b)))) in [true, 1]
  end

  defp same?(_a, _b), do: false
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Dimap do
  alias Gen.Trace
  alias Gen.Combinators.Dimap, as: D
  alias Gen.GenerativeFunction, as: GF

  def simulate(gf, args, key) do
    it = GF.simulate(gf.inner, D.inner_args!(gf, args, "Gen.simulate"), key)
    D.to_trace(gf, args, it, D.retval(gf, it.retval))
  end

  def generate(gf, args, cm, key) do
    {it, w} = GF.generate(gf.inner, D.inner_args!(gf, args, "Gen.generate"), cm, key)
    {D.to_trace(gf, args, it, D.retval(gf, it.retval)), w}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    {inner_args, diffs} = D.inner_diffs(gf, prev, args, argdiffs, "Gen.update")
    {it, w, retdiff, discard} = GF.update(gf.inner, prev.subtraces[[]], inner_args, diffs, cm, key)
    {r, retdiff} = new_retval(gf, prev, it, retdiff)
    {D.to_trace(gf, args, it, r), w, retdiff, discard}
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    {inner_args, diffs} = D.inner_diffs(gf, prev, args, argdiffs, "Gen.regenerate")
    {it, w, retdiff} = GF.regenerate(gf.inner, prev.subtraces[[]], inner_args, diffs, sel, key)
    {r, retdiff} = new_retval(gf, prev, it, retdiff)
    {D.to_trace(gf, args, it, r), w, retdiff}
  end

  def assess(gf, args, cm) do
    {w, r} = GF.assess(gf.inner, D.inner_args!(gf, args, "Gen.assess"), cm)
    {w, D.retval(gf, r)}
  end

  def project(_gf, trace, sel), do: GF.project(trace.subtraces[[]].gen_fn, trace.subtraces[[]], sel)

  def propose(gf, args, key) do
    {cm, w, r} = GF.propose(gf.inner, D.inner_args!(gf, args, "Gen.propose"), key)
    {cm, w, D.retval(gf, r)}
  end

  # An unchanged inner return value keeps the old transformed one (post is not re-run).
  defp new_retval(gf, prev, it, retdiff) do
    if it.retval === prev.subtraces[[]].retval, do: {prev.retval, :no_change}, else: {D.retval(gf, it.retval), retdiff}
  end
end
