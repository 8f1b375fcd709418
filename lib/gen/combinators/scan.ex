defmodule Gen.Combinators.Scan do
  @moduledoc """
  The Scan combinator (made by `Gen.Combinators.scan/1`), state threading
  with accumulation like `jax.lax.scan`: a generative function of
  `[init_carry, xs | params]` that runs the kernel, a generative function
  of `(carry, x, params...)` returning `{carry, y}`, over the inputs `xs`
  in order,

      {c_0, y_0} = kernel(init_carry, x_0, params...)
      {c_i, y_i} = kernel(c_{i-1}, x_i, params...)

  with step `i`'s choices under address `i`, and returns
  `{c_{n-1}, [y_0, ..., y_{n-1}]}` (`{init_carry, []}` when `xs` is empty).
  `xs` is a list, an Mx array scanned along its first axis (`x_i` is
  `xs[i]`), or a non-negative integer `n` for `n` steps whose inputs are
  the step indices `0..n-1` (`jax.lax.scan` with `xs=None, length=n`,
  with the index in place of `None`).

  Update and regenerate are incremental. Step `i` keeps its subtrace,
  without calling the kernel, when its incoming carry, its input `x_i` and
  `params` are unchanged and nothing is constrained (or selected) under
  `i`; a step that is re-run passes its carry on as changed unless the
  kernel returned the very same carry term. So when only later inputs
  change, the steps before the first changed one are kept. Which inputs
  changed: the argdiff of `xs` is `:no_change`, a list of per-element
  argdiffs (as `Gen.Combinators.Map` takes), or `:unknown_change`, when a
  list's elements are compared as terms (the same term is unchanged) and
  an Mx array's rows are compared by value (one evaluation, since a slice
  of an array is a new term each time). A longer `xs` runs the new steps
  from the last old carry; a shorter one removes the steps past its end
  (their choices go to update's discard).

      iex> import Gen
      iex> k = gen fn c, x -> z = trace(:z, Gen.Dist.normal(Mx.add(c, x), 1.0)); {z, Mx.multiply(z, 2.0)} end
      iex> s = Gen.Combinators.scan(k)
      iex> {t, w} = Gen.generate(s, [0.0, [1.0, 1.0]], %{0 => %{z: 1.0}, 1 => %{z: 2.0}})
      iex> Float.round(Mx.to_number(w), 10)
      -1.8378770664
      iex> {c, ys} = Gen.get_retval(t)
      iex> {Mx.to_number(c), Enum.map(ys, &Mx.to_number/1)}
      {2.0, [2.0, 4.0]}
  """

  @enforce_keys [:kernel]
  defstruct [:kernel]

  @type t :: %__MODULE__{kernel: Gen.GenerativeFunction.t()}

  @doc false
  # {init_carry, xs, n, params} from the arguments, checked.
  def args!(%__MODULE__{kernel: k} = gf, args, method) do
    case args do
      [init, xs | params] ->
        n = length!(gf, xs, method)
        Gen.Combinators.kernel_arity!(k, 2 + length(params), method, "(carry, x) and #{length(params)} parameter(s)")
        {init, xs, n, params}

      _ ->
        raise ArgumentError,
              "#{method}: #{inspect(gf)} takes [init_carry, xs, params...] (at least two arguments), got #{inspect(args)}"
    end
  end

  defp length!(_gf, xs, _method) when is_list(xs), do: length(xs)
  defp length!(_gf, n, _method) when is_integer(n) and n >= 0, do: n

  defp length!(gf, %Mx.Array{} = xs, method) do
    if Mx.rank(xs) < 1 do
      raise ArgumentError,
            "#{method}: the inputs xs of #{inspect(gf)} must be a list or an Mx array with a leading axis to scan, " <>
              "got the scalar #{Mx.describe(xs)}; wrap it in a list for one step"
    end

    elem(Mx.shape(xs), 0)
  end

  defp length!(gf, other, method) do
    raise ArgumentError, "#{method}: the inputs xs of #{inspect(gf)} (its second argument) must be a list, an Mx array or a number of steps, got #{inspect(other)}"
  end

  @doc false
  def element(xs, i) when is_list(xs), do: Enum.at(xs, i)
  def element(n, i) when is_integer(n), do: i
  def element(%Mx.Array{} = xs, i), do: Mx.squeeze(Mx.slice_axis(xs, i, 1, 0), axes: [0])

  @doc false
  # The kernel's {carry, y}, or an error naming the step.
  def split!(gf, tr, i, method) do
    case tr.retval do
      {c, y} ->
        {c, y}

      other ->
        raise ArgumentError,
              "#{method}: the kernel of #{inspect(gf)} must return {carry, y}, but step #{i} returned #{inspect(other)}"
    end
  end

  @doc false
  # The Scan trace from the step subtraces %{i => trace}; retval {final carry, ys}.
  def to_trace(gf, args, init, subs, n) do
    t = Gen.Combinators.to_trace(gf, args, subs, n)
    carry = if n == 0, do: init, else: elem(subs[n - 1].retval, 0)
    %{t | retval: {carry, Enum.map(t.retval, &elem(&1, 1))}}
  end

  @doc false
  # Whether each of the first min(n, old_n) inputs changed (a list of booleans).
  def xs_changed(diff, old_xs, xs, m) do
    {old_xs, xs} = {indices(old_xs), indices(xs)}

    cond do
      m == 0 -> []
      diff == :no_change or old_xs === xs -> List.duplicate(false, m)
      is_list(diff) -> for i <- Gen.Combinators.range(m), do: Enum.at(diff, i, :unknown_change) != :no_change
      is_list(xs) and is_list(old_xs) -> Enum.zip_with(Enum.take(old_xs, m), Enum.take(xs, m), &(&1 !== &2))
      true -> rows_changed(old_xs, xs, m)
    end
  end

  # A number of steps stands for its inputs 0..n-1.
  defp indices(n) when is_integer(n), do: Enum.to_list(Gen.Combinators.range(n))
  defp indices(xs), do: xs

  # Rows of two Mx arrays compared by value: one evaluation instead of re-running the kernel.
  defp rows_changed(%Mx.Array{} = old, %Mx.Array{} = new, m) do
    same_rows? = Tuple.delete_at(Mx.shape(old), 0) == Tuple.delete_at(Mx.shape(new), 0) and Mx.type(old) == Mx.type(new)

    if same_rows? do
      eq = Mx.equal(Mx.slice_axis(old, 0, m, 0), Mx.slice_axis(new, 0, m, 0))
      eq = if Mx.rank(eq) > 1, do: Mx.all(eq, axes: Enum.to_list(1..(Mx.rank(eq) - 1))), else: eq
      eq |> Mx.to_list() |> Enum.map(&(not truthy?(&1)))
    else
      List.duplicate(true, m)
    end
  end

  defp rows_changed(_old, _new, m), do: List.duplicate(true, m)

  defp truthy?(v), do: v == true or v == 1
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.Scan do
  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Combinators, as: C
  alias Gen.Combinators.Scan, as: S
  alias Gen.GenerativeFunction, as: GF
  alias Gen.Handlers, as: H

  def simulate(gf, args, key) do
    {init, xs, n, params} = S.args!(gf, args, "Gen.simulate")

    {subs, _} =
      Enum.reduce(C.range(n), {%{}, init}, fn i, {subs, carry} ->
        tr = GF.simulate(gf.kernel, [carry, S.element(xs, i) | params], C.key(key, i))
        {c, _y} = S.split!(gf, tr, i, "Gen.simulate")
        {Map.put(subs, i, tr), c}
      end)

    S.to_trace(gf, args, init, subs, n)
  end

  def generate(gf, args, cm, key) do
    {init, xs, n, params} = S.args!(gf, args, "Gen.generate")
    C.check_constraints!(cm, n, gf, "Gen.generate")

    {subs, _, w} =
      Enum.reduce(C.range(n), {%{}, init, H.zero()}, fn i, {subs, carry, w} ->
        {tr, wi} = GF.generate(gf.kernel, [carry, S.element(xs, i) | params], Choicemap.get_submap(cm, i), C.key(key, i))
        {c, _y} = S.split!(gf, tr, i, "Gen.generate")
        {Map.put(subs, i, tr), c, Mx.add(w, wi)}
      end)

    {S.to_trace(gf, args, init, subs, n), w}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    {init, xs, n, params} = S.args!(gf, args, "Gen.update")
    C.check_constraints!(cm, n, gf, "Gen.update")
    ch = changes(gf, prev, args, argdiffs, "Gen.update")
    acc0 = %{subs: %{}, carry: init, changed?: ch.init?, w: H.zero(), discard: Choicemap.new()}

    acc =
      Enum.reduce(C.range(n), acc0, fn i, acc ->
        sub_cm = Choicemap.get_submap(cm, i)
        args_i = [acc.carry, S.element(xs, i) | params]

        cond do
          i >= ch.old_n ->
            {tr, wi} = GF.generate(gf.kernel, args_i, sub_cm, C.key(key, i))
            {c, _} = S.split!(gf, tr, i, "Gen.update")
            %{acc | subs: Map.put(acc.subs, i, tr), carry: c, changed?: true, w: Mx.add(acc.w, wi)}

          keep?(acc, ch, i) and Choicemap.empty?(sub_cm) ->
            old = prev.subtraces[[i]]
            %{acc | subs: Map.put(acc.subs, i, old), carry: elem(old.retval, 0)}

          true ->
            old = prev.subtraces[[i]]
            {tr, wi, _retdiff, d} = GF.update(gf.kernel, old, args_i, step_diffs(acc, ch, i), sub_cm, C.key(key, i))
            {c, _} = S.split!(gf, tr, i, "Gen.update")

            %{
              acc
              | subs: Map.put(acc.subs, i, tr),
                carry: c,
                changed?: c !== elem(old.retval, 0),
                w: Mx.add(acc.w, wi),
                discard: Choicemap.put_submap(acc.discard, [i], d)
            }
        end
      end)

    {w, discard} =
      Enum.reduce(C.removed(prev, n), {acc.w, acc.discard}, fn {i, old}, {w, discard} ->
        {Mx.subtract(w, old.score), Choicemap.put_submap(discard, [i], old.choices)}
      end)

    t = S.to_trace(gf, args, init, acc.subs, n)
    {t, w, retdiff(prev, t), discard}
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    {init, xs, n, params} = S.args!(gf, args, "Gen.regenerate")
    ch = changes(gf, prev, args, argdiffs, "Gen.regenerate")

    # New steps are drawn from the prior and removed ones add nothing (as in the dynamic handler).
    acc =
      Enum.reduce(C.range(n), %{subs: %{}, carry: init, changed?: ch.init?, w: H.zero()}, fn i, acc ->
        sub_sel = Selection.subselection(sel, i)
        args_i = [acc.carry, S.element(xs, i) | params]

        cond do
          i >= ch.old_n ->
            tr = GF.simulate(gf.kernel, args_i, C.key(key, i))
            {c, _} = S.split!(gf, tr, i, "Gen.regenerate")
            %{acc | subs: Map.put(acc.subs, i, tr), carry: c, changed?: true}

          keep?(acc, ch, i) and Selection.empty?(sub_sel) ->
            old = prev.subtraces[[i]]
            %{acc | subs: Map.put(acc.subs, i, old), carry: elem(old.retval, 0)}

          true ->
            old = prev.subtraces[[i]]
            {tr, wi, _retdiff} = GF.regenerate(gf.kernel, old, args_i, step_diffs(acc, ch, i), sub_sel, C.key(key, i))
            {c, _} = S.split!(gf, tr, i, "Gen.regenerate")
            %{acc | subs: Map.put(acc.subs, i, tr), carry: c, changed?: c !== elem(old.retval, 0), w: Mx.add(acc.w, wi)}
        end
      end)

    t = S.to_trace(gf, args, init, acc.subs, n)
    {t, acc.w, retdiff(prev, t)}
  end

  def assess(gf, args, cm) do
    {init, xs, n, params} = S.args!(gf, args, "Gen.assess")
    C.check_constraints!(cm, n, gf, "Gen.assess")

    {w, carry, ys} =
      Enum.reduce(C.range(n), {H.zero(), init, []}, fn i, {w, carry, ys} ->
        {wi, ret} = GF.assess(gf.kernel, [carry, S.element(xs, i) | params], Choicemap.get_submap(cm, i))

        case ret do
          {c, y} ->
            {Mx.add(w, wi), c, [y | ys]}

          other ->
            raise ArgumentError, "Gen.assess: the kernel of #{inspect(gf)} must return {carry, y}, but step #{i} returned #{inspect(other)}"
        end
      end)

    {w, {carry, Enum.reverse(ys)}}
  end

  def project(_gf, trace, sel), do: H.project(trace, sel)

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end

  # What changed between the old and new arguments: init, each input, each parameter.
  defp changes(gf, prev, args, argdiffs, method) do
    {old_init, old_xs, old_n, old_params} = S.args!(gf, prev.args, method)
    [init, xs | params] = args

    if length(old_params) != length(params) do
      raise ArgumentError, "#{method}: #{inspect(gf)} had #{length(old_params)} parameter(s) and now gets #{length(params)}"
    end

    [d_init, d_xs | d_params] =
      if is_list(argdiffs) and length(argdiffs) == length(args), do: argdiffs, else: List.duplicate(:unknown_change, length(args))

    param_diffs =
      Enum.zip_with([d_params, old_params, params], fn [d, o, p] ->
        if C.changed?(d, o, p), do: unknown(d), else: :no_change
      end)

    m = min(old_n, length_of(xs))

    %{
      init?: C.changed?(d_init, old_init, init),
      xs: S.xs_changed(d_xs, old_xs, xs, m) |> List.to_tuple(),
      param_diffs: param_diffs,
      params?: Enum.any?(param_diffs, &(&1 != :no_change)),
      old_n: old_n
    }
  end

  defp length_of(xs) when is_list(xs), do: length(xs)
  defp length_of(n) when is_integer(n), do: n
  defp length_of(xs), do: elem(Mx.shape(xs), 0)

  defp keep?(acc, ch, i), do: not acc.changed? and not ch.params? and not elem(ch.xs, i)

  defp step_diffs(acc, ch, i), do: [C.diff(acc.changed?), C.diff(elem(ch.xs, i)) | ch.param_diffs]

  defp unknown(:no_change), do: :unknown_change
  defp unknown(d), do: d

  defp retdiff(%Trace{retval: {oc, oys}}, %Trace{retval: {c, ys}}) do
    if c === oc and length(ys) == length(oys) and Enum.zip_with(ys, oys, &(&1 === &2)) |> Enum.all?(),
      do: :no_change,
      else: :unknown_change
  end
end
