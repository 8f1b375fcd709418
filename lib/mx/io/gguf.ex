defmodule Mx.IO.GGUF do
  @moduledoc false
  # GGUF, versions 2 and 3 (little-endian), as ggml's docs/gguf.md describes it: magic "GGUF",
  # version u32, tensor count u64, key/value count u64, the key/values, the tensor infos
  # (name, n_dims u32, dims u64 innermost first, ggml type u32, offset u64), padding to
  # general.alignment (default 32), then the data. Q8_0 and Q4_0 tensors are dequantized to
  # f32 on load; other quantized types are refused by name.

  import Bitwise
  alias Mx.IO.Reader

  @fun "Mx.IO.load_gguf"

  # ggml_type id => {name, elements per block, bytes per block, Mx type or :q8_0/:q4_0}
  @ggml %{
    0 => {"F32", 1, 4, :f32},
    1 => {"F16", 1, 2, :f16},
    2 => {"Q4_0", 32, 18, :q4_0},
    3 => {"Q4_1", 32, 20, nil},
    6 => {"Q5_0", 32, 22, nil},
    7 => {"Q5_1", 32, 24, nil},
    8 => {"Q8_0", 32, 34, :q8_0},
    9 => {"Q8_1", 32, 36, nil},
    10 => {"Q2_K", 256, 84, nil},
    11 => {"Q3_K", 256, 110, nil},
    12 => {"Q4_K", 256, 144, nil},
    13 => {"Q5_K", 256, 176, nil},
    14 => {"Q6_K", 256, 210, nil},
    15 => {"Q8_K", 256, 292, nil},
    24 => {"I8", 1, 1, :s8},
    25 => {"I16", 1, 2, :s16},
    26 => {"I32", 1, 4, :s32},
    27 => {"I64", 1, 8, :s64},
    28 => {"F64", 1, 8, :f64},
    30 => {"BF16", 1, 2, :bf16}
  }
  # the quantized types save/5 writes: :type => {ggml type id, bytes per block of 32}
  @quant_ids %{q8_0: {8, 34}, q4_0: {2, 18}}
  @ggml_of Map.new(for({id, {_, 1, _, t}} <- @ggml, do: {t, id}))

  # gguf metadata value types: id => {name, fixed byte size or nil}
  @vtypes %{
    0 => {:u8, 1},
    1 => {:s8, 1},
    2 => {:u16, 2},
    3 => {:s16, 2},
    4 => {:u32, 4},
    5 => {:s32, 4},
    6 => {:f32, 4},
    7 => {:bool, 1},
    8 => {:string, nil},
    9 => {:array, nil},
    10 => {:u64, 8},
    11 => {:s64, 8},
    12 => {:f64, 8}
  }
  @vtype_of Map.new(@vtypes, fn {id, {name, _}} -> {name, id} end)

  @max_dims 4
  @max_depth 8

  # ---- reading --------------------------------------------------------------------------

  @spec load(Path.t(), boolean()) :: map() | {map(), map()}
  def load(path, metadata?) do
    Reader.with_file(path, @fun, fn r ->
      c = %{r: r, pos: 0, buf: <<>>, buf_at: 0}
      {magic, c} = take(c, 4, "the magic")
      if magic != "GGUF", do: Reader.fail!(r, "not a GGUF file (magic #{inspect(magic)}, expected \"GGUF\")")
      {version, c} = u32(c, "the version")

      cond do
        version in [2, 3] -> :ok
        version == 1 -> Reader.fail!(r, "GGUF version 1 is not supported (versions 2 and 3 are)")
        version > 0xFFFF -> Reader.fail!(r, "GGUF version #{version} reads as big-endian; only little-endian files are supported")
        true -> Reader.fail!(r, "GGUF version #{version} is not supported (versions 2 and 3 are)")
      end

      {n_tensors, c} = u64(c, "the tensor count")
      {n_kv, c} = u64(c, "the metadata count")
      # Each key/value takes at least 12 bytes and each tensor info at least 24.
      if n_kv * 12 + n_tensors * 24 > r.size - c.pos,
        do:
          Reader.fail!(
            r,
            "the header claims #{n_tensors} tensors and #{n_kv} metadata entries, more than #{r.size} bytes can hold"
          )

      {meta, c} =
        Enum.reduce(1..n_kv//1, {%{}, c}, fn _, {acc, c} ->
          {key, c} = string(c, "a metadata key")
          {type, c} = u32(c, "the type of #{inspect(key)}")
          {v, c} = value(c, type, key, 0)
          if Map.has_key?(acc, key), do: Reader.fail!(r, "metadata key #{inspect(key)} appears twice")
          {Map.put(acc, key, v), c}
        end)

      alignment =
        case Map.get(meta, "general.alignment", 32) do
          a when is_integer(a) and a > 0 and rem(a, 8) == 0 -> a
          a -> Reader.fail!(r, "general.alignment must be a positive multiple of 8, got #{inspect(a)}")
        end

      {infos, c} = Enum.map_reduce(1..n_tensors//1, c, fn _, c -> info(c) end)
      names = Enum.map(infos, &elem(&1, 0))
      if length(Enum.uniq(names)) != length(names), do: Reader.fail!(r, "a tensor name appears twice")

      data_start = align(c.pos, alignment)
      data_size = max(r.size - data_start, 0)
      check_layout!(r, infos, alignment, data_size)

      arrays =
        Map.new(infos, fn {name, shape, type_id, off, _bytes} -> {name, tensor!(r, name, shape, type_id, data_start + off)} end)

      if metadata?, do: {arrays, meta}, else: arrays
    end)
  end

  defp align(x, a), do: div(x + a - 1, a) * a

  defp info(c) do
    r = c.r
    {name, c} = string(c, "a tensor name")
    {nd, c} = u32(c, "tensor #{inspect(name)}'s rank")
    if nd > @max_dims, do: Reader.fail!(r, "tensor #{inspect(name)}: #{nd} dimensions, over GGUF's #{@max_dims}")
    {dims, c} = Enum.map_reduce(1..nd//1, c, fn _, c -> u64(c, "tensor #{inspect(name)}'s dimensions") end)
    {type_id, c} = u32(c, "tensor #{inspect(name)}'s type")
    {off, c} = u64(c, "tensor #{inspect(name)}'s offset")
    shape = Enum.reverse(dims)

    {tname, block, block_bytes, mx} =
      Map.get(@ggml, type_id) || Reader.fail!(r, "tensor #{inspect(name)}: unknown ggml type #{type_id}")

    if mx == nil,
      do:
        Reader.fail!(
          r,
          "tensor #{inspect(name)}: ggml type #{tname} is not supported; Mx reads F32, F16, BF16, F64, I8-I64, Q8_0 and Q4_0"
        )

    if block > 1 and dims == [], do: Reader.fail!(r, "tensor #{inspect(name)}: a #{tname} tensor needs at least one dimension")

    if dims != [] and rem(hd(dims), block) != 0,
      do:
        Reader.fail!(
          r,
          "tensor #{inspect(name)}: its innermost dimension #{hd(dims)} is not a multiple of #{tname}'s block of #{block}"
        )

    elems = Enum.reduce(dims, 1, &(&1 * &2))
    bytes = div(elems, block) * block_bytes
    # Checked as f32, the type a quantized tensor becomes.
    Reader.check_shape!(r, name, shape, if(is_atom(mx) and mx in [:q8_0, :q4_0], do: :f32, else: mx))
    {{name, shape, type_id, off, bytes}, c}
  end

  defp check_layout!(r, infos, alignment, data_size) do
    infos
    |> Enum.sort_by(&elem(&1, 3))
    |> Enum.reduce({nil, 0}, fn {name, _s, _t, off, bytes}, {prev, pos} ->
      cond do
        rem(off, alignment) != 0 ->
          Reader.fail!(r, "tensor #{inspect(name)}: offset #{off} is not a multiple of the alignment #{alignment}")

        off < pos ->
          Reader.fail!(r, "tensor #{inspect(name)}: its bytes at #{off} overlap tensor #{inspect(prev)}'s, which end at #{pos}")

        off + bytes > data_size ->
          Reader.fail!(
            r,
            "tensor #{inspect(name)}: bytes #{off}..#{off + bytes} of the data run past its end (#{data_size} bytes); the file is truncated"
          )

        true ->
          {name, off + bytes}
      end
    end)
  end

  defp tensor!(r, name, shape, type_id, offset) do
    case @ggml[type_id] do
      {_, 1, _, type} ->
        Reader.tensor!(r, name, offset, type, shape)

      {_, 32, block_bytes, q} ->
        n = Enum.reduce(shape, 1, &(&1 * &2))
        raw = Reader.tensor!(r, name, offset, :u8, [div(n, 32), block_bytes])
        dequantize(q, raw) |> Mx.reshape(List.to_tuple(shape))
    end
  end

  # Blocks of 32: an f16 scale d, then 32 int8 (Q8_0: d*q) or 16 bytes of nibbles, low nibbles
  # the first 16 elements and high nibbles the last 16 (Q4_0: d*(q-8)), as ggml-quants.c.
  defp dequantize(:q8_0, raw) do
    q = raw[[.., 2..33]] |> Mx.as_type(:f32)
    q = Mx.subtract(q, Mx.multiply(Mx.greater_equal(q, 128.0) |> Mx.as_type(:f32), 256.0))
    Mx.multiply(scale(raw), q)
  end

  defp dequantize(:q4_0, raw) do
    qs = raw[[.., 2..17]] |> Mx.as_type(:f32)
    high = Mx.floor(Mx.divide(qs, 16.0))
    low = Mx.subtract(qs, Mx.multiply(high, 16.0))
    q = Mx.concatenate([low, high], axis: 1) |> Mx.subtract(8.0)
    Mx.multiply(scale(raw), q)
  end

  # The f16 scale from its two bytes, decoded arithmetically (Mx has no bit cast): {blocks, 1} f32.
  defp scale(raw) do
    h = Mx.add(raw[[.., 0..0]] |> Mx.as_type(:f32), Mx.multiply(raw[[.., 1..1]] |> Mx.as_type(:f32), 256.0))
    sign = Mx.floor(Mx.divide(h, 32768.0))
    rest = Mx.subtract(h, Mx.multiply(sign, 32768.0))
    e = Mx.floor(Mx.divide(rest, 1024.0))
    m = Mx.subtract(rest, Mx.multiply(e, 1024.0))
    normal = Mx.multiply(Mx.add(1.0, Mx.divide(m, 1024.0)), Mx.pow(2.0, Mx.subtract(e, 15.0)))
    sub = Mx.multiply(m, :math.pow(2, -24))
    special = Mx.where(Mx.equal(m, 0.0), Mx.tensor(:infinity), Mx.tensor(:nan))
    mag = Mx.where(Mx.equal(e, 0.0), sub, Mx.where(Mx.equal(e, 31.0), special, normal))
    Mx.multiply(mag, Mx.subtract(1.0, Mx.multiply(sign, 2.0)))
  end

  # ---- the header cursor: bounded reads through a window of the file ----------------------

  @window 1 <<< 20

  defp take(c, n, what) do
    if n > c.r.size - c.pos,
      do:
        Reader.fail!(c.r, "#{what} needs #{n} bytes at #{c.pos} but the file has #{c.r.size}; it is truncated or the header lies")

    off = c.pos - c.buf_at

    c =
      if off + n <= byte_size(c.buf),
        do: c,
        else: %{c | buf: Reader.pread!(c.r, c.pos, min(max(n, @window), c.r.size - c.pos), what), buf_at: c.pos}

    {binary_part(c.buf, c.pos - c.buf_at, n), %{c | pos: c.pos + n}}
  end

  defp u32(c, what) do
    {<<x::unsigned-little-32>>, c} = take(c, 4, what)
    {x, c}
  end

  defp u64(c, what) do
    {<<x::unsigned-little-64>>, c} = take(c, 8, what)
    {x, c}
  end

  defp string(c, what) do
    {n, c} = u64(c, "the length of #{what}")
    {s, c} = take(c, n, what)
    if String.valid?(s), do: {s, c}, else: Reader.fail!(c.r, "#{what} at #{c.pos - n} is not valid UTF-8")
  end

  defp value(c, type, key, depth) do
    case @vtypes[type] do
      nil ->
        Reader.fail!(c.r, "metadata #{inspect(key)}: unknown value type #{type}")

      {:string, _} ->
        string(c, "metadata #{inspect(key)}")

      {:array, _} ->
        if depth >= @max_depth, do: Reader.fail!(c.r, "metadata #{inspect(key)}: arrays nested deeper than #{@max_depth}")
        {etype, c} = u32(c, "metadata #{inspect(key)}'s element type")
        {n, c} = u64(c, "metadata #{inspect(key)}'s length")
        array(c, etype, n, key, depth + 1)

      {name, size} ->
        {bin, c} = take(c, size, "metadata #{inspect(key)}")
        {scalar(name, bin, c.r, key), c}
    end
  end

  defp array(c, etype, n, key, depth) do
    case @vtypes[etype] do
      nil ->
        Reader.fail!(c.r, "metadata #{inspect(key)}: unknown array element type #{etype}")

      {name, size} when is_integer(size) ->
        {bin, c} = take(c, n * size, "metadata #{inspect(key)}'s #{n} elements")
        {for(<<x::binary-size(size) <- bin>>, do: scalar(name, x, c.r, key)), c}

      {_, nil} ->
        # A string takes at least 8 bytes, an array 12: refuse counts the file cannot hold.
        if n * 8 > c.r.size - c.pos,
          do: Reader.fail!(c.r, "metadata #{inspect(key)}: #{n} elements cannot fit in the rest of the file")

        {items, c} = Enum.map_reduce(1..n//1, c, fn _, c -> value(c, etype, key, depth) end)
        {items, c}
    end
  end

  defp scalar(:u8, <<x>>, _r, _k), do: x
  defp scalar(:s8, <<x::signed>>, _r, _k), do: x
  defp scalar(:u16, <<x::unsigned-little-16>>, _r, _k), do: x
  defp scalar(:s16, <<x::signed-little-16>>, _r, _k), do: x
  defp scalar(:u32, <<x::unsigned-little-32>>, _r, _k), do: x
  defp scalar(:s32, <<x::signed-little-32>>, _r, _k), do: x
  defp scalar(:u64, <<x::unsigned-little-64>>, _r, _k), do: x
  defp scalar(:s64, <<x::signed-little-64>>, _r, _k), do: x
  defp scalar(:f32, <<x::float-little-32>>, _r, _k), do: x
  defp scalar(:f64, <<x::float-little-64>>, _r, _k), do: x
  defp scalar(f, <<_::binary>> = b, _r, _k) when f in [:f32, :f64], do: non_finite(b)
  defp scalar(:bool, <<0>>, _r, _k), do: false
  defp scalar(:bool, <<1>>, _r, _k), do: true
  defp scalar(:bool, <<x>>, r, k), do: Reader.fail!(r, "metadata #{inspect(k)}: a bool holds #{x}, not 0 or 1")

  # Bit patterns Erlang floats cannot hold, named as Mx names them.
  defp non_finite(b) do
    {mant_zero?, neg?} = rev_bits(b)

    cond do
      not mant_zero? -> :nan
      neg? -> :neg_infinity
      true -> :infinity
    end
  end

  # The little-endian bytes read big-endian: {mantissa zero?, negative?}.
  defp rev_bits(b) do
    case b |> :binary.bin_to_list() |> Enum.reverse() |> :binary.list_to_bin() do
      <<s::1, _::8, m::23>> -> {m == 0, s == 1}
      <<s::1, _::11, m::52>> -> {m == 0, s == 1}
    end
  end

  # ---- writing --------------------------------------------------------------------------

  @spec save(Path.t(), map(), map(), pos_integer(), map()) :: :ok
  def save(path, arrays, metadata, alignment, types \\ %{}) do
    fun = "Mx.IO.save_gguf"
    named = Mx.IO.Safetensors.check_arrays!(arrays, fun)
    types = check_types!(types, named, fun)

    unless is_integer(alignment) and alignment > 0 and rem(alignment, 8) == 0,
      do: raise(ArgumentError, "#{fun}: alignment: must be a positive multiple of 8, got #{inspect(alignment)}")

    unless is_map(metadata),
      do: raise(ArgumentError, "#{fun}: metadata: must be a map of string keys to values, got #{inspect(metadata, limit: 5)}")

    if Map.has_key?(metadata, "general.alignment"),
      do: raise(ArgumentError, "#{fun}: set general.alignment with the alignment: option")

    kvs =
      [{"general.alignment", {:u32, alignment}} | Enum.sort(metadata)]
      |> Enum.map(fn
        {k, v} when is_binary(k) -> [str(k), encode_value(v, fun, k)]
        {k, _} -> raise ArgumentError, "#{fun}: metadata keys must be strings, got #{inspect(k)}"
      end)

    {infos, _end} =
      Enum.map_reduce(named, 0, fn {name, a}, pos ->
        {id, bytes} =
          case types[name] do
            nil ->
              {Map.get(@ggml_of, a.type) ||
                 raise(
                   ArgumentError,
                   "#{fun}: tensor #{inspect(name)} is #{a.type}, which GGUF cannot store; convert it with Mx.as_type/2"
                 ), Mx.size(a) * Mx.Type.byte_size(a.type)}

            q ->
              {id, block_bytes} = @quant_ids[q]
              {id, div(Mx.size(a), 32) * block_bytes}
          end

        if Mx.rank(a) > @max_dims,
          do: raise(ArgumentError, "#{fun}: tensor #{inspect(name)} has rank #{Mx.rank(a)}; GGUF stores at most #{@max_dims}")

        dims = a.shape |> Tuple.to_list() |> Enum.reverse()

        info = [
          str(name),
          <<length(dims)::unsigned-little-32>>,
          Enum.map(dims, &<<&1::unsigned-little-64>>),
          <<id::unsigned-little-32>>,
          <<pos::unsigned-little-64>>
        ]

        {{info, pos}, align(pos + bytes, alignment)}
      end)

    header = [
      "GGUF",
      <<3::unsigned-little-32, length(named)::unsigned-little-64, length(kvs)::unsigned-little-64>>,
      kvs,
      Enum.map(infos, &elem(&1, 0))
    ]

    hlen = IO.iodata_length(header)

    Reader.write_atomically!(path, fun, fn write ->
      write.(header)
      write.(zeros(align(hlen, alignment) - hlen))

      named
      |> Enum.zip(infos)
      |> Enum.reduce(0, fn {{name, a}, {_info, pos}}, at ->
        write.(zeros(pos - at))
        bin = if q = types[name], do: quantize!(q, a, name, fun), else: Mx.to_binary(a)
        write.(bin)
        pos + byte_size(bin)
      end)
    end)
  end

  defp zeros(n), do: :binary.copy(<<0>>, n)
  defp str(s), do: [<<byte_size(s)::unsigned-little-64>>, s]

  # ---- quantized types (written as the reader reads them) --------------------------------

  # types: tensor name => :q8_0 | :q4_0; the tensor must exist, be floating point and have a last
  # axis (ggml's rows) that is a multiple of the block size 32.
  defp check_types!(types, named, fun) do
    unless is_map(types),
      do:
        raise(
          ArgumentError,
          "#{fun}: types: must be a map of tensor names to :q8_0 or :q4_0, got #{inspect(types, limit: 5)}"
        )

    arrays = Map.new(named)

    Map.new(types, fn {name, q} ->
      key = if is_atom(name), do: Atom.to_string(name), else: name

      a =
        Map.get(arrays, key) ||
          raise ArgumentError, "#{fun}: types: no tensor named #{inspect(name)} among the arrays"

      unless Map.has_key?(@quant_ids, q),
        do:
          raise(
            ArgumentError,
            "#{fun}: types: #{inspect(key)} => #{inspect(q)} is not a type Mx writes; use :q8_0 or :q4_0"
          )

      unless a.type in [:f16, :bf16, :f32, :f64],
        do:
          raise(
            ArgumentError,
            "#{fun}: tensor #{inspect(key)} is #{a.type}; #{q} quantizes floating-point tensors"
          )

      last = if Mx.rank(a) == 0, do: 1, else: elem(a.shape, Mx.rank(a) - 1)

      unless rem(last, 32) == 0,
        do:
          raise(
            ArgumentError,
            "#{fun}: tensor #{inspect(key)} #{Mx.describe(a)} cannot be #{q}: its last axis (ggml's rows) must be a multiple of the block size 32"
          )

      {key, q}
    end)
  end

  # ggml's reference quantizers (ggml-quants.c quantize_row_q8_0_ref / quantize_row_q4_0_ref), in f32
  # per block of 32 with the f32 scale d; d is stored as f16 (round to nearest even) before the quants.
  # Q8_0: d = amax / 127, q = roundf(x / d) (halves away from zero). Q4_0: d = max / -8 with max the
  # first value of largest magnitude, q = min(15, trunc(x / d + 8.5)), low nibbles the first 16.
  defp quantize!(q, a, name, fun) do
    x = a |> Mx.as_type(:f32) |> Mx.reshape({div(Mx.size(a), 32), 32})

    unless finite?(x),
      do:
        raise(
          ArgumentError,
          "#{fun}: tensor #{inspect(name)} holds a NaN or infinity; #{q} needs finite values"
        )

    {d, quants} = blocks(q, x)
    d16 = Mx.as_type(d, :f16)

    unless finite?(d16),
      do:
        raise(
          ArgumentError,
          "#{fun}: tensor #{inspect(name)}: a block's #{q} scale exceeds f16's range (65504); scale the tensor down or store it as f32"
        )

    scale_bytes = d16 |> Mx.bitcast(:u16) |> Mx.as_type(:u32)
    lo = Mx.remainder(scale_bytes, 256) |> Mx.as_type(:u8)
    hi = Mx.quotient(scale_bytes, 256) |> Mx.as_type(:u8)
    Mx.concatenate([lo, hi, quants], axis: 1) |> Mx.to_binary()
  end

  defp blocks(:q8_0, x) do
    d = Mx.divide(Mx.reduce_max(Mx.abs(x), axes: [1], keep_axes: true), 127.0)
    q = Mx.round(Mx.multiply(x, inverse(d)))
    {d, q |> Mx.as_type(:s8) |> Mx.bitcast(:u8)}
  end

  defp blocks(:q4_0, x) do
    max = Mx.take_along_axis(x, Mx.argmax(Mx.abs(x), axis: 1, keep_axis: true), axis: 1)
    d = Mx.divide(max, -8.0)
    q = Mx.min(Mx.floor(Mx.add(Mx.multiply(x, inverse(d)), 8.5)), 15.0) |> Mx.as_type(:u8)
    {d, Mx.add(q[[.., 0..15]], Mx.multiply(q[[.., 16..31]], 16))}
  end

  defp finite?(t),
    do: not Mx.to_number(Mx.any(Mx.is_nan(t))) and not Mx.to_number(Mx.any(Mx.is_infinity(t)))

  # 1 / d, or 0 where d is 0 (a block of zeros)
  defp inverse(d), do: Mx.where(Mx.equal(d, 0.0), 0.0, Mx.divide(1.0, d))

  # Plain Elixir values take a default type (integer: s64, float: f64); {type, v} sets one.
  defp encode_value(v, fun, k) do
    {type, payload} = typed(v, fun, k)
    [<<@vtype_of[type]::unsigned-little-32>>, payload]
  end

  defp typed({:array, etype, list}, fun, k) when is_list(list) do
    unless Map.has_key?(@vtype_of, etype),
      do:
        raise(
          ArgumentError,
          "#{fun}: metadata #{inspect(k)}: unknown element type #{inspect(etype)}; use one of #{inspect(Map.keys(@vtype_of))}"
        )

    payload = Enum.map(list, fn x -> elem(typed(retag(etype, x), fun, k), 1) end)
    {:array, [<<@vtype_of[etype]::unsigned-little-32, length(list)::unsigned-little-64>>, payload]}
  end

  defp typed({t, x}, fun, k) when is_atom(t) and t != :array do
    bin =
      try do
        scalar_bin(t, x)
      rescue
        _ in [ArgumentError, FunctionClauseError] -> nil
      end

    bin || raise ArgumentError, "#{fun}: metadata #{inspect(k)}: #{inspect(x, limit: 5)} cannot be stored as #{inspect(t)}"
    {t, bin}
  end

  defp typed(x, fun, k) when is_binary(x), do: typed({:string, x}, fun, k)
  defp typed(x, fun, k) when is_boolean(x), do: typed({:bool, x}, fun, k)
  defp typed(x, fun, k) when is_integer(x), do: typed({:s64, x}, fun, k)
  defp typed(x, fun, k) when is_float(x) or x in [:nan, :infinity, :neg_infinity], do: typed({:f64, x}, fun, k)

  defp typed([], fun, k),
    do: raise(ArgumentError, "#{fun}: metadata #{inspect(k)}: an empty list needs a type: {:array, type, []}")

  defp typed([first | _] = list, fun, k) do
    {etype, _} = typed(first, fun, k)
    typed({:array, etype, list}, fun, k)
  end

  defp typed(x, fun, k),
    do:
      raise(
        ArgumentError,
        "#{fun}: metadata #{inspect(k)}: cannot store #{inspect(x, limit: 5)}; use strings, numbers, booleans, lists or {type, value}"
      )

  defp retag(:array, x), do: x
  defp retag(t, {t, _} = x), do: x
  defp retag(t, x), do: {t, x}

  defp scalar_bin(:string, s) when is_binary(s), do: IO.iodata_to_binary(str(s))
  defp scalar_bin(:bool, b) when is_boolean(b), do: if(b, do: <<1>>, else: <<0>>)
  defp scalar_bin(t, x) when t in [:u8, :u16, :u32, :u64] and is_integer(x), do: int_bin(x, 0, 1 <<< bits(t), bits(t), :unsigned)

  defp scalar_bin(t, x) when t in [:s8, :s16, :s32, :s64] and is_integer(x),
    do: int_bin(x, -(1 <<< (bits(t) - 1)), 1 <<< (bits(t) - 1), bits(t), :signed)

  defp scalar_bin(:f32, x) when is_number(x), do: <<x::float-little-32>>

  defp scalar_bin(:f32, x) when x in [:nan, :infinity, :neg_infinity],
    do: %{nan: <<0, 0, 192, 127>>, infinity: <<0, 0, 128, 127>>, neg_infinity: <<0, 0, 128, 255>>}[x]

  defp scalar_bin(:f64, x) when x in [:nan, :infinity, :neg_infinity],
    do:
      %{
        nan: <<0, 0, 0, 0, 0, 0, 248, 127>>,
        infinity: <<0, 0, 0, 0, 0, 0, 240, 127>>,
        neg_infinity: <<0, 0, 0, 0, 0, 0, 240, 255>>
      }[x]

  defp scalar_bin(:f64, x) when is_number(x), do: <<x::float-little-64>>

  defp bits(t), do: t |> Atom.to_string() |> String.slice(1..-1) |> String.to_integer()

  defp int_bin(x, lo, hi, n, _) when x < lo or x >= hi, do: raise(ArgumentError, "#{x} is out of range for #{n} bits")
  defp int_bin(x, _lo, _hi, n, :unsigned), do: <<x::unsigned-little-size(n)>>
  defp int_bin(x, _lo, _hi, n, :signed), do: <<x::signed-little-size(n)>>
end
