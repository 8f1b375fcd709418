defmodule Gen.Handlers do
  @moduledoc """
  The handlers that run `gen` bodies, one per GFI method (STYLE.md 15):
  `Gen.Handlers.Simulate`, `Generate`, `Update`, `Regenerate`, `Assess`.
  (`project` and `propose` need no run of the body: see `project/2` and
  `Gen.Handlers.Simulate`.)

  A body calls `Gen.trace/3` at each trace site; the handler of the
  method being run decides what that means. The handler state lives in the
  calling process's dictionary (DESIGN.md decision 8), so a body may use
  any Elixir control flow; a nested call pushes a new state and restores
  the caller's when it returns or raises. Visiting an address twice in one
  call raises at once, naming the address.

  Site `i` of a call draws with `Mx.Random.fold_in(key, i)`, so a key
  determines the whole execution.
  """

  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.GenerativeFunction, as: GF

  @state :gen_handler_state

  @doc false
  # Numbers and lists straight to f64 (not through f32, Mx.tensor's default float type).
  def f64(%Mx.Array{type: :f64} = x), do: x
  def f64(%Mx.Array{} = x), do: Mx.as_type(x, :f64)
  def f64(x), do: Mx.tensor(x, type: :f64)

  @doc false
  def zero, do: Mx.tensor(0.0, type: :f64)

  # ---- running a body -------------------------------------------------------------

  @doc false
  # Whether a generative function's body is running in this process.
  def running?, do: Process.get(@state) != nil

  @doc false
  # Runs gf's body with a fresh handler state built on `init`; returns {retval, final state}.
  def run(handler, gf, args, key, init) do
    check_args!(gf, args)
    parent = Process.get(@state)
    prefix = if parent, do: parent.prefix ++ parent.site, else: []

    state =
      Map.merge(
        %{
          handler: handler,
          gen_fn: gf,
          key: key,
          counter: 0,
          prefix: prefix,
          site: [],
          visited: MapSet.new(),
          prefixes: MapSet.new(),
          subtraces: %{},
          score: zero(),
          weight: zero(),
          factors: 0
        },
        init
      )

    Process.put(@state, state)

    try do
      retval = apply(gf.fun, args)
      {retval, Process.get(@state)}
    after
      if parent, do: Process.put(@state, parent), else: Process.delete(@state)
    end
  end

  defp check_args!(%{arity: n} = gf, args) when is_list(args) do
    if length(args) != n do
      raise ArgumentError, "#{inspect(gf)} takes #{n} argument(s), got #{length(args)}: #{inspect(args)}"
    end
  end

  defp check_args!(gf, args) do
    raise ArgumentError, "the arguments of #{inspect(gf)} must be a list, got #{inspect(args)}"
  end

  @doc false
  # Gen.trace/3: called from a body; dispatches to the current handler.
  def visit(addr, gf, args) do
    state = current!("trace")
    path = Choicemap.path!(addr)

    if path == [] do
      raise ArgumentError, "trace: the empty path [] is not an address (in #{inspect(state.gen_fn)})"
    end

    if not is_list(args) do
      raise ArgumentError, "trace: the arguments at #{where(state, path)} must be a list, got #{inspect(args)}"
    end

    dist? = Gen.Distribution.impl_for(gf) != nil

    if not dist? and GF.impl_for(gf) == GF.Any do
      raise ArgumentError,
            "trace: expected a distribution or a generative function at #{where(state, path)}, got #{inspect(gf)}" <>
              if(is_struct(gf),
                do: " (a defimpl Gen.Distribution in a script has no effect once protocols are consolidated: use Gen.Dist.custom/1 or /2)",
                else: ""
              )
    end

    if collision?(state, path) do
      raise ArgumentError,
            "trace: #{where(state, path)} is visited twice in one call of #{inspect(state.gen_fn)}; " <>
              "every trace site needs its own address (use {name, i} in loops)"
    end

    # Assess draws nothing, so it runs without a key and builds no key nodes (a gradient's hot path).
    key = if state.key, do: Mx.Random.fold_in(state.key, state.counter)
    state = %{state | counter: state.counter + 1, site: path} |> mark(path)
    Process.put(@state, state)
    {retval, state} = state.handler.visit(state, path, gf, args, key, dist?)
    Process.put(@state, %{state | site: []})
    retval
  end

  @doc false
  # Gen.factor/1: the i-th factor of the call, at {:factor, i}.
  def factor(logp) do
    state = current!("factor")
    Process.put(@state, %{state | factors: state.factors + 1})
    visit({:factor, state.factors}, Gen.Factor.new(logp), [])
    nil
  end

  @doc false
  # Gen.splice/2: runs a dynamic function's body in the current call's state.
  def splice(%Gen.DynamicFunction{} = gf, args) do
    _ = current!("splice")
    check_args!(gf, args)
    apply(gf.fun, args)
  end

  def splice(gf, _args) do
    raise ArgumentError,
          "splice: expected a Gen.DynamicFunction (made with gen/defgen), got #{inspect(gf)}; " <>
            "trace a distribution or another generative function at an address with trace/2 or trace/3"
  end

  @doc false
  # The handler state of the running call, or nil outside a gen body.
  def current, do: Process.get(@state)

  defp current!(what) do
    Process.get(@state) ||
      raise RuntimeError,
            "Gen.#{what} was called outside a generative function: call it inside a gen/defgen body " <>
              "run by a GFI function such as Gen.simulate/2"
  end

  defp collision?(state, path) do
    MapSet.member?(state.visited, path) or MapSet.member?(state.prefixes, path) or
      Enum.any?(strict_prefixes(path), &MapSet.member?(state.visited, &1))
  end

  defp mark(state, path) do
    %{state | visited: MapSet.put(state.visited, path), prefixes: Enum.into(strict_prefixes(path), state.prefixes)}
  end

  defp strict_prefixes([_]), do: []
  defp strict_prefixes(path), do: for(n <- 1..(length(path) - 1), do: Enum.take(path, n))

  @doc false
  def where(state, path), do: Choicemap.format_path(state.prefix ++ path)

  # ---- shared pieces --------------------------------------------------------------

  @doc false
  def add_subtrace(state, path, %Trace{} = sub) do
    %{state | subtraces: Map.put(state.subtraces, path, sub), score: Mx.add(state.score, sub.score)}
  end

  @doc false
  def add_weight(state, w), do: %{state | weight: Mx.add(state.weight, w)}

  @doc false
  def to_trace(state, args, retval) do
    choices = Enum.reduce(state.subtraces, Choicemap.new(), fn {p, t}, cm -> Choicemap.put_submap(cm, p, t.choices) end)
    %Trace{gen_fn: state.gen_fn, args: args, choices: choices, retval: retval, score: state.score, subtraces: state.subtraces}
  end

  @doc false
  # Gen.jl raises when a constraint names no choice the call visited.
  def check_all_visited!(state, %Choicemap{} = cm, method) do
    Enum.each(cm, fn {path, _} ->
      if not Enum.any?(Enum.to_list(strict_prefixes_incl(path)), &MapSet.member?(state.visited, &1)) do
        raise ArgumentError,
              "#{method}: the constraint at #{where(state, path)} names no random choice of #{inspect(state.gen_fn)} " <>
                "(the addresses visited were #{inspect(Enum.sort(state.visited) |> Enum.map(&unwrap/1))})"
      end
    end)
  end

  defp strict_prefixes_incl([]), do: []
  defp strict_prefixes_incl(path), do: for(n <- 1..length(path), do: Enum.take(path, n))

  defp unwrap([a]), do: a
  defp unwrap(p), do: p

  @doc false
  # Constraints under an address that holds one choice are an error, named.
  def check_leaf_constraint!(state, path, %Choicemap{value: nil} = cm, method) do
    if not Choicemap.empty?(cm) do
      raise ArgumentError,
            "#{method}: constraints #{inspect(Enum.map(cm, fn {p, _} -> p end))} lie under #{where(state, path)}, " <>
              "which is a single random choice"
    end
  end

  def check_leaf_constraint!(_state, _path, _cm, _method), do: :ok

  @doc false
  # A call site's previous subtrace must come from the same kind of callee.
  def compatible!(state, path, %Trace{gen_fn: old}, new, dist?) do
    old_dist? = Gen.Distribution.impl_for(old) != nil

    cond do
      dist? and old_dist? -> :ok
      match?(%Gen.DynamicFunction{}, old) and match?(%Gen.DynamicFunction{}, new) and old.arity == new.arity -> :ok
      old.__struct__ == new.__struct__ -> :ok
      true -> raise ArgumentError, "the generative function at #{where(state, path)} changed from #{inspect(old)} to #{inspect(new)}"
    end
  end

  @doc false
  # An argument is unchanged when it is the same term (Mx arrays are == exactly
  # when they are the same graph node), so a recomputed value counts as changed.
  def argdiffs(old_args, args) when length(old_args) == length(args) do
    Enum.zip_with(old_args, args, fn o, n -> if o === n, do: :no_change, else: :unknown_change end)
  end

  def argdiffs(_old_args, args), do: Enum.map(args, fn _ -> :unknown_change end)

  @doc false
  # Gen.jl's incremental computation: a sub-call with the same generative function,
  # unchanged arguments and nothing asked of it is kept as it was (weight 0).
  def unchanged?(%Gen.Trace{} = old, gf, diffs, nothing_asked?) do
    nothing_asked? and old.gen_fn === gf and Enum.all?(diffs, &(&1 == :no_change))
  end

  @doc false
  # The scores of the factors (Gen.factor) in a trace tree.
  def factors(%Trace{gen_fn: %Gen.Factor{}, score: s}), do: [s]
  def factors(%Trace{subtraces: subs}), do: Enum.flat_map(subs, fn {_p, t} -> if match?(%Trace{}, t), do: factors(t), else: [] end)
  def factors(_), do: []

  @doc false
  # project(trace, selection) of a dynamic trace: the selected parts of each site.
  def project(%Trace{subtraces: subs}, %Selection{} = sel) do
    Enum.reduce(subs, zero(), fn {path, t}, acc ->
      Mx.add(acc, GF.project(t.gen_fn, t, Selection.subselection(sel, path)))
    end)
  end
