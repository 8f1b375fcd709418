defmodule Gen.Combinators.Map do
  @moduledoc """
  Gen.jl's Map combinator (made by `Gen.Combinators.map/1`): a generative
  function of `k` lists of equal length `n` that calls the kernel on
  element `i` of each list, with the kernel's choices under address `i`,
  and returns the list of the kernel's return values.

  Update and regenerate are incremental: element `i` keeps its subtrace,
  without calling the kernel, when nothing is constrained (or selected)
  under `i` and its arguments are unchanged. An argument list's argdiff is
  `:no_change`, `:unknown_change` (then each element is compared with the
  old one: the same term counts as unchanged), or a list of per-element
  argdiffs as long as the new list (Gen.jl's `VectorDiff`; elements past
  the old length are new whatever their argdiff). A longer list generates
  the new elements; a shorter one removes the old ones past its length
  (their choices go to update's discard).

      iex> import Gen
      iex> kernel = gen fn mu -> trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> m = Gen.Combinators.map(kernel)
      iex> {t, _} = Gen.generate(m, [[0.0, 0.0]], %{0 => %{y: 1.0}, 1 => %{y: 2.0}})
      iex> {t2, w, _, discard} = Gen.update(t, [[0.0, 0.0]], :no_change, %{1 => %{y: 0.0}})
      iex> {Float.round(Mx.to_number(w), 12), Mx.to_number(t2[[1, :y]]), Mx.to_number(discard[[1, :y]])}
      {2.0, 0.0, 2.0}
  """

  @enforce_keys [:kernel]
  defstruct [:kernel]

  @type t :: %__MODULE__{kernel: Gen.GenerativeFunction.t()}

  @doc false
  # The per-element argument rows [[a_i, b_i, ...] for i in 0..n-1] and n.
  def rows!(%__MODULE__{kernel: k} = gf, args, method) do
    if not is_list(args) or args == [] do
      raise ArgumentError,
            "#{method}: #{inspect(gf)} takes one or more argument lists to map over (a list of lists), got #{inspect(args)}"
    end

    Enum.each(Enum.with_index(args), fn {a, j} ->
      if not is_list(a) do
        raise ArgumentError, "#{method}: argument #{j} of #{inspect(gf)} must be a list (one element per call of the kernel), got #{inspect(a)}"
      end
    end)

    lengths = Enum.map(args, &length/1)

    if Enum.uniq(lengths) |> length() > 1 do
      raise ArgumentError, "#{method}: the argument lists of #{inspect(gf)} must have equal lengths, got lengths #{inspect(lengths)}"
    end

    Gen.Combinators.kernel_arity!(k, length(args), method, "#{length(args)} argument list(s)")
    {hd(lengths), Enum.zip_with(args, & &1)}
  end

  @doc false
  # Per-element argdiffs for element i (< old length) from the per-list argdiffs.
  def element_diffs(argdiffs, old_row, row, i) do
    Enum.zip_with([argdiffs, old_row, row], fn [d, o, n] ->
      d = if is_list(d), do: Enum.at(d, i, :unknown_change), else: d
      if Gen.Combinators.changed?(d, o, n), do: d_or_unknown(d), else: :no_change
    end)
  end

  defp d_or_unknown(:no_change), do: :unknown_change
  defp d_or_unknown(d), do: d
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Map do
  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Combinators, as: C
  alias Gen.Combinators.Map, as: M
  alias Gen.GenerativeFunction, as: GF
  alias Gen.Handlers, as: H

  def simulate(gf, args, key) do
    {n, rows} = M.rows!(gf, args, "Gen.simulate")
    subs = for {row, i} <- Enum.with_index(rows), into: %{}, do: {i, GF.simulate(gf.kernel, row, C.key(key, i))}
    C.to_trace(gf, args, subs, n)
  end

  def generate(gf, args, cm, key) do
    {n, rows} = M.rows!(gf, args, "Gen.generate")
    C.check_constraints!(cm, n, gf, "Gen.generate")

    {subs, w} =
      Enum.reduce(Enum.with_index(rows), {%{}, H.zero()}, fn {row, i}, {subs, w} ->
        {t, wi} = GF.generate(gf.kernel, row, Choicemap.get_submap(cm, i), C.key(key, i))
        {Map.put(subs, i, t), Mx.add(w, wi)}
      end)

    {C.to_trace(gf, args, subs, n), w}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    {n, rows} = M.rows!(gf, args, "Gen.update")
    C.check_constraints!(cm, n, gf, "Gen.update")
    {_, old_rows} = M.rows!(gf, prev.args, "Gen.update")
    old_n = map_size(prev.subtraces)

    {subs, w, discard} =
      Enum.reduce(Enum.with_index(rows), {%{}, H.zero(), Choicemap.new()}, fn {row, i}, {subs, w, discard} ->
        sub_cm = Choicemap.get_submap(cm, i)

        if i < old_n do
          old = prev.subtraces[[i]]
          diffs = M.element_diffs(argdiffs, Enum.at(old_rows, i), row, i)

          if Choicemap.empty?(sub_cm) and Enum.all?(diffs, &(&1 == :no_change)) do
            {Map.put(subs, i, old), w, discard}
          else
            {t, wi, _retdiff, d} = GF.update(gf.kernel, old, row, diffs, sub_cm, C.key(key, i))
            {Map.put(subs, i, t), Mx.add(w, wi), Choicemap.put_submap(discard, [i], d)}
          end
        else
          {t, wi} = GF.generate(gf.kernel, row, sub_cm, C.key(key, i))
          {Map.put(subs, i, t), Mx.add(w, wi), discard}
        end
      end)

    {w, discard} =
      Enum.reduce(C.removed(prev, n), {w, discard}, fn {i, old}, {w, discard} ->
        {Mx.subtract(w, old.score), Choicemap.put_submap(discard, [i], old.choices)}
      end)

    {C.to_trace(gf, args, subs, n), w, C.retdiff(prev, subs, n), discard}
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    {n, rows} = M.rows!(gf, args, "Gen.regenerate")
    {_, old_rows} = M.rows!(gf, prev.args, "Gen.regenerate")
    old_n = map_size(prev.subtraces)

    # New elements are drawn from the prior and removed ones add nothing (as in the dynamic handler).
    {subs, w} =
      Enum.reduce(Enum.with_index(rows), {%{}, H.zero()}, fn {row, i}, {subs, w} ->
        sub_sel = Selection.subselection(sel, i)

        if i < old_n do
          old = prev.subtraces[[i]]
          diffs = M.element_diffs(argdiffs, Enum.at(old_rows, i), row, i)

          if Selection.empty?(sub_sel) and Enum.all?(diffs, &(&1 == :no_change)) do
            {Map.put(subs, i, old), w}
          else
            {t, wi, _retdiff} = GF.regenerate(gf.kernel, old, row, diffs, sub_sel, C.key(key, i))
            {Map.put(subs, i, t), Mx.add(w, wi)}
          end
        else
          {Map.put(subs, i, GF.simulate(gf.kernel, row, C.key(key, i))), w}
        end
      end)

    {C.to_trace(gf, args, subs, n), w, C.retdiff(prev, subs, n)}
  end

  def assess(gf, args, cm) do
    {n, rows} = M.rows!(gf, args, "Gen.assess")
    C.check_constraints!(cm, n, gf, "Gen.assess")

    {w, retvals} =
      Enum.reduce(Enum.with_index(rows), {H.zero(), []}, fn {row, i}, {w, acc} ->
        {wi, r} = GF.assess(gf.kernel, row, Choicemap.get_submap(cm, i))
        {Mx.add(w, wi), [r | acc]}
      end)

    {w, Enum.reverse(retvals)}
  end

  def project(_gf, trace, sel), do: H.project(trace, sel)

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end
end
