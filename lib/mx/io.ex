defmodule Mx.IO do
  @moduledoc """
  Loading and saving arrays: safetensors, NumPy's `.npy`/`.npz` and GGUF, as
  MLX's `mx.load`/`mx.save_*` do.

  `load/2` picks the format by extension and returns a map of name to array
  (a single array for `.npy`). Tensors are read from the file by offset
  straight into Mx buffers on a dirty IO scheduler, so loading a checkpoint
  does not hold it twice in memory (NumPy files in big-endian byte order and
  deflated `.npz` members go through a binary first).

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc.safetensors")
      iex> :ok = Mx.IO.save_safetensors(path, %{"w" => Mx.tensor([[1.0, 2.0]]), "step" => Mx.tensor(3)}, metadata: %{"format" => "mlx"})
      iex> %{"w" => w, "step" => step} = Mx.IO.load(path)
      iex> {Mx.to_list(w), Mx.to_number(step)}
      {[[1.0, 2.0]], 3}
      iex> {_arrays, meta} = Mx.IO.load(path, metadata: true)
      iex> meta
      %{"format" => "mlx"}

  | format | types | notes |
  |--------|-------|-------|
  | safetensors | all but `c128` (`BOOL U8 I8 U16 I16 U32 I32 U64 I64 F16 BF16 F32 F64 C64`) | string metadata |
  | npy, npz | all but `bf16` (NumPy has none) | versions 1.0-3.0; Fortran order and big-endian read; npz stored or deflated |
  | gguf | `F32 F16 BF16 F64 I8 I16 I32 I64`; `Q8_0`, `Q4_0` dequantized to f32 on load, written with `types:` | versions 2 and 3, typed metadata |

  Files are little-endian; on a big-endian host every function raises.
  A malformed file (truncated, a header that lies about lengths or offsets,
  overlapping tensors, absurd shapes, unknown dtypes, bad JSON or magic)
  raises `Mx.Error` naming the function, the file, the tensor and the
  problem. Saving writes a temporary file and renames it into place.

  Nested parameters go through `Mx.Tree.flatten/2` and `Mx.Tree.unflatten/2`:

      iex> params = %{layers: [%{w: Mx.tensor([1.0])}]}
      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_tree.safetensors")
      iex> :ok = Mx.IO.save_safetensors(path, Map.new(Mx.Tree.flatten(params, join: ".")))
      iex> Mx.IO.load(path) |> Mx.Tree.unflatten() |> get_in(["layers", Access.at(0), "w"]) |> Mx.to_list()
      [1.0]
  """

  alias Mx.IO.{GGUF, Npy, Safetensors}

  @doc """
  Loads a file by its extension: `.safetensors`, `.npy` (one array),
  `.npz` or `.gguf` (maps of name to array). With `metadata: true`,
  safetensors and gguf return `{arrays, metadata}`.

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc.npy")
      iex> :ok = Mx.IO.save_npy(path, Mx.tensor([1, 2, 3], type: :s16))
      iex> Mx.IO.load(path) |> Mx.to_list()
      [1, 2, 3]
      iex> Mx.IO.load("weights.bin")
      ** (ArgumentError) Mx.IO.load: cannot tell the format of "weights.bin" from its extension; use .safetensors, .npy, .npz or .gguf, or call a load_* function
  """
  @spec load(Path.t(), keyword()) :: Mx.t() | %{String.t() => Mx.t()} | {%{String.t() => Mx.t()}, map()}
  def load(path, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [metadata: false], "Mx.IO.load")

    metadata? = opts[:metadata]

    case path |> IO.chardata_to_string() |> Path.extname() |> String.downcase() do
      ".safetensors" ->
        load_safetensors(path, opts)

      ".gguf" ->
        load_gguf(path, opts)

      ext when ext in [".npy", ".npz"] and metadata? != false ->
        raise ArgumentError, "Mx.IO.load: #{ext} files carry no metadata; drop metadata: true"

      ".npy" ->
        load_npy(path)

      ".npz" ->
        load_npz(path)

      _ ->
        raise ArgumentError,
              "Mx.IO.load: cannot tell the format of #{inspect(path)} from its extension; use .safetensors, .npy, .npz or .gguf, or call a load_* function"
    end
  end

  @doc """
  Loads a safetensors file as a map of name to array; with `metadata: true`,
  `{arrays, metadata}` where metadata is the `__metadata__` map of strings
  (empty when the file has none).

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_bf16.safetensors")
      iex> :ok = Mx.IO.save_safetensors(path, %{"x" => Mx.tensor([1.5, -2.0], type: :bf16)})
      iex> %{"x" => x} = Mx.IO.load_safetensors(path)
      iex> {Mx.type(x), Mx.to_list(x)}
      {:bf16, [1.5, -2.0]}
  """
  @spec load_safetensors(Path.t(), keyword()) :: %{String.t() => Mx.t()} | {%{String.t() => Mx.t()}, %{String.t() => String.t()}}
  def load_safetensors(path, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [metadata: false], "Mx.IO.load_safetensors")
    Safetensors.load(path, metadata!(opts, "Mx.IO.load_safetensors"))
  end

  @doc """
  Saves a map of names (strings or atoms) to arrays as safetensors, with
  `metadata:` a map of strings to strings. Tensors are stored in name order.

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_save.safetensors")
      iex> Mx.IO.save_safetensors(path, %{a: Mx.tensor([true, false])})
      :ok
      iex> Mx.IO.save_safetensors(path, %{"z" => Mx.tensor([1.0], type: :c128)})
      ** (ArgumentError) Mx.IO.save_safetensors: tensor "z" is c128, which safetensors cannot store; convert it with Mx.as_type/2
  """
  @spec save_safetensors(Path.t(), %{(String.t() | atom()) => Mx.t()}, keyword()) :: :ok
  def save_safetensors(path, arrays, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [metadata: %{}], "Mx.IO.save_safetensors")
    Safetensors.save(path, arrays, opts[:metadata])
  end

  @doc """
  Loads a `.npy` file as one array (Fortran-order arrays come back in
  C order, big-endian data in native order).

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_c.npy")
      iex> :ok = Mx.IO.save_npy(path, Mx.tensor([[1.0, 2.0], [3.0, 4.0]], type: :f64))
      iex> Mx.IO.load_npy(path) |> Mx.to_list()
      [[1.0, 2.0], [3.0, 4.0]]
  """
  @spec load_npy(Path.t()) :: Mx.t()
  def load_npy(path), do: Npy.load(path)

  @doc """
  Saves one array as `.npy` (format 1.0, little-endian, C order; `bf16` has
  no NumPy dtype and raises).

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_save.npy")
      iex> Mx.IO.save_npy(path, Mx.tensor(1.0, type: :bf16))
      ** (ArgumentError) Mx.IO.save_npy: the array is bf16, which NumPy has no dtype for; convert it with Mx.as_type(a, :f32)
  """
  @spec save_npy(Path.t(), Mx.t()) :: :ok
  def save_npy(path, array), do: Npy.save(path, array)

  @doc """
  Loads a `.npz` archive as a map of member name (without `.npy`) to array.
  Stored members are read by offset; deflated ones are inflated one at a time.

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc.npz")
      iex> :ok = Mx.IO.savez(path, %{"a" => Mx.tensor([1, 2]), "b" => Mx.tensor(2.5)}, compressed: true)
      iex> Mx.IO.load_npz(path) |> Map.new(fn {k, v} -> {k, Mx.to_list(v)} end)
      %{"a" => [1, 2], "b" => 2.5}
  """
  @spec load_npz(Path.t()) :: %{String.t() => Mx.t()}
  def load_npz(path), do: Npy.load_npz(path)

  @doc """
  Saves a map of names to arrays as a `.npz` archive (as `np.savez`; with
  `compressed: true`, deflated as `np.savez_compressed`). The archive is
  built in memory before it is written.

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_savez.npz")
      iex> Mx.IO.savez(path, %{"x" => Mx.tensor([1.0])})
      :ok
  """
  @spec savez(Path.t(), %{(String.t() | atom()) => Mx.t()}, keyword()) :: :ok
  def savez(path, arrays, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [compressed: false], "Mx.IO.savez")

    unless is_boolean(opts[:compressed]),
      do: raise(ArgumentError, "Mx.IO.savez: compressed: must be true or false, got #{inspect(opts[:compressed])}")

    Npy.savez(path, arrays, opts[:compressed])
  end

  @doc """
  Loads a GGUF file (versions 2 and 3) as a map of tensor name to array;
  with `metadata: true`, `{arrays, metadata}` where metadata maps keys to
  Elixir values (integers, floats, booleans, strings, lists; non-finite
  floats as `:nan`, `:infinity`, `:neg_infinity`). Shapes are in Mx's order
  (GGUF lists dimensions innermost first). `Q8_0` and `Q4_0` tensors are
  dequantized to f32; other quantized types raise, naming the type.

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc.gguf")
      iex> :ok = Mx.IO.save_gguf(path, %{"tok" => Mx.tensor([[1, 2, 3]], type: :f16)}, metadata: %{"general.name" => "tiny", "n" => {:u32, 3}})
      iex> {%{"tok" => t}, meta} = Mx.IO.load_gguf(path, metadata: true)
      iex> {Mx.shape(t), Mx.type(t), meta["general.name"], meta["n"], meta["general.alignment"]}
      {{1, 3}, :f16, "tiny", 3, 32}
  """
  @spec load_gguf(Path.t(), keyword()) :: %{String.t() => Mx.t()} | {%{String.t() => Mx.t()}, map()}
  def load_gguf(path, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [metadata: false], "Mx.IO.load_gguf")
    GGUF.load(path, metadata!(opts, "Mx.IO.load_gguf"))
  end

  @doc """
  Saves a map of names to arrays as GGUF version 3 (types `f32 f16 bf16 f64
  s8 s16 s32 s64`, rank at most 4). `metadata:` maps string keys to values:
  strings, booleans, integers (stored as `s64`), floats (`f64`), lists of
  one kind, or `{type, value}` for another type (`{:u32, 7}`,
  `{:f32, 0.5}`, `{:array, :u8, [1, 2]}`). `alignment:` (default 32) is
  written as `general.alignment`.

  `types:` maps tensor names to a ggml quantized type to store them in:
  `:q8_0` or `:q4_0` (the ones `load_gguf/2` reads back), blocks of 32 along the
  last axis (which must be a multiple of 32) with an f16 scale, quantized from
  the f32 values as ggml's reference `quantize_row_q8_0_ref` / `quantize_row_q4_0_ref`
  do (Q8_0: `d = amax / 127`, `q = round(x / d)`, halves away from zero; Q4_0:
  `d = max / -8` with `max` the first value of largest magnitude,
  `q = min(15, trunc(x / d + 8.5))`). A tensor holding a NaN or infinity, or
  whose scale overflows f16, raises; an unknown type or tensor name raises.

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_save.gguf")
      iex> Mx.IO.save_gguf(path, %{"w" => Mx.tensor([1.0])}, metadata: %{"tags" => ["a", "b"]}, alignment: 64)
      :ok
      iex> Mx.IO.save_gguf(path, %{"w" => Mx.tensor([1], type: :u8)})
      ** (ArgumentError) Mx.IO.save_gguf: tensor "w" is u8, which GGUF cannot store; convert it with Mx.as_type/2

      iex> path = Path.join(System.tmp_dir!(), "mx_io_doc_q8.gguf")
      iex> w = Mx.divide(Mx.iota({1, 32}, type: :f32), 4.0)
      iex> :ok = Mx.IO.save_gguf(path, %{"w" => w}, types: %{"w" => :q8_0})
      iex> back = Mx.IO.load_gguf(path)["w"]
      iex> # within half a step d = max|w| / 127, plus 127 times d's f16 rounding (d / 2048)
      iex> {Mx.type(back), Mx.to_number(Mx.reduce_max(Mx.abs(Mx.subtract(back, w)))) <= (0.5 + 127 / 2048) * 7.75 / 127}
      {:f32, true}
      iex> Mx.IO.save_gguf(path, %{"w" => w}, types: %{"w" => :q5_k})
      ** (ArgumentError) Mx.IO.save_gguf: types: "w" => :q5_k is not a type Mx writes; use :q8_0 or :q4_0
  """
  @spec save_gguf(Path.t(), %{(String.t() | atom()) => Mx.t()}, keyword()) :: :ok
  def save_gguf(path, arrays, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [metadata: %{}, alignment: 32, types: %{}], "Mx.IO.save_gguf")
    GGUF.save(path, arrays, opts[:metadata], opts[:alignment], opts[:types])
  end

  defp metadata!(opts, fun) do
    case opts[:metadata] do
      b when is_boolean(b) -> b
      other -> raise ArgumentError, "#{fun}: metadata: must be true or false, got #{inspect(other)}"
    end
  end
end
