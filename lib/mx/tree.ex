defmodule Mx.Tree do
  @moduledoc """
  Functions over trees of arrays: nested maps, lists and tuples whose leaves
  are `Mx.Array`s (the parameters of a model, gradients, optimizer state).
  The role of MLX's `mlx.utils.tree_*` and of `Nx.Container`.

  A tree is walked in one fixed order: lists and tuples by position, maps
  (not structs) by sorted key. Arrays are the leaves; any other term (a
  number, an atom, a struct) is carried along unchanged and never passed to
  the function. `leaf?:` picks other leaves, as MLX's `is_leaf`:

      iex> params = %{w: Mx.tensor([1.0, 2.0]), layers: [{Mx.tensor(3.0), :relu}]}
      iex> doubled = Mx.Tree.map(params, &Mx.multiply(&1, 2))
      iex> doubled.layers |> hd() |> elem(1)
      :relu
      iex> doubled |> Mx.Tree.leaves() |> Enum.map(&Mx.to_list/1)
      [6.0, [2.0, 4.0]]

  A path names a leaf: the map keys and list/tuple positions from the root
  (`[:layers, 0, 0]` above). `flatten/2` lists `{path, leaf}` pairs, with
  `join: "."` giving the dotted names checkpoints use (`"layers.0.weight"`),
  and `unflatten/2` builds the tree back.

  Several trees of one structure are walked together with `zip_with/3`; where
  they differ, it raises naming the path.
  """

  alias Mx.Array

  # unflatten's inner nodes are {@node, map} while building, so no leaf can be mistaken for one.
  @node :"$mx_tree_node"

  @type path :: [term()]
  @type t :: term()

  @doc """
  Applies `fun` to every leaf, keeping the structure.

      iex> Mx.Tree.map({Mx.tensor(1), [Mx.tensor(2)], :tag}, &Mx.add(&1, 10)) |> then(fn {a, [b], t} -> {Mx.to_number(a), Mx.to_number(b), t} end)
      {11, 12, :tag}
  """
  @spec map(t(), (term() -> term()), keyword()) :: t()
  def map(tree, fun, opts \\ []) when is_function(fun, 1) do
    leaf? = leaf_opt!(opts, "Mx.Tree.map")
    {out, nil} = walk(tree, nil, fn x, nil -> {fun.(x), nil} end, leaf?)
    out
  end

  @doc """
  Applies `fun.(path, leaf)` to every leaf, keeping the structure.

      iex> Mx.Tree.map_with_path(%{a: [Mx.tensor(1), Mx.tensor(2)]}, fn path, _x -> path end)
      %{a: [[:a, 0], [:a, 1]]}
  """
  @spec map_with_path(t(), (path(), term() -> term()), keyword()) :: t()
  def map_with_path(tree, fun, opts \\ []) when is_function(fun, 2) do
    leaf? = leaf_opt!(opts, "Mx.Tree.map_with_path")
    walk_path(tree, [], fun, leaf?)
  end

  @doc """
  Maps leaves in order while threading an accumulator: `fun.(leaf, acc)`
  returns `{new_leaf, acc}`.

      iex> {tree, n} = Mx.Tree.map_reduce([Mx.tensor(1), %{b: Mx.tensor(2)}], 0, fn x, n -> {n, n + Mx.to_number(x)} end)
      iex> {tree, n}
      {[0, %{b: 1}], 3}
  """
  @spec map_reduce(t(), acc, (term(), acc -> {term(), acc}), keyword()) :: {t(), acc}
        when acc: term()
  def map_reduce(tree, acc, fun, opts \\ []) when is_function(fun, 2) do
    walk(tree, acc, fun, leaf_opt!(opts, "Mx.Tree.map_reduce"))
  end

  @doc """
  Folds `fun.(leaf, acc)` over the leaves in order.

      iex> Mx.Tree.reduce(%{b: Mx.tensor([1, 2]), a: {Mx.tensor(3), "not a leaf"}}, 0, fn x, acc -> acc + Mx.to_number(Mx.sum(x)) end)
      6
  """
  @spec reduce(t(), acc, (term(), acc -> acc), keyword()) :: acc when acc: term()
  def reduce(tree, acc, fun, opts \\ []) when is_function(fun, 2) do
    leaf? = leaf_opt!(opts, "Mx.Tree.reduce")
    fold(tree, acc, fun, leaf?)
  end

  @doc """
  The leaves in order (maps by sorted key).

      iex> Mx.Tree.leaves(%{b: Mx.tensor(2), a: [Mx.tensor(1), 5]}) |> Enum.map(&Mx.to_number/1)
      [1, 2]
  """
  @spec leaves(t(), keyword()) :: [term()]
  def leaves(tree, opts \\ []) do
    leaf? = leaf_opt!(opts, "Mx.Tree.leaves")
    tree |> fold([], &[&1 | &2], leaf?) |> Enum.reverse()
  end

  @doc """
  Puts `values` in the leaf positions of `tree`, in the order of `leaves/2`
  (the inverse of `leaves/2`). Raises when the counts differ.

      iex> Mx.Tree.replace_leaves(%{a: Mx.tensor(1), b: [Mx.tensor(2)]}, [:x, :y])
      %{a: :x, b: [:y]}
  """
  @spec replace_leaves(t(), [term()], keyword()) :: t()
  def replace_leaves(tree, values, opts \\ []) when is_list(values) do
    leaf? = leaf_opt!(opts, "Mx.Tree.replace_leaves")

    case walk(tree, values, &take_one/2, leaf?) do
      {out, []} ->
        out

      {_out, rest} ->
        raise ArgumentError,
              "Mx.Tree.replace_leaves: got #{length(values)} values for a tree of #{length(values) - length(rest)} leaves; pass one value per leaf"
    end
  catch
    :too_few ->
      raise ArgumentError,
            "Mx.Tree.replace_leaves: got #{length(values)} values for a tree with more leaves; pass one value per leaf (Mx.Tree.leaves/1 lists them)"
  end

  defp take_one(_leaf, [v | rest]), do: {v, rest}
  defp take_one(_leaf, []), do: throw(:too_few)

  @doc """
  The `{path, leaf}` pairs in order. With `join: sep` a path is one string,
  its parts joined by `sep` (MLX's `tree_flatten`, as checkpoints name
  tensors).

      iex> tree = %{layers: [%{w: Mx.tensor(1)}], bias: Mx.tensor(2)}
      iex> Mx.Tree.flatten(tree) |> Enum.map(&elem(&1, 0))
      [[:bias], [:layers, 0, :w]]
      iex> Mx.Tree.flatten(tree, join: ".") |> Enum.map(&elem(&1, 0))
      ["bias", "layers.0.w"]
  """
  @spec flatten(t(), keyword()) :: [{path() | String.t(), term()}]
  def flatten(tree, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [:join, :leaf?], "Mx.Tree.flatten")
    leaf? = leaf_fun!(opts[:leaf?], "Mx.Tree.flatten")

    pairs = tree |> fold_path([], [], leaf?) |> Enum.reverse()

    case opts[:join] do
      nil ->
        pairs

      sep when is_binary(sep) ->
        Enum.map(pairs, fn {path, x} -> {Enum.map_join(path, sep, &segment/1), x} end)

      other ->
        raise ArgumentError,
              "Mx.Tree.flatten: join: must be a string such as \".\", got #{inspect(other)}"
    end
  end

  defp segment(k) when is_binary(k), do: k
  defp segment(k) when is_atom(k) or is_integer(k), do: to_string(k)

  defp segment(k),
    do:
      raise(
        ArgumentError,
        "Mx.Tree.flatten: cannot join the path segment #{inspect(k)}; only strings, atoms and integers join"
      )

  @doc """
  Builds a tree from `{path, leaf}` pairs (a list or a map), the inverse of
  `flatten/2`. A path is a list of keys, or a string split at `split:`
  (default `"."`). A container whose keys are exactly the integers
  `0..n-1` becomes a list, so tuples come back as lists (as in MLX's
  `tree_unflatten`); string segments of digits count as integers.

      iex> Mx.Tree.unflatten([{"layers.1.w", :b}, {"layers.0.w", :a}, {"bias", :c}])
      %{"bias" => :c, "layers" => [%{"w" => :a}, %{"w" => :b}]}
      iex> Mx.Tree.unflatten([{[:x, :y], 1}, {[:x], 2}])
      ** (ArgumentError) Mx.Tree.unflatten: path [:x] is both a leaf and a container; give each leaf a path of its own
  """
  @spec unflatten([{path() | String.t(), term()}] | map(), keyword()) :: t()
  def unflatten(pairs, opts \\ []) when is_list(pairs) or is_map(pairs) do
    opts = Mx.Opts.validate!(opts, [split: "."], "Mx.Tree.unflatten")
    sep = opts[:split]

    pairs
    |> Enum.map(fn
      {path, x} when is_binary(path) ->
        {path |> String.split(sep) |> Enum.map(&digits/1), x}

      {path, x} when is_list(path) and path != [] ->
        {path, x}

      other ->
        raise ArgumentError,
              "Mx.Tree.unflatten: each entry must be {path, leaf} with a non-empty list or string path, got #{inspect(other, limit: 5)}"
    end)
    |> Enum.reduce({@node, %{}}, fn {path, x}, acc -> insert(acc, path, path, x) end)
    |> listify()
  end

  defp digits(s) do
    case Integer.parse(s) do
      {i, ""} when i >= 0 -> if Integer.to_string(i) == s, do: i, else: s
      _ -> s
    end
  end

  defp insert({@node, m}, [k], full, x) do
    case m do
      %{^k => {@node, _}} -> both!(full)
      %{^k => _} -> raise ArgumentError, "Mx.Tree.unflatten: path #{inspect(full)} appears twice"
      _ -> {@node, Map.put(m, k, x)}
    end
  end

  defp insert({@node, m}, [k | rest], full, x) do
    child =
      case m do
        %{^k => {@node, _} = c} -> c
        %{^k => _} -> both!(Enum.take(full, length(full) - length(rest)))
        _ -> {@node, %{}}
      end

    {@node, Map.put(m, k, insert(child, rest, full, x))}
  end

  defp both!(path),
    do:
      raise(
        ArgumentError,
        "Mx.Tree.unflatten: path #{inspect(path)} is both a leaf and a container; give each leaf a path of its own"
      )

  defp listify({@node, m}) do
    m = Map.new(m, fn {k, v} -> {k, listify(v)} end)
    n = map_size(m)

    if n > 0 and Enum.all?(Map.keys(m), &(is_integer(&1) and &1 >= 0 and &1 < n)),
      do: Enum.map(0..(n - 1), &Map.fetch!(m, &1)),
      else: m
  end

  defp listify(leaf), do: leaf

  @doc """
  Walks several trees of one structure together, calling `fun` with the list
  of their leaves at each position (MLX's `tree_map(fn, tree, *rest)`). The
  first tree's non-leaf terms are kept. Raises `ArgumentError` naming the
  path where the structures differ.

      iex> Mx.Tree.zip_with([%{a: Mx.tensor(1)}, %{a: Mx.tensor(2)}], &Mx.add(hd(&1), List.last(&1))) |> Mx.Tree.leaves() |> Enum.map(&Mx.to_number/1)
      [3]
      iex> Mx.Tree.zip_with([%{a: [Mx.tensor(1)]}, %{a: [Mx.tensor(1), Mx.tensor(2)]}], &hd/1)
      ** (ArgumentError) Mx.Tree.zip_with: the trees differ at path [:a]: tree 1 has a list of 1 elements, tree 2 a list of 2 elements
  """
  @spec zip_with([t()], ([term()] -> term()), keyword()) :: t()
  def zip_with([_ | _] = trees, fun, opts \\ []) when is_function(fun, 1) do
    opts = Mx.Opts.validate!(opts, [:leaf?, :where], "Mx.Tree.zip_with")
    leaf? = leaf_fun!(opts[:leaf?], "Mx.Tree.zip_with")
    zip(trees, [], fun, leaf?, opts[:where] || "Mx.Tree.zip_with")
  end

  defp zip([first | _] = trees, path, fun, leaf?, where) do
    cond do
      leaf?.(first) ->
        check_all!(trees, &leaf?.(&1), path, where, &describe_leaf/1)
        fun.(trees)

      is_list(first) ->
        n = safe_length(first)

        if n < 0,
          do: raise(ArgumentError, "#{where}: an improper list at path #{inspect(path)}; zip_with walks proper lists only")

        check_all!(trees, &(is_list(&1) and safe_length(&1) == n), path, where)

        trees
        |> Enum.zip_with(& &1)
        |> Enum.with_index()
        |> Enum.map(fn {ts, i} -> zip(ts, path ++ [i], fun, leaf?, where) end)

      is_tuple(first) ->
        n = tuple_size(first)
        check_all!(trees, &(is_tuple(&1) and tuple_size(&1) == n), path, where)

        trees
        |> Enum.map(&Tuple.to_list/1)
        |> Enum.zip_with(& &1)
        |> Enum.with_index()
        |> Enum.map(fn {ts, i} -> zip(ts, path ++ [i], fun, leaf?, where) end)
        |> List.to_tuple()

      is_map(first) and not is_struct(first) ->
        keys = first |> Map.keys() |> Enum.sort()

        check_all!(trees, &(is_map(&1) and not is_struct(&1) and Enum.sort(Map.keys(&1)) == keys), path, where)

        Map.new(keys, fn k ->
          {k, zip(Enum.map(trees, &Map.fetch!(&1, k)), path ++ [k], fun, leaf?, where)}
        end)

      true ->
        first
    end
  end

  defp safe_length(l) do
    length(l)
  rescue
    ArgumentError -> -1
  end

  # Raises naming the first tree (counting from 1) that fails ok?.
  defp check_all!([first | _] = trees, ok?, path, where, show \\ &describe/1) do
    case trees |> Enum.with_index(1) |> Enum.find(fn {t, _} -> not ok?.(t) end) do
      nil ->
        :ok

      {other, i} ->
        raise ArgumentError,
              "#{where}: the trees differ at path #{inspect(path)}: tree 1 has #{show.(first)}, tree #{i} #{describe(other)}"
    end
  end

  defp describe(%Array{} = a), do: "an array #{Mx.describe(a)}"
  defp describe(l) when is_list(l), do: "a list of #{safe_length(l)} elements"
  defp describe(t) when is_tuple(t), do: "a tuple of #{tuple_size(t)} elements"

  defp describe(m) when is_map(m) and not is_struct(m),
    do: "a map with keys #{inspect(m |> Map.keys() |> Enum.sort(), limit: 10)}"

  defp describe(other), do: inspect(other, limit: 5)

  defp describe_leaf(%Array{} = a), do: describe(a)
  defp describe_leaf(other), do: inspect(other, limit: 5)

  @doc """
  Whether `term` is a container the walkers descend into: a list, a tuple or
  a map that is not a struct.

      iex> Enum.map([[1], {1}, %{a: 1}, 1..2, Mx.tensor(1)], &Mx.Tree.container?/1)
      [true, true, true, false, false]
  """
  @spec container?(term()) :: boolean()
  def container?(term),
    do: is_list(term) or is_tuple(term) or (is_map(term) and not is_struct(term))

  # ---- the walkers ---------------------------------------------------------------------

  defp leaf_opt!(opts, where) do
    opts = Mx.Opts.validate!(opts, [:leaf?], where)
    leaf_fun!(opts[:leaf?], where)
  end

  defp leaf_fun!(nil, _where), do: &array?/1
  defp leaf_fun!(f, _where) when is_function(f, 1), do: f

  defp leaf_fun!(other, where),
    do:
      raise(
        ArgumentError,
        "#{where}: leaf?: must be a function of one argument, got #{inspect(other)}"
      )

  defp array?(x), do: is_struct(x, Array)

  @doc false
  # map_reduce for callers on hot paths (no option checking).
  def walk(tree, acc, fun, leaf?) do
    if leaf?.(tree), do: fun.(tree, acc), else: descend(tree, acc, fun, leaf?)
  end

  defp descend(l, acc, fun, leaf?) when is_list(l), do: walk_list(l, acc, fun, leaf?)

  defp descend(t, acc, fun, leaf?) when is_tuple(t) do
    {items, acc} = t |> Tuple.to_list() |> walk_list(acc, fun, leaf?)
    {List.to_tuple(items), acc}
  end

  defp descend(%_{} = s, acc, _fun, _leaf?), do: {s, acc}

  defp descend(m, acc, fun, leaf?) when is_map(m) do
    # Keys are unique, so sorting the pairs sorts by key.
    {pairs, acc} = m |> Enum.sort() |> walk_pairs(acc, fun, leaf?)
    {:maps.from_list(pairs), acc}
  end

  defp descend(other, acc, _fun, _leaf?), do: {other, acc}

  defp walk_pairs([], acc, _fun, _leaf?), do: {[], acc}

  defp walk_pairs([{k, v} | t], acc, fun, leaf?) do
    {v, acc} = walk(v, acc, fun, leaf?)
    {t, acc} = walk_pairs(t, acc, fun, leaf?)
    {[{k, v} | t], acc}
  end

  # Plain recursion: an improper list keeps its tail, walked as a term of its own.
  defp walk_list([], acc, _fun, _leaf?), do: {[], acc}

  defp walk_list([h | t], acc, fun, leaf?) do
    {h, acc} = walk(h, acc, fun, leaf?)
    {t, acc} = walk_list(t, acc, fun, leaf?)
    {[h | t], acc}
  end

  defp walk_list(other, acc, fun, leaf?), do: walk(other, acc, fun, leaf?)

  defp fold(tree, acc, fun, leaf?) do
    if leaf?.(tree), do: fun.(tree, acc), else: fold_in(tree, acc, fun, leaf?)
  end

  defp fold_in(l, acc, fun, leaf?) when is_list(l), do: fold_list(l, acc, fun, leaf?)
  defp fold_in(t, acc, fun, leaf?) when is_tuple(t), do: t |> Tuple.to_list() |> fold_list(acc, fun, leaf?)
  defp fold_in(%_{}, acc, _fun, _leaf?), do: acc

  defp fold_in(m, acc, fun, leaf?) when is_map(m),
    do: m |> Enum.sort() |> Enum.reduce(acc, fn {_k, v}, acc -> fold(v, acc, fun, leaf?) end)

  defp fold_in(_other, acc, _fun, _leaf?), do: acc

  defp fold_list([], acc, _fun, _leaf?), do: acc
  defp fold_list([h | t], acc, fun, leaf?), do: fold_list(t, fold(h, acc, fun, leaf?), fun, leaf?)
  defp fold_list(other, acc, fun, leaf?), do: fold(other, acc, fun, leaf?)

  # {path, leaf} pairs, newest first.
  defp fold_path(tree, path, acc, leaf?) do
    cond do
      leaf?.(tree) ->
        [{Enum.reverse(path), tree} | acc]

      is_list(tree) ->
        fold_path_list(tree, 0, path, acc, leaf?)

      is_tuple(tree) ->
        fold_path(Tuple.to_list(tree), path, acc, leaf?)

      is_map(tree) and not is_struct(tree) ->
        tree
        |> Enum.sort_by(&elem(&1, 0))
        |> Enum.reduce(acc, fn {k, v}, acc -> fold_path(v, [k | path], acc, leaf?) end)

      true ->
        acc
    end
  end

  # An improper list's tail takes the next position.
  defp fold_path_list([], _i, _path, acc, _leaf?), do: acc

  defp fold_path_list([h | t], i, path, acc, leaf?),
    do: fold_path_list(t, i + 1, path, fold_path(h, [i | path], acc, leaf?), leaf?)

  defp fold_path_list(tail, i, path, acc, leaf?), do: fold_path(tail, [i | path], acc, leaf?)

  defp path_list([], _i, _path, _fun, _leaf?), do: []
  defp path_list([h | t], i, path, fun, leaf?), do: [walk_path(h, [i | path], fun, leaf?) | path_list(t, i + 1, path, fun, leaf?)]
  defp path_list(tail, i, path, fun, leaf?), do: walk_path(tail, [i | path], fun, leaf?)

  defp walk_path(tree, path, fun, leaf?) do
    cond do
      leaf?.(tree) ->
        fun.(Enum.reverse(path), tree)

      is_list(tree) ->
        path_list(tree, 0, path, fun, leaf?)

      is_tuple(tree) ->
        tree
        |> Tuple.to_list()
        |> Enum.with_index()
        |> Enum.map(fn {x, i} -> walk_path(x, [i | path], fun, leaf?) end)
        |> List.to_tuple()

      is_map(tree) and not is_struct(tree) ->
        tree |> Enum.sort_by(&elem(&1, 0)) |> Map.new(fn {k, v} -> {k, walk_path(v, [k | path], fun, leaf?)} end)

      true ->
        tree
    end
  end
end
