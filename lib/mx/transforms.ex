defmodule Mx.Transforms do
  @moduledoc """
  Function transforms on the lazy graph: `grad/2`, `value_and_grad/2`,
  `vjp/3`, `jvp/3` and `stop_gradient/1` (also available as `Mx.grad/2` and
  friends).

  A transform runs the function once on *traced* inputs: arrays built from
  them are graph nodes that stay attached to their inputs even after
  evaluation. The gradient is then built in C by walking back from the
  output with one rule per primitive (`c_src/autodiff.c`). The result is an
  ordinary lazy graph, so gradients compose: the gradient of a gradient
  works, and `jvp/3` is computed as the vjp of the vjp (which is linear in
  its cotangent).

  Functions take and return arrays, numbers, or tuples, lists and maps of
  them; gradients come back in the same shape of container as the inputs
  they belong to.

  Complex values follow JAX's convention: a cotangent `c` of a complex value
  pairs with a change `dw` as `Re(c dw)`, so the gradient of a real-valued
  `f(z)` is `∂f/∂x - i ∂f/∂y`, the conjugate of the steepest-ascent
  direction (conjugate it, with `Mx.conjugate/1`, before a gradient step).

      iex> f = fn x -> Mx.sum(Mx.multiply(x, x)) end
      iex> Mx.grad(f).(Mx.tensor([1.0, 2.0, 3.0])) |> Mx.to_list()
      [2.0, 4.0, 6.0]
  """

  alias Mx.{Array, NIF}

  @type container :: Array.t() | number() | tuple() | list() | map()

  @doc """
  Returns a function with `f`'s arity that computes `{f(args), gradient}`.
  `f` must return a one-element array (the value being differentiated).
  `argnums` picks the arguments to differentiate: an integer (the gradient
  has that argument's shape of container) or a list of integers (a list of
  gradients).

      iex> f = fn x, y -> Mx.sum(Mx.multiply(x, y)) end
      iex> {value, {gx, gy}} = Mx.value_and_grad(f, [0, 1]).(Mx.tensor([1.0, 2.0]), Mx.tensor([3.0, 4.0])) |> then(fn {v, [a, b]} -> {v, {a, b}} end)
      iex> {Mx.to_number(value), Mx.to_list(gx), Mx.to_list(gy)}
      {11.0, [3.0, 4.0], [1.0, 2.0]}
  """
  @spec value_and_grad(function(), non_neg_integer() | [non_neg_integer()]) :: function()
  def value_and_grad(f, argnums \\ 0) when is_function(f) do
    {:arity, arity} = Function.info(f, :arity)
    nums = List.wrap(argnums)

    if Enum.any?(nums, &(not is_integer(&1) or &1 < 0 or &1 >= arity)) do
      raise ArgumentError, "argnums #{inspect(argnums)} must name arguments of a function of arity #{arity}"
    end

    with_arity(arity, fn args ->
      {value, grads} = value_and_grad_apply(f, args, nums)
      {value, if(is_integer(argnums), do: hd(grads), else: grads)}
    end)
  end

  @doc """
  Returns a function with `f`'s arity that computes the gradient of `f`
  with respect to the `argnums` arguments (see `value_and_grad/2`).

      iex> Mx.grad(fn x -> Mx.sum(Mx.exp(x)) end).(Mx.tensor([0.0])) |> Mx.to_list()
      [1.0]
  """
  @spec grad(function(), non_neg_integer() | [non_neg_integer()]) :: function()
  def grad(f, argnums \\ 0) do
    vg = value_and_grad(f, argnums)
    {:arity, arity} = Function.info(f, :arity)
    with_arity(arity, fn args -> elem(apply(vg, args), 1) end)
  end

  @doc """
  Reverse mode: `{f(primals...), cotangents pulled back to each primal}`.
  `primals` is the list of `f`'s arguments and `cotangents` has the shape of
  `f`'s output.

      iex> {y, [g]} = Mx.vjp(fn x -> Mx.multiply(x, 3.0) end, [Mx.tensor([1.0, 2.0])], Mx.tensor([1.0, 10.0]))
      iex> {Mx.to_list(y), Mx.to_list(g)}
      {[3.0, 6.0], [3.0, 30.0]}
  """
  @spec vjp(function(), [container()], container()) :: {container(), [container()]}
  def vjp(f, primals, cotangents) when is_function(f) and is_list(primals) do
    traced(fn ->
      {args, wrt} = mark_all(primals)
      y = apply(f, args)
      y_leaves = leaves(y)
      cot_leaves = cotangents |> leaves() |> Enum.map(&Mx.tensor/1)

      if length(cot_leaves) != length(y_leaves) do
        raise ArgumentError, "vjp: #{length(y_leaves)} output arrays but #{length(cot_leaves)} cotangents"
      end

      grads = pull_back(y_leaves, cot_leaves, wrt)
      {y, rebuild_each(primals, grads)}
    end)
  end

  @doc """
  Forward mode: `{f(primals...), the directional derivative along tangents}`,
  where `tangents` has one entry per primal and the result has the shape of
  `f`'s output.

      iex> {y, t} = Mx.jvp(fn x -> Mx.square(x) end, [Mx.tensor([3.0])], [Mx.tensor([1.0])])
      iex> {Mx.to_list(y), Mx.to_list(t)}
      {[9.0], [6.0]}
  """
  @spec jvp(function(), [container()], [container()]) :: {container(), container()}
  def jvp(f, primals, tangents) when is_function(f) and is_list(primals) and is_list(tangents) do
    traced(fn ->
      {args, wrt} = mark_all(primals)
      y = apply(f, args)
      y_leaves = leaves(y)
      t_leaves = tangents |> leaves() |> Enum.map(&Mx.tensor/1)

      if length(t_leaves) != length(wrt) do
        raise ArgumentError, "jvp: #{length(wrt)} primal arrays but #{length(t_leaves)} tangents"
      end

      # u stands for the output cotangent; J^T u is linear in u, so its vjp along t is J t.
      us = Enum.map(y_leaves, fn y -> NIF.trace_input(Mx.zeros(y.shape, type: y.type).ref) |> Array.wrap() end)
      jtu = pull_back(y_leaves, us, wrt)
      jt = pull_back(jtu, t_leaves, us)
      {y, rebuild(y, jt) |> elem(0)}
    end)
  end

  @doc """
  The identity on values that blocks gradients: nothing flows back through it.

      iex> Mx.grad(fn x -> Mx.sum(Mx.multiply(x, Mx.stop_gradient(x))) end).(Mx.tensor([2.0])) |> Mx.to_list()
      [2.0]
  """
  @spec stop_gradient(Array.t()) :: Array.t()
  def stop_gradient(%Array{ref: ref}), do: NIF.stop_gradient(ref) |> Array.wrap()

  @doc """
  Vectorizes `f` over a batch axis: returns a function with `f`'s arity that
  applies `f` to every slice along `in_axes` of its arguments, as one graph.

  `in_axes` is an integer for all arguments or a list with one entry per
  argument (`nil` for arguments shared by every example); every array in a
  batched argument is split along that axis. `out_axes` places the batch axis
  in the results. `f` runs once on per-example placeholders and the graph it
  builds is replayed on the whole batch with one batching rule per primitive
  family (`c_src/vmap.c`), so `f` must not branch on array values.

      iex> f = fn x, y -> Mx.sum(Mx.multiply(x, y)) end
      iex> Mx.vmap(f, [0, nil]).(Mx.tensor([[1.0, 2.0], [3.0, 4.0]]), Mx.tensor([10.0, 1.0])) |> Mx.to_list()
      [12.0, 34.0]
  """
  @spec vmap(function(), integer() | [integer() | nil], integer()) :: function()
  def vmap(f, in_axes \\ 0, out_axes \\ 0) when is_function(f) do
    {:arity, arity} = Function.info(f, :arity)
    axes = if is_list(in_axes), do: in_axes, else: List.duplicate(in_axes, arity)

    if length(axes) != arity do
      raise ArgumentError, "vmap: in_axes #{inspect(in_axes)} needs one entry per argument of a function of arity #{arity}"
    end

    with_arity(arity, fn args -> traced(fn -> vmap_apply(f, args, axes, out_axes) end) end)
  end

  @doc false
  # A traced placeholder standing for one example of a batch: replay/4 swaps the batch in.
  @spec placeholder(tuple(), atom()) :: Array.t()
  def placeholder(shape, type),
    do: NIF.trace_input(Mx.zeros(shape, type: type).ref) |> Array.wrap()

  @doc false
  # The graphs of `outs`, built on the placeholders `holders`, replayed on `inputs` (each batched
  # along axis 0, with b examples): one {array, batched?} per out. An out that depends on no
  # placeholder comes back as it is.
  @spec replay([Array.t()], [Array.t()], [Array.t()], pos_integer()) :: [{Array.t(), boolean()}]
  def replay(outs, [], _inputs, _b), do: Enum.map(outs, &{&1, false})

  def replay(outs, holders, inputs, b) do
    check_batched_count!(length(holders), "Mx.Transforms.replay/4")

    NIF.vmap(Enum.map(outs, & &1.ref), Enum.map(holders, & &1.ref), Enum.map(inputs, & &1.ref), b)
    |> Enum.zip(outs)
    |> Enum.map(fn
      {{r, true}, _out} -> {Array.wrap(r), true}
      {{_r, false}, out} -> {out, false}
    end)
  end

  # c_src/vmap.c looks nodes up in its replay table linearly: a bound on the batched arrays of one
  # vmap keeps that cheap (more would be safe, only slower).
  @max_batched 1024

  @doc false
  # The most batched arrays one vmap replays at once.
  @spec max_batched() :: pos_integer()
  def max_batched, do: @max_batched

  defp check_batched_count!(k, who) do
    if k > @max_batched do
      raise ArgumentError,
            "#{who}: #{k} batched arrays, but the engine's vmap replays at most #{@max_batched} at once; " <>
              "pack them into fewer arrays (stack those of one type)"
    end
  end

  @doc false
  # Whether `a` depends on any of `holders`, from a replay on one-example stand-ins that is never evaluated.
  @spec depends?(Array.t(), [Array.t()]) :: boolean()
  def depends?(_a, []), do: false

  def depends?(%Array{} = a, holders) do
    ones =
      Enum.map(holders, fn h ->
        Mx.zeros(List.to_tuple([1 | Tuple.to_list(h.shape)]), type: h.type)
      end)

    [{_, batched?}] = replay([a], holders, ones, 1)
    batched?
  end

  @doc false
  # Runs fun with `check` called on every array whose data is read (Mx.to_binary/1 and the
  # readers built on it), restoring the caller's check afterwards.
  @spec checking_reads((Array.t() -> any()), (() -> result)) :: result when result: term()
  def checking_reads(check, fun) do
    prev = Process.get(:mx_read_check)

    Process.put(
      :mx_read_check,
      if(prev,
        do: fn a ->
          prev.(a)
          check.(a)
        end,
        else: check
      )
    )

    try do
      fun.()
    after
      if prev, do: Process.put(:mx_read_check, prev), else: Process.delete(:mx_read_check)
    end
  end

  defp vmap_apply(f, args, axes, out_axes) do
    {holder_args, pairs} =
      args
      |> Enum.zip(axes)
      |> Enum.map_reduce([], fn
        {arg, nil}, acc ->
          {arg, acc}

        {arg, axis}, acc ->
          map_arrays(arg, acc, fn a, acc ->
            moved = move_axis(a, axis, 0)
            [b | rest] = Tuple.to_list(moved.shape)
            holder = NIF.trace_input(Mx.zeros(List.to_tuple(rest), type: a.type).ref) |> Array.wrap()
            {holder, [{holder, moved, b} | acc]}
          end)
      end)

    pairs = Enum.reverse(pairs)
    check_batched_count!(length(pairs), "vmap")

    batch =
      case pairs |> Enum.map(&elem(&1, 2)) |> Enum.uniq() do
        [b] -> b
        [] -> raise ArgumentError, "vmap: no argument is batched; give in_axes for at least one array argument"
        sizes -> raise ArgumentError, "vmap: batched arguments have different batch sizes #{inspect(sizes)}"
      end

    # f runs once on the placeholders: a value read from them would be a placeholder's, not an example's.
    holders = Enum.map(pairs, &elem(&1, 0))
    out = checking_reads(&batched_read!(&1, holders), fn -> apply(f, holder_args) end)
    out_leaves = leaves(out) |> Enum.map(&Mx.tensor/1)

    results =
      NIF.vmap(Enum.map(out_leaves, & &1.ref), Enum.map(pairs, &elem(&1, 0).ref), Enum.map(pairs, &elem(&1, 1).ref), batch)
      |> Enum.map(fn {r, batched?} ->
        r = Array.wrap(r)
        r = if batched?, do: r, else: Mx.broadcast(Mx.new_axis(r, 0), List.to_tuple([batch | Tuple.to_list(r.shape)]))
        move_axis(r, 0, out_axes)
      end)

    {rebuilt, []} = rebuild(out, results)
    rebuilt
  end

  defp batched_read!(a, holders) do
    if depends?(a, holders) do
      raise ArgumentError,
            "vmap: the function read the values of #{Mx.describe(a)}, which depends on a batched argument; vmap runs it " <>
              "once on placeholders, so it cannot branch on batched values: compute both sides and pick with Mx.select/3"
    end
  end

  defp move_axis(a, from, to) do
    r = tuple_size(a.shape)
    from = if from < 0, do: from + r, else: from
    to = if to < 0, do: to + r, else: to

    if from == to do
      a
    else
      perm = Enum.to_list(0..(r - 1)) |> List.delete(from) |> List.insert_at(to, from)
      Mx.transpose(a, axes: perm)
    end
  end

  defp map_arrays(tree, acc, fun), do: Mx.Tree.walk(tree, acc, fun, &is_struct(&1, Array))

  # ---- machinery ---------------------------------------------------------------------

  defp value_and_grad_apply(f, args, nums) do
    traced(fn ->
      {args, wrt_by_arg} =
        args
        |> Enum.with_index()
        |> Enum.map_reduce(%{}, fn {arg, i}, acc ->
          if i in nums do
            {marked, wrt} = mark(arg)
            {marked, Map.put(acc, i, {arg, wrt})}
          else
            {arg, acc}
          end
        end)

      value = apply(f, args)

      unless match?(%Array{}, value) and Mx.size(value) == 1 do
        raise ArgumentError,
              "grad needs a function returning a one-element array, got #{inspect_value(value)}; " <>
                "reduce it (e.g. Mx.sum/1) or use Mx.vjp/3"
      end

      wrt = Enum.flat_map(nums, fn i -> elem(wrt_by_arg[i], 1) end)
      grads = pull_back([value], [Mx.ones(value.shape, type: value.type)], wrt)

      {per_arg, []} =
        Enum.map_reduce(nums, grads, fn i, rest -> rebuild(elem(wrt_by_arg[i], 0), rest) end)

      {value, per_arg}
    end)
  end

  defp inspect_value(%Array{} = a), do: Mx.describe(a)
  defp inspect_value(other), do: inspect(other, limit: 5)

  # Runs fun with the trace depth raised; at depth 0 the results are cut loose
  # from the traced graph so loops do not keep every iteration's graph alive.
  defp traced(fun) do
    depth = Process.get(:mx_trace_depth, 0)
    Process.put(:mx_trace_depth, depth + 1)

    result =
      try do
        fun.()
      after
        Process.put(:mx_trace_depth, depth)
      end

    if depth == 0, do: untrace(result), else: result
  end

  defp untrace(result), do: Mx.Tree.map(result, &stop_gradient/1)

  defp pull_back(outs, cots, wrt) do
    NIF.vjp(Enum.map(outs, & &1.ref), Enum.map(cots, & &1.ref), Enum.map(wrt, & &1.ref))
    |> Enum.map(&Array.wrap/1)
  end

  defp mark_all(primals) do
    {args, wrts} = Enum.map(primals, &mark/1) |> Enum.unzip()
    {args, Enum.concat(wrts)}
  end

  # Replaces every leaf with a traced alias; returns the new container and its leaves.
  defp mark(container) do
    marked = map_leaves(container, fn a -> NIF.trace_input(a.ref) |> Array.wrap() end)
    {marked, leaves(marked)}
  end

  # Numbers are differentiable leaves too; any other non-container term is an error in mark/1.
  defp diff_leaf?(x), do: is_struct(x, Array) or is_number(x)

  defp map_leaves(tree, fun), do: Mx.Tree.map(tree, &mark_leaf(&1, fun), leaf?: &(not Mx.Tree.container?(&1)))

  defp mark_leaf(%Array{} = a, fun), do: fun.(a)
  defp mark_leaf(x, fun) when is_number(x), do: fun.(Mx.tensor(x * 1.0))

  defp mark_leaf(other, _fun) do
    raise ArgumentError, "cannot differentiate with respect to #{inspect(other)}; use arrays, numbers or containers of them"
  end

  defp leaves(tree), do: Mx.Tree.leaves(tree, leaf?: &diff_leaf?/1)

  # Fills template's leaf positions from `values` in order: {container, rest}.
  defp rebuild(template, values), do: Mx.Tree.walk(template, values, fn _, [v | rest] -> {v, rest} end, &diff_leaf?/1)

  defp rebuild_each(primals, grads) do
    {rebuilt, []} = Enum.map_reduce(primals, grads, &rebuild/2)
    rebuilt
  end

  defp with_arity(0, g), do: fn -> g.([]) end
  defp with_arity(1, g), do: fn a -> g.([a]) end
  defp with_arity(2, g), do: fn a, b -> g.([a, b]) end
  defp with_arity(3, g), do: fn a, b, c -> g.([a, b, c]) end
  defp with_arity(4, g), do: fn a, b, c, d -> g.([a, b, c, d]) end
  defp with_arity(5, g), do: fn a, b, c, d, e -> g.([a, b, c, d, e]) end
  defp with_arity(6, g), do: fn a, b, c, d, e, f -> g.([a, b, c, d, e, f]) end

  defp with_arity(n, _g) do
    raise ArgumentError, "transforms support functions of up to 6 arguments, got arity #{n}; pass a tuple or map instead"
  end
end
