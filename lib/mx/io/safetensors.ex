defmodule Mx.IO.Safetensors do
  @moduledoc false
  # safetensors (https://github.com/huggingface/safetensors, format as of v0.4): an 8-byte
  # little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}} plus an
  # optional "__metadata__" string map, then the data; offsets are relative to the data and
  # the tensors must tile it exactly (the reference reader's rule).

  alias Mx.IO.{JSON, Reader}

  @dtypes %{
    "BOOL" => :bool,
    "U8" => :u8,
    "I8" => :s8,
    "U16" => :u16,
    "I16" => :s16,
    "U32" => :u32,
    "I32" => :s32,
    "U64" => :u64,
    "I64" => :s64,
    "F16" => :f16,
    "BF16" => :bf16,
    "F32" => :f32,
    "F64" => :f64,
    "C64" => :c64
  }
  @names Map.new(@dtypes, fn {k, v} -> {v, k} end)

  # The reference implementation refuses headers over 100 MB.
  @max_header 100_000_000

  @spec load(Path.t(), boolean()) :: map() | {map(), map()}
  def load(path, metadata?) do
    fun = "Mx.IO.load_safetensors"

    Reader.with_file(path, fun, fn r ->
      <<n::unsigned-little-64>> = Reader.pread!(r, 0, 8, "the header length")

      cond do
        n > r.size - 8 ->
          Reader.fail!(
            r,
            "the header length #{n} runs past the end of the file (#{r.size} bytes); the file is truncated or not safetensors"
          )

        n > @max_header ->
          Reader.fail!(r, "the header length #{n} is over the limit of #{@max_header} bytes")

        n < 2 ->
          Reader.fail!(r, "the header length #{n} is too small for a JSON object")

        true ->
          :ok
      end

      header =
        case JSON.decode(Reader.pread!(r, 8, n, "the header")) do
          {:ok, %{} = h} -> h
          {:ok, other} -> Reader.fail!(r, "the header is JSON but not an object: #{inspect(other, limit: 5)}")
          {:error, why} -> Reader.fail!(r, "the header is not valid JSON: #{why}")
        end

      {meta, entries} = Map.pop(header, "__metadata__")
      meta = check_metadata!(r, meta)
      data_start = 8 + n
      data_size = r.size - data_start
      infos = entries |> Enum.map(&info!(r, &1)) |> Enum.sort_by(&{elem(&1, 3), elem(&1, 4)})
      check_tiling!(r, infos, data_size)

      arrays = Map.new(infos, fn {name, type, shape, b, _e} -> {name, Reader.tensor!(r, name, data_start + b, type, shape)} end)
      if metadata?, do: {arrays, meta}, else: arrays
    end)
  end

  defp check_metadata!(_r, nil), do: %{}

  defp check_metadata!(r, %{} = m) do
    Enum.each(m, fn
      {_k, v} when is_binary(v) -> :ok
      {k, v} -> Reader.fail!(r, "__metadata__ must map strings to strings; #{inspect(k)} holds #{inspect(v, limit: 5)}")
    end)

    m
  end

  defp check_metadata!(r, other),
    do: Reader.fail!(r, "__metadata__ must be an object of strings, got #{inspect(other, limit: 5)}")

  defp info!(r, {name, %{"dtype" => dt, "shape" => shape, "data_offsets" => offs} = e}) when map_size(e) == 3 do
    type =
      case @dtypes do
        %{^dt => t} ->
          t

        _ ->
          Reader.fail!(
            r,
            "tensor #{inspect(name)}: unknown or unsupported dtype #{inspect(dt)}; Mx reads #{Enum.join(Enum.sort(Map.keys(@dtypes)), ", ")}"
          )
      end

    bytes = Reader.check_shape!(r, name, shape, type)

    case offs do
      [b, e] when is_integer(b) and is_integer(e) and b >= 0 and e >= b ->
        if e - b != bytes,
          do:
            Reader.fail!(
              r,
              "tensor #{inspect(name)}: data_offsets [#{b}, #{e}] hold #{e - b} bytes but #{type} #{inspect(shape)} needs #{bytes}"
            )

        {name, type, shape, b, e}

      _ ->
        Reader.fail!(
          r,
          "tensor #{inspect(name)}: data_offsets must be [begin, end] with 0 <= begin <= end, got #{inspect(offs, limit: 5)}"
        )
    end
  end

  defp info!(r, {name, entry}),
    do:
      Reader.fail!(
        r,
        "tensor #{inspect(name)}: an entry must be {\"dtype\", \"shape\", \"data_offsets\"} and nothing else, got #{inspect(entry, limit: 8)}"
      )

  # Sorted by offset, each tensor starts where the previous ended and the last ends the file.
  defp check_tiling!(r, infos, data_size) do
    last =
      Enum.reduce(infos, {nil, 0}, fn {name, _t, _s, b, e}, {prev, pos} ->
        cond do
          b < pos ->
            Reader.fail!(
              r,
              "tensor #{inspect(name)}: its bytes [#{b}, #{e}) overlap tensor #{inspect(prev)}'s, which end at #{pos}"
            )

          b > pos ->
            Reader.fail!(
              r,
              "tensor #{inspect(name)}: a gap of #{b - pos} unclaimed bytes before it at #{pos}; the offsets must tile the data"
            )

          true ->
            {name, e}
        end
      end)

    case last do
      {_, ^data_size} ->
        :ok

      {name, pos} when pos > data_size ->
        Reader.fail!(
          r,
          "tensor #{inspect(name)}: its bytes end at #{pos}, past the #{data_size} bytes of data; the file is truncated"
        )

      {_, pos} ->
        Reader.fail!(r, "the tensors end at byte #{pos} of the data but the data has #{data_size} bytes")
    end
  end

  @spec save(Path.t(), map(), map()) :: :ok
  def save(path, arrays, metadata) do
    fun = "Mx.IO.save_safetensors"
    named = check_arrays!(arrays, fun)

    unless is_map(metadata) and Enum.all?(metadata, fn {k, v} -> is_binary(k) and is_binary(v) end),
      do: raise(ArgumentError, "#{fun}: metadata: must be a map of strings to strings, got #{inspect(metadata, limit: 5)}")

    {entries, _end} =
      Enum.map_reduce(named, 0, fn {name, a}, pos ->
        dtype =
          Map.get(@names, a.type) ||
            raise ArgumentError,
                  "#{fun}: tensor #{inspect(name)} is #{a.type}, which safetensors cannot store; convert it with Mx.as_type/2"

        e = pos + Mx.size(a) * Mx.Type.byte_size(a.type)
        {{name, {:object, [{"dtype", dtype}, {"shape", Tuple.to_list(a.shape)}, {"data_offsets", [pos, e]}]}}, e}
      end)

    meta = if metadata == %{}, do: [], else: [{"__metadata__", metadata}]
    json = IO.iodata_to_binary(JSON.encode({:object, meta ++ entries}))
    # Padded with spaces so the data starts 8-byte aligned, as the reference writer does.
    json = json <> :binary.copy(" ", rem(8 - rem(byte_size(json), 8), 8))

    Reader.write_atomically!(path, fun, fn write ->
      write.(<<byte_size(json)::unsigned-little-64>>)
      write.(json)
      Enum.each(named, fn {_name, a} -> write.(Mx.to_binary(a)) end)
    end)
  end

  @doc false
  # {name, array} pairs sorted by name, checking names and values.
  def check_arrays!(arrays, fun) when is_map(arrays) do
    arrays
    |> Enum.map(fn
      {name, %Mx.Array{} = a} when is_binary(name) and name != "" ->
        {name, a}

      {name, a} when is_atom(name) and not is_nil(name) and is_struct(a, Mx.Array) ->
        {Atom.to_string(name), a}

      {name, other} ->
        raise ArgumentError,
              "#{fun}: #{inspect(name)} => #{inspect(other, limit: 5)}: the map must hold non-empty string (or atom) names and Mx arrays"
    end)
    |> Enum.sort()
    |> tap(fn named ->
      if "__metadata__" in Enum.map(named, &elem(&1, 0)),
        do: raise(ArgumentError, "#{fun}: \"__metadata__\" is reserved; pass metadata: instead")

      dups = named |> Enum.frequencies_by(&elem(&1, 0)) |> Enum.filter(&(elem(&1, 1) > 1))

      if dups != [],
        do:
          raise(
            ArgumentError,
            "#{fun}: the names #{inspect(Enum.map(dups, &elem(&1, 0)))} appear twice (as a string and an atom)"
          )
    end)
  end

  def check_arrays!(other, fun),
    do: raise(ArgumentError, "#{fun}: expected a map of names to Mx arrays, got #{inspect(other, limit: 5)}")
end