end

defmodule Gen.Handlers.Simulate do
  @moduledoc false
  alias Gen.Handlers, as: H

  def run(gf, args, key) do
    {retval, state} = H.run(__MODULE__, gf, args, key, %{})
    H.to_trace(state, args, retval)
  end

  def visit(state, path, gf, args, key, _dist?) do
    sub = Gen.GenerativeFunction.simulate(gf, args, key)
    {sub.retval, H.add_subtrace(state, path, sub)}
  end
end

defmodule Gen.Handlers.Generate do
  @moduledoc false
  alias Gen.Handlers, as: H
  alias Gen.Choicemap

  def run(gf, args, cm, key) do
    {retval, state} = H.run(__MODULE__, gf, args, key, %{constraints: cm})
    H.check_all_visited!(state, cm, "Gen.generate")
    {H.to_trace(state, args, retval), state.weight}
  end

  def visit(state, path, gf, args, key, dist?) do
    sub_cm = Choicemap.get_submap(state.constraints, path)
    if dist?, do: H.check_leaf_constraint!(state, path, sub_cm, "Gen.generate")
    {sub, w} = Gen.GenerativeFunction.generate(gf, args, sub_cm, key)
    {sub.retval, state |> H.add_subtrace(path, sub) |> H.add_weight(w)}
  end
