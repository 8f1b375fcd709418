defmodule Gen.Combinators.Unfold do
  @moduledoc """
  Gen.jl's Unfold combinator (made by `Gen.Combinators.unfold/1`): a
  generative function of `(n, init_state, params...)` that runs
  `state_t = kernel(t, state_{t-1}, params...)` for `t = 0..n-1` from
  `state_{-1} = init_state`, with step `t`'s choices under address `t`, and
  returns the list of states `[state_0, ..., state_{n-1}]`.

  Update and regenerate are incremental, as in Gen.jl: a step whose
  incoming state is unchanged, with `init_state` and `params` unchanged
  (argdiff `:no_change`, or the same term) and nothing constrained or
  selected under it, keeps its subtrace without calling the kernel; a step
  that is re-run passes its state on as changed unless the kernel returned
  the very same term. So a longer `n` with nothing else changed runs only
  the new steps, extending from the last old state; a shorter `n` removes
  the steps past it (their choices go to update's discard).

      iex> import Gen
      iex> step = gen fn _t, x -> trace(:x, Gen.Dist.normal(x, 1.0)) end
      iex> u = Gen.Combinators.unfold(step)
      iex> {t, _} = Gen.generate(u, [1, 0.0], %{0 => %{x: 1.0}})
      iex> {t2, w, _, _} = Gen.update(t, [2, 0.0], [:unknown_change, :no_change], %{1 => %{x: 1.0}})
      iex> {Float.round(Mx.to_number(w), 10), length(Gen.get_retval(t2))}
      {-0.9189385332, 2}
  """

  @enforce_keys [:kernel]
  defstruct [:kernel]

  @type t :: %__MODULE__{kernel: Gen.GenerativeFunction.t()}

  @doc false
  # {n, init_state, params} from the arguments, checked.
  def args!(%__MODULE__{kernel: k} = gf, args, method) do
    case args do
      [n, init | params] when is_integer(n) and n >= 0 ->
        Gen.Combinators.kernel_arity!(k, 2 + length(params), method, "(t, state) and #{length(params)} parameter(s)")
        {n, init, params}

      [n, _ | _] ->
        raise ArgumentError, "#{method}: the number of steps of #{inspect(gf)} (its first argument) must be a non-negative integer, got #{inspect(n)}"

      _ ->
        raise ArgumentError,
              "#{method}: #{inspect(gf)} takes [n_steps, init_state, params...] (at least two arguments), got #{inspect(args)}"
    end
  end
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Unfold do
  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Combinators, as: C
  alias Gen.Combinators.Unfold, as: U
  alias Gen.GenerativeFunction, as: GF
  alias Gen.Handlers, as: H

  def simulate(gf, args, key) do
    {n, init, params} = U.args!(gf, args, "Gen.simulate")

    {subs, _} =
      Enum.reduce(C.range(n), {%{}, init}, fn t, {subs, state} ->
        tr = GF.simulate(gf.kernel, [t, state | params], C.key(key, t))
        {Map.put(subs, t, tr), tr.retval}
      end)

    C.to_trace(gf, args, subs, n)
  end

  def generate(gf, args, cm, key) do
    {n, init, params} = U.args!(gf, args, "Gen.generate")
    C.check_constraints!(cm, n, gf, "Gen.generate")

    {subs, _, w} =
      Enum.reduce(C.range(n), {%{}, init, H.zero()}, fn t, {subs, state, w} ->
        {tr, wt} = GF.generate(gf.kernel, [t, state | params], Choicemap.get_submap(cm, t), C.key(key, t))
        {Map.put(subs, t, tr), tr.retval, Mx.add(w, wt)}
      end)

    {C.to_trace(gf, args, subs, n), w}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    {n, init, params} = U.args!(gf, args, "Gen.update")
    C.check_constraints!(cm, n, gf, "Gen.update")
    {init_changed?, param_diffs} = changes(gf, prev, init, params, argdiffs, "Gen.update")
    params_changed? = Enum.any?(param_diffs, &(&1 != :no_change))
    old_n = map_size(prev.subtraces)

    acc0 = %{subs: %{}, state: init, changed?: init_changed?, w: H.zero(), discard: Choicemap.new()}

    acc =
      Enum.reduce(C.range(n), acc0, fn t, acc ->
        sub_cm = Choicemap.get_submap(cm, t)
        args_t = [t, acc.state | params]

        cond do
          t >= old_n ->
            {tr, wt} = GF.generate(gf.kernel, args_t, sub_cm, C.key(key, t))
            %{acc | subs: Map.put(acc.subs, t, tr), state: tr.retval, changed?: true, w: Mx.add(acc.w, wt)}

          not acc.changed? and not params_changed? and Choicemap.empty?(sub_cm) ->
            old = prev.subtraces[[t]]
            %{acc | subs: Map.put(acc.subs, t, old), state: old.retval}

          true ->
            old = prev.subtraces[[t]]
            diffs = [:no_change, C.diff(acc.changed?) | param_diffs]
            {tr, wt, retdiff, d} = GF.update(gf.kernel, old, args_t, diffs, sub_cm, C.key(key, t))

            %{
              acc
              | subs: Map.put(acc.subs, t, tr),
                state: tr.retval,
                changed?: state_changed?(retdiff, old, tr),
                w: Mx.add(acc.w, wt),
                discard: Choicemap.put_submap(acc.discard, [t], d)
            }
        end
      end)

    {w, discard} =
      Enum.reduce(C.removed(prev, n), {acc.w, acc.discard}, fn {t, old}, {w, discard} ->
        {Mx.subtract(w, old.score), Choicemap.put_submap(discard, [t], old.choices)}
      end)

    {C.to_trace(gf, args, acc.subs, n), w, C.retdiff(prev, acc.subs, n), discard}
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    {n, init, params} = U.args!(gf, args, "Gen.regenerate")
    {init_changed?, param_diffs} = changes(gf, prev, init, params, argdiffs, "Gen.regenerate")
    params_changed? = Enum.any?(param_diffs, &(&1 != :no_change))
    old_n = map_size(prev.subtraces)

    # New steps are drawn from the prior and removed ones add nothing (as in the dynamic handler).
    acc =
      Enum.reduce(C.range(n), %{subs: %{}, state: init, changed?: init_changed?, w: H.zero()}, fn t, acc ->
        sub_sel = Selection.subselection(sel, t)
        args_t = [t, acc.state | params]

        cond do
          t >= old_n ->
            tr = GF.simulate(gf.kernel, args_t, C.key(key, t))
            %{acc | subs: Map.put(acc.subs, t, tr), state: tr.retval, changed?: true}

          not acc.changed? and not params_changed? and Selection.empty?(sub_sel) ->
            old = prev.subtraces[[t]]
            %{acc | subs: Map.put(acc.subs, t, old), state: old.retval}

          true ->
            old = prev.subtraces[[t]]
            diffs = [:no_change, C.diff(acc.changed?) | param_diffs]
            {tr, wt, retdiff} = GF.regenerate(gf.kernel, old, args_t, diffs, sub_sel, C.key(key, t))
            %{acc | subs: Map.put(acc.subs, t, tr), state: tr.retval, changed?: state_changed?(retdiff, old, tr), w: Mx.add(acc.w, wt)}
        end
      end)

    {C.to_trace(gf, args, acc.subs, n), acc.w, C.retdiff(prev, acc.subs, n)}
  end

  def assess(gf, args, cm) do
    {n, init, params} = U.args!(gf, args, "Gen.assess")
    C.check_constraints!(cm, n, gf, "Gen.assess")

    {w, states} =
      Enum.reduce(C.range(n), {H.zero(), [init]}, fn t, {w, [state | _] = states} ->
        {wt, next} = GF.assess(gf.kernel, [t, state | params], Choicemap.get_submap(cm, t))
        {Mx.add(w, wt), [next | states]}
      end)

    {w, states |> Enum.reverse() |> tl()}
  end

  def project(_gf, trace, sel), do: H.project(trace, sel)

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end

  # Whether init_state changed, and the argdiff of each parameter (the same term is unchanged).
  defp changes(gf, prev, init, params, argdiffs, method) do
    {_, old_init, old_params} = U.args!(gf, prev.args, method)

    if length(old_params) != length(params) do
      raise ArgumentError, "#{method}: #{inspect(gf)} had #{length(old_params)} parameter(s) and now gets #{length(params)}"
    end

    [_dn, d_init | d_params] = pad(argdiffs, 2 + length(params))

    param_diffs =
      Enum.zip_with([d_params, old_params, params], fn [d, o, p] -> if C.changed?(d, o, p), do: unknown(d), else: :no_change end)

    {C.changed?(d_init, old_init, init), param_diffs}
  end

  defp pad(argdiffs, k) when is_list(argdiffs) and length(argdiffs) == k, do: argdiffs
  defp pad(_argdiffs, k), do: List.duplicate(:unknown_change, k)

  defp unknown(:no_change), do: :unknown_change
  defp unknown(d), do: d

  # A state passed on is unchanged if the kernel says so or returned the very same term.
  defp state_changed?(retdiff, old, tr), do: not (retdiff == :no_change or tr.retval === old.retval)
end
