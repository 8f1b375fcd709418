defmodule Gen.Choicemap do
  @moduledoc """
  An immutable tree of random choices: each address holds either a value (an
  Mx array) or a submap. This is Gen.jl's `ChoiceMap`.

  An address is any term except a list; a list is a path of addresses from
  the root (`[:sub, :x]`), and `[]` is the root itself. A choicemap whose
  root holds a value is what a distribution's trace has (its one choice
  lives at the empty address).

  Values may be given as numbers, booleans, numeric lists or Mx arrays and
  always come back as Mx arrays: floats become `f64` (DESIGN.md decision 5),
  integers `s64`, booleans `bool`.

      iex> cm = Gen.choicemap(%{slope: 1.5, sub: %{x: 2}})
      iex> Gen.Choicemap.get(cm, :slope) |> Mx.to_number()
      1.5
      iex> Gen.Choicemap.get(cm, [:sub, :x]) |> Mx.to_number()
      2
      iex> Gen.Choicemap.has_value?(cm, :sub)
      false
      iex> Enum.map(cm, fn {path, v} -> {path, Mx.to_number(v)} end)
      [{[:slope], 1.5}, {[:sub, :x], 2}]

  Choicemaps implement `Enumerable` (pairs `{path, value}`, one per value)
  and `Access` (`cm[:x]` is the value at `:x`, or the submap if `:x` holds
  one).
  """

  @behaviour Access

  defstruct value: nil, subs: %{}

  @typedoc "An address: any term but a list."
  @type address :: term()
  @typedoc "An address, or a list of addresses from the root."
  @type path :: address() | [address()]
  @type t :: %__MODULE__{value: Mx.t() | nil, subs: %{optional(address()) => t()}}

  @doc """
  The empty choicemap.

      iex> Gen.Choicemap.new() |> Gen.Choicemap.empty?()
      true
  """
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc """
  A choicemap from a (nested) map of `address => value | map | choicemap`,
  or from a list of `{address_or_path, value}` pairs. Raises
  `ArgumentError` on a malformed entry or an address given twice.

      iex> cm = Gen.Choicemap.new([{:a, 1.0}, {[:b, :c], 2.0}])
      iex> Gen.Choicemap.get(cm, [:b, :c]) |> Mx.to_number()
      2.0
  """
  @spec new(map() | [{path(), term()}] | t()) :: t()
  def new(%__MODULE__{} = cm), do: cm

  def new(map) when is_map(map) and not is_struct(map) do
    Enum.reduce(map, new(), fn {addr, v}, acc -> put_new!(acc, addr, v) end)
  end

  def new(list) when is_list(list) do
    Enum.reduce(list, new(), fn
      {addr, v}, acc ->
        put_new!(acc, addr, v)

      other, _ ->
        raise ArgumentError,
              "Gen.choicemap/1: expected {address_or_path, value} pairs in the list, got #{inspect(other)}"
    end)
  end

  def new(other) do
    raise ArgumentError,
          "Gen.choicemap/1 expects a map, a list of {address_or_path, value} pairs or a Gen.Choicemap, got #{inspect(other)}"
  end

  @doc """
  A choicemap holding `value` at the root (the empty address), as a
  distribution's trace does.

      iex> Gen.Choicemap.leaf(2.0) |> Gen.Choicemap.get([]) |> Mx.to_number()
      2.0
  """
  @spec leaf(term()) :: t()
  def leaf(value), do: %__MODULE__{value: to_value!(value, [])}

  @doc """
  Sets `value` at `path`, replacing what was there (a value or a submap).
  Raises if a prefix of `path` holds a value.

      iex> cm = Gen.Choicemap.new() |> Gen.Choicemap.put([:a, :b], 1.0)
      iex> Gen.Choicemap.has_value?(cm, [:a, :b])
      true
  """
  @spec put(t(), path(), term()) :: t()
  def put(%__MODULE__{} = cm, path, value) do
    p = path!(path)
    put_submap(cm, p, %__MODULE__{value: to_value!(value, p)})
  end

  @doc """
  Sets the submap at `path` (an empty `submap` removes what was there).
  Raises if a prefix of `path` holds a value.

      iex> sub = Gen.choicemap(%{x: 1.0})
      iex> cm = Gen.Choicemap.new() |> Gen.Choicemap.put_submap(:sub, sub)
      iex> Gen.Choicemap.get(cm, [:sub, :x]) |> Mx.to_number()
      1.0
  """
  @spec put_submap(t(), path(), t()) :: t()
  def put_submap(%__MODULE__{} = cm, path, %__MODULE__{} = sub), do: do_put(cm, path!(path), sub, [])

  defp do_put(_cm, [], sub, _seen), do: sub

  defp do_put(%__MODULE__{value: v}, [_ | _], _sub, seen) when v != nil do
    raise ArgumentError, "Gen.Choicemap: cannot put under #{format_path(Enum.reverse(seen))}, which holds a value"
  end

  defp do_put(%__MODULE__{subs: subs} = cm, [a | rest], sub, seen) do
    child = do_put(Map.get(subs, a, %__MODULE__{}), rest, sub, [a | seen])
    if empty?(child), do: %{cm | subs: Map.delete(subs, a)}, else: %{cm | subs: Map.put(subs, a, child)}
  end

  @doc """
  The value at `address_or_path`; raises `KeyError` naming the address if
  there is none.

      iex> Gen.choicemap(%{x: 3.0}) |> Gen.Choicemap.get(:x) |> Mx.to_number()
      3.0
  """
  @spec get(t(), path()) :: Mx.t()
  def get(%__MODULE__{} = cm, path) do
    case fetch(cm, path) do
      {:ok, %__MODULE__{}} -> raise KeyError, "Gen.Choicemap: #{format_path(path!(path))} holds a submap, not a value"
      {:ok, v} -> v
      :error -> raise KeyError, "Gen.Choicemap: no value at #{format_path(path!(path))}"
    end
  end

  @doc """
  `Access` lookup: `{:ok, value}` if `address_or_path` holds a value,
  `{:ok, submap}` if it holds a non-empty submap, `:error` otherwise.

      iex> cm = Gen.choicemap(%{a: %{b: 1.0}})
      iex> cm[[:a, :b]] |> Mx.to_number()
      1.0
      iex> cm[:zzz]
      nil
  """
  @impl Access
  @spec fetch(t(), path()) :: {:ok, Mx.t() | t()} | :error
  def fetch(%__MODULE__{} = cm, path) do
    sub = get_submap(cm, path)

    cond do
      sub.value != nil -> {:ok, sub.value}
      map_size(sub.subs) > 0 -> {:ok, sub}
      true -> :error
    end
  end

  @impl Access
  def get_and_update(_cm, _key, _fun), do: raise(ArgumentError, "Gen.Choicemap is immutable through Access: use put/3")

  @impl Access
  def pop(_cm, _key), do: raise(ArgumentError, "Gen.Choicemap is immutable through Access: use put_submap/3 with an empty map")

  @doc """
  Whether `address_or_path` holds a value.

      iex> Gen.choicemap(%{x: 1.0}) |> Gen.Choicemap.has_value?(:x)
      true
  """
  @spec has_value?(t(), path()) :: boolean()
  def has_value?(%__MODULE__{} = cm, path), do: get_submap(cm, path).value != nil

  @doc """
  The submap at `address_or_path`: empty if there is nothing, a leaf
  choicemap (`leaf/1`) if the address holds a value.

      iex> cm = Gen.choicemap(%{sub: %{x: 1.0, y: 2.0}})
      iex> Gen.Choicemap.get_submap(cm, :sub) |> Enum.count()
      2
  """
  @spec get_submap(t(), path()) :: t()
  def get_submap(%__MODULE__{} = cm, path), do: do_get_submap(cm, path!(path))

  defp do_get_submap(cm, []), do: cm
  defp do_get_submap(%__MODULE__{subs: subs}, [a | rest]), do: do_get_submap(Map.get(subs, a, %__MODULE__{}), rest)

  @doc """
  Whether the choicemap holds no value at all.

      iex> Gen.Choicemap.empty?(Gen.choicemap(%{}))
      true
  """
  @spec empty?(t()) :: boolean()
  def empty?(%__MODULE__{value: nil, subs: subs}) when map_size(subs) == 0, do: true
  def empty?(%__MODULE__{}), do: false

  @doc """
  The union of two choicemaps; raises if both hold something at the same
  address (a value on either side).

      iex> m = Gen.Choicemap.merge(Gen.choicemap(%{a: 1.0}), Gen.choicemap(%{b: %{c: 2.0}}))
      iex> Enum.map(m, fn {p, _} -> p end)
      [[:a], [:b, :c]]
  """
  @spec merge(t(), t()) :: t()
  def merge(%__MODULE__{} = a, %__MODULE__{} = b), do: do_merge(a, b, [])

  defp do_merge(a, b, seen) do
    cond do
      empty?(a) ->
        b

      empty?(b) ->
        a

      a.value != nil or b.value != nil ->
        raise ArgumentError,
              "Gen.Choicemap.merge/2: both choicemaps hold choices at #{format_path(Enum.reverse(seen))}"

      true ->
        subs = Map.merge(a.subs, b.subs, fn k, x, y -> do_merge(x, y, [k | seen]) end)
        %__MODULE__{subs: subs}
    end
  end

  @doc """
  A nested plain map of `address => value | map`; a leaf choicemap gives its
  value.

      iex> Gen.choicemap(%{a: %{b: 1}}) |> Gen.Choicemap.to_map() |> get_in([:a, :b]) |> Mx.to_number()
      1
  """
  @spec to_map(t()) :: map() | Mx.t()
  def to_map(%__MODULE__{value: v}) when v != nil, do: v
  def to_map(%__MODULE__{subs: subs}), do: Map.new(subs, fn {k, sub} -> {k, to_map(sub)} end)

  @doc """
  The `{path, value}` pairs of every value, paths as lists, in address order.

      iex> Gen.choicemap(%{b: 1, a: %{c: 2}}) |> Gen.Choicemap.to_list() |> Enum.map(&elem(&1, 0))
      [[:a, :c], [:b]]
  """
  @spec to_list(t()) :: [{[address()], Mx.t()}]
  def to_list(%__MODULE__{} = cm), do: cm |> flatten([], []) |> Enum.reverse()

  defp flatten(%__MODULE__{value: v}, rev_path, acc) when v != nil, do: [{Enum.reverse(rev_path), v} | acc]

  defp flatten(%__MODULE__{subs: subs}, rev_path, acc) do
    subs |> Enum.sort_by(&elem(&1, 0)) |> Enum.reduce(acc, fn {k, sub}, acc -> flatten(sub, [k | rev_path], acc) end)
  end

  @doc false
  # A path list from an address or a path; lists are paths.
  @spec path!(path()) :: [address()]
  def path!(path) when is_list(path), do: path
  def path!(addr), do: [addr]

  @doc false
  def format_path([]), do: "the root address []"
  def format_path([a]), do: "address #{inspect(a)}"
  def format_path(path) when is_list(path), do: "address #{inspect(path)}"

  defp put_new!(acc, addr, v) do
    p = path!(addr)

    if p == [] do
      raise ArgumentError, "Gen.choicemap/1: the empty path [] is not an address; use Gen.Choicemap.leaf/1 for a root value"
    end

    sub =
      case v do
        %__MODULE__{} -> v
        m when is_map(m) and not is_struct(m) -> new(m)
        _ -> %__MODULE__{value: to_value!(v, p)}
      end

    existing = get_submap(acc, p)

    if not empty?(existing) do
      raise ArgumentError, "Gen.choicemap/1: #{format_path(p)} is given twice"
    end

    put_submap(acc, p, sub)
  end

  @doc false
  # Numbers, booleans, numeric lists and Mx arrays are values; floats become f64.
  def to_value!(%Mx.Array{} = a, _path), do: a
  def to_value!(x, _path) when is_float(x), do: Mx.tensor(x, type: :f64)
  def to_value!(x, _path) when is_integer(x) or is_boolean(x), do: Mx.tensor(x)

  def to_value!([_ | _] = list, path) do
    t =
      try do
        Mx.tensor(list)
      rescue
        _ -> malformed!(list, path)
      end

    if Mx.type(t) == :f32, do: Mx.tensor(list, type: :f64), else: t
  end

  def to_value!(other, path), do: malformed!(other, path)

  defp malformed!(v, path) do
    raise ArgumentError,
          "Gen.Choicemap: the value at #{format_path(path)} must be a number, a boolean, a numeric list or an Mx array, got #{inspect(v)}"
  end
