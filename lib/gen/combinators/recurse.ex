defmodule Gen.Combinators.Recurse do
  @moduledoc """
  A fixed point for recursive generative functions (made by
  `Gen.Combinators.recurse/2`): `recurse(fn self -> body end)`, where
  `body` is a generative function (usually an anonymous `gen`) that may
  call itself by tracing `self` at an address, `trace(addr, self, args)`.
  The recursion is the ordinary call tree of the body, so the choices of
  a recursive call lie under its address, nested as deep as the recursion
  goes; the score, return value and weights are the body's.

  This is the fixed-point form rather than Gen.jl's `Recurse(production,
  aggregation, ...)` with its fixed branching: an anonymous `gen` cannot
  name itself, and the fixed point lets it recurse with any Elixir control
  flow and any number of children. Incremental computation comes from the
  body's own handlers: in update and regenerate, a recursive call whose
  arguments are unchanged and with nothing constrained or selected under
  it keeps its subtree without running it (a named `defgen` that calls
  itself behaves the same; Recurse is for anonymous bodies).

  A random expression tree, each node a leaf with probability 0.6 (its
  value normal) or the sum of two subtrees; the tree below scores
  log 0.4 + 2 log 0.6 + log N(1; 0, 1) + log N(2; 0, 1):

      iex> import Gen
      iex> expr = Gen.Combinators.recurse(fn self ->
      ...>   gen fn ->
      ...>     if trace(:leaf, Gen.Dist.bernoulli(0.6)) |> Mx.to_number() do
      ...>       trace(:value, Gen.Dist.normal(0.0, 1.0))
      ...>     else
      ...>       Mx.add(trace(:left, self, []), trace(:right, self, []))
      ...>     end
      ...>   end
      ...> end)
      iex> tree = %{leaf: false, left: %{leaf: true, value: 1.0}, right: %{leaf: true, value: 2.0}}
      iex> {w, r} = Gen.assess(expr, [], tree)
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(r)}
      {-6.2758190458, 3.0}

  Recursion deeper than `max_depth:` (default 10,000 nested calls) raises
  instead of running until memory is exhausted.
  """

  @enforce_keys [:body, :max_depth]
  defstruct [:body, :max_depth]

  @type t :: %__MODULE__{body: (t() -> Gen.GenerativeFunction.t()), max_depth: pos_integer()}

  @depth :gen_recurse_depth

  @doc false
  # Runs fun with the body unfolded once (body.(gf)), one level deeper.
  def with_body(%__MODULE__{body: body, max_depth: max} = gf, method, fun) do
    depth = Process.get(@depth, 0)

    if depth >= max do
      raise ArgumentError,
            "#{method}: the recursion of #{inspect(gf)} went deeper than max_depth: #{max} nested calls; " <>
              "make the recursion stop (e.g. a stopping probability) or raise max_depth: in Gen.Combinators.recurse/2"
    end

    inner = body.(gf)

    if Gen.Distribution.impl_for(inner) == nil and Gen.GenerativeFunction.impl_for(inner) in [nil, Gen.GenerativeFunction.Any] do
      raise ArgumentError,
            "#{method}: the body of #{inspect(gf)} must return a generative function (e.g. gen fn ... end), got #{inspect(inner)}"
    end

    Process.put(@depth, depth + 1)

    try do
      fun.(inner)
    after
      if depth == 0, do: Process.delete(@depth), else: Process.put(@depth, depth)
    end
  end

  @doc false
  def to_trace(gf, args, %Gen.Trace{} = it) do
    %Gen.Trace{gen_fn: gf, args: args, choices: it.choices, retval: it.retval, score: it.score, subtraces: %{[] => it}}
  end
end

defimpl Inspect, for: Gen.Combinators.Recurse do
  # The body is a closure; its source is not recoverable, so show the guard only.
  def inspect(gf, _opts), do: "#Gen.Combinators.Recurse<max_depth: #{gf.max_depth}>"
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Recurse do
  alias Gen.Trace
  alias Gen.Combinators.Recurse, as: R
  alias Gen.GenerativeFunction, as: GF

  def simulate(gf, args, key), do: R.with_body(gf, "Gen.simulate", &R.to_trace(gf, args, GF.simulate(&1, args, key)))

  def generate(gf, args, cm, key) do
    R.with_body(gf, "Gen.generate", fn inner ->
      {it, w} = GF.generate(inner, args, cm, key)
      {R.to_trace(gf, args, it), w}
    end)
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    R.with_body(gf, "Gen.update", fn inner ->
      {it, w, retdiff, discard} = GF.update(inner, prev.subtraces[[]], args, argdiffs, cm, key)
      {R.to_trace(gf, args, it), w, retdiff, discard}
    end)
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    R.with_body(gf, "Gen.regenerate", fn inner ->
      {it, w, retdiff} = GF.regenerate(inner, prev.subtraces[[]], args, argdiffs, sel, key)
      {R.to_trace(gf, args, it), w, retdiff}
    end)
  end

  def assess(gf, args, cm), do: R.with_body(gf, "Gen.assess", &GF.assess(&1, args, cm))

  def project(_gf, trace, sel), do: GF.project(trace.subtraces[[]].gen_fn, trace.subtraces[[]], sel)

  def propose(gf, args, key), do: R.with_body(gf, "Gen.propose", &GF.propose(&1, args, key))
end
