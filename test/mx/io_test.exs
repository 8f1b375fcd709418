defmodule Mx.IOTest do
  use ExUnit.Case, async: true
  import Bitwise

  @fixtures Path.expand("../fixtures/io", __DIR__)
  {expected, _} = Code.eval_file(Path.expand("../fixtures/io/expected.exs", __DIR__))
  @expected expected

  defp fixture(name), do: Path.join(@fixtures, name)

  defp tmp(ctx, name) do
    dir = Path.join(System.tmp_dir!(), "mx_io_test_#{System.unique_integer([:positive])}_#{ctx.line}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    Path.join(dir, name)
  end

  defp same!(got, {:array, type, shape, hex}, what) do
    assert {Mx.type(got), Mx.shape(got)} == {type, shape}, what
    assert Base.encode16(Mx.to_binary(got)) == hex, "#{what}: the bytes differ"
  end

  describe "files written by NumPy and from the specs" do
    for {file, name, arr} <- @expected do
      @file_name file
      @tensor name
      @arr arr
      test "#{file} #{name}" do
        loaded = Mx.IO.load(fixture(@file_name))
        got = if @tensor == "", do: loaded, else: Map.fetch!(loaded, @tensor)
        same!(got, @arr, "#{@file_name} #{@tensor}")
      end
    end

    test "each file holds exactly the expected tensors" do
      for {file, entries} <- Enum.group_by(@expected, &elem(&1, 0)), not String.ends_with?(file, ".npy") do
        assert Map.keys(Mx.IO.load(fixture(file))) |> Enum.sort() == entries |> Enum.map(&elem(&1, 1)) |> Enum.sort(), file
      end
    end
  end

  describe "Mx writes what the reference writers write, byte for byte" do
    test "npy: every C-order little-endian fixture", ctx do
      for file <- ~w(bool u8 s8 u16 s16 u32 s32 u64 s64 f16 f32 f64 c64 c128 scalar empty) do
        out = tmp(ctx, file <> ".npy")
        :ok = Mx.IO.save_npy(out, Mx.IO.load_npy(fixture(file <> ".npy")))
        assert File.read!(out) == File.read!(fixture(file <> ".npy")), file
      end
    end

    test "safetensors, with metadata", ctx do
      for file <- ~w(all_dtypes.safetensors model.safetensors) do
        {arrays, meta} = Mx.IO.load(fixture(file), metadata: true)
        out = tmp(ctx, file)
        :ok = Mx.IO.save_safetensors(out, arrays, metadata: meta)
        assert File.read!(out) == File.read!(fixture(file)), file
      end

      assert {_, %{"format" => "pt", "note" => "généré, \"quoted\""}} =
               Mx.IO.load_safetensors(fixture("all_dtypes.safetensors"), metadata: true)

      assert {_, %{}} = Mx.IO.load_safetensors(fixture("model.safetensors"), metadata: true)
    end

    test "gguf, with typed metadata", ctx do
      {arrays, meta} = Mx.IO.load_gguf(fixture("plain.gguf"), metadata: true)

      assert meta == %{
               "general.alignment" => 32,
               "general.architecture" => "llama",
               "general.name" => "tiny",
               "llama.block_count" => 2,
               "llama.rope.freq_base" => 10000.0,
               "tokenizer.ggml.scores" => [0.0, -1.5, 2.25],
               "tokenizer.ggml.tokens" => ["<s>", "</s>", "héllo"]
             }

      typed = %{
        "general.architecture" => "llama",
        "general.name" => "tiny",
        "llama.block_count" => {:u32, 2},
        "llama.rope.freq_base" => {:f32, 10000.0},
        "tokenizer.ggml.scores" => {:array, :f32, [0.0, -1.5, 2.25]},
        "tokenizer.ggml.tokens" => ["<s>", "</s>", "héllo"]
      }

      out = tmp(ctx, "plain.gguf")
      :ok = Mx.IO.save_gguf(out, arrays, metadata: typed)
      assert File.read!(out) == File.read!(fixture("plain.gguf"))
    end

    test "npz: each member of Mx's archive is NumPy's member, stored and deflated", ctx do
      arrays = Mx.IO.load_npz(fixture("stored.npz"))
      {:ok, numpy} = :zip.unzip(String.to_charlist(fixture("stored.npz")), [:memory])

      for compressed <- [false, true] do
        out = tmp(ctx, "out.npz")
        :ok = Mx.IO.savez(out, arrays, compressed: compressed)
        {:ok, ours} = :zip.unzip(String.to_charlist(out), [:memory])
        assert Enum.sort(ours) == Enum.sort(numpy)

        assert Mx.IO.load(out) |> Map.new(fn {k, v} -> {k, Mx.to_binary(v)} end) ==
                 Map.new(arrays, fn {k, v} -> {k, Mx.to_binary(v)} end)
      end
    end
  end

  test "header JSON: strings escaped as Python's json.dumps writes them, and decoded back" do
    s = "a\"b\\c\nd\te\u0001é😀"
    json = IO.iodata_to_binary(Mx.IO.JSON.encode(%{"k" => s, "n" => [0, -12]}))

    # /usr/bin/python3 -c 'import json; print(json.dumps({"k": "a\"b\\c\nd\te\u0001é😀", "n": [0, -12]}, separators=(",", ":"), ensure_ascii=False))'
    assert json == ~S({"k":"a\"b\\c\nd\te\u0001é😀","n":[0,-12]})
    assert Mx.IO.JSON.decode(json) == {:ok, %{"k" => s, "n" => [0, -12]}}

    assert Mx.IO.JSON.decode(~S({"a": [1.5e3, true, false, null, "\u00e9\ud83d\ude00\/"]})) ==
             {:ok, %{"a" => [1500.0, true, false, nil, "é😀/"]}}

    assert {:error, "the number 1e999 is out of range"} = Mx.IO.JSON.decode("[1e999]")
    assert {:error, _} = Mx.IO.JSON.decode("[01]")
  end

  describe "gguf quantized types" do
    test "Q8_0 and Q4_0 blocks as ggml's reference quantizers, byte for byte", ctx do
      src = Mx.IO.load_gguf(fixture("written_quant.gguf"))
      out = tmp(ctx, "written_quant.gguf")

      arrays = %{
        "q4" => src["q4.src"],
        "q4.src" => src["q4.src"],
        "q8" => src["q8.src"],
        "q8.src" => src["q8.src"]
      }

      :ok = Mx.IO.save_gguf(out, arrays, types: %{"q4" => :q4_0, q8: :q8_0})
      assert File.read!(out) == File.read!(fixture("written_quant.gguf"))
    end

    test "write then read: within half a step of the source (Q4_0's clamped side: one step)",
         ctx do
      x = Mx.Random.normal(Mx.Random.key(3), shape: {4, 3, 64})
      out = tmp(ctx, "rt.gguf")

      :ok =
        Mx.IO.save_gguf(out, %{"a" => x, "b" => x, "c" => Mx.as_type(x, :f16)}, types: %{"a" => :q8_0, "b" => :q4_0, "c" => :q8_0})

      back = Mx.IO.load_gguf(out)

      # per block: Q8_0's step is d = amax / 127, error <= d / 2; Q4_0's |d| = amax / 8 and its levels run from
      # -8d = max to 7d, so values of the other sign past 7|d| clamp: error <= |d|. Plus the f16 scale's rounding.
      amax =
        x
        |> Mx.reshape({div(Mx.size(x), 32), 32})
        |> Mx.abs()
        |> Mx.reduce_max(axes: [1], keep_axes: true)

      for {name, max_error, src} <- [
            {"a", 1 / 254, x},
            {"b", 1 / 8, x},
            {"c", 1 / 254, Mx.as_type(Mx.as_type(x, :f16), :f32)}
          ] do
        got = back[name]
        assert {Mx.type(got), Mx.shape(got)} == {:f32, {4, 3, 64}}
        err = Mx.abs(Mx.subtract(got, src)) |> Mx.reshape({div(Mx.size(x), 32), 32})
        bound = Mx.multiply(amax, max_error + 2.0e-3)
        assert Mx.to_number(Mx.all(Mx.less_equal(err, bound))), name
      end
    end

    test "unknown types and names, integer tensors, ragged rows, NaN and f16 overflow raise",
         ctx do
      path = tmp(ctx, "bad.gguf")
      w = Mx.ones({2, 32})

      for {arrays, types, msg} <- [
            {%{"w" => w}, %{"w" => :q5_1}, ~r/types: "w" => :q5_1 is not a type Mx writes; use :q8_0 or :q4_0/},
            {%{"w" => w}, %{"v" => :q8_0}, ~r/types: no tensor named "v" among the arrays/},
            {%{"w" => w}, [w: :q8_0], ~r/types: must be a map of tensor names/},
            {%{"w" => Mx.ones({2, 32}, type: :s32)}, %{"w" => :q8_0}, ~r/tensor "w" is s32; q8_0 quantizes floating-point/},
            {%{"w" => Mx.ones({32, 48})}, %{"w" => :q4_0},
             ~r/its last axis \(ggml's rows\) must be a multiple of the block size 32/},
            {%{"w" => Mx.divide(Mx.ones({1, 32}), 0.0)}, %{"w" => :q8_0}, ~r/tensor "w" holds a NaN or infinity/},
            {%{"w" => Mx.multiply(Mx.ones({1, 32}), 1.0e7)}, %{"w" => :q8_0}, ~r/scale exceeds f16's range/}
          ] do
        assert_raise ArgumentError, msg, fn -> Mx.IO.save_gguf(path, arrays, types: types) end
      end

      refute File.exists?(path)
    end
  end

  test "gguf metadata of every value type" do
    {arrays, meta} = Mx.IO.load_gguf(fixture("quant.gguf"), metadata: true)
    assert Map.keys(arrays) |> Enum.sort() == ["bf", "q4", "q8", "vec"]

    assert Map.delete(meta, "general.alignment") == %{
             "k.u8" => 200,
             "k.s8" => -100,
             "k.u16" => 60000,
             "k.s16" => -30000,
             "k.u32" => 4_000_000_000,
             "k.s32" => -2_000_000_000,
             "k.f32" => 0.5,
             "k.bool" => true,
             "k.string" => "ünïcode",
             "k.u64" => 18_446_744_073_709_551_615,
             "k.s64" => -9_223_372_036_854_775_808,
             "k.f64" => -0.125,
             "k.nan" => :nan,
             "k.inf" => :neg_infinity,
             "k.nested" => [[1, 2], [], [3]],
             "k.bools" => [true, false],
             "k.empty" => []
           }

    assert meta["general.alignment"] == 64
  end

  describe "round trips of every dtype each format stores" do
    defp sample(type, key) do
      shape = {2, 3}

      case type do
        :bool ->
          Mx.Random.bernoulli(key, 0.5, shape: shape)

        t when t in [:c64, :c128] ->
          Mx.complex(Mx.Random.normal(key, shape: shape), Mx.Random.normal(Mx.Random.key(8), shape: shape))
          |> Mx.as_type(t)

        t ->
          Mx.Random.uniform(key, shape: shape, type: :f64) |> Mx.multiply(100) |> Mx.subtract(50) |> Mx.as_type(t)
      end
    end

    test "safetensors, npy, npz and gguf", ctx do
      key = Mx.Random.key(7)

      for {fmt, types} <- [
            safetensors: Mx.Type.names() -- [:c128],
            npy: Mx.Type.names() -- [:bf16],
            npz: Mx.Type.names() -- [:bf16],
            gguf: [:f32, :f16, :bf16, :f64, :s8, :s16, :s32, :s64]
          ],
          type <- types do
        a = sample(type, key)
        path = tmp(ctx, "x.#{fmt}")

        back =
          case fmt do
            :safetensors -> (:ok = Mx.IO.save_safetensors(path, %{"a" => a})) && Mx.IO.load(path)["a"]
            :npy -> (:ok = Mx.IO.save_npy(path, a)) && Mx.IO.load(path)
            :npz -> (:ok = Mx.IO.savez(path, %{a: a}, compressed: type == :f32)) && Mx.IO.load(path)["a"]
            :gguf -> (:ok = Mx.IO.save_gguf(path, %{"a" => a})) && Mx.IO.load(path)["a"]
          end

        assert {back.type, back.shape} == {a.type, a.shape}, "#{fmt} #{type}"
        assert Mx.to_binary(back) == Mx.to_binary(a), "#{fmt} #{type}"
      end
    end

    test "nested parameters through Mx.Tree, and scalars and empty arrays", ctx do
      params = %{
        "layers" => [%{"w" => Mx.tensor([[1.0, 2.0]]), "b" => Mx.tensor(0.5)}, %{"w" => Mx.zeros({0, 2}), "b" => Mx.tensor(1.5)}]
      }

      for ext <- ~w(safetensors npz gguf) do
        path = tmp(ctx, "p." <> ext)
        flat = Map.new(Mx.Tree.flatten(params, join: "."))

        case ext do
          "safetensors" -> Mx.IO.save_safetensors(path, flat)
          "npz" -> Mx.IO.savez(path, flat)
          "gguf" -> Mx.IO.save_gguf(path, flat)
        end

        back = Mx.IO.load(path) |> Mx.Tree.unflatten()

        assert Mx.Tree.flatten(back) |> Enum.map(fn {p, a} -> {p, a.shape, Mx.to_binary(a)} end) ==
                 Mx.Tree.flatten(params) |> Enum.map(fn {p, a} -> {p, a.shape, Mx.to_binary(a)} end),
               ext
      end
    end
  end

  describe "argument errors" do
    test "unknown options, formats and values", ctx do
      path = tmp(ctx, "x.safetensors")
      assert_raise ArgumentError, ~r/Mx.IO.load: unknown option meta:/, fn -> Mx.IO.load(path, meta: true) end
      assert_raise ArgumentError, ~r/\.npy files carry no metadata/, fn -> Mx.IO.load("a.npy", metadata: true) end

      assert_raise ArgumentError, ~r/metadata: must be a map of strings to strings/, fn ->
        Mx.IO.save_safetensors(path, %{}, metadata: %{"a" => 1})
      end

      assert_raise ArgumentError, ~r/must hold non-empty string \(or atom\) names and Mx arrays/, fn ->
        Mx.IO.save_safetensors(path, %{"a" => 1})
      end

      assert_raise ArgumentError, ~r/"__metadata__" is reserved/, fn ->
        Mx.IO.save_safetensors(path, %{"__metadata__" => Mx.tensor(1)})
      end

      assert_raise ArgumentError, ~r/appear twice/, fn ->
        Mx.IO.save_safetensors(path, %{:a => Mx.tensor(1), "a" => Mx.tensor(2)})
      end

      assert_raise ArgumentError, ~r/compressed: must be true or false/, fn -> Mx.IO.savez(path, %{}, compressed: 1) end

      assert_raise ArgumentError, ~r/alignment: must be a positive multiple of 8/, fn ->
        Mx.IO.save_gguf(path, %{}, alignment: 12)
      end

      assert_raise ArgumentError, ~r/set general.alignment with the alignment: option/, fn ->
        Mx.IO.save_gguf(path, %{}, metadata: %{"general.alignment" => 8})
      end

      assert_raise ArgumentError, ~r/"k": 300 cannot be stored as :u8/, fn ->
        Mx.IO.save_gguf(path, %{}, metadata: %{"k" => {:u8, 300}})
      end

      assert_raise ArgumentError, ~r/an empty list needs a type/, fn -> Mx.IO.save_gguf(path, %{}, metadata: %{"k" => []}) end

      assert_raise ArgumentError, ~r/rank 5; GGUF stores at most 4/, fn ->
        Mx.IO.save_gguf(path, %{"a" => Mx.zeros({1, 1, 1, 1, 1})})
      end

      refute File.exists?(path)
    end

    test "a missing file or a directory names the file" do
      assert_raise Mx.Error, ~r/Mx.IO.load_safetensors: cannot open \/nonexistent\/m.safetensors: no such file/, fn ->
        Mx.IO.load("/nonexistent/m.safetensors")
      end

      assert_raise Mx.Error, ~r/Mx.IO.load_npy: cannot open \/tmp: illegal operation on a directory/, fn ->
        Mx.IO.load_npy("/tmp")
      end

      assert_raise Mx.Error, ~r/Mx.IO.save_npy: cannot write \/nonexistent\/x.npy/, fn ->
        Mx.IO.save_npy("/nonexistent/x.npy", Mx.tensor(1))
      end
    end
  end

  # Builds a safetensors file from a header term (JSON text or a map) and data bytes.
  defp st(ctx, header, data) do
    json = if is_binary(header), do: header, else: IO.iodata_to_binary(Mx.IO.JSON.encode(header))
    path = tmp(ctx, "bad.safetensors")
    File.write!(path, <<byte_size(json)::little-64>> <> json <> data)
    path
  end

  defp entry(dtype, shape, b, e), do: {:object, [{"dtype", dtype}, {"shape", shape}, {"data_offsets", [b, e]}]}

  describe "malformed safetensors raise Mx.Error naming the file, the tensor and the problem" do
    test "header length", ctx do
      path = tmp(ctx, "short.safetensors")
      File.write!(path, <<1, 2, 3>>)

      assert_raise Mx.Error, ~r/short.safetensors: the header length needs bytes 0..8 but the file has 3 bytes/, fn ->
        Mx.IO.load(path)
      end

      File.write!(path, <<1_000_000::little-64, "{}">>)
      assert_raise Mx.Error, ~r/the header length 1000000 runs past the end of the file \(10 bytes\)/, fn -> Mx.IO.load(path) end
      File.write!(path, <<0xFFFFFFFFFFFFFFFF::little-64, "{}">>)
      assert_raise Mx.Error, ~r/runs past the end/, fn -> Mx.IO.load(path) end
    end

    test "bad JSON", ctx do
      for {json, why} <- [
            {"{\"a\": ", "ends early"},
            {"[1, 2]  ", "not an object"},
            {"{\"a\":1,}", "expected a key after ,"},
            {"{\"a\":1} x", "unexpected \"x\" after"},
            {"{\"a\":1,\"a\":2}", "duplicate key \"a\""},
            {"{\"\\ud800\":1}", "unpaired surrogate"},
            {String.duplicate("[", 100) <> String.duplicate("]", 100), "nesting deeper than 64"},
            {<<"{\"", 0xFF, "\":1}">>, "not valid UTF-8"}
          ] do
        assert_raise Mx.Error, ~r/bad.safetensors: the header is (not valid JSON: .*|JSON but )?#{Regex.escape(why)}/, fn ->
          Mx.IO.load(st(ctx, json, ""))
        end
      end
    end

    test "entries, dtypes and shapes", ctx do
      cases = [
        {%{"w" => entry("F8_E4M3", [1], 0, 1)}, <<0>>,
         ~r/tensor "w": unknown or unsupported dtype "F8_E4M3"; Mx reads BF16, BOOL/},
        {%{"w" => entry("F32", [-1], 0, 4)}, <<0::32>>, ~r/tensor "w": the shape \[-1\] is not a list of non-negative integers/},
        {%{"w" => entry("F32", [1, 1, 1, 1, 1, 1, 1, 1, 1], 0, 4)}, <<0::32>>, ~r/tensor "w": rank 9 is over Mx's limit of 8/},
        {%{"w" => entry("F32", [4_294_967_296, 4_294_967_296], 0, 4)}, <<0::32>>,
         ~r/tensor "w": the shape .* needs 73786976294838206464 bytes, an absurd size/},
        {%{"w" => entry("F32", [2], 0, 4)}, <<0::32>>, ~r/tensor "w": data_offsets \[0, 4\] hold 4 bytes but f32 \[2\] needs 8/},
        {%{"w" => entry("F32", [1], 4, 0)}, <<0::32>>,
         ~r/tensor "w": data_offsets must be \[begin, end\] with 0 <= begin <= end/},
        {%{"w" => {:object, [{"dtype", "F32"}, {"shape", [1]}]}}, <<0::32>>, ~r/tensor "w": an entry must be/},
        {%{"__metadata__" => %{"a" => [1]}}, "", ~r/__metadata__ must map strings to strings; "a" holds \[1\]/}
      ]

      for {header, data, re} <- cases, do: assert_raise(Mx.Error, re, fn -> Mx.IO.load(st(ctx, header, data)) end)
    end

    test "offsets: past the end, overlapping, gaps, short data", ctx do
      two = fn b1, e1, b2, e2 -> %{"a" => entry("U8", [e1 - b1], b1, e1), "b" => entry("U8", [e2 - b2], b2, e2)} end

      assert_raise Mx.Error, ~r/tensor "b": its bytes end at 8, past the 6 bytes of data; the file is truncated/, fn ->
        Mx.IO.load(st(ctx, two.(0, 4, 4, 8), <<0::48>>))
      end

      assert_raise Mx.Error, ~r/tensor "b": its bytes \[2, 6\) overlap tensor "a"'s, which end at 4/, fn ->
        Mx.IO.load(st(ctx, two.(0, 4, 2, 6), <<0::48>>))
      end

      assert_raise Mx.Error, ~r/tensor "b": a gap of 1 unclaimed bytes before it at 4/, fn ->
        Mx.IO.load(st(ctx, two.(0, 4, 5, 6), <<0::48>>))
      end

      assert_raise Mx.Error, ~r/the tensors end at byte 6 of the data but the data has 8 bytes/, fn ->
        Mx.IO.load(st(ctx, two.(0, 4, 4, 6), <<0::64>>))
      end
    end
  end

  describe "malformed npy, npz and gguf" do
    defp with_bytes(ctx, name, fun) do
      bin = File.read!(fixture(name))
      path = tmp(ctx, name)
      File.write!(path, fun.(bin))
      path
    end

    test "npy: magic, version, header, dtype, shape, data length", ctx do
      npy = fn header, data -> <<0x93, "NUMPY", 1, 0, byte_size(header)::little-16>> <> header <> data end
      write = fn bin -> with_bytes(ctx, "f32.npy", fn _ -> bin end) end

      cases = [
        {"NUMPY", ~r/f32.npy: the array: 5 bytes is too short for a .npy file/},
        {"PK\x03\x04......", ~r/not a .npy file \(no \\x93NUMPY magic\)/},
        {<<0x93, "NUMPY", 4, 0, 0, 0, 0, 0>>, ~r/.npy format version 4.0 is not supported/},
        {npy.("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", <<0::32>>),
         ~r/the header promises 8 bytes of f32 \[2\] but 4 follow it/},
        {npy.("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", <<0::96>>),
         ~r/the header promises 8 bytes of f32 \[2\] but 12 follow it/},
        {npy.("{'descr': '<U4', 'fortran_order': False, 'shape': (1,), }", ""), ~r/dtype "<U4" is not supported/},
        {npy.("{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }", ""), ~r/dtype "\|f4" gives no byte order/},
        {npy.("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", ""),
         ~r/is not a dict of descr, fortran_order and shape/},
        {npy.("{'descr': '<f4', 'fortran_order': False, 'shape': (1), }", ""), ~r/the shape \(1\) is not a tuple/},
        {npy.("{'descr': '<f4', 'descr': '<f4', 'shape': (1,), }", ""), ~r/repeats a key/},
        {npy.("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", ""), ~r/an absurd size/},
        {<<0x93, "NUMPY", 1, 0, 0xFF, 0xFF, "{}">>, ~r/the header length 65535 runs past the end/}
      ]

      for {bin, re} <- cases, do: assert_raise(Mx.Error, re, fn -> Mx.IO.load(write.(bin)) end)
    end

    test "npz: not a zip, a corrupt stored member (CRC), a member that is not .npy", ctx do
      assert_raise Mx.Error, ~r/stored.npz: not a readable zip archive/, fn ->
        Mx.IO.load(with_bytes(ctx, "stored.npz", &binary_part(&1, 0, 100)))
      end

      # Flip one data byte of the first member (its npy header starts with \x93NUMPY).
      path =
        with_bytes(ctx, "stored.npz", fn bin ->
          {at, _} = :binary.match(bin, "'descr'")
          <<pre::binary-size(at), c, post::binary>> = bin
          pre <> <<Bitwise.bxor(c, 1)>> <> post
        end)

      assert_raise Mx.Error,
                   ~r/member "[a-z]+.npy": CRC-32 0x[0-9A-F]{8} does not match the archive's 0x[0-9A-F]{8}; the member is corrupt/,
                   fn -> Mx.IO.load(path) end

      {:ok, {_, zip}} = :zip.create(~c"x.npz", [{~c"notes.txt", "hello"}], [:memory])
      path = tmp(ctx, "txt.npz")
      File.write!(path, zip)
      assert_raise Mx.Error, ~r/member "notes.txt" is not a .npy file/, fn -> Mx.IO.load(path) end
    end

    test "gguf: magic, version, counts, types, dims, alignment, offsets", ctx do
      gstr = fn s -> <<byte_size(s)::little-64>> <> s end

      head = fn n_t, kvs, infos ->
        "GGUF" <> <<3::little-32, n_t::little-64, length(kvs)::little-64>> <> Enum.join(kvs) <> Enum.join(infos)
      end

      info = fn name, dims, type, off ->
        gstr.(name) <>
          <<length(dims)::little-32>> <> Enum.map_join(dims, &<<&1::little-64>>) <> <<type::little-32, off::little-64>>
      end

      pad = fn bin -> bin <> :binary.copy(<<0>>, rem(32 - rem(byte_size(bin), 32), 32)) end
      write = fn bin -> with_bytes(ctx, "plain.gguf", fn _ -> bin end) end

      cases = [
        {"GGUX" <> <<3::little-32>>, ~r/plain.gguf: not a GGUF file \(magic "GGUX"/},
        {"GGUF" <> <<1::little-32>>, ~r/GGUF version 1 is not supported/},
        {"GGUF" <> <<3::big-32>>, ~r/reads as big-endian/},
        {"GGUF" <> <<3::little-32, 1::little-64>>, ~r/the metadata count needs 8 bytes at 16 but the file has 16/},
        {head.(1_000_000, [], []), ~r/the header claims 1000000 tensors and 0 metadata entries/},
        {head.(0, [gstr.("k") <> <<13::little-32>>], []), ~r/metadata "k": unknown value type 13/},
        {head.(0, [gstr.("k") <> <<8::little-32, 1_000_000::little-64>>], []), ~r/metadata "k" needs 1000000 bytes/},
        {head.(0, [gstr.("k") <> <<9::little-32, 4::little-32, 1 <<< 40::little-64>>], []),
         ~r/metadata "k"'s 1099511627776 elements needs/},
        {head.(0, [gstr.("k") <> <<7::little-32, 2>>], []), ~r/metadata "k": a bool holds 2/},
        {head.(0, [gstr.("general.alignment") <> <<4::little-32, 12::little-32>>], []),
         ~r/general.alignment must be a positive multiple of 8, got 12/},
        {head.(0, [gstr.("k") <> <<0::little-32, 1>>, gstr.("k") <> <<0::little-32, 1>>], []),
         ~r/metadata key "k" appears twice/},
        {pad.(head.(1, [], [info.("t", [4], 3, 0)])), ~r/tensor "t": ggml type Q4_1 is not supported/},
        {pad.(head.(1, [], [info.("t", [4], 99, 0)])), ~r/tensor "t": unknown ggml type 99/},
        {pad.(head.(1, [], [info.("t", [1, 1, 1, 1, 1], 0, 0)])), ~r/tensor "t": 5 dimensions, over GGUF's 4/},
        {pad.(head.(1, [], [info.("t", [], 8, 0)])), ~r/tensor "t": a Q8_0 tensor needs at least one dimension/},
        {pad.(head.(1, [], [info.("t", [33], 8, 0)])),
         ~r/tensor "t": its innermost dimension 33 is not a multiple of Q8_0's block of 32/},
        {pad.(head.(1, [], [info.("t", [1 <<< 31, 1 <<< 31], 0, 0)])), ~r/tensor "t": the shape .* an absurd size/},
        {pad.(head.(1, [], [info.("t", [4], 0, 8)])) <> <<0::128>>,
         ~r/tensor "t": offset 8 is not a multiple of the alignment 32/},
        {pad.(head.(1, [], [info.("t", [4], 0, 0)])) <> <<0::64>>,
         ~r/tensor "t": bytes 0..16 of the data run past its end \(8 bytes\); the file is truncated/},
        {pad.(head.(2, [], [info.("t", [16], 0, 0), info.("u", [4], 0, 32)])) <> <<0::8*80>>,
         ~r/tensor "u": its bytes at 32 overlap tensor "t"'s, which end at 64/},
        {pad.(head.(2, [], [info.("t", [4], 0, 0), info.("t", [4], 0, 32)])) <> <<0::8*64>>, ~r/a tensor name appears twice/}
      ]

      for {bin, re} <- cases, do: assert_raise(Mx.Error, re, fn -> Mx.IO.load(write.(bin)) end)
    end
  end
end