end

defmodule Gen.Handlers.Update do
  @moduledoc false
  alias Gen.Handlers, as: H
  alias Gen.{Choicemap, Trace}

  def run(gf, %Trace{} = prev, args, _argdiffs, cm, key) do
    {retval, state} = H.run(__MODULE__, gf, args, key, %{constraints: cm, prev: prev, discard: Choicemap.new()})
    H.check_all_visited!(state, cm, "Gen.update")

    # Choices of the old trace that this run did not visit are removed.
    state =
      Enum.reduce(prev.subtraces, state, fn {path, old}, st ->
        if Map.has_key?(st.subtraces, path) do
          st
        else
          %{st | weight: Mx.subtract(st.weight, old.score), discard: Choicemap.put_submap(st.discard, path, old.choices)}
        end
      end)

    {H.to_trace(state, args, retval), state.weight, :unknown_change, state.discard}
  end

  def visit(state, path, gf, args, key, dist?) do
    sub_cm = Choicemap.get_submap(state.constraints, path)
    if dist?, do: H.check_leaf_constraint!(state, path, sub_cm, "Gen.update")

    case Map.fetch(state.prev.subtraces, path) do
      :error ->
        {sub, w} = Gen.GenerativeFunction.generate(gf, args, sub_cm, key)
        {sub.retval, state |> H.add_subtrace(path, sub) |> H.add_weight(w)}

      {:ok, old} ->
        H.compatible!(state, path, old, gf, dist?)
        diffs = H.argdiffs(old.args, args)

        if H.unchanged?(old, gf, diffs, Choicemap.empty?(sub_cm)) do
          {old.retval, H.add_subtrace(state, path, old)}
        else
          {sub, w, _retdiff, d} = Gen.GenerativeFunction.update(gf, old, args, diffs, sub_cm, key)
          state = %{state | discard: Choicemap.put_submap(state.discard, path, d)}
          {sub.retval, state |> H.add_subtrace(path, sub) |> H.add_weight(w)}
        end
    end
  end
