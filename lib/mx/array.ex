defmodule Mx.Array do
  @moduledoc """
  An Mx array: a handle on a node of the engine's lazy graph.

  `shape` and `type` are known as soon as the array is built; the data
  exists once the array is evaluated (`Mx.eval/1`, or any reader such as
  `Mx.to_list/1`). The `ref` pairs a resource handle with a binary weighing
  the array's byte size, so the BEAM counts array memory against the owning
  process, while hashing, comparing and `:erlang.term_to_binary/1` of an array
  cost O(1) (arrays work as map keys and in ETS).

  Arrays implement `Access` for indexing and slicing:

      iex> a = Mx.tensor([[1, 2, 3], [4, 5, 6]])
      iex> a[1] |> Mx.to_list()
      [4, 5, 6]
      iex> a[[0..1, 1]] |> Mx.to_list()
      [2, 5]
      iex> a[[.., 0..2//2]] |> Mx.to_list()
      [[1, 3], [4, 6]]

  An integer index drops its axis, a range keeps it (ranges are inclusive,
  as in Elixir; negative positions count from the end), `..` takes the whole
  axis, and an integer `Mx.Array` takes those positions along the axis.
  """

  # `id` names the graph node: two array terms are == exactly when they are the same array.
  @enforce_keys [:ref, :shape, :type, :id]
  defstruct [:ref, :shape, :type, :id]

  @type t :: %__MODULE__{ref: {reference(), binary()}, shape: tuple(), type: Mx.Type.t(), id: non_neg_integer()}

  @doc false
  def wrap({ref, shape, type, id}), do: %__MODULE__{ref: ref, shape: shape, type: type, id: id}

  @behaviour Access

  @impl Access
  def fetch(%__MODULE__{} = a, index), do: {:ok, index(a, List.wrap(index))}

  @impl Access
  def get_and_update(_a, _key, _fun) do
    raise ArgumentError, "Mx arrays are immutable; use Mx.indexed_put/3 or Mx.put_slice/3 to build an updated array"
  end

  @impl Access
  def pop(_a, _key) do
    raise ArgumentError, "Mx arrays are immutable; pop is not supported"
  end

  defp index(a, indices) do
    rank = tuple_size(a.shape)

    if length(indices) > rank do
      raise ArgumentError,
            "too many indices (#{length(indices)}) for an array of rank #{rank} (#{Mx.describe(a)})"
    end

    {a, _axis} =
      Enum.reduce(indices, {a, 0}, fn idx, {acc, axis} ->
        dim = elem(acc.shape, axis)

        case idx do
          i when is_integer(i) ->
            i = normalize_position(i, dim, acc)
            {acc |> Mx.slice_axis(i, 1, axis) |> Mx.squeeze(axes: [axis]), axis}

          %Range{} = r ->
            {start, len, step} = range_bounds(r, dim, acc)
            {Mx.slice_axis(acc, start, len, axis, step), axis + 1}

          %__MODULE__{} = idx ->
            {Mx.take(acc, idx, axis: axis), axis + tuple_size(idx.shape)}

          other ->
            raise ArgumentError,
                  "cannot index #{Mx.describe(acc)} with #{inspect(other)}; use integers, ranges, .. or integer arrays"
        end
      end)

    a
  end

  defp normalize_position(i, dim, a) do
    j = if i < 0, do: dim + i, else: i

    if j < 0 or j >= dim do
      raise ArgumentError, "index #{i} is out of bounds for an axis of size #{dim} in #{Mx.describe(a)}"
    end

    j
  end

  defp range_bounds(%Range{first: first, last: last, step: step}, dim, a) do
    if step < 1 do
      raise ArgumentError, "range steps must be positive, got #{step}; use Mx.reverse/2 for backwards order"
    end

    {first, last} =
      if first == 0 and last == -1 and step == 1,
        do: {0, dim - 1},
        else: {if(first < 0, do: dim + first, else: first), if(last < 0, do: dim + last, else: last)}

    cond do
      last < first -> {min(max(first, 0), dim), 0, step}
      first < 0 or last >= dim ->
        raise ArgumentError, "range #{first}..#{last} is out of bounds for an axis of size #{dim} in #{Mx.describe(a)}"
      true -> {first, div(last - first, step) + 1, step}
    end
  end
end

defimpl Inspect, for: Mx.Array do
  import Inspect.Algebra

  @limit 50

  def inspect(a, opts) do
    header = Mx.describe(a)

    case Mx.NIF.state(a.ref) do
      :evaluated ->
        data = a |> Mx.to_flat_list(@limit + 1) |> nested(a.shape, opts)
        concat(["#Mx.Array<", nest(concat([line(), header, line(), data]), 2), line(), ">"])

      :disposed ->
        concat(["#Mx.Array<", header, " disposed>"])

      :pending ->
        concat(["#Mx.Array<", header, " lazy>"])
    end
  end

  defp nested(flat, shape, opts) do
    {doc, _rest} = build(Tuple.to_list(shape), flat, opts)
    doc
  end

  defp build([], [x | rest], opts), do: {to_doc(x, opts), rest}
  defp build([], [], _opts), do: {"...", []}

  defp build([n | dims], flat, opts) do
    {docs, rest} =
      Enum.reduce_while(1..max(n, 1)//1, {[], flat}, fn _, {acc, fl} ->
        if fl == [] do
          {:halt, {["..." | acc], []}}
        else
          {d, fl} = build(dims, fl, opts)
          {:cont, {[d | acc], fl}}
        end
      end)

    docs = if n == 0, do: [], else: Enum.reverse(docs)
    {container_doc("[", docs, "]", %{opts | limit: :infinity}, fn d, _ -> d end, separator: ","), rest}
  end
end
