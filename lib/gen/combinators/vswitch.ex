defmodule Gen.Combinators.VSwitch do
  @moduledoc """
  The vectorized Switch (made by `Gen.Combinators.vswitch/1`): a generative
  function of `[index | args]` that runs ALL branches on `args` and selects
  per element with `Mx.where`, for vectorized inference where every value
  is an `[N]` array (one entry per particle or chain). `index` is an
  integer Mx array of shape `{N}`, an integer Mx scalar, or an integer;
  element `e` follows branch `index[e]`. A `{N}` index runs the branches
  under the particle batch `N` (`Gen.Vectorized.with_batch/2`, unless that
  batch is already active, as in `Gen.vsimulate/4`), so that every
  distribution site draws and scores per element; a scalar index outside a
  batch is the scalar GFI (every branch runs, one is selected).

  With branch values `v_k` at an address, the choice there is
  `where(index == 0, v_0, where(index == 1, v_1, ...))`; the score, the
  weights and `project` are, per element, the selected branch's; the
  return value is selected the same way (Mx arrays, or tuples, lists and
  maps of them). An address that only some branches have is kept (its
  value, for the elements following another branch, is another branch's
  and is masked out of their score). Branch `k` draws with
  `Mx.Random.fold_in(key, k)`; values of rank above the index's are
  selected along the index's axes (a `{N}` index selects `{N, d}` rows).

  Per element the GFI is `Gen.Combinators.Switch`'s. Update: an element
  that keeps its branch gets that branch's update weight; an element that
  moves from branch `j` to `k` gets a fresh run of branch `k` (generated
  under the constraints; its values replace the branch's old ones for
  that element) with weight `generate weight − old score`. Regenerate: an
  element that keeps its branch gets the branch's regenerate weight, one
  that moves gets a prior draw of its new branch, weight 0. Constraints
  go to each branch restricted to the addresses it visits, and must name
  an address of some branch. Update's discard holds, at every address
  some element discards, the old `[N]` values (elements that keep the
  choice hold their old value there too). A branch whose arguments are
  unchanged, with no constraint under it and no element moving into it,
  is kept without being run.

      iex> import Gen
      iex> b0 = gen fn mu -> trace(:x, Gen.Dist.normal(mu, 1.0)) end
      iex> b1 = gen fn mu -> trace(:x, Gen.Dist.normal(Mx.add(mu, 10.0), 1.0)) end
      iex> vs = Gen.Combinators.vswitch([b0, b1])
      iex> mu = Mx.tensor([0.0, 0.0, 0.0], type: :f64)
      iex> {t, w} = Gen.generate(vs, [Mx.tensor([0, 1, 0]), mu], %{x: Mx.tensor([0.0, 10.0, 1.0], type: :f64)})
      iex> Mx.to_list(w) |> Enum.map(&Float.round(&1, 6))
      [-0.918939, -0.918939, -1.418939]
      iex> Mx.to_list(Gen.get_retval(t))
      [0.0, 10.0, 1.0]
  """

  @enforce_keys [:branches]
  defstruct [:branches]

  @type t :: %__MODULE__{branches: [Gen.GenerativeFunction.t()]}

  alias Gen.{Choicemap, Trace}
  alias Gen.GenerativeFunction, as: GF

  @doc false
  # {index as an integer Mx array, branch args} from [index | args], checked.
  def args!(%__MODULE__{branches: bs} = gf, args, method) do
    case args do
      [idx | rest] ->
        Enum.each(bs, &Gen.Combinators.kernel_arity!(&1, length(rest), method, "the #{length(rest)} argument(s) after the index"))
        {index!(gf, idx, method), rest}

      _ ->
        raise ArgumentError, "#{method}: #{inspect(gf)} takes [index, args...] (the branch index array first), got #{inspect(args)}"
    end
  end

  defp index!(gf, i, method) when is_integer(i), do: index!(gf, Mx.tensor(i), method)

  defp index!(%{branches: bs} = gf, %Mx.Array{} = a, method) do
    if Mx.rank(a) > 1 or not Mx.Type.integer?(Mx.type(a)) do
      raise ArgumentError,
            "#{method}: the branch index of #{inspect(gf)} must be an integer Mx array of shape {N} (or a scalar), got #{Mx.describe(a)}"
    end

    k = length(bs)
    # One evaluation: an out-of-range element would otherwise silently follow the last branch.
    bad = Mx.logical_or(Mx.less(a, 0), Mx.greater_equal(a, k))

    if any?(bad) do
      raise ArgumentError,
            "#{method}: the branch index of #{inspect(gf)} has entries out of range (#{inspect(out_of_range(a, bad))}); " <>
              "it has #{k} branch(es): use 0..#{k - 1}"
    end

    a
  end

  defp index!(gf, other, method) do
    raise ArgumentError,
          "#{method}: the branch index of #{inspect(gf)} must be an integer Mx array of shape {N} (or a scalar), got #{inspect(other)}"
  end

  defp out_of_range(a, bad) do
    # Inside a vectorized call a scalar index is one particle's: list the entries of every particle.
    {a, bad} = {Gen.Vectorized.particle_values(a), Gen.Vectorized.particle_values(bad)}
    if Mx.rank(a) == 0, do: Mx.to_number(a), else: Enum.zip(Mx.to_list(a), Mx.to_list(bad)) |> Enum.filter(&truthy?(elem(&1, 1))) |> Enum.map(&elem(&1, 0))
  end

  @doc false
  def truthy?(v), do: v == true or v == 1

  @doc false
  # Runs fun with the particle batch of a {N} index (Gen.Vectorized.with_batch/2), so every
  # distribution site of every branch scores per element; a scalar index runs fun as it is.
  def batched(gf, idx, method, fun) do
    case {Mx.shape(idx), Gen.Vectorized.batch()} do
      {{}, _} ->
        fun.()

      {{n}, nil} ->
        Gen.Vectorized.with_batch(n, fun)

      {{n}, n} ->
        fun.()

      {{n}, b} ->
        raise ArgumentError,
              "#{method}: the branch index of #{inspect(gf)} has #{n} entries but the vectorized call runs #{b} particles: " <>
                "give one index per particle (shape {#{b}}) or a scalar"
    end
  end

  @doc false
  # Whether any element of a boolean mask is true (one evaluation), for any particle of a vectorized call.
  def any?(mask), do: truthy?(Mx.to_number(Mx.any(Gen.Vectorized.particle_values(mask))))

  # ---- selecting per element ------------------------------------------------------

  @doc false
  # where(mask, a, b) with the mask along the leading axes of a and b.
  def blend(_mask, a, b) when a === b, do: a

  def blend(mask, %Trace{} = a, %Trace{} = b) do
    subs = Map.merge(a.subtraces, b.subtraces, fn _p, sa, sb -> blend(mask, sa, sb) end)
    %Trace{b | choices: blend_choices(mask, a.choices, b.choices), retval: blend(mask, a.retval, b.retval), score: blend(mask, a.score, b.score), subtraces: subs}
  end

  def blend(mask, a, b) when is_tuple(a) and is_tuple(b) and tuple_size(a) == tuple_size(b),
    do: Enum.zip_with(Tuple.to_list(a), Tuple.to_list(b), &blend(mask, &1, &2)) |> List.to_tuple()

  def blend(mask, a, b) when is_list(a) and is_list(b) and length(a) == length(b), do: Enum.zip_with(a, b, &blend(mask, &1, &2))

  def blend(mask, %{} = a, %{} = b) when not is_struct(a) and not is_struct(b) and map_size(a) == map_size(b) do
    if Map.keys(a) == Map.keys(b), do: Map.new(a, fn {k, v} -> {k, blend(mask, v, b[k])} end), else: not_selectable!(a, b)
  end

  def blend(mask, a, b) do
    if array_like?(a) and array_like?(b) do
      {a, b} = {to_array(a, b), to_array(b, a)}
      r = max(Mx.rank(a), Mx.rank(b))
      m = if r > Mx.rank(mask), do: Mx.reshape(mask, List.to_tuple(Tuple.to_list(Mx.shape(mask)) ++ List.duplicate(1, r - Mx.rank(mask)))), else: mask
      Mx.where(m, a, b)
    else
      not_selectable!(a, b)
    end
  end

  defp array_like?(x), do: is_struct(x, Mx.Array) or is_number(x) or is_boolean(x)

  # A float takes the other branch's float type, or f64 (Gen's type for numbers), never f32 first.
  defp to_array(%Mx.Array{} = x, _other), do: x

  defp to_array(x, other) when is_float(x) do
    t = if is_struct(other, Mx.Array) and Mx.Type.float?(Mx.type(other)), do: Mx.type(other), else: :f64
    Mx.tensor(x, type: t)
  end

  defp to_array(x, _other), do: Mx.tensor(x)

  defp not_selectable!(a, b) do
    raise ArgumentError,
          "Gen.Combinators.vswitch: cannot select per element between the branch values #{inspect(a)} and #{inspect(b)}: " <>
            "branches must return Mx arrays (or tuples, lists or maps of them) of compatible shapes"
  end

  @doc false
  # The union of the addresses of a and b; where both hold a value, where(mask, a, b).
  def blend_choices(mask, %Choicemap{} = a, %Choicemap{} = b) do
    av = Map.new(Choicemap.to_list(a))

    merged =
      Enum.reduce(Choicemap.to_list(b), av, fn {p, v}, acc ->
        Map.update(acc, p, v, &blend(mask, &1, v))
      end)

    Enum.reduce(merged, Choicemap.new(), fn {p, v}, cm -> Choicemap.put(cm, p, v) end)
  end

  @doc false
  # Per element, the entry of values (one per branch, in order) that the index selects.
  def select(idx, values), do: fold(idx, values, &blend/3)

  @doc false
  # Choicemaps selected per element: the union of their addresses.
  def select_choices(idx, cms), do: fold(idx, cms, &blend_choices/3)

  # From the last branch down: acc = f(index == k, entry k, acc).
  defp fold(idx, entries, f) do
    [{last, _} | rest] = Enum.reverse(Enum.with_index(entries))
    Enum.reduce(rest, last, fn {v, k}, acc -> f.(Mx.equal(idx, k), v, acc) end)
  end

  @doc false
  # The VSwitch trace over the branch traces (kept at subtrace paths [k]).
  def to_trace(gf, args, idx, bts) do
    %Trace{
      gen_fn: gf,
      args: args,
      choices: select_choices(idx, Enum.map(bts, & &1.choices)),
      retval: select(idx, Enum.map(bts, & &1.retval)),
      score: select(idx, Enum.map(bts, & &1.score)),
      subtraces: bts |> Enum.with_index() |> Map.new(fn {t, k} -> {[k], t} end)
    }
  end

  # ---- running branches under constraints restricted to their addresses ----------------

  @doc false
  # The constraints of cm at addresses that choices holds.
  def restrict(%Choicemap{} = cm, %Choicemap{} = choices) do
    Enum.reduce(cm, Choicemap.new(), fn {p, v}, acc ->
      if Choicemap.has_value?(choices, p), do: Choicemap.put(acc, p, v), else: acc
    end)
  end

  @doc false
  # run.(cm_k) with cm_k the constraints at the addresses the run visits, found from `guess`
  # (a trace's choices) and re-run until the run visits no further constrained address.
  def restricted(cm, guess, run, tries \\ 8) do
    cm_k = restrict(cm, guess)
    result = run.(cm_k)
    t = elem(result, 0)
    again = restrict(cm, t.choices)

    cond do
      paths(again) == paths(cm_k) ->
        result

      tries > 1 ->
        restricted(cm, t.choices, run, tries - 1)

      true ->
        raise ArgumentError,
              "Gen.Combinators.vswitch: the addresses a branch visits keep changing with the constraints given to it; " <>
                "branches of a vectorized switch must visit the same addresses whatever the values"
    end
  end

  defp paths(cm), do: Enum.map(cm, &elem(&1, 0))

  @doc false
  # A branch's generate with the constraints at its own addresses, found from `guess` (choices of
  # a run of the branch) or else from a prior run.
  def generate_branch(b, args, cm, key, guess \\ nil) do
    cond do
      Choicemap.empty?(cm) -> GF.generate(b, args, cm, key)
      guess != nil -> restricted(cm, guess, &GF.generate(b, args, &1, key))
      true -> restricted(cm, GF.simulate(b, args, key).choices, &GF.generate(b, args, &1, key))
    end
  end

  @doc false
  # Every constraint must name an address of some branch.
  def covered!(gf, cm, bts, method) do
    Enum.each(cm, fn {p, _} ->
      if not Enum.any?(bts, &Choicemap.has_value?(&1.choices, p)) do
        raise ArgumentError,
              "#{method}: the constraint at #{Choicemap.format_path(p)} names no random choice of any branch of #{inspect(gf)}"
      end
    end)
  end

  @doc false
  def key(key, i), do: Mx.Random.fold_in(key, i)
