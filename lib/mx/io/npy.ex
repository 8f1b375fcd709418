defmodule Mx.IO.Npy do
  @moduledoc false
  # NumPy's .npy (format versions 1.0, 2.0 and 3.0, numpy/lib/format.py) and .npz (a zip of
  # .npy members, stored or deflated). Big-endian and Fortran-order arrays are read too.

  import Bitwise
  alias Mx.IO.Reader

  @kinds %{
    "b1" => :bool,
    "u1" => :u8,
    "i1" => :s8,
    "u2" => :u16,
    "i2" => :s16,
    "u4" => :u32,
    "i4" => :s32,
    "u8" => :u64,
    "i8" => :s64,
    "f2" => :f16,
    "f4" => :f32,
    "f8" => :f64,
    "c8" => :c64,
    "c16" => :c128
  }
  @descr Map.new(@kinds, fn {k, v} -> {v, k} end)

  # ---- .npy ----------------------------------------------------------------------------

  @spec load(Path.t()) :: Mx.t()
  def load(path) do
    Reader.with_file(path, "Mx.IO.load_npy", fn r -> read_member(r, "the array", 0, r.size) end)
  end

  # The .npy stored in bytes [start, start + len) of the file.
  defp read_member(r, name, start, len) do
    {type, order, shape, data_off, swap?} = header!(r, name, fn off, n, what -> Reader.pread!(r, start + off, n, what) end, len)
    bytes = Reader.check_shape!(r, name, shape, type)

    if data_off + bytes != len,
      do:
        Reader.fail!(
          r,
          "#{name}: the header promises #{bytes} bytes of #{type} #{inspect(shape)} but #{len - data_off} follow it"
        )

    stored_shape = if order == :fortran, do: Enum.reverse(shape), else: shape

    a =
      if swap? do
        r |> Reader.pread!(start + data_off, bytes, "#{name}'s data") |> from_bytes(type, stored_shape, true)
      else
        Reader.tensor!(r, name, start + data_off, type, stored_shape)
      end

    fortran(a, order)
  end

  # The .npy held in memory (a deflated npz member).
  defp parse_binary(r, name, bin) do
    len = byte_size(bin)

    read = fn off, n, what ->
      if off + n > len,
        do: Reader.fail!(r, "#{name}: #{what} needs bytes #{off}..#{off + n} of the member but it has #{len}; it is truncated"),
        else: binary_part(bin, off, n)
    end

    {type, order, shape, data_off, swap?} = header!(r, name, read, len)
    bytes = Reader.check_shape!(r, name, shape, type)

    if data_off + bytes != len,
      do:
        Reader.fail!(
          r,
          "#{name}: the header promises #{bytes} bytes of #{type} #{inspect(shape)} but #{len - data_off} follow it"
        )

    stored_shape = if order == :fortran, do: Enum.reverse(shape), else: shape
    binary_part(bin, data_off, bytes) |> from_bytes(type, stored_shape, swap?) |> fortran(order)
  end

  defp from_bytes(bin, type, shape, swap?) do
    bin = if swap?, do: swap(bin, type), else: bin
    Mx.from_binary(bin, type, shape: List.to_tuple(shape))
  end

  # Complex numbers swap each part; every other type swaps whole elements.
  defp swap(bin, type) do
    n = if type in [:c64, :c128], do: div(Mx.Type.byte_size(type), 2), else: Mx.Type.byte_size(type)
    for <<x::binary-size(n) <- bin>>, into: <<>>, do: x |> :binary.bin_to_list() |> Enum.reverse() |> :binary.list_to_bin()
  end

  defp fortran(a, :c), do: a
  defp fortran(a, :fortran), do: Mx.transpose(a, axes: Enum.to_list((Mx.rank(a) - 1)..0//-1))

  # {type, :c | :fortran, shape, data offset, byte-swap?}; read.(offset, n, what) gives bytes.
  defp header!(r, name, read, len) do
    if len < 10, do: Reader.fail!(r, "#{name}: #{len} bytes is too short for a .npy file")

    {major, hlen, hstart} =
      case read.(0, 8, "the magic string") do
        <<0x93, "NUMPY", 1, _minor>> ->
          <<n::unsigned-little-16>> = read.(8, 2, "the header length")
          {1, n, 10}

        <<0x93, "NUMPY", v, _minor>> when v in [2, 3] ->
          <<n::unsigned-little-32>> = read.(8, 4, "the header length")
          {v, n, 12}

        <<0x93, "NUMPY", v, minor>> ->
          Reader.fail!(r, "#{name}: .npy format version #{v}.#{minor} is not supported (1.0, 2.0 and 3.0 are)")

        _ ->
          Reader.fail!(r, "#{name}: not a .npy file (no \\x93NUMPY magic)")
      end

    if hstart + hlen > len, do: Reader.fail!(r, "#{name}: the header length #{hlen} runs past the end (#{len} bytes)")
    text = read.(hstart, hlen, "the header")
    text = if major == 3, do: text, else: latin1_ok!(r, name, text)
    {type, order, shape, swap?} = parse_dict!(r, name, text)
    {type, order, shape, hstart + hlen, swap?}
  end

  defp latin1_ok!(r, name, text) do
    if String.valid?(text) and String.printable?(String.trim_trailing(text)),
      do: text,
      else: Reader.fail!(r, "#{name}: the header is not printable text")
  end

  # The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
  @dict ~r/^\{\s*(?:'(descr|fortran_order|shape)'\s*:\s*('[^']*'|True|False|\([0-9,\sL]*\))\s*,?\s*){3}\}\s*$/
  @entry ~r/'(descr|fortran_order|shape)'\s*:\s*('[^']*'|True|False|\([0-9,\sL]*\))/

  defp parse_dict!(r, name, text) do
    unless Regex.match?(@dict, text),
      do:
        Reader.fail!(
          r,
          "#{name}: the header #{inspect(String.slice(text, 0, 120))} is not a dict of descr, fortran_order and shape"
        )

    fields = @entry |> Regex.scan(text, capture: :all_but_first) |> Map.new(fn [k, v] -> {k, v} end)
    if map_size(fields) != 3, do: Reader.fail!(r, "#{name}: the header repeats a key: #{inspect(text)}")

    {type, swap?} = descr!(r, name, String.trim(fields["descr"], "'"))

    order =
      case fields["fortran_order"] do
        "False" -> :c
        "True" -> :fortran
        other -> Reader.fail!(r, "#{name}: fortran_order must be True or False, got #{other}")
      end

    shape = shape!(r, name, fields["shape"])
    {type, order, shape, swap?}
  end

  defp descr!(r, name, descr) do
    {endian, kind} =
      case descr do
        <<e, rest::binary>> when e in [?<, ?>, ?|, ?=] -> {e, rest}
        rest -> {?|, rest}
      end

    type =
      Map.get(@kinds, kind) ||
        Reader.fail!(r, "#{name}: dtype #{inspect(descr)} is not supported; Mx reads bool, integers, f2/f4/f8 and c8/c16")

    one_byte? = Mx.Type.byte_size(type) == 1

    cond do
      endian == ?> and not one_byte? -> {type, true}
      endian == ?| and not one_byte? -> Reader.fail!(r, "#{name}: dtype #{inspect(descr)} gives no byte order")
      true -> {type, false}
    end
  end

  defp shape!(r, name, text) do
    inner = text |> String.trim_leading("(") |> String.trim_trailing(")")
    parts = inner |> String.split(",") |> Enum.map(&String.trim/1)

    parts =
      case parts do
        [""] -> []
        [x] -> if String.contains?(inner, ","), do: [x], else: Reader.fail!(r, "#{name}: the shape #{text} is not a tuple")
        many -> if List.last(many) == "", do: Enum.drop(many, -1), else: many
      end

    Enum.map(parts, fn p ->
      case Integer.parse(String.trim_trailing(p, "L")) do
        {n, ""} -> n
        _ -> Reader.fail!(r, "#{name}: the shape #{text} holds #{inspect(p)}, not an integer")
      end
    end)
  end

  @spec encode(Mx.t(), String.t(), String.t()) :: iodata()
  def encode(%Mx.Array{} = a, fun, name) do
    descr =
      Map.get(@descr, a.type) ||
        raise ArgumentError, "#{fun}: #{name} is #{a.type}, which NumPy has no dtype for; convert it with Mx.as_type(a, :f32)"

    descr = if Mx.Type.byte_size(a.type) == 1, do: "|" <> descr, else: "<" <> descr

    shape =
      case Tuple.to_list(a.shape) do
        [d] -> "(#{d},)"
        dims -> "(" <> Enum.join(dims, ", ") <> ")"
      end

    dict = "{'descr': '#{descr}', 'fortran_order': False, 'shape': #{shape}, }"
    # Magic, version, length and dict padded with spaces to a multiple of 64 bytes, ending in \n.
    {version, prefix} = if byte_size(dict) + 11 < 65_536, do: {1, 10}, else: {2, 12}
    pad = rem(64 - rem(prefix + byte_size(dict) + 1, 64), 64)
    header = dict <> :binary.copy(" ", pad) <> "\n"
    len = if version == 1, do: <<byte_size(header)::unsigned-little-16>>, else: <<byte_size(header)::unsigned-little-32>>
    [<<0x93, "NUMPY", version, 0>>, len, header, Mx.to_binary(a)]
  end

  @spec save(Path.t(), Mx.t()) :: :ok
  def save(path, %Mx.Array{} = a) do
    fun = "Mx.IO.save_npy"
    data = encode(a, fun, "the array")
    Reader.write_atomically!(path, fun, fn write -> write.(data) end)
  end

  def save(_path, other), do: raise(ArgumentError, "Mx.IO.save_npy: expected an Mx array, got #{inspect(other, limit: 5)}")

  # ---- .npz ------------------------------------------------------------------------------

  @spec load_npz(Path.t()) :: map()
  def load_npz(path) do
    Reader.with_file(path, "Mx.IO.load_npz", fn r ->
      r
      |> members!()
      |> Map.new(fn {name, entry} -> {String.replace_suffix(name, ".npy", ""), member!(r, name, entry)} end)
    end)
  end

  defp members!(r) do
    entries =
      try do
        :zip.list_dir(String.to_charlist(r.path))
      catch
        kind, why -> {:error, {kind, why}}
      end

    case entries do
      {:ok, [_comment | files]} ->
        files = for {:zip_file, name, info, _c, offset, comp} <- files, do: {List.to_string(name), {offset, comp, elem(info, 1)}}
        names = Enum.map(files, &elem(&1, 0))
        if length(Enum.uniq(names)) != length(names), do: Reader.fail!(r, "the archive names a member twice")

        Enum.each(names, fn n ->
          unless String.ends_with?(n, ".npy"), do: Reader.fail!(r, "member #{inspect(n)} is not a .npy file")
        end)

        files

      {:error, why} ->
        Reader.fail!(r, "not a readable zip archive (#{inspect(why, limit: 5)})")
    end
  end

  # A stored member is read by offset from the file; a deflated one is inflated alone.
  defp member!(r, name, {offset, comp, size}) do
    what = "member #{inspect(name)}"

    <<sig::unsigned-little-32, _ver::16, flags::unsigned-little-16, method::unsigned-little-16, _time::32,
      crc::unsigned-little-32, _sizes::64, nlen::unsigned-little-16,
      elen::unsigned-little-16>> = Reader.pread!(r, offset, 30, "#{what}'s local header")

    if sig != 0x04034B50, do: Reader.fail!(r, "#{what}: no local file header at #{offset}")
    if band(flags, 1) == 1, do: Reader.fail!(r, "#{what} is encrypted")

    # With bit 3 set the CRC follows the data, so the member goes through :zip, which checks it.
    case {method, band(flags, 8)} do
      {0, 0} ->
        if comp != size, do: Reader.fail!(r, "#{what} is stored but its sizes differ (#{comp} and #{size})")
        start = offset + 30 + nlen + elen
        check_crc!(r, what, start, comp, crc)
        read_member(r, what, start, comp)

      {m, _} when m in [0, 8] ->
        bin = inflate!(r, name, what)

        if byte_size(bin) != size,
          do: Reader.fail!(r, "#{what} inflates to #{byte_size(bin)} bytes, not the #{size} its entry says")

        parse_binary(r, what, bin)

      {m, _} ->
        Reader.fail!(r, "#{what} uses zip compression method #{m}; only stored (0) and deflated (8) are supported")
    end
  end

  @crc_chunk 1 <<< 22

  # A second pass over the member in chunks: the CRC is checked without holding its bytes.
  defp check_crc!(r, what, start, len, crc) do
    got =
      Enum.reduce(0..(len - 1)//@crc_chunk, :erlang.crc32(<<>>), fn at, acc ->
        :erlang.crc32(acc, Reader.pread!(r, start + at, min(@crc_chunk, len - at), "#{what}'s data"))
      end)

    if got != crc,
      do: Reader.fail!(r, "#{what}: CRC-32 #{hex(got)} does not match the archive's #{hex(crc)}; the member is corrupt")
  end

  defp hex(x), do: "0x" <> String.pad_leading(Integer.to_string(x, 16), 8, "0")

  defp inflate!(r, name, what) do
    result =
      try do
        :zip.unzip(String.to_charlist(r.path), [:memory, {:file_list, [String.to_charlist(name)]}])
      catch
        kind, why -> {:error, {kind, why}}
      end

    case result do
      {:ok, [{_, bin}]} -> bin
      {:ok, other} -> Reader.fail!(r, "#{what}: the archive gave #{length(other)} members for it")
      {:error, why} -> Reader.fail!(r, "#{what} cannot be inflated (#{inspect(why, limit: 5)})")
    end
  end

  @spec savez(Path.t(), map(), boolean()) :: :ok
  def savez(path, arrays, compressed?) do
    fun = "Mx.IO.savez"
    named = Mx.IO.Safetensors.check_arrays!(arrays, fun)

    members =
      Enum.map(named, fn {name, a} -> {String.to_charlist(name <> ".npy"), IO.iodata_to_binary(encode(a, fun, inspect(name)))} end)

    opts = if compressed?, do: [:memory, {:compress, :all}], else: [:memory, {:uncompress, :all}]

    {:ok, {_, zip}} =
      try do
        :zip.create(~c"archive.npz", members, opts)
      catch
        kind, why -> raise Mx.Error, "#{fun}: building the archive failed: #{inspect({kind, why}, limit: 5)}"
      end

    Reader.write_atomically!(path, fun, fn write -> write.(zip) end)
  end
end