end

defmodule Gen.Handlers.Regenerate do
  @moduledoc false
  alias Gen.Handlers, as: H
  alias Gen.{Selection, Trace}

  def run(gf, %Trace{} = prev, args, _argdiffs, sel, key) do
    {retval, state} = H.run(__MODULE__, gf, args, key, %{selection: sel, prev: prev})

    # Removed choices add nothing: their log-density cancels against the reverse proposal.
    # Removed factors (Gen.factor) are no choices: their log factor leaves the weight.
    state =
      Enum.reduce(prev.subtraces, state, fn {path, old}, st ->
        if Map.has_key?(st.subtraces, path), do: st, else: Enum.reduce(H.factors(old), st, &%{&2 | weight: Mx.subtract(&2.weight, &1)})
      end)

    {H.to_trace(state, args, retval), state.weight, :unknown_change}
  end

  def visit(state, path, gf, args, key, dist?) do
    sub_sel = Selection.subselection(state.selection, path)

    case Map.fetch(state.prev.subtraces, path) do
      :error ->
        # A new call is sampled; its weight is that of its factors (0 for choices alone).
        {sub, w} = Gen.GenerativeFunction.generate(gf, args, Gen.Choicemap.new(), key)
        state = if dist?, do: state, else: H.add_weight(state, w)
        {sub.retval, H.add_subtrace(state, path, sub)}

      {:ok, old} ->
        H.compatible!(state, path, old, gf, dist?)
        diffs = H.argdiffs(old.args, args)

        if H.unchanged?(old, gf, diffs, Selection.empty?(sub_sel)) do
          {old.retval, H.add_subtrace(state, path, old)}
        else
          {sub, w, _} = Gen.GenerativeFunction.regenerate(gf, old, args, diffs, sub_sel, key)
          {sub.retval, state |> H.add_subtrace(path, sub) |> H.add_weight(w)}
        end
    end
  end
end

defmodule Gen.Handlers.Assess do
  @moduledoc false
  alias Gen.Handlers, as: H
  alias Gen.Choicemap

  def run(gf, args, cm) do
    # Assess samples nothing: no key.
    {retval, state} = H.run(__MODULE__, gf, args, nil, %{constraints: cm})
    H.check_all_visited!(state, cm, "Gen.assess")
    {state.weight, retval}
  end

  def visit(state, path, gf, args, _key, dist?) do
    sub_cm = Choicemap.get_submap(state.constraints, path)

    if dist? do
      H.check_leaf_constraint!(state, path, sub_cm, "Gen.assess")

      if sub_cm.value == nil do
        raise ArgumentError, "Gen.assess: no value for the choice at #{H.where(state, path)}: assess needs every choice"
      end
    end

    {w, retval} = Gen.GenerativeFunction.assess(gf, args, sub_cm)
    {retval, H.add_weight(state, w)}
  end
end
