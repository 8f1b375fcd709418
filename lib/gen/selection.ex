defmodule Gen.Selection do
  @moduledoc """
  A set of addresses, possibly infinite: Gen.jl's `Selection`. Selecting an
  address selects everything under it. Build one with `Gen.select/1`, or
  `all/0`, `none/0`, `complement/1`.

      iex> s = Gen.select([:slope, [:sub, :x]])
      iex> {Gen.Selection.member?(s, :slope), Gen.Selection.member?(s, [:sub, :x, :deeper]), Gen.Selection.member?(s, :sub)}
      {true, true, false}
      iex> c = Gen.Selection.complement(s)
      iex> {Gen.Selection.member?(c, :slope), Gen.Selection.member?(c, :intercept)}
      {false, true}
  """

  alias Gen.Choicemap

  # kind :all selects everything; :tree selects the subtrees in `subs`
  # (none/0 is an empty tree); :complement selects what `inner` does not.
  defstruct kind: :tree, subs: %{}, inner: nil

  @type t :: %__MODULE__{kind: :all | :tree | :complement, subs: map(), inner: t() | nil}

  @doc """
  The selection of every address.

      iex> Gen.Selection.all() |> Gen.Selection.member?([:any, :path])
      true
  """
  @spec all() :: t()
  def all, do: %__MODULE__{kind: :all}

  @doc """
  The empty selection.

      iex> Gen.Selection.none() |> Gen.Selection.member?(:x)
      false
  """
  @spec none() :: t()
  def none, do: %__MODULE__{}

  @doc """
  Everything `selection` does not select.

      iex> Gen.Selection.complement(Gen.Selection.none()) |> Gen.Selection.member?(:x)
      true
  """
  @spec complement(t()) :: t()
  def complement(%__MODULE__{kind: :complement, inner: inner}), do: inner
  def complement(%__MODULE__{} = s), do: %__MODULE__{kind: :complement, inner: s}

  @doc """
  A selection of the given addresses and paths (`Gen.select/1`). A list is
  read as a list of addresses or paths; anything else as one address.

      iex> Gen.Selection.new([[:a, :b], :c]) |> Gen.Selection.member?([:a, :b])
      true
  """
  @spec new(Choicemap.path() | [Choicemap.path()]) :: t()
  def new(addrs) when is_list(addrs) do
    Enum.reduce(addrs, none(), fn addr, acc ->
      case Choicemap.path!(addr) do
        [] -> raise ArgumentError, "Gen.select/1: the empty path [] is not an address; use Gen.Selection.all/0"
        p -> add(acc, p)
      end
    end)
  end

  def new(addr), do: new([addr])

  defp add(%__MODULE__{kind: :all} = s, _path), do: s
  defp add(%__MODULE__{}, []), do: all()

  defp add(%__MODULE__{kind: :tree, subs: subs} = s, [a | rest]) do
    %{s | subs: Map.put(subs, a, add(Map.get(subs, a, none()), rest))}
  end

  @doc """
  Whether `address_or_path` is selected (an address is selected when it or
  one of its prefixes was selected).

      iex> Gen.select(:a) |> Gen.Selection.member?([:a, :b])
      true
  """
  @spec member?(t(), Choicemap.path()) :: boolean()
  def member?(%__MODULE__{} = s, path), do: do_member?(s, Choicemap.path!(path))

  defp do_member?(%__MODULE__{kind: :all}, _), do: true
  defp do_member?(%__MODULE__{kind: :complement, inner: inner}, p), do: not do_member?(inner, p)
  defp do_member?(%__MODULE__{kind: :tree}, []), do: false
  defp do_member?(%__MODULE__{kind: :tree, subs: subs}, [a | rest]), do: do_member?(Map.get(subs, a, none()), rest)

  @doc """
  The selection under `address_or_path` (Gen.jl's `selection[addr]`).

      iex> Gen.select([[:sub, :x]]) |> Gen.Selection.subselection(:sub) |> Gen.Selection.member?(:x)
      true
  """
  @spec subselection(t(), Choicemap.path()) :: t()
  def subselection(%__MODULE__{} = s, path), do: Enum.reduce(Choicemap.path!(path), s, &sub1(&2, &1))

  defp sub1(%__MODULE__{kind: :all} = s, _a), do: s
  defp sub1(%__MODULE__{kind: :tree, subs: subs}, a), do: Map.get(subs, a, none())
  defp sub1(%__MODULE__{kind: :complement, inner: inner}, a), do: complement(sub1(inner, a))

  @doc """
  Whether the selection selects nothing (only decidable for finite ones:
  a complement is taken as non-empty).

      iex> Gen.Selection.empty?(Gen.Selection.none())
      true
  """
  @spec empty?(t()) :: boolean()
  def empty?(%__MODULE__{kind: :tree, subs: subs}), do: Enum.all?(subs, fn {_, s} -> empty?(s) end)
  def empty?(%__MODULE__{}), do: false
end

defimpl Inspect, for: Gen.Selection do
  def inspect(%Gen.Selection{kind: :all}, _), do: "#Gen.Selection<all>"
  def inspect(%Gen.Selection{kind: :complement, inner: i}, opts), do: "#Gen.Selection<complement of #{Inspect.inspect(i, opts)}>"

  def inspect(s, _opts) do
    paths = paths(s, [])
    if paths == [], do: "#Gen.Selection<none>", else: "#Gen.Selection<#{Enum.map_join(paths, ", ", &inspect/1)}>"
  end

  defp paths(%Gen.Selection{kind: :all}, rev), do: [Enum.reverse(rev)]
  defp paths(%Gen.Selection{kind: :complement} = c, rev), do: [{Enum.reverse(rev), c}]
  defp paths(%Gen.Selection{subs: subs}, rev), do: subs |> Enum.sort() |> Enum.flat_map(fn {k, s} -> paths(s, [k | rev]) end)
end