end

defimpl Enumerable, for: Gen.Choicemap do
  def count(cm), do: {:ok, length(Gen.Choicemap.to_list(cm))}
  def member?(_cm, _x), do: {:error, __MODULE__}
  def slice(_cm), do: {:error, __MODULE__}
  def reduce(cm, acc, fun), do: Enumerable.List.reduce(Gen.Choicemap.to_list(cm), acc, fun)
end

defimpl Inspect, for: Gen.Choicemap do
  # A tree, one line per address; values are read (evaluated) to be shown.
  def inspect(cm, _opts) do
    if Gen.Choicemap.empty?(cm) do
      "#Gen.Choicemap<empty>"
    else
      "#Gen.Choicemap<\n" <> Enum.join(lines(cm, ""), "\n") <> "\n>"
    end
  end

  defp lines(%Gen.Choicemap{value: v}, indent) when v != nil, do: [indent <> "  " <> show(v)]

  defp lines(%Gen.Choicemap{subs: subs}, indent) do
    entries = Enum.sort_by(subs, &elem(&1, 0))
    last = length(entries) - 1

    entries
    |> Enum.with_index()
    |> Enum.flat_map(fn {{k, sub}, i} ->
      {branch, cont} = if i == last, do: {"└── ", "    "}, else: {"├── ", "│   "}

      case sub do
        %Gen.Choicemap{value: v} when v != nil -> ["  " <> indent <> branch <> inspect(k) <> ": " <> show(v)]
        _ -> ["  " <> indent <> branch <> inspect(k) | lines(sub, indent <> cont)]
      end
    end)
  end

  defp show(%Mx.Array{} = a) do
    cond do
      Mx.shape(a) == {} -> inspect(Mx.to_number(a))
      Mx.size(a) <= 8 -> inspect(Mx.to_list(a))
      true -> "#{Mx.type(a)}#{inspect(Mx.shape(a))}"
    end
  end
end