end

defimpl Gen.GenerativeFunction, for: Gen.Combinators.VSwitch do
  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Combinators.Switch
  alias Gen.Combinators.VSwitch, as: V
  alias Gen.GenerativeFunction, as: GF
  alias Gen.Handlers, as: H

  def simulate(gf, args, key) do
    {idx, rest} = V.args!(gf, args, "Gen.simulate")

    V.batched(gf, idx, "Gen.simulate", fn ->
      bts = for {b, k} <- Enum.with_index(gf.branches), do: GF.simulate(b, rest, V.key(key, k))
      V.to_trace(gf, args, idx, bts)
    end)
  end

  def generate(gf, args, cm, key) do
    {idx, rest} = V.args!(gf, args, "Gen.generate")
    V.batched(gf, idx, "Gen.generate", fn -> do_generate(gf, args, idx, rest, cm, key) end)
  end

  defp do_generate(gf, args, idx, rest, cm, key) do
    results = for {b, k} <- Enum.with_index(gf.branches), do: V.generate_branch(b, rest, cm, V.key(key, k))
    bts = Enum.map(results, &elem(&1, 0))
    V.covered!(gf, cm, bts, "Gen.generate")
    {V.to_trace(gf, args, idx, bts), H.f64(V.select(idx, Enum.map(results, &elem(&1, 1))))}
  end

  def update(gf, %Trace{} = prev, args, argdiffs, cm, key) do
    {idx, rest} = V.args!(gf, args, "Gen.update")
    {old_idx, _} = V.args!(gf, prev.args, "Gen.update")
    V.batched(gf, idx, "Gen.update", fn -> do_update(gf, prev, args, idx, old_idx, rest, argdiffs, cm, key) end)
  end

  defp do_update(gf, prev, args, idx, old_idx, rest, argdiffs, cm, key) do
    diffs = Switch.tail_diffs(argdiffs, length(rest))
    same_idx? = idx === old_idx
    k_all = length(gf.branches)

    per_branch =
      for {b, k} <- Enum.with_index(gf.branches) do
        old = prev.subtraces[[k]]

        {u, wu, d} =
          if Enum.all?(diffs, &(&1 == :no_change)) and Choicemap.empty?(V.restrict(cm, old.choices)) do
            {old, H.zero(), Choicemap.new()}
          else
            {u, wu, _, d} = V.restricted(cm, old.choices, &GF.update(b, old, rest, diffs, &1, V.key(key, k)))
            {u, wu, d}
          end

        moving_in = Mx.logical_and(Mx.equal(idx, k), Mx.not_equal(old_idx, k))

        if not same_idx? and V.any?(moving_in) do
          {g, wg} = V.generate_branch(b, rest, cm, V.key(key, k_all + k), u.choices)
          w = V.blend(moving_in, Mx.subtract(wg, prev.score), wu)
          %{trace: V.blend(moving_in, g, u), w: w, discard: d, checked: [g, u]}
        else
          %{trace: u, w: wu, discard: d, checked: [u]}
        end
      end

    V.covered!(gf, cm, Enum.flat_map(per_branch, & &1.checked), "Gen.update")
    bts = Enum.map(per_branch, & &1.trace)
    t = V.to_trace(gf, args, idx, bts)
    w = H.f64(V.select(idx, Enum.map(per_branch, & &1.w)))
    {t, w, :unknown_change, discard(gf, prev, idx, old_idx, per_branch)}
  end

  def regenerate(gf, %Trace{} = prev, args, argdiffs, sel, key) do
    {idx, rest} = V.args!(gf, args, "Gen.regenerate")
    {old_idx, _} = V.args!(gf, prev.args, "Gen.regenerate")
    V.batched(gf, idx, "Gen.regenerate", fn -> do_regenerate(gf, prev, args, idx, old_idx, rest, argdiffs, sel, key) end)
  end

  defp do_regenerate(gf, prev, args, idx, old_idx, rest, argdiffs, sel, key) do
    diffs = Switch.tail_diffs(argdiffs, length(rest))
    same_idx? = idx === old_idx
    k_all = length(gf.branches)

    per_branch =
      for {b, k} <- Enum.with_index(gf.branches) do
        old = prev.subtraces[[k]]

        {r, wr} =
          if Enum.all?(diffs, &(&1 == :no_change)) and Selection.empty?(sel) do
            {old, H.zero()}
          else
            {r, wr, _} = GF.regenerate(b, old, rest, diffs, sel, V.key(key, k))
            {r, wr}
          end

        moving_in = Mx.logical_and(Mx.equal(idx, k), Mx.not_equal(old_idx, k))

        if not same_idx? and V.any?(moving_in) do
          s = GF.simulate(b, rest, V.key(key, k_all + k))
          {V.blend(moving_in, s, r), V.blend(moving_in, H.zero(), wr)}
        else
          {r, wr}
        end
      end

    t = V.to_trace(gf, args, idx, Enum.map(per_branch, &elem(&1, 0)))
    {t, H.f64(V.select(idx, Enum.map(per_branch, &elem(&1, 1)))), :unknown_change}
  end

  def assess(gf, args, cm) do
    {idx, rest} = V.args!(gf, args, "Gen.assess")
    V.batched(gf, idx, "Gen.assess", fn -> do_assess(gf, idx, rest, cm) end)
  end

  defp do_assess(gf, idx, rest, cm) do

    # Branches no element follows are not needed; a followed branch must find every choice in cm.
    results =
      for {b, k} <- Enum.with_index(gf.branches) do
        if V.any?(Mx.equal(idx, k)) do
          {t, w} = V.generate_branch(b, rest, cm, Mx.Random.key(0))

          Enum.each(t.choices, fn {p, _} ->
            if not Choicemap.has_value?(cm, p) do
              raise ArgumentError,
                    "Gen.assess: no value for the choice at #{Choicemap.format_path(p)} of branch #{k} of #{inspect(gf)}: assess needs every choice"
            end
          end)

          {t, w}
        end
      end

    used = Enum.reject(results, &is_nil/1)
    V.covered!(gf, cm, Enum.map(used, &elem(&1, 0)), "Gen.assess")
    # An unused branch contributes nothing any element selects; stand in the first used one.
    filled = Enum.map(results, &(&1 || hd(used)))
    {H.f64(V.select(idx, Enum.map(filled, &elem(&1, 1)))), V.select(idx, Enum.map(filled, &elem(&1, 0).retval))}
  end

  def project(gf, trace, sel) do
    {idx, _} = V.args!(gf, trace.args, "Gen.project")

    V.batched(gf, idx, "Gen.project", fn ->
      ps = for k <- 0..(length(gf.branches) - 1), do: (bt = trace.subtraces[[k]]; GF.project(bt.gen_fn, bt, sel))
      H.f64(V.select(idx, ps))
    end)
  end

  def propose(gf, args, key) do
    t = simulate(gf, args, key)
    {t.choices, t.score, t.retval}
  end

  # The old [N] values at every address some element discards: constrained or removed choices of
  # a kept branch, and every choice of a branch some element leaves.
  defp discard(gf, prev, idx, old_idx, per_branch) do
    leaving =
      for k <- 0..(length(gf.branches) - 1),
          idx !== old_idx and V.any?(Mx.logical_and(Mx.equal(old_idx, k), Mx.not_equal(idx, k))),
          do: prev.subtraces[[k]].choices

    paths = Enum.flat_map(per_branch, &Enum.map(&1.discard, fn {p, _} -> p end)) ++ Enum.flat_map(leaving, &Enum.map(&1, fn {p, _} -> p end))

    paths
    |> Enum.uniq()
    |> Enum.filter(&Choicemap.has_value?(prev.choices, &1))
    |> Enum.reduce(Choicemap.new(), fn p, acc -> Choicemap.put(acc, p, Choicemap.get(prev.choices, p)) end)
  end
end
