defmodule Mx do
  @moduledoc """
  Mx: lazy arrays computed by a C engine, with an Nx-style API.

  Every op returns at once with a node of a computation graph; nothing is
  computed until `eval/1` or a reader (`to_list/1`, `to_number/1`,
  `to_binary/1`) needs the values. Evaluation runs the pending graph in C,
  inline for tiny graphs and on a dirty scheduler for large ones, and frees
  intermediate results as it goes.

      iex> a = Mx.tensor([[1.0, 2.0], [3.0, 4.0]])
      iex> b = a |> Mx.multiply(2) |> Mx.add(Mx.tensor([10.0, 20.0]))
      iex> Mx.evaluated?(b)
      false
      iex> Mx.to_list(b)
      [[12.0, 24.0], [16.0, 28.0]]
      iex> Mx.sum(b, axes: [1]) |> Mx.to_list()
      [36.0, 44.0]

  ## Where things are

    * `Mx` — creation, elementwise, reductions, shape and indexing ops, matmul
    * `Mx.Array` — the array struct, `Access` indexing, `Inspect`
    * `Mx.Type` — dtypes (complex `c64`/`c128` too) and the promotion rules
    * `Mx.FFT` — discrete Fourier transforms (numpy's `np.fft`)
    * `Mx.Memory` — the engine's memory accounting and limits
    * `Mx.Compile` — `compile/2`: a function's graph captured once, replayed from C
    * `Mx.Special` — special functions: incomplete gamma and beta, log Φ and Φ⁻¹, betaln, xlogy
    * `Mx.Error` — the exception engine errors raise
    * `Mx.Nx.Backend`, `Mx.Nx.Compiler` — an `Nx.Backend` and a defn compiler on Mx (with the optional `:nx` dependency; `to_nx/1`, `from_nx/1`)
    * `Mx.Tree` — map, zip, flatten and reduce over nested maps, lists and tuples of arrays (parameters, gradients)
    * `Mx.IO` — load and save safetensors, npy/npz and GGUF files

  Shapes are tuples, types are atoms such as `:f32` (Nx tuples like
  `{:f, 32}` are accepted). Defaults follow Nx: float data is `f32`, integer
  data `s64`.
  """

  import Kernel, except: [max: 2, min: 2, abs: 1, round: 1, floor: 1, ceil: 1]
  import Bitwise, only: [>>>: 2, &&&: 2]
  alias Mx.{Array, NIF, Type}

  @type t :: Array.t()

  # The engine's MX_MAX_INPUTS (c_src/mx.h): the most arrays one concatenate/stack node takes.
  @max_inputs 4096
  @type tensor_like :: t() | number() | :nan | :infinity | :neg_infinity
  @type shape :: tuple()
  @type axes :: [integer()] | nil

  # ---- creation ------------------------------------------------------------------

  @doc """
  Builds an array from a number, a (nested) list of numbers, or an array.

  Options: `:type` (default `:f32` if any element is a float, `:s64` for
  integers, `:bool` for booleans). `:nan`, `:infinity` and `:neg_infinity`
  are accepted as elements. With `type: :c64` or `:c128` the numbers become
  the real parts (imaginary parts 0); build complex values from real and
  imaginary parts with `complex/2`.

      iex> Mx.tensor([[1, 2], [3, 4]]) |> Mx.shape()
      {2, 2}
      iex> Mx.tensor(1.5, type: :f64) |> Mx.to_number()
      1.5
      iex> Mx.tensor([1, 2], type: {:f, 32}).type
      :f32
  """
  @spec tensor(tensor_like() | list(), keyword()) :: t()
  def tensor(data, opts \\ [])

  def tensor(%Array{} = a, opts) do
    case Mx.Opts.validate!(opts, [:type], "Mx.tensor")[:type] do
      nil -> a
      t -> as_type(a, t)
    end
  end

  def tensor(data, opts) when is_number(data) or data in [:nan, :infinity, :neg_infinity] do
    Mx.Opts.validate!(opts, [:type], "Mx.tensor")
    type = if t = opts[:type], do: Type.normalize!(t), else: infer_type([data])
    NIF.full(type, {}, data) |> Array.wrap()
  end

  def tensor(data, opts) when is_boolean(data), do: tensor([data], opts) |> reshape({})

  def tensor(data, opts) when is_list(data) do
    Mx.Opts.validate!(opts, [:type], "Mx.tensor")
    check_rank!(data, 0)
    shape = list_shape(data, [])
    flat = List.flatten(data)
    type = if t = opts[:type], do: Type.normalize!(t), else: infer_type(flat)
    flat |> encode(type) |> from_binary(type, shape: shape)
  end

  def tensor(other, _opts) do
    raise ArgumentError, "Mx.tensor/2 expects a number, a nested list of numbers or an Mx array, got #{inspect(other)}"
  end

  # Before the shape walk (quadratic in depth): a list nested past the rank limit is refused at once.
  defp check_rank!([first | _], depth) when is_list(first) and depth < 7, do: check_rank!(first, depth + 1)

  defp check_rank!([first | _], _depth) when is_list(first) do
    raise ArgumentError, "Mx.tensor/2: the list is nested deeper than Mx's rank limit of 8"
  end

  defp check_rank!(_, _), do: :ok

  defp list_shape([], acc), do: List.to_tuple(Enum.reverse([0 | acc]))

  defp list_shape([first | _] = list, acc) when is_list(first) do
    shapes = Enum.map(list, &list_shape(&1, []))

    if Enum.uniq(shapes) != [hd(shapes)] do
      raise ArgumentError, "Mx.tensor/2 expects a rectangular nested list; rows have shapes #{inspect(Enum.uniq(shapes))}"
    end

    List.to_tuple(Enum.reverse(acc) ++ [length(list) | Tuple.to_list(hd(shapes))])
  end

  defp list_shape(list, acc) do
    if Enum.any?(list, &is_list/1), do: raise(ArgumentError, "Mx.tensor/2 expects a rectangular nested list")
    List.to_tuple(Enum.reverse([length(list) | acc]))
  end

  defp infer_type(flat) do
    cond do
      flat != [] and Enum.all?(flat, &is_boolean/1) -> :bool
      Enum.all?(flat, &is_integer/1) -> :s64
      Enum.all?(flat, &(is_number(&1) or &1 in [:nan, :infinity, :neg_infinity])) -> :f32
      Enum.any?(flat, &is_tuple/1) -> raise ArgumentError, "Mx.tensor/2 takes real numbers; build complex arrays with Mx.complex(re, im)"
      true -> raise ArgumentError, "Mx.tensor/2 expects numbers, got #{inspect(Enum.find(flat, &(not is_number(&1))))}"
    end
  end

  defp encode(flat, type) when type in [:f16, :bf16] do
    # Half types are written as f32 and converted by the engine.
    flat |> encode(:f32) |> from_binary(:f32, shape: {length(flat)}) |> as_type(type) |> to_binary()
  end

  defp encode(flat, type) do
    {kind, bits} = Type.to_nx(type)
    for x <- flat, into: <<>>, do: encode_one(x, kind, bits)
  end

  defp encode_one(true, _kind, _bits), do: <<1>>
  defp encode_one(false, _kind, _bits), do: <<0>>
  defp encode_one(x, :pred, _), do: <<if(x == 0, do: 0, else: 1)>>
  defp encode_one(x, :f, bits) when is_number(x), do: <<x::float-size(bits)-native>>
  defp encode_one(:nan, :f, 32), do: <<0x7FC00000::32-native>>
  defp encode_one(:nan, :f, 64), do: <<0x7FF8000000000000::64-native>>
  defp encode_one(:infinity, :f, 32), do: <<0x7F800000::32-native>>
  defp encode_one(:infinity, :f, 64), do: <<0x7FF0000000000000::64-native>>
  defp encode_one(:neg_infinity, :f, 32), do: <<0xFF800000::32-native>>
  defp encode_one(:neg_infinity, :f, 64), do: <<0xFFF0000000000000::64-native>>
  # Complex: the number is the real part, the imaginary part is 0.
  defp encode_one(x, :c, bits) when is_number(x) or x in [:nan, :infinity, :neg_infinity] do
    encode_one(x, :f, div(bits, 2)) <> encode_one(0.0, :f, div(bits, 2))
  end

  defp encode_one(x, :s, bits) when is_integer(x), do: <<x::signed-size(bits)-native>>
  defp encode_one(x, :u, bits) when is_integer(x), do: <<x::unsigned-size(bits)-native>>

  defp encode_one(x, kind, bits) do
    raise ArgumentError, "cannot store #{inspect(x)} in an array of type #{Type.normalize!({kind, bits})}"
  end

  @doc """
  Builds an array from a binary of native-endian elements.

      iex> Mx.from_binary(<<1.0::float-32-native, 2.0::float-32-native>>, :f32) |> Mx.to_list()
      [1.0, 2.0]
  """
  @spec from_binary(binary(), Type.spec(), keyword()) :: t()
  def from_binary(binary, type, opts \\ [])

  def from_binary(binary, type, opts) when is_binary(binary) do
    Mx.Opts.validate!(opts, [:shape], "Mx.from_binary")
    type = Type.normalize!(type)
    size = Type.byte_size(type)

    shape =
      cond do
        shape = opts[:shape] -> shape
        rem(byte_size(binary), size) == 0 -> {div(byte_size(binary), size)}
        true -> raise ArgumentError, "Mx.from_binary/3: #{byte_size(binary)} bytes is not a whole number of #{type} elements (#{size} bytes each)"
      end

    NIF.from_binary(binary, type, shape) |> Array.wrap()
  end

  def from_binary(data, _type, _opts) when is_bitstring(data) do
    raise ArgumentError, "Mx.from_binary/3: data must be whole bytes, got a bitstring of #{bit_size(data)} bits"
  end

  def from_binary(data, _type, _opts) do
    raise ArgumentError, "Mx.from_binary/3: data must be a binary, got #{inspect(data, limit: 5)}"
  end

  @doc """
  An array of zeros. `type:` defaults to `:f32`.

      iex> Mx.zeros({2}) |> Mx.to_list()
      [0.0, 0.0]
  """
  @spec zeros(shape(), keyword()) :: t()
  def zeros(shape, opts \\ []), do: full(shape, 0, Mx.Opts.validate!(opts, [:type], "Mx.zeros"))

  @doc """
  An array of ones.

      iex> Mx.ones({2}, type: :s32) |> Mx.to_list()
      [1, 1]
  """
  @spec ones(shape(), keyword()) :: t()
  def ones(shape, opts \\ []), do: full(shape, 1, Mx.Opts.validate!(opts, [:type], "Mx.ones"))

  @doc """
  An array filled with `value`. `type:` defaults to `:f32`.

      iex> Mx.full({2, 1}, 7, type: :u8) |> Mx.to_list()
      [[7], [7]]
  """
  @spec full(shape(), number() | atom(), keyword()) :: t()
  def full(shape, value, opts \\ []) do
    Mx.Opts.validate!(opts, [:type], "Mx.full")
    NIF.full(type_opt(opts, :f32), shape, value) |> Array.wrap()
  end

  @doc """
  Counts along `axis:` (default: across the whole array, row-major).
  `type:` defaults to `:s64`.

      iex> Mx.iota({2, 3}, axis: 1) |> Mx.to_list()
      [[0, 1, 2], [0, 1, 2]]
      iex> Mx.iota({2, 2}) |> Mx.to_list()
      [[0, 1], [2, 3]]
  """
  @spec iota(shape(), keyword()) :: t()
  def iota(shape, opts \\ []) do
    Mx.Opts.validate!(opts, [:axis, :type], "Mx.iota")
    axis = opts[:axis]
    axis = if is_integer(axis) and axis < 0, do: tuple_size(shape) + axis, else: axis
    NIF.iota(type_opt(opts, :s64), shape, axis) |> Array.wrap()
  end

  @doc """
  Evenly spaced values in `[start, stop)` with `step` (numpy's arange).
  `type:` defaults to `:s64` for integer arguments and `:f32` otherwise.

      iex> Mx.arange(5) |> Mx.to_list()
      [0, 1, 2, 3, 4]
      iex> Mx.arange(1, 2, 0.25, type: :f64) |> Mx.to_list()
      [1.0, 1.25, 1.5, 1.75]
  """
  @spec arange(number(), number() | nil, number(), keyword()) :: t()
  def arange(start_or_stop, stop \\ nil, step \\ 1, opts \\ [])

  def arange(stop, nil, step, opts), do: arange(0, stop, step, opts)

  def arange(start, stop, step, opts) do
    Mx.Opts.validate!(opts, [:type], "Mx.arange")
    if step == 0, do: raise(ArgumentError, "[arange] step must be nonzero")
    default = if Enum.all?([start, stop, step], &is_integer/1), do: :s64, else: :f32
    n = Kernel.max(0, Kernel.ceil((stop - start) / step))
    NIF.arange(type_opt(opts, default), start, step, n) |> Array.wrap()
  end

  @doc """
  `n:` values from `start` to `stop` (included unless `endpoint: false`).
  `type:` defaults to `:f32`.

      iex> Mx.linspace(0, 1, n: 5) |> Mx.to_list()
      [0.0, 0.25, 0.5, 0.75, 1.0]
  """
  @spec linspace(number(), number(), keyword()) :: t()
  def linspace(start, stop, opts) do
    Mx.Opts.validate!(opts, [:n, :endpoint, :type], "Mx.linspace")
    n = Keyword.fetch!(opts, :n)
    NIF.linspace(type_opt(opts, :f32), start, stop, n, Keyword.get(opts, :endpoint, true)) |> Array.wrap()
  end

  @doc """
  The identity matrix of size `n` (or `n × m` with `m:`). `type:` defaults to `:f32`.

      iex> Mx.eye(2, type: :s64) |> Mx.to_list()
      [[1, 0], [0, 1]]
  """
  @spec eye(non_neg_integer(), keyword()) :: t()
  def eye(n, opts \\ []) do
    Mx.Opts.validate!(opts, [:m, :type], "Mx.eye")
    NIF.eye(type_opt(opts, :f32), n, opts[:m] || n) |> Array.wrap()
  end

  defp type_opt(opts, default), do: Type.normalize!(opts[:type] || default)

  # ---- reading ------------------------------------------------------------------------

  @doc """
  Evaluates every array in `x`: an array, or tuples, lists and maps holding
  arrays (other terms pass through). Returns `x`. One call evaluates the
  union of the graphs, so shared work runs once.

      iex> {a, b} = Mx.eval({Mx.add(1, 2), [Mx.negate(Mx.tensor(1.0))]})
      iex> Mx.evaluated?(a) and Mx.evaluated?(hd(b))
      true
  """
  @spec eval(x) :: x when x: term()
  def eval(x) do
    case collect(x, []) do
      [] -> x
      refs -> NIF.eval(refs)
    end

    x
  end

  defp collect(%Array{ref: ref}, acc), do: [ref | acc]
  defp collect(t, acc) when is_tuple(t), do: t |> Tuple.to_list() |> collect(acc)
  defp collect(l, acc) when is_list(l), do: Enum.reduce(l, acc, &collect/2)
  defp collect(%_{}, acc), do: acc
  defp collect(m, acc) when is_map(m), do: m |> Map.values() |> collect(acc)
  defp collect(_, acc), do: acc

  @doc """
  The array's data as a binary of native-endian elements (evaluates first).

      iex> Mx.tensor([1, 2], type: :u8) |> Mx.to_binary()
      <<1, 2>>
  """
  @spec to_binary(t()) :: binary()
  def to_binary(%Array{ref: ref} = a) do
    # Inside a vmap trace (Mx.Transforms.checking_reads/2) reading a placeholder's value raises.
    if check = Process.get(:mx_read_check), do: check.(a)
    NIF.to_binary(ref)
  end

  @doc """
  The array's values as nested lists (evaluates first). Floats that are not
  finite come back as `:nan`, `:infinity` and `:neg_infinity`; bools as
  `true`/`false`; complex numbers as `{re, im}` tuples.

      iex> Mx.tensor([[1, 2], [3, 4]]) |> Mx.to_list()
      [[1, 2], [3, 4]]
      iex> Mx.tensor([1.0, :nan]) |> Mx.to_list()
      [1.0, :nan]
  """
  @spec to_list(t()) :: list() | number() | atom()
  def to_list(%Array{shape: shape} = a) do
    flat = to_flat_list(a)

    case shape do
      {} -> hd(flat)
      _ -> chunk(flat, Tuple.to_list(shape))
    end
  end

  @doc """
  The single value of a rank-0 (or one-element) array.

      iex> Mx.tensor([[3.5]]) |> Mx.to_number()
      3.5
  """
  @spec to_number(t()) :: number() | atom()
  def to_number(%Array{} = a) do
    if size(a) != 1 do
      raise ArgumentError, "to_number/1 needs an array with one element, got #{describe(a)}"
    end

    hd(to_flat_list(a))
  end

  @doc false
  def to_flat_list(%Array{type: type} = a, limit \\ :infinity) do
    a = if type in [:f16, :bf16], do: as_type(a, :f32), else: a
    bin = to_binary(a)
    bin = if limit == :infinity, do: bin, else: binary_part(bin, 0, Kernel.min(byte_size(bin), limit * Type.byte_size(a.type)))
    decode(bin, a.type)
  end

  defp decode(bin, :bool), do: for(<<x::8 <- bin>>, do: x != 0)
  defp decode(bin, :f32), do: for(<<x::binary-size(4) <- bin>>, do: decode_f32(x))
  defp decode(bin, :f64), do: for(<<x::binary-size(8) <- bin>>, do: decode_f64(x))
  defp decode(bin, :c64), do: for(<<re::binary-size(4), im::binary-size(4) <- bin>>, do: {decode_f32(re), decode_f32(im)})
  defp decode(bin, :c128), do: for(<<re::binary-size(8), im::binary-size(8) <- bin>>, do: {decode_f64(re), decode_f64(im)})

  defp decode(bin, type) do
    case Type.to_nx(type) do
      {:s, bits} -> for <<x::signed-size(bits)-native <- bin>>, do: x
      {:u, bits} -> for <<x::unsigned-size(bits)-native <- bin>>, do: x
    end
  end

  defp decode_f32(<<x::float-32-native>>), do: x
  defp decode_f32(<<bits::32-native>>), do: special(bits >>> 31, bits &&& 0x7FFFFF)
  defp decode_f64(<<x::float-64-native>>), do: x
  defp decode_f64(<<bits::64-native>>), do: special(bits >>> 63, bits &&& 0xFFFFFFFFFFFFF)

  defp special(_sign, mantissa) when mantissa != 0, do: :nan
  defp special(0, 0), do: :infinity
  defp special(1, 0), do: :neg_infinity

  defp chunk(flat, [_]), do: flat
  defp chunk(flat, [n | rest]) do
    inner = Enum.reduce(rest, 1, &(&1 * &2))
    if inner == 0, do: List.duplicate(chunk([], rest), n), else: flat |> Enum.chunk_every(inner) |> Enum.map(&chunk(&1, rest))
  end

  # ---- metadata --------------------------------------------------------------------

  @doc """
  The shape tuple.

      iex> Mx.zeros({2, 3}) |> Mx.shape()
      {2, 3}
  """
  @spec shape(t()) :: shape()
  def shape(%Array{shape: s}), do: s

  @doc "The type atom, e.g. `:f32`."
  @spec type(t()) :: Type.t()
  def type(%Array{type: t}), do: t

  @doc "The number of axes."
  @spec rank(t()) :: non_neg_integer()
  def rank(%Array{shape: s}), do: tuple_size(s)

  @doc """
  The number of elements.

      iex> Mx.zeros({2, 3}) |> Mx.size()
      6
  """
  @spec size(t()) :: non_neg_integer()
  def size(%Array{shape: s}), do: s |> Tuple.to_list() |> Enum.reduce(1, &*/2)

  @doc """
  The type and shape as text, e.g. `"f32[2][3]"`.

      iex> Mx.zeros({2, 3}) |> Mx.describe()
      "f32[2][3]"
  """
  @spec describe(t()) :: String.t()
  def describe(%Array{shape: s, type: t}), do: "#{t}" <> Enum.map_join(Tuple.to_list(s), &"[#{&1}]")

  @doc """
  Whether the array has been computed.

      iex> a = Mx.add(Mx.tensor(1), 1)
      iex> Mx.evaluated?(a)
      false
      iex> Mx.evaluated?(Mx.eval(a))
      true
  """
  @spec evaluated?(t()) :: boolean()
  def evaluated?(%Array{ref: ref}), do: NIF.evaluated?(ref)

  @doc """
  Frees the array's buffer now instead of when the term is garbage
  collected. Later use of the array (or of lazy arrays built on it that were
  not evaluated yet) raises `Mx.Error`.

      iex> a = Mx.tensor([1.0])
      iex> Mx.dispose(a)
      :ok
      iex> Mx.to_list(a)
      ** (Mx.Error) [eval] the array was disposed; it cannot be evaluated or read
  """
  @spec dispose(t()) :: :ok
  def dispose(%Array{ref: ref}), do: NIF.dispose(ref)

  @doc """
  Converts to another type. Float to integer truncates toward zero and
  saturates at the type's range (NaN becomes 0); to bool is `x != 0`.
  Real to complex sets the imaginary part to 0. Complex to a real type
  keeps the real part and drops the imaginary part, as numpy's `astype`
  (which also emits a `ComplexWarning`; Mx does not warn): say `real/1` to
  make that explicit. Ops never convert complex to real implicitly: they
  raise instead.

      iex> Mx.tensor([1.7, -1.7, 300.0]) |> Mx.as_type(:u8) |> Mx.to_list()
      [1, 0, 255]
  """
  @spec as_type(t(), Type.spec()) :: t()
  def as_type(%Array{} = a, type), do: NIF.as_type(a.ref, Type.normalize!(type)) |> Array.wrap()

  # ---- elementwise ------------------------------------------------------------------

  # {name, what it computes, doctest input, doctest output}
  @unary [
    {:negate, "-x", [1, -2], [-1, 2]},
    {:abs, "|x|", [-1.5, 2.0], [1.5, 2.0]},
    {:sign, "-1, 0 or 1 by the sign of x", [-3, 0, 2], [-1, 0, 1]},
    {:square, "x * x", [3, -2], [9, 4]},
    {:floor, "the largest integer <= x", [1.5, -1.5], [1.0, -2.0]},
    {:ceil, "the smallest integer >= x", [1.5, -1.5], [2.0, -1.0]},
    {:round, "the nearest integer, halves away from zero", [0.5, 1.5, -2.5], [1.0, 2.0, -3.0]},
    {:exp, "e^x", [0.0], [1.0]},
    {:expm1, "e^x - 1, accurate near 0", [0.0], [0.0]},
    {:log, "the natural logarithm", [1.0], [0.0]},
    {:log1p, "log(1 + x), accurate near 0", [0.0], [0.0]},
    {:sqrt, "the square root", [4.0, 9.0], [2.0, 3.0]},
    {:rsqrt, "1 / sqrt(x)", [4.0], [0.5]},
    {:reciprocal, "1 / x", [2.0, 4.0], [0.5, 0.25]},
    {:sin, "the sine", [0.0], [0.0]},
    {:cos, "the cosine", [0.0], [1.0]},
    {:tan, "the tangent", [0.0], [0.0]},
    {:asin, "the inverse sine", [0.0], [0.0]},
    {:acos, "the inverse cosine", [1.0], [0.0]},
    {:atan, "the inverse tangent", [0.0], [0.0]},
    {:sinh, "the hyperbolic sine", [0.0], [0.0]},
    {:cosh, "the hyperbolic cosine", [0.0], [1.0]},
    {:tanh, "the hyperbolic tangent", [0.0], [0.0]},
    {:sigmoid, "1 / (1 + e^-x), stable for large |x|", [0.0], [0.5]},
    {:erf, "the error function", [0.0], [0.0]},
    {:erf_inv, "the inverse error function", [0.0], [0.0]},
    {:lgamma, "log |Γ(x)|", [1.0, 2.0], [0.0, 0.0]},
    {:digamma, "ψ(x), the derivative of lgamma", [1.0], [-0.5772156649015329]},
    {:trigamma, "ψ′(x) = polygamma(1, x), the derivative of digamma (see `Mx.Special`)", [1.0], [1.644934058189392]},
    {:erfc, "1 - erf(x), without the cancellation for large x", [0.0, 1.0], [1.0, 0.15729920566082]},
    {:log_ndtr, "log Φ(x), the log of the standard normal CDF, accurate far into both tails (see `Mx.Special`)",
     [0.0, -40.0], [-0.6931471824645996, -804.6084594726562]},
    {:ndtri, "Φ⁻¹(p), the inverse of the standard normal CDF, accurate in both tails (see `Mx.Special`)",
     [0.5, 0.975], [0.0, 1.959964394569397]},
    {:log2, "the base-2 logarithm (exact at powers of 2)", [8.0, 0.5], [3.0, -1.0]},
    {:log10, "the base-10 logarithm", [1000.0, 0.01], [3.0, -2.0]},
    {:asinh, "the inverse hyperbolic sine (libm's `asinh`: accurate near 0 and for large |x|)",
     [0.0, 1.0], [0.0, 0.8813735842704773]},
    {:acosh, "the inverse hyperbolic cosine (NaN below 1)", [1.0, 2.0], [0.0, 1.316957950592041]},
    {:atanh, "the inverse hyperbolic tangent (±infinity at ±1, NaN beyond)", [0.0, 0.5],
     [0.0, 0.5493061542510986]},
    {:is_nan, "whether x is NaN (bool)", [1.0, :nan], [false, true]},
    {:is_infinity, "whether x is ±infinity (bool)", [1.0, :neg_infinity], [false, true]},
    {:logical_not, "whether x is zero (bool)", [0, 2], [true, false]}
  ]

  @float_ops [:exp, :expm1, :log, :log1p, :sqrt, :rsqrt, :reciprocal, :sin, :cos, :tan, :asin, :acos, :atan, :sinh, :cosh,
              :tanh, :sigmoid, :erf, :erf_inv, :lgamma, :digamma, :trigamma, :erfc, :log_ndtr, :ndtri, :asinh, :acosh,
              :atanh, :log2, :log10]

  for {name, what, input, output} <- @unary do
    type = if name == :digamma, do: ", type: :f64", else: ""

    note =
      cond do
        name in @float_ops -> " Integer input computes in `f32`."
        name in [:is_nan, :is_infinity, :logical_not] -> ""
        true -> " Keeps the input type."
      end

    @doc """
    Elementwise #{what}.#{note}

        iex> Mx.#{name}(Mx.tensor(#{inspect(input)}#{type})) |> Mx.to_list()
        #{inspect(output)}
    """
    @spec unquote(name)(tensor_like()) :: t()
    def unquote(name)(a), do: NIF.unary(unquote(name), to_array(a).ref) |> Array.wrap()
  end

  @doc false
  def unary_ops,
    do: Enum.map(@unary, &elem(&1, 0)) ++ [:real, :imag, :conjugate, :angle] ++ [:bitwise_not, :count_leading_zeros, :population_count]

  @binary [
    {:add, "a + b", [1, 2], [10, 20], [11, 22]},
    {:subtract, "a - b", [1, 2], [10, 20], [-9, -18]},
    {:multiply, "a * b", [1, 2], [10, 20], [10, 40]},
    {:divide, "a / b, always a float", [1, 3], [2, 4], [0.5, 0.75]},
    {:pow, "a raised to b", [2, 3], [3, 2], [8, 9]},
    {:max, "the larger of a and b (NaN wins)", [1, 5], [3, 2], [3, 5]},
    {:min, "the smaller of a and b (NaN wins)", [1, 5], [3, 2], [1, 2]},
    {:remainder, "the remainder of a / b, with the sign of a (like `rem/2`)", [7, -7], [3, 3], [1, -1]},
    {:atan2, "the angle of the point (b, a)", [0.0, 1.0], [1.0, 0.0], [0.0, 1.5707963705062866]},
    {:logaddexp, "log(e^a + e^b), stable", [0.0], [0.0], [0.6931471824645996]},
    {:igamma, "P(a, x) = γ(a, x)/Γ(a), the regularized lower incomplete gamma function (see `Mx.Special`)",
     [1.0, 3.0], [1.0, 3.0], [0.6321205496788025, 0.5768099427223206]},
    {:igammac, "Q(a, x) = 1 - P(a, x), the regularized upper incomplete gamma function (see `Mx.Special`)",
     [1.0, 3.0], [1.0, 3.0], [0.3678794503211975, 0.42319008708000183]},
    {:equal, "a == b (bool)", [1, 2], [1, 3], [true, false]},
    {:not_equal, "a != b (bool)", [1, 2], [1, 3], [false, true]},
    {:less, "a < b (bool)", [1, 2], [2, 2], [true, false]},
    {:less_equal, "a <= b (bool)", [1, 3], [2, 2], [true, false]},
    {:greater, "a > b (bool)", [1, 3], [2, 2], [false, true]},
    {:greater_equal, "a >= b (bool)", [1, 2], [2, 2], [false, true]},
    {:logical_and, "a and b, read as truthy (bool)", [1, 0], [1, 1], [true, false]},
    {:logical_or, "a or b, read as truthy (bool)", [1, 0], [0, 0], [true, false]}
  ]

  for {name, what, a, b, out} <- @binary do
    @doc """
    Elementwise #{what}, with numpy/Nx broadcasting and type promotion
    (see `Mx.Type`). Either side may be an Elixir number.

        iex> Mx.#{name}(Mx.tensor(#{inspect(a)}), Mx.tensor(#{inspect(b)})) |> Mx.to_list()
        #{inspect(out)}
    """
    @spec unquote(name)(tensor_like(), tensor_like()) :: t()
    def unquote(name)(a, b), do: NIF.binary(unquote(name), operand(a, b), operand(b, a)) |> Array.wrap()
  end

  @doc false
  def binary_ops,
    do: Enum.map(@binary, &elem(&1, 0)) ++ [:complex] ++ [:bitwise_and, :bitwise_or, :bitwise_xor, :left_shift, :right_shift, :quotient]

  # ---- complex ------------------------------------------------------------------------

  @doc """
  A complex array from real parts `re` and imaginary parts `im` (arrays or
  numbers; they broadcast). Parts of type `f64` give `c128`; other real
  types give `c64`. Complex values read back as `{re, im}` tuples.

      iex> z = Mx.complex(Mx.tensor([1.0, 0.0]), Mx.tensor([2.0, -1.0]))
      iex> z.type
      :c64
      iex> Mx.to_list(z)
      [{1.0, 2.0}, {0.0, -1.0}]
      iex> Mx.multiply(z, z) |> Mx.to_list()
      [{-3.0, 4.0}, {-1.0, -0.0}]
  """
  @spec complex(tensor_like(), tensor_like()) :: t()
  def complex(re, im), do: NIF.binary(:complex, operand(re, im), operand(im, re)) |> Array.wrap()

  @doc """
  The real part: `f32` for `c64`, `f64` for `c128`. Real input comes back
  as a float array (integers as `f32`).

      iex> Mx.complex(Mx.tensor([1.5]), Mx.tensor([2.0])) |> Mx.real() |> Mx.to_list()
      [1.5]
  """
  @spec real(tensor_like()) :: t()
  def real(a), do: NIF.unary(:real, to_array(a).ref) |> Array.wrap()

  @doc """
  The imaginary part (0 for real input), as `real/1` types it.

      iex> Mx.complex(Mx.tensor([1.5]), Mx.tensor([2.0])) |> Mx.imag() |> Mx.to_list()
      [2.0]
  """
  @spec imag(tensor_like()) :: t()
  def imag(a), do: NIF.unary(:imag, to_array(a).ref) |> Array.wrap()

  @doc """
  The complex conjugate `re - i im`; real input is returned unchanged.

      iex> Mx.complex(Mx.tensor([1.0]), Mx.tensor([2.0])) |> Mx.conjugate() |> Mx.to_list()
      [{1.0, -2.0}]
  """
  @spec conjugate(tensor_like()) :: t()
  def conjugate(a), do: NIF.unary(:conjugate, to_array(a).ref) |> Array.wrap()

  @doc """
  The argument `atan2(im, re)` in `[-π, π]`, as a float (0 or π for real
  input, by its sign).

      iex> Mx.complex(Mx.tensor([0.0], type: :f64), Mx.tensor([1.0], type: :f64)) |> Mx.angle() |> Mx.to_list()
      [1.5707963267948966]
  """
  @spec angle(tensor_like()) :: t()
  def angle(a), do: NIF.unary(:angle, to_array(a).ref) |> Array.wrap()

  # A number next to an array goes to the NIF as is (typed there, weakly); two numbers make arrays.
  defp operand(%Array{ref: ref}, _other), do: ref
  defp operand(x, %Array{}) when is_number(x) or x in [:nan, :infinity, :neg_infinity], do: x
  defp operand(x, _other), do: to_array(x).ref

  # Elixir numbers are weak: they take the other side's type where they fit.
  defp to_pair(%Array{} = a, %Array{} = b), do: {a, b}
  defp to_pair(%Array{} = a, b), do: {a, scalar(b, a.type)}
  defp to_pair(a, %Array{} = b), do: {scalar(a, b.type), b}
  defp to_pair(a, b), do: {to_array(a), to_array(b)}

  defp scalar(x, type) when is_integer(x) and type != :bool, do: tensor(x, type: type)
  defp scalar(x, type) when is_float(x) or x in [:nan, :infinity, :neg_infinity] do
    tensor(x, type: if(Type.float?(type), do: type, else: :f32))
  end

  defp scalar(x, _type), do: to_array(x)

  defp to_array(%Array{} = a), do: a
  defp to_array(x), do: tensor(x)

  @doc """
  Picks `on_true` where `pred` is truthy and `on_false` elsewhere; all three
  broadcast.

      iex> Mx.select(Mx.tensor([1, 0, 1]), Mx.tensor([1.0, 2.0, 3.0]), 0.0) |> Mx.to_list()
      [1.0, 0.0, 3.0]
  """
  @spec select(tensor_like(), tensor_like(), tensor_like()) :: t()
  def select(pred, on_true, on_false) do
    {t, f} = to_pair(on_true, on_false)
    NIF.select(to_array(pred).ref, t.ref, f.ref) |> Array.wrap()
  end

  @doc "Same as `select/3` (numpy's name)."
  @spec where(tensor_like(), tensor_like(), tensor_like()) :: t()
  def where(pred, on_true, on_false), do: select(pred, on_true, on_false)

  @doc """
  Limits values to `[lo, hi]`.

      iex> Mx.clip(Mx.tensor([-2, 0, 5]), -1, 3) |> Mx.to_list()
      [-1, 0, 3]
  """
  @spec clip(tensor_like(), tensor_like(), tensor_like()) :: t()
  def clip(a, lo, hi) do
    a = to_array(a)
    {_, lo} = to_pair(a, lo)
    {_, hi} = to_pair(a, hi)
    NIF.clip(a.ref, lo.ref, hi.ref) |> Array.wrap()
  end

  # ---- reductions -----------------------------------------------------------------

  @reductions [
    {:sum, "the sum", [[1, 2], [3, 4]], 10, [4, 6]},
    {:product, "the product", [[1, 2], [3, 4]], 24, [3, 8]},
    {:reduce_max, "the maximum (NaN wins)", [[1, 5], [3, 4]], 5, [3, 5]},
    {:reduce_min, "the minimum (NaN wins)", [[1, 5], [3, 4]], 1, [1, 4]},
    {:all, "whether all elements are truthy", [[1, 1], [0, 1]], false, [false, true]},
    {:any, "whether any element is truthy", [[1, 0], [0, 0]], true, [true, false]}
  ]

  for {name, what, input, total, by_axis0} <- @reductions do
    @doc """
    Reduces to #{what} over `axes:` (default: all), keeping reduced axes as
    size 1 with `keep_axes: true`. Integer sums and products widen to `s64`/`u64`.

        iex> Mx.#{name}(Mx.tensor(#{inspect(input)})) |> Mx.to_number()
        #{inspect(total)}
        iex> Mx.#{name}(Mx.tensor(#{inspect(input)}), axes: [0]) |> Mx.to_list()
        #{inspect(by_axis0)}
    """
    @spec unquote(name)(tensor_like(), keyword()) :: t()
    def unquote(name)(a, opts \\ []) do
      Mx.Opts.validate!(opts, [:axes, :keep_axes], unquote("Mx.#{name}"))
      NIF.reduce(unquote(name), to_array(a).ref, opts[:axes], opts[:keep_axes] || false) |> Array.wrap()
    end
  end

  @doc """
  The index of the largest element along `axis:` (default: over the
  flattened array), as `s64`; the first occurrence wins and NaN counts as
  largest. `keep_axis: true` keeps the axis with size 1.

      iex> Mx.argmax(Mx.tensor([[1, 9, 3], [7, 2, 7]]), axis: 1) |> Mx.to_list()
      [1, 0]
  """
  @spec argmax(tensor_like(), keyword()) :: t()
  def argmax(a, opts \\ []), do: arg_reduce(:argmax, a, Mx.Opts.validate!(opts, [:axis, :keep_axis], "Mx.argmax"))

  @doc """
  The index of the smallest element along `axis:` (see `argmax/2`).

      iex> Mx.argmin(Mx.tensor([3, 1, 2])) |> Mx.to_number()
      1
  """
  @spec argmin(tensor_like(), keyword()) :: t()
  def argmin(a, opts \\ []), do: arg_reduce(:argmin, a, Mx.Opts.validate!(opts, [:axis, :keep_axis], "Mx.argmin"))

  defp arg_reduce(op, a, opts) do
    axes = if axis = opts[:axis], do: [axis], else: nil
    NIF.reduce(op, to_array(a).ref, axes, opts[:keep_axis] || false) |> Array.wrap()
  end

  @doc """
  The mean over `axes:` (default: all); always a float.

      iex> Mx.mean(Mx.tensor([[1, 2], [3, 4]]), axes: [1]) |> Mx.to_list()
      [1.5, 3.5]
  """
  @spec mean(tensor_like(), keyword()) :: t()
  def mean(a, opts \\ []) do
    Mx.Opts.validate!(opts, [:axes, :keep_axes], "Mx.mean")
    a = to_array(a)
    a = if Type.float?(a.type) or Type.complex?(a.type), do: a, else: as_type(a, :f32)
    s = sum(a, opts)
    n = div(size(a), Kernel.max(size(s), 1))
    divide(s, n * 1.0)
  end

  @doc """
  `log(sum(exp(a)))` over `axes:`, computed stably (the maximum is
  subtracted first, so large values do not overflow).

      iex> Mx.logsumexp(Mx.tensor([1000.0, 1000.0])) |> Mx.to_number()
      1000.6931762695312
  """
  @spec logsumexp(tensor_like(), keyword()) :: t()
  def logsumexp(a, opts \\ []) do
    Mx.Opts.validate!(opts, [:axes, :keep_axes], "Mx.logsumexp")
    a = to_array(a)
    m = reduce_max(a, axes: opts[:axes], keep_axes: true)
    # A row that is all -inf has max -inf: shift by 0 there so it stays -inf, not NaN.
    m = select(is_infinity(m), 0.0, m)
    s = a |> subtract(m) |> exp() |> sum(axes: opts[:axes], keep_axes: true) |> log() |> add(m)
    if opts[:keep_axes], do: s, else: squeeze(s, axes: reduced_axes(a, opts[:axes]))
  end

  defp reduced_axes(a, nil), do: Enum.to_list(0..(rank(a) - 1)//1)
  defp reduced_axes(a, axes), do: Enum.map(axes, &if(&1 < 0, do: &1 + rank(a), else: &1))

  @scans [
    {:cumulative_sum, "running sum", [1, 2, 3], [1, 3, 6]},
    {:cumulative_product, "running product", [1, 2, 3], [1, 2, 6]},
    {:cumulative_max, "running maximum", [1, 3, 2], [1, 3, 3]},
    {:cumulative_min, "running minimum", [3, 1, 2], [3, 1, 1]}
  ]

  for {name, what, input, output} <- @scans do
    @doc """
    The #{what} along `axis:` (default 0); `reverse: true` runs from the end.

        iex> Mx.#{name}(Mx.tensor(#{inspect(input)})) |> Mx.to_list()
        #{inspect(output)}
    """
    @spec unquote(name)(tensor_like(), keyword()) :: t()
    def unquote(name)(a, opts \\ []) do
      Mx.Opts.validate!(opts, [:axis, :reverse], unquote("Mx.#{name}"))
      NIF.scan(unquote(name), to_array(a).ref, opts[:axis] || 0, opts[:reverse] || false) |> Array.wrap()
    end
  end

  # ---- shape -------------------------------------------------------------------------

  @doc """
  The same elements in a new shape; one dimension may be `:auto` (or -1).
  Free: the result shares the input's buffer.

      iex> Mx.iota({6}) |> Mx.reshape({2, :auto}) |> Mx.to_list()
      [[0, 1, 2], [3, 4, 5]]
  """
  @spec reshape(tensor_like(), shape()) :: t()
  def reshape(a, shape) do
    shape = shape |> Tuple.to_list() |> Enum.map(&if(&1 == :auto, do: -1, else: &1)) |> List.to_tuple()
    NIF.reshape(to_array(a).ref, shape) |> Array.wrap()
  end

  @doc """
  Permutes axes (`axes:`, default: reversed).

      iex> Mx.tensor([[1, 2, 3]]) |> Mx.transpose() |> Mx.to_list()
      [[1], [2], [3]]
  """
  @spec transpose(tensor_like(), keyword()) :: t()
  def transpose(a, opts \\ []),
    do: NIF.transpose(to_array(a).ref, Mx.Opts.validate!(opts, [:axes], "Mx.transpose")[:axes]) |> Array.wrap()

  @doc """
  The shape two shapes broadcast to (numpy rules), or `nil` if they do not.

      iex> Mx.broadcast_shape({2, 1}, {3})
      {2, 3}
      iex> Mx.broadcast_shape({2}, {3})
      nil
  """
  @spec broadcast_shape(shape(), shape()) :: shape() | nil
  def broadcast_shape(a, b) do
    {la, lb} = {Tuple.to_list(a), Tuple.to_list(b)}
    n = Kernel.max(length(la), length(lb))
    pad = fn l -> List.duplicate(1, n - length(l)) ++ l end

    dims =
      Enum.zip_with(pad.(la), pad.(lb), fn
        x, x -> x
        1, y -> y
        x, 1 -> x
        _, _ -> nil
      end)

    if nil in dims, do: nil, else: List.to_tuple(dims)
  end

  @doc """
  Broadcasts to `shape` (numpy rules: trailing dimensions match or are 1).

      iex> Mx.broadcast(Mx.tensor([1, 2]), {2, 2}) |> Mx.to_list()
      [[1, 2], [1, 2]]
  """
  @spec broadcast(tensor_like(), shape()) :: t()
  def broadcast(a, shape), do: NIF.broadcast(to_array(a).ref, shape) |> Array.wrap()

  @doc """
  Inserts an axis of size 1 at `axis`.

      iex> Mx.new_axis(Mx.tensor([1, 2]), 0) |> Mx.shape()
      {1, 2}
  """
  @spec new_axis(tensor_like(), integer()) :: t()
  def new_axis(a, axis), do: NIF.new_axis(to_array(a).ref, axis) |> Array.wrap()

  @doc """
  Removes axes of size 1 (`axes:`, default: all of them).

      iex> Mx.zeros({1, 2, 1}) |> Mx.squeeze() |> Mx.shape()
      {2}
  """
  @spec squeeze(tensor_like(), keyword()) :: t()
  def squeeze(a, opts \\ []),
    do: NIF.squeeze(to_array(a).ref, Mx.Opts.validate!(opts, [:axes], "Mx.squeeze")[:axes]) |> Array.wrap()

  @doc """
  Joins arrays along an existing `axis:` (default 0); types promote. Any
  number of arrays (a long list is joined in chunks).

      iex> Mx.concatenate([Mx.tensor([1, 2]), Mx.tensor([3])]) |> Mx.to_list()
      [1, 2, 3]
  """
  @spec concatenate([tensor_like()], keyword()) :: t()
  def concatenate(arrays, opts \\ []) when is_list(arrays) do
    Mx.Opts.validate!(opts, [:axis], "Mx.concatenate")
    axis = opts[:axis] || 0

    if length(arrays) > @max_inputs,
      do: arrays |> Enum.chunk_every(@max_inputs) |> Enum.map(&concatenate(&1, axis: axis)) |> concatenate(axis: axis),
      else: NIF.concatenate(Enum.map(arrays, &to_array(&1).ref), axis) |> Array.wrap()
  end

  @doc """
  Joins arrays of one shape along a new `axis:` (default 0). Any number of
  arrays (a long list is stacked in chunks, then concatenated).

      iex> Mx.stack([Mx.tensor([1, 2]), Mx.tensor([3, 4])], axis: 1) |> Mx.to_list()
      [[1, 3], [2, 4]]
      iex> Mx.stack(List.duplicate(Mx.tensor(1.0), 5000)) |> Mx.sum() |> Mx.to_number()
      5000.0
  """
  @spec stack([tensor_like()], keyword()) :: t()
  def stack(arrays, opts \\ []) when is_list(arrays) do
    Mx.Opts.validate!(opts, [:axis], "Mx.stack")
    axis = opts[:axis] || 0

    if length(arrays) > @max_inputs,
      do: arrays |> Enum.chunk_every(@max_inputs) |> Enum.map(&stack(&1, axis: axis)) |> concatenate(axis: axis),
      else: NIF.stack(Enum.map(arrays, &to_array(&1).ref), axis) |> Array.wrap()
  end

  @doc """
  A slice: `lengths` elements from `start_indices` on each axis, every
  `strides:`-th one (default 1). Negative starts count from the end.

      iex> Mx.iota({5}) |> Mx.slice([1], [2]) |> Mx.to_list()
      [1, 2]
      iex> Mx.iota({2, 6}) |> Mx.slice([0, 0], [2, 3], strides: [1, 2]) |> Mx.to_list()
      [[0, 2, 4], [6, 8, 10]]
  """
  @spec slice(tensor_like(), [integer()], [non_neg_integer()], keyword()) :: t()
  def slice(a, start_indices, lengths, opts \\ []) do
    Mx.Opts.validate!(opts, [:strides], "Mx.slice")
    a = to_array(a)
    dims = Tuple.to_list(a.shape)
    strides = opts[:strides] || List.duplicate(1, length(dims))

    unless length(start_indices) == length(dims) and length(lengths) == length(dims) and length(strides) == length(dims) do
      raise ArgumentError, "[slice] start_indices, lengths and strides need one entry per axis of #{describe(a)}"
    end

    starts = Enum.zip_with(start_indices, dims, fn s, d -> if s < 0, do: s + d, else: s end)

    stops =
      Enum.zip_with([starts, lengths, strides], fn [s, l, k] ->
        if l == 0, do: s, else: s + (l - 1) * k + 1
      end)

    NIF.slice(a.ref, starts, stops, strides) |> Array.wrap()
  end

  @doc false
  # One axis of a slice; used by Access.
  def slice_axis(%Array{} = a, start, len, axis, stride \\ 1) do
    r = rank(a)
    starts = for i <- 0..(r - 1)//1, do: if(i == axis, do: start, else: 0)
    lengths = for i <- 0..(r - 1)//1, do: if(i == axis, do: len, else: elem(a.shape, i))
    strides = for i <- 0..(r - 1)//1, do: if(i == axis, do: stride, else: 1)
    slice(a, starts, lengths, strides: strides)
  end

  @doc """
  Pads with `value`; `config` has one `{low, high, interior}` per axis
  (negative low/high crop).

      iex> Mx.pad(Mx.tensor([1, 2]), 0, [{1, 2, 1}]) |> Mx.to_list()
      [0, 1, 0, 2, 0, 0]
  """
  @spec pad(tensor_like(), tensor_like(), [{integer(), integer(), non_neg_integer()}]) :: t()
  def pad(a, value, config) do
    a = to_array(a)
    {_, v} = to_pair(a, value)
    {lo, hi, interior} = config |> Enum.map(&Tuple.to_list/1) |> Enum.zip() |> List.to_tuple() |> unzip3(tuple_size(a.shape))
    NIF.pad(a.ref, v.ref, lo, hi, interior) |> Array.wrap()
  end

  defp unzip3({}, 0), do: {[], [], []}
  defp unzip3({lo, hi, interior}, _), do: {Tuple.to_list(lo), Tuple.to_list(hi), Tuple.to_list(interior)}
  defp unzip3(_, _), do: raise(ArgumentError, "[pad] config must be a list of {low, high, interior} tuples")

  @doc """
  Reverses the order along `axes:` (default: all).

      iex> Mx.reverse(Mx.tensor([[1, 2], [3, 4]]), axes: [1]) |> Mx.to_list()
      [[2, 1], [4, 3]]
  """
  @spec reverse(tensor_like(), keyword()) :: t()
  def reverse(a, opts \\ []),
    do: NIF.reverse(to_array(a).ref, Mx.Opts.validate!(opts, [:axes], "Mx.reverse")[:axes]) |> Array.wrap()

  # ---- indexing -------------------------------------------------------------------------

  @doc """
  Takes positions `indices` (an integer array of any shape) along `axis:`
  (default 0). Out-of-bounds indices raise `Mx.Error` when evaluated.

      iex> Mx.take(Mx.tensor([10, 20, 30]), Mx.tensor([[2, 0]])) |> Mx.to_list()
      [[30, 10]]
  """
  @spec take(tensor_like(), t() | list(), keyword()) :: t()
  def take(a, indices, opts \\ []) do
    Mx.Opts.validate!(opts, [:axis], "Mx.take")
    NIF.take(to_array(a).ref, index_array(indices).ref, opts[:axis] || 0) |> Array.wrap()
  end

  @doc """
  Picks, along `axis:`, the positions in `indices` (same rank as `a`, same
  sizes but along the axis), as numpy's `take_along_axis`.

      iex> a = Mx.tensor([[10, 30, 20], [60, 40, 50]])
      iex> Mx.take_along_axis(a, Mx.argsort(a, axis: 1), axis: 1) |> Mx.to_list()
      [[10, 20, 30], [40, 50, 60]]
  """
  @spec take_along_axis(tensor_like(), t() | list(), keyword()) :: t()
  def take_along_axis(a, indices, opts \\ []) do
    Mx.Opts.validate!(opts, [:axis], "Mx.take_along_axis")
    NIF.take_along_axis(to_array(a).ref, index_array(indices).ref, opts[:axis] || 0) |> Array.wrap()
  end

  @doc """
  Gathers slices: each row of `indices` (last axis of size k) indexes the
  first k axes of `a`.

      iex> Mx.gather(Mx.tensor([[1, 2], [3, 4]]), Mx.tensor([[1, 0], [0, 1]])) |> Mx.to_list()
      [3, 2]
  """
  @spec gather(tensor_like(), t() | list()) :: t()
  def gather(a, indices), do: NIF.gather(to_array(a).ref, index_array(indices).ref) |> Array.wrap()

  @doc """
  Adds `updates` into `a` at `indices` (shape `{n, k}`); repeated indices
  accumulate.

      iex> Mx.indexed_add(Mx.zeros({3}, type: :s64), Mx.tensor([[0], [2], [0]]), Mx.tensor([1, 2, 3])) |> Mx.to_list()
      [4, 0, 2]
  """
  @spec indexed_add(tensor_like(), t() | list(), tensor_like()) :: t()
  def indexed_add(a, indices, updates), do: indexed(false, a, indices, updates)

  @doc """
  Writes `updates` into `a` at `indices` (shape `{n, k}`); for a repeated
  index the last update wins.

      iex> Mx.indexed_put(Mx.zeros({3}, type: :s64), Mx.tensor([[1]]), Mx.tensor([9])) |> Mx.to_list()
      [0, 9, 0]
  """
  @spec indexed_put(tensor_like(), t() | list(), tensor_like()) :: t()
  def indexed_put(a, indices, updates), do: indexed(true, a, indices, updates)

  defp indexed(put?, a, indices, updates) do
    {a, u} = to_pair(a, updates)
    NIF.indexed(put?, a.ref, index_array(indices).ref, u.ref) |> Array.wrap()
  end

  defp index_array(%Array{} = a), do: a
  defp index_array(list) when is_list(list), do: tensor(list, type: :s64)
  defp index_array(i) when is_integer(i), do: tensor(i, type: :s64)

  @doc """
  Sorts along `axis:` (default: the last axis), stably; `direction: :desc`
  for descending. NaN sorts last ascending and first descending.

      iex> Mx.sort(Mx.tensor([3, 1, 2])) |> Mx.to_list()
      [1, 2, 3]
      iex> Mx.sort(Mx.tensor([3, 1, 2]), direction: :desc) |> Mx.to_list()
      [3, 2, 1]
  """
  @spec sort(tensor_like(), keyword()) :: t()
  def sort(a, opts \\ []), do: sort_op(:sort, a, Mx.Opts.validate!(opts, [:axis, :direction], "Mx.sort"))

  @doc """
  The indices that sort `a` along `axis:` (default: the last axis), as `s64`.

      iex> Mx.argsort(Mx.tensor([3, 1, 2])) |> Mx.to_list()
      [1, 2, 0]
  """
  @spec argsort(tensor_like(), keyword()) :: t()
  def argsort(a, opts \\ []), do: sort_op(:argsort, a, Mx.Opts.validate!(opts, [:axis, :direction], "Mx.argsort"))

  defp sort_op(op, a, opts) do
    desc =
      case opts[:direction] || :asc do
        :asc -> false
        :desc -> true
        other -> raise ArgumentError, "[#{op}] direction must be :asc or :desc, got #{inspect(other)}"
      end

    NIF.sort(op, to_array(a).ref, opts[:axis] || -1, desc) |> Array.wrap()
  end

  # ---- everyday composites: softmax, statistics, top-k, splitting, tiling, contractions, scans ----

  defp float!(a) do
    a = to_array(a)
    if Type.float?(a.type) or Type.complex?(a.type), do: a, else: as_type(a, :f32)
  end

  defp axis!(a, axis, fun) do
    r = rank(a)

    cond do
      not is_integer(axis) ->
        raise ArgumentError, "[#{fun}] axis must be an integer, got #{inspect(axis)}"

      axis < -r or axis >= Kernel.max(r, 1) or r == 0 ->
        raise ArgumentError, "[#{fun}] axis #{axis} is out of range for #{describe(a)}"

      axis < 0 ->
        axis + r

      true ->
        axis
    end
  end

  @doc """
  `exp(a) / sum(exp(a))` along `axis:` (default -1), computed stably (the
  maximum is subtracted first). Integers compute in `f32`.

      iex> Mx.softmax(Mx.tensor([1.0, 2.0, 3.0], type: :f64)) |> Mx.to_list()
      [0.09003057317038046, 0.24472847105479764, 0.6652409557748218]
      iex> Mx.softmax(Mx.tensor([1000.0, 1000.0])) |> Mx.to_list()
      [0.5, 0.5]
  """
  @spec softmax(tensor_like(), keyword()) :: t()
  def softmax(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: -1], "Mx.softmax")
    a = float!(a)
    axis = axis!(a, opts[:axis], :softmax)
    # The shift leaves the value unchanged, so it carries no gradient.
    e = a |> subtract(stop_gradient(reduce_max(a, axes: [axis], keep_axes: true))) |> exp()
    divide(e, sum(e, axes: [axis], keep_axes: true))
  end

  @doc """
  `log(softmax(a))` along `axis:` (default -1), without forming `softmax`:
  `a - max - log(sum(exp(a - max)))`, so very negative entries stay finite.

      iex> Mx.log_softmax(Mx.tensor([0.0, 0.0], type: :f64)) |> Mx.to_list()
      [-0.6931471805599453, -0.6931471805599453]
      iex> Mx.log_softmax(Mx.tensor([0.0, -200.0])) |> Mx.to_list()
      [0.0, -200.0]
  """
  @spec log_softmax(tensor_like(), keyword()) :: t()
  def log_softmax(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: -1], "Mx.log_softmax")
    a = float!(a)
    axis = axis!(a, opts[:axis], :log_softmax)
    shifted = subtract(a, stop_gradient(reduce_max(a, axes: [axis], keep_axes: true)))
    subtract(shifted, shifted |> exp() |> sum(axes: [axis], keep_axes: true) |> log())
  end

  @doc """
  The variance over `axes:` (default: all): `sum(|a - mean|²) / (n - ddof)`
  with `n` the number of elements reduced (`ddof: 1` for the unbiased
  estimate; default 0, as numpy). `keep_axes: true` keeps reduced axes as
  size 1. Always a float (the real type for complex input).

      iex> Mx.var(Mx.tensor([1.0, 2.0, 3.0, 4.0])) |> Mx.to_number()
      1.25
      iex> Mx.var(Mx.tensor([[1.0, 2.0], [3.0, 5.0]]), axes: [1], ddof: 1) |> Mx.to_list()
      [0.5, 2.0]
  """
  @spec var(tensor_like(), keyword()) :: t()
  def var(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axes: nil, keep_axes: false, ddof: 0], "Mx.var")
    moment2(:var, float!(a), opts)
  end

  @doc """
  The standard deviation, `sqrt(var(a, opts))` (see `var/2`: `axes:`,
  `keep_axes:`, `ddof:`).

      iex> Mx.std(Mx.tensor([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])) |> Mx.to_number()
      2.0
  """
  @spec std(tensor_like(), keyword()) :: t()
  def std(a, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axes: nil, keep_axes: false, ddof: 0], "Mx.std")
    sqrt(moment2(:std, float!(a), opts))
  end

  defp moment2(fun, a, opts) do
    ddof = opts[:ddof]

    unless is_integer(ddof) and ddof >= 0,
      do:
        raise(ArgumentError, "[#{fun}] ddof must be a non-negative integer, got #{inspect(ddof)}")

    axes = opts[:axes]

    n =
      if axes, do: Enum.reduce(reduced_axes(a, axes), 1, &(elem(a.shape, &1) * &2)), else: size(a)

    if n - ddof <= 0,
      do:
        raise(
          ArgumentError,
          "[#{fun}] ddof: #{ddof} leaves no degrees of freedom for #{n} elements per result"
        )

    d = subtract(a, mean(a, axes: axes, keep_axes: true))
    d = if Type.complex?(a.type), do: abs(d), else: d
    d |> square() |> sum(axes: axes, keep_axes: opts[:keep_axes]) |> divide((n - ddof) * 1.0)
  end

  @doc """
  The `k` largest elements along `axis:` (default -1) and their indices:
  `{values, indices}`, both with that axis of length `k`, largest first;
  equal values keep their order (the lower index first). Indices are `s64`.

      iex> {v, i} = Mx.topk(Mx.tensor([[1.0, 9.0, 3.0, 9.0], [4.0, 0.0, 7.0, 2.0]]), 2)
      iex> {Mx.to_list(v), Mx.to_list(i)}
      {[[9.0, 9.0], [7.0, 4.0]], [[1, 3], [2, 0]]}
  """
  @spec topk(tensor_like(), non_neg_integer(), keyword()) :: {t(), t()}
  def topk(a, k, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: -1], "Mx.topk")
    a = to_array(a)
    axis = axis!(a, opts[:axis], :topk)
    len = elem(a.shape, axis)

    unless is_integer(k) and k >= 0 and k <= len,
      do:
        raise(
          ArgumentError,
          "[topk] k must be an integer in 0..#{len} (the length of axis #{axis} of #{describe(a)}), got #{inspect(k)}"
        )

    idx = a |> argsort(axis: axis, direction: :desc) |> slice_axis(0, k, axis)
    {take_along_axis(a, idx, axis: axis), idx}
  end

  @doc """
  Splits `a` along `axis:` (default 0) into a list of arrays: into `n`
  equal parts when given an integer (the axis length must divide by it),
  or at the given indices when given a list (numpy's `split`: `[2, 5]`
  gives `a[:2]`, `a[2:5]`, `a[5:]`).

      iex> Mx.split(Mx.iota({6}), 3) |> Enum.map(&Mx.to_list/1)
      [[0, 1], [2, 3], [4, 5]]
      iex> Mx.split(Mx.iota({2, 5}), [1, 3], axis: 1) |> Enum.map(&Mx.shape/1)
      [{2, 1}, {2, 2}, {2, 2}]
  """
  @spec split(tensor_like(), pos_integer() | [non_neg_integer()], keyword()) :: [t()]
  def split(a, parts, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: 0], "Mx.split")
    a = to_array(a)
    axis = axis!(a, opts[:axis], :split)
    len = elem(a.shape, axis)

    bounds =
      cond do
        is_integer(parts) and parts > 0 and rem(len, parts) == 0 ->
          for i <- 0..parts, do: div(len, parts) * i

        is_integer(parts) ->
          raise ArgumentError,
                "[split] cannot split axis #{axis} of length #{len} into #{inspect(parts)} equal parts; give a divisor of #{len} or a list of indices"

        is_list(parts) and Enum.all?(parts, &(is_integer(&1) and &1 >= 0)) and
            parts == Enum.sort(parts) ->
          [0 | Enum.map(parts, &Kernel.min(&1, len))] ++ [len]

        true ->
          raise ArgumentError,
                "[split] expects a positive integer or an ascending list of non-negative indices, got #{inspect(parts)}"
      end

    bounds
    |> Enum.chunk_every(2, 1, :discard)
    |> Enum.map(fn [lo, hi] -> slice_axis(a, lo, hi - lo, axis) end)
  end

  @doc """
  Repeats `a` `reps` times along each axis (numpy's `tile`): `reps` is a
  list of non-negative integers; when it is shorter than `a`'s rank, ones
  are prepended to it, and when longer, `a` gains leading axes of size 1.

      iex> Mx.tile(Mx.tensor([[1, 2]]), [2, 2]) |> Mx.to_list()
      [[1, 2, 1, 2], [1, 2, 1, 2]]
      iex> Mx.tile(Mx.tensor([1, 2]), [2, 1, 2]) |> Mx.shape()
      {2, 1, 4}
  """
  @spec tile(tensor_like(), [non_neg_integer()]) :: t()
  def tile(a, reps) do
    a = to_array(a)

    unless is_list(reps) and Enum.all?(reps, &(is_integer(&1) and &1 >= 0)),
      do:
        raise(
          ArgumentError,
          "[tile] reps must be a list of non-negative integers, got #{inspect(reps)}"
        )

    n = Kernel.max(length(reps), rank(a))
    reps = List.duplicate(1, n - length(reps)) ++ reps
    dims = List.duplicate(1, n - rank(a)) ++ Tuple.to_list(a.shape)
    # [1, d0, 1, d1, ...] broadcast to [r0, d0, r1, d1, ...], then each pair merged.
    paired = Enum.zip(reps, dims)

    a
    |> reshape(paired |> Enum.flat_map(fn {_, d} -> [1, d] end) |> List.to_tuple())
    |> broadcast(paired |> Enum.flat_map(fn {r, d} -> [r, d] end) |> List.to_tuple())
    |> reshape(paired |> Enum.map(fn {r, d} -> r * d end) |> List.to_tuple())
  end

  @doc """
  Rolls elements by `shift` positions along `axis:` (numpy's `roll`):
  elements pushed past the end come back at the start. Without `axis:` the
  array is rolled as if flattened. `shift` and `axis` may be lists of equal
  length (one roll per pair).

      iex> Mx.roll(Mx.tensor([1, 2, 3, 4, 5]), 2) |> Mx.to_list()
      [4, 5, 1, 2, 3]
      iex> Mx.roll(Mx.tensor([[1, 2, 3], [4, 5, 6]]), -1, axis: 1) |> Mx.to_list()
      [[2, 3, 1], [5, 6, 4]]
  """
  @spec roll(tensor_like(), integer() | [integer()], keyword()) :: t()
  def roll(a, shift, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: nil], "Mx.roll")
    a = to_array(a)

    case {shift, opts[:axis]} do
      {s, nil} when is_integer(s) ->
        a |> reshape({size(a)}) |> roll_axis(s, 0) |> reshape(a.shape)

      {s, axis} when is_integer(s) ->
        roll_axis(a, s, axis!(a, axis, :roll))

      {s, axes} when is_list(s) and is_list(axes) and length(s) == length(axes) ->
        Enum.zip(s, axes) |> Enum.reduce(a, fn {k, ax}, acc -> roll(acc, k, axis: ax) end)

      _ ->
        raise ArgumentError,
              "[roll] shift must be an integer (or a list, with a list of axes of the same length), got #{inspect(shift)} with axis: #{inspect(opts[:axis])}"
    end
  end

  defp roll_axis(a, shift, axis) do
    len = elem(a.shape, axis)
    s = if len == 0, do: 0, else: Integer.mod(shift, len)

    if s == 0,
      do: a,
      else:
        concatenate([slice_axis(a, len - s, s, axis), slice_axis(a, 0, len - s, axis)], axis: axis)
  end

  @doc """
  Sums the products of `a` and `b` over the axes `axes` names (numpy's
  `tensordot`): an integer `n` pairs the last `n` axes of `a` with the
  first `n` of `b`; `{axes_a, axes_b}` pairs them one by one. The result
  has `a`'s other axes, then `b`'s. Computed as one matmul.

      iex> a = Mx.iota({2, 3}, type: :f32)
      iex> Mx.tensordot(a, Mx.ones({3, 4}), 1) |> Mx.to_list()
      [[3.0, 3.0, 3.0, 3.0], [12.0, 12.0, 12.0, 12.0]]
      iex> Mx.tensordot(a, a, {[0, 1], [0, 1]}) |> Mx.to_number()
      55.0
  """
  @spec tensordot(tensor_like(), tensor_like(), non_neg_integer() | {[integer()], [integer()]}) ::
          t()
  def tensordot(a, b, axes) do
    {a, b} = {to_array(a), to_array(b)}

    {ca, cb} =
      case axes do
        n
        when is_integer(n) and n >= 0 and n <= tuple_size(a.shape) and n <= tuple_size(b.shape) ->
          {Enum.to_list((rank(a) - n)..(rank(a) - 1)//1), Enum.to_list(0..(n - 1)//1)}

        {xa, xb} when is_list(xa) and is_list(xb) and length(xa) == length(xb) ->
          {Enum.map(xa, &axis!(a, &1, :tensordot)), Enum.map(xb, &axis!(b, &1, :tensordot))}

        other ->
          raise ArgumentError,
                "[tensordot] axes must be an integer up to both ranks (#{describe(a)}, #{describe(b)}) or {axes_a, axes_b} of equal length, got #{inspect(other)}"
      end

    for {i, j} <- Enum.zip(ca, cb), elem(a.shape, i) != elem(b.shape, j) do
      raise ArgumentError,
            "[tensordot] axis #{i} of #{describe(a)} (#{elem(a.shape, i)}) does not match axis #{j} of #{describe(b)} (#{elem(b.shape, j)})"
    end

    if length(Enum.uniq(ca)) != length(ca) or length(Enum.uniq(cb)) != length(cb),
      do: raise(ArgumentError, "[tensordot] an axis appears twice in #{inspect(axes)}")

    contract(a, b, [], ca, [], cb)
  end

  # a and b as one batched matmul: batch axes, a's free axes, b's free axes (in their order).
  defp contract(a, b, ba, ca, bb, cb) do
    fa = Enum.to_list(0..(rank(a) - 1)//1) -- (ba ++ ca)
    fb = Enum.to_list(0..(rank(b) - 1)//1) -- (bb ++ cb)
    dims = fn x, axes -> Enum.map(axes, &elem(x.shape, &1)) end
    prod = &Enum.reduce(&1, 1, fn d, acc -> d * acc end)

    {nb, nfa, nk, nfb} =
      {prod.(dims.(a, ba)), prod.(dims.(a, fa)), prod.(dims.(a, ca)), prod.(dims.(b, fb))}

    x = a |> transpose(axes: ba ++ fa ++ ca) |> reshape({nb, nfa, nk})
    y = b |> transpose(axes: bb ++ cb ++ fb) |> reshape({nb, nk, nfb})
    matmul(x, y) |> reshape(List.to_tuple(dims.(a, ba) ++ dims.(a, fa) ++ dims.(b, fb)))
  end

  @doc """
  Einstein summation (numpy's `einsum`): `subscripts` names each operand's
  axes with letters, `,` between operands, and optionally `->` and the
  output's letters (without it, the letters used once, in alphabetical
  order). `...` stands for the axes an operand's letters leave; those
  broadcast across operands and lead the output (an explicit output must
  then contain `...` too). Letters missing from the output are summed; a letter
  repeated within one operand takes its diagonal. Computed with transposes,
  reshapes, sums and batched matmuls, one pair of operands at a time.

      iex> a = Mx.tensor([[1.0, 2.0], [3.0, 4.0]])
      iex> Mx.einsum("ij,jk->ik", [a, a]) |> Mx.to_list()
      [[7.0, 10.0], [15.0, 22.0]]
      iex> Mx.einsum("ii", [a]) |> Mx.to_number()
      5.0
      iex> Mx.einsum("ij->ji", [a]) |> Mx.to_list()
      [[1.0, 3.0], [2.0, 4.0]]
      iex> Mx.einsum("bi,bj->bij", [a, a]) |> Mx.shape()
      {2, 2, 2}
      iex> Mx.einsum("...ij,jk->...ik", [Mx.ones({5, 2, 3}), Mx.ones({3, 4})]) |> Mx.shape()
      {5, 2, 4}
  """
  @spec einsum(String.t(), [tensor_like()]) :: t()
  def einsum(subscripts, operands) when is_binary(subscripts) and is_list(operands) do
    arrays = Enum.map(operands, &to_array/1)
    {inputs, output} = einsum_parse!(subscripts, arrays)
    sizes = einsum_sizes!(subscripts, inputs, arrays)
    # Axes under `...` broadcast (size 1 against n), as numpy's.
    arrays =
      Enum.zip_with(inputs, arrays, fn labels, x ->
        target = labels |> Enum.map(&Map.fetch!(sizes, &1)) |> List.to_tuple()
        if target == x.shape, do: x, else: broadcast(x, target)
      end)

    terms =
      Enum.zip(arrays, inputs) |> Enum.map(fn {x, labels} -> einsum_diagonals(x, labels) end)

    {x, labels} =
      case terms do
        [first | rest] ->
          rest
          |> Enum.with_index(1)
          |> Enum.reduce(first, fn {next, i}, acc ->
            later = terms |> Enum.drop(i + 1) |> Enum.flat_map(&elem(&1, 1))
            einsum_pair(acc, next, output ++ later)
          end)
      end

    {x, labels} = einsum_sum_out(x, labels, output)
    transpose(x, axes: Enum.map(output, fn l -> Enum.find_index(labels, &(&1 == l)) end))
  end

  def einsum(subscripts, operands),
    do:
      raise(
        ArgumentError,
        "[einsum] expects a subscripts string and a list of arrays, got #{inspect(subscripts)} and #{inspect(operands)}"
      )

  # Axes under `...` get labels @ellipsis + k (k counted from the right), never letters.
  @ellipsis 0x10000

  # The size of each label: a letter's uses must agree; an ellipsis axis takes the broadcast size.
  defp einsum_sizes!(subscripts, inputs, arrays) do
    Enum.zip(inputs, arrays)
    |> Enum.flat_map(fn {labels, x} -> Enum.zip(labels, Tuple.to_list(x.shape)) end)
    |> Enum.reduce(%{}, fn {l, d}, acc ->
      case acc do
        %{^l => ^d} ->
          acc

        %{^l => other} when l >= @ellipsis and (other == 1 or d == 1) ->
          Map.put(acc, l, Kernel.max(other, d))

        %{^l => other} when l >= @ellipsis ->
          raise ArgumentError,
                "[einsum] #{subscripts}: the axes under ... do not broadcast (sizes #{other} and #{d})"

        %{^l => other} ->
          raise ArgumentError,
                "[einsum] #{subscripts}: index #{<<l>>} has sizes #{other} and #{d}; every use of a letter must have the same size"

        _ ->
          Map.put(acc, l, d)
      end
    end)
  end

  defp einsum_parse!(s, arrays) do
    fail = fn why ->
      raise ArgumentError, "[einsum] malformed subscripts #{inspect(s)}: #{why}"
    end

    s = String.replace(s, " ", "")

    {lhs, out} =
      case String.split(s, "->") do
        [lhs] -> {lhs, nil}
        [lhs, out] -> {lhs, out}
        _ -> fail.("more than one ->")
      end

    terms = String.split(lhs, ",")

    if length(terms) != length(arrays),
      do: fail.("it names #{length(terms)} operand(s) but #{length(arrays)} were given")

    letter? = &((&1 >= ?a and &1 <= ?z) or (&1 >= ?A and &1 <= ?Z))

    # One term as labels: its letters, and `...` as the axes its letters leave (right-aligned labels).
    split_term = fn term ->
      case String.split(term, "...") do
        [letters] -> {String.to_charlist(letters), nil}
        [pre, post] -> {String.to_charlist(pre), String.to_charlist(post)}
        _ -> fail.("#{inspect(term)} has more than one ...")
      end
    end

    for t <- [out || "" | terms],
        l <- t |> split_term.() |> then(fn {pre, post} -> pre ++ (post || []) end),
        not letter?.(l),
        do:
          fail.(
            "#{inspect(<<l::utf8>>)} is not a letter; use a-z, A-Z and ... for the leading axes"
          )

    inputs =
      Enum.zip_with(terms, arrays, fn term, x ->
        case split_term.(term) do
          {letters, nil} when length(letters) == tuple_size(x.shape) ->
            letters

          {letters, nil} ->
            fail.(
              "#{inspect(term)} has #{length(letters)} letter(s) for #{describe(x)}; give one per axis (or use ...)"
            )

          {pre, post} when length(pre) + length(post) <= tuple_size(x.shape) ->
            e = tuple_size(x.shape) - length(pre) - length(post)
            pre ++ Enum.map((e - 1)..0//-1, &(@ellipsis + &1)) ++ post

          {pre, post} ->
            fail.(
              "#{inspect(term)} names #{length(pre) + length(post)} axes of #{describe(x)}, which has fewer"
            )
        end
      end)

    all = Enum.concat(inputs)
    dots = all |> Enum.filter(&(&1 >= @ellipsis)) |> Enum.uniq() |> Enum.sort(:desc)
    letters = Enum.reject(all, &(&1 >= @ellipsis))

    output =
      case out do
        nil ->
          single =
            letters
            |> Enum.frequencies()
            |> Enum.filter(fn {_, c} -> c == 1 end)
            |> Enum.map(&elem(&1, 0))

          dots ++ Enum.sort(single)

        out ->
          {pre, post} = split_term.(out)

          if post == nil and dots != [],
            do: fail.("the output needs ... for the axes the operands' ... stand for (as numpy)")

          o = pre ++ if(post, do: dots ++ post, else: [])
          if length(Enum.uniq(o)) != length(o), do: fail.("the output repeats a letter")
          for l <- o, l not in all, do: fail.("output letter #{<<l>>} is not in any operand")
          o
      end

    {inputs, output}
  end

  # A letter repeated within one operand: the diagonal over its two axes, kept as the last axis.
  defp einsum_diagonals(x, labels) do
    case labels -- Enum.uniq(labels) do
      [] ->
        {x, labels}

      [l | _] ->
        [i, j] =
          labels
          |> Enum.with_index()
          |> Enum.filter(&(elem(&1, 0) == l))
          |> Enum.map(&elem(&1, 1))
          |> Enum.take(2)

        rest = Enum.to_list(0..(rank(x) - 1)//1) -- [i, j]
        d = x |> transpose(axes: rest ++ [i, j]) |> Mx.Linalg.diagonal()
        einsum_diagonals(d, Enum.map(rest, &Enum.at(labels, &1)) ++ [l])
    end
  end

  # Sums the axes whose letter is not in keep.
  defp einsum_sum_out(x, labels, keep) do
    gone =
      labels |> Enum.with_index() |> Enum.reject(&(elem(&1, 0) in keep)) |> Enum.map(&elem(&1, 1))

    if gone == [],
      do: {x, labels},
      else: {sum(x, axes: gone), Enum.reject(labels, &(&1 not in keep))}
  end

  defp einsum_pair({a, la}, {b, lb}, keep) do
    {a, la} = einsum_sum_out(a, la, keep ++ lb)
    {b, lb} = einsum_sum_out(b, lb, keep ++ la)
    common = Enum.filter(la, &(&1 in lb))
    {batch, contracted} = Enum.split_with(common, &(&1 in keep))
    pos = fn labels, ls -> Enum.map(ls, fn l -> Enum.find_index(labels, &(&1 == l)) end) end

    x =
      contract(a, b, pos.(la, batch), pos.(la, contracted), pos.(lb, batch), pos.(lb, contracted))

    {x, batch ++ (la -- common) ++ (lb -- common)}
  end

  @doc """
  All prefix combinations of `a` along `axis:` (default 0) under an
  associative `fun`, in log depth (jax.lax.associative_scan's algorithm:
  combine neighbours, scan the half, fill in the rest): element `t` of the
  result is `a[0] ∘ a[1] ∘ ... ∘ a[t]`. About 2·log2(n) rounds of `fun` on
  whole slices instead of n steps.

  `fun` is `:add`, `:multiply`, `:max`, `:min`, or a function of two
  arguments built from Mx ops. It is called on slices of `a` holding many
  positions along `axis` at once, so it must work elementwise on whole
  arrays (broadcasting, no reading values) and be associative:
  `fun.(fun.(x, y), z) == fun.(x, fun.(y, z))`. `a` may be a tuple of arrays
  of the same length along `axis`, for elements that are tuples; `fun` then
  takes and returns such tuples.

      iex> Mx.associative_scan(:add, Mx.tensor([1, 2, 3, 4, 5])) |> Mx.to_list()
      [1, 3, 6, 10, 15]

  The linear recurrence `x_t = a_t x_{t-1} + b_t` (from `x_0 = b_0`) is the
  scan of the pairs `(a_t, b_t)` under `(a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2)`:

      iex> step = fn {a1, b1}, {a2, b2} -> {Mx.multiply(a1, a2), Mx.add(Mx.multiply(a2, b1), b2)} end
      iex> {_, x} = Mx.associative_scan(step, {Mx.tensor([1.0, 0.5, 0.5, 2.0]), Mx.tensor([1.0, 1.0, 1.0, 1.0])})
      iex> Mx.to_list(x)
      [1.0, 1.5, 1.75, 4.5]
  """
  @spec associative_scan(atom() | (term(), term() -> term()), t() | tuple(), keyword()) ::
          t() | tuple()
  def associative_scan(fun, elems, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: 0], "Mx.associative_scan")

    fun =
      case fun do
        op when op in [:add, :multiply, :max, :min] ->
          &apply(Mx, op, [&1, &2])

        f when is_function(f, 2) ->
          f

        other ->
          raise ArgumentError,
                "[associative_scan] fun must be :add, :multiply, :max, :min or a function of two arguments, got #{inspect(other)}"
      end

    {leaves, rebuild} =
      case elems do
        %Array{} = a ->
          {[a], fn [x] -> x end}

        t when is_tuple(t) and tuple_size(t) > 0 ->
          {Enum.map(Tuple.to_list(t), &to_array/1), &List.to_tuple/1}

        other ->
          raise ArgumentError,
                "[associative_scan] expects an Mx array or a tuple of them, got #{inspect(other)}"
      end

    axis = axis!(hd(leaves), opts[:axis], :associative_scan)
    n = elem(hd(leaves).shape, axis)

    for x <- leaves, rank(x) <= axis or elem(x.shape, axis) != n do
      raise ArgumentError,
            "[associative_scan] every array needs axis #{axis} of length #{n}, got #{describe(x)}"
    end

    combine = fn xs, ys ->
      r = fun.(rebuild.(xs), rebuild.(ys))
      if is_tuple(r), do: Tuple.to_list(r), else: [r]
    end

    leaves |> scan_level(combine, axis) |> rebuild.()
  end

  # Pairs (0,1), (2,3), ... combine; the scan of those gives the odd positions; each even
  # position 2i > 0 is (odd result 2i-1) ∘ (element 2i). Results interleave.
  defp scan_level(xs, combine, axis) do
    n = elem(hd(xs).shape, axis)

    if n < 2 do
      xs
    else
      every = fn x, start, count -> slice_stride(x, start, count, axis) end

      pairs =
        combine.(Enum.map(xs, &every.(&1, 0, div(n, 2))), Enum.map(xs, &every.(&1, 1, div(n, 2))))

      odd = scan_level(pairs, combine, axis)
      n_even = div(n + 1, 2) - 1
      prev = Enum.map(odd, &slice_axis(&1, 0, n_even, axis))
      even = if n_even > 0, do: combine.(prev, Enum.map(xs, &every.(&1, 2, n_even))), else: nil

      Enum.with_index(xs)
      |> Enum.map(fn {x, i} ->
        first = slice_axis(x, 0, 1, axis)
        evens = if even, do: concatenate([first, Enum.at(even, i)], axis: axis), else: first
        interleave(evens, Enum.at(odd, i), axis)
      end)
    end
  end

  # count elements start, start + 2, ... along axis.
  defp slice_stride(x, start, count, axis) do
    if count == 0, do: slice_axis(x, 0, 0, axis), else: slice_axis(x, start, count, axis, 2)
  end

  # evens[0], odds[0], evens[1], ... along axis (evens has as many elements as odds, or one more).
  defp interleave(evens, odds, axis) do
    ne = elem(evens.shape, axis)
    no = elem(odds.shape, axis)

    {head, tail} =
      if ne > no,
        do: {slice_axis(evens, 0, no, axis), [slice_axis(evens, no, 1, axis)]},
        else: {evens, []}

    shape = head.shape |> Tuple.delete_at(axis) |> Tuple.insert_at(axis, 2 * no)
    both = stack([head, odds], axis: axis + 1) |> reshape(shape)
    concatenate([both | tail], axis: axis)
  end

  # ---- transforms ------------------------------------------------------------------------

  @doc "See `Mx.Transforms.grad/2`."
  @spec grad(function(), non_neg_integer() | [non_neg_integer()]) :: function()
  defdelegate grad(f, argnums \\ 0), to: Mx.Transforms

  @doc "See `Mx.Transforms.value_and_grad/2`."
  @spec value_and_grad(function(), non_neg_integer() | [non_neg_integer()]) :: function()
  defdelegate value_and_grad(f, argnums \\ 0), to: Mx.Transforms

  @doc "See `Mx.Transforms.vjp/3`."
  @spec vjp(function(), list(), term()) :: {term(), list()}
  defdelegate vjp(f, primals, cotangents), to: Mx.Transforms

  @doc "See `Mx.Transforms.jvp/3`."
  @spec jvp(function(), list(), list()) :: {term(), term()}
  defdelegate jvp(f, primals, tangents), to: Mx.Transforms

  @doc "See `Mx.Transforms.vmap/3`."
  @spec vmap(function(), integer() | [integer() | nil], integer()) :: function()
  defdelegate vmap(f, in_axes \\ 0, out_axes \\ 0), to: Mx.Transforms

  @doc "See `Mx.Compile.compile/2`."
  @spec compile(function(), keyword()) :: function()
  def compile(fun, opts \\ []) do
    Mx.Opts.validate!(opts, [:cache_size, :fallback, :jit], "Mx.compile")
    Mx.Compile.compile(fun, opts)
  end

  @doc "See `Mx.Compile.stats/1`."
  @spec compile_stats(function()) :: %{atom() => non_neg_integer()}
  defdelegate compile_stats(compiled), to: Mx.Compile, as: :stats

  @doc "See `Mx.Transforms.stop_gradient/1`."
  @spec stop_gradient(t()) :: t()
  defdelegate stop_gradient(a), to: Mx.Transforms

  # ---- special functions (Mx.Special) ---------------------------------------------------

  @doc "See `Mx.Special.polygamma/2`."
  @spec polygamma(non_neg_integer(), tensor_like()) :: t()
  defdelegate polygamma(n, x), to: Mx.Special

  @doc "See `Mx.Special.betaln/2`."
  @spec betaln(tensor_like(), tensor_like()) :: t()
  defdelegate betaln(a, b), to: Mx.Special

  @doc "See `Mx.Special.betainc/3`."
  @spec betainc(tensor_like(), tensor_like(), tensor_like()) :: t()
  defdelegate betainc(a, b, x), to: Mx.Special

  @doc "See `Mx.Special.log1mexp/1`."
  @spec log1mexp(tensor_like()) :: t()
  defdelegate log1mexp(x), to: Mx.Special

  @doc "See `Mx.Special.xlogy/2`."
  @spec xlogy(tensor_like(), tensor_like()) :: t()
  defdelegate xlogy(x, y), to: Mx.Special

  @doc "See `Mx.Special.xlog1py/2`."
  @spec xlog1py(tensor_like(), tensor_like()) :: t()
  defdelegate xlog1py(x, y), to: Mx.Special

  # ---- linear algebra ------------------------------------------------------------------

  @doc """
  Matrix product with numpy's `matmul` rules: the last axis of `a` meets
  the second-to-last of `b`, leading (batch) axes broadcast, and a 1-d
  operand acts as a row or column vector. Floats go through OpenBLAS.

      iex> Mx.matmul(Mx.tensor([[1.0, 2.0], [3.0, 4.0]]), Mx.tensor([1.0, 1.0])) |> Mx.to_list()
      [3.0, 7.0]
  """
  @spec matmul(tensor_like(), tensor_like()) :: t()
  def matmul(a, b), do: NIF.matmul(to_array(a).ref, to_array(b).ref) |> Array.wrap()

  @doc """
  The dot product: for vectors the inner product, for matrices the matrix
  product (the same as `matmul/2` for ranks 1 and 2).

      iex> Mx.dot(Mx.tensor([1, 2, 3]), Mx.tensor([4, 5, 6])) |> Mx.to_number()
      32
  """
  @spec dot(tensor_like(), tensor_like()) :: t()
  def dot(a, b), do: matmul(a, b)

  # ---- integer bit ops, quotient and bitcast -----------------------------------------
  # Integer inputs only (bitwise not/and/or/xor also take bool and keep it bool); a float
  # raises naming the op. Zero gradients. Shift semantics are XLA's and numpy's.

  @doc """
  Elementwise bitwise complement `~x` of integers (for bool: logical not).

      iex> Mx.bitwise_not(Mx.tensor([0, -1, 5])) |> Mx.to_list()
      [-1, 0, -6]
      iex> Mx.bitwise_not(Mx.tensor([0, 255], type: :u8)) |> Mx.to_list()
      [255, 0]
  """
  @spec bitwise_not(tensor_like()) :: t()
  def bitwise_not(a), do: NIF.unary(:bitwise_not, to_array(a).ref) |> Array.wrap()

  @doc """
  Elementwise number of leading zero bits in the type's width; 0 gives the
  width, a negative signed value 0. Keeps the input type (bool reads as `u8`).

      iex> Mx.count_leading_zeros(Mx.tensor([0, 1, 255], type: :u8)) |> Mx.to_list()
      [8, 7, 0]
      iex> Mx.count_leading_zeros(Mx.tensor([1, -1], type: :s32)) |> Mx.to_list()
      [31, 0]
  """
  @spec count_leading_zeros(tensor_like()) :: t()
  def count_leading_zeros(a), do: NIF.unary(:count_leading_zeros, to_array(a).ref) |> Array.wrap()

  @doc """
  Elementwise number of one bits (of the two's complement for negative
  values). Keeps the input type (bool reads as `u8`).

      iex> Mx.population_count(Mx.tensor([0, 7, -1], type: :s8)) |> Mx.to_list()
      [0, 3, 8]
  """
  @spec population_count(tensor_like()) :: t()
  def population_count(a), do: NIF.unary(:population_count, to_array(a).ref) |> Array.wrap()

  @doc """
  Elementwise bitwise and of integers (logical and for two bools), with
  broadcasting and type promotion; either side may be an Elixir integer.

      iex> Mx.bitwise_and(Mx.tensor([12, -1]), 10) |> Mx.to_list()
      [8, 10]
  """
  @spec bitwise_and(tensor_like(), tensor_like()) :: t()
  def bitwise_and(a, b), do: int_binary(:bitwise_and, a, b)

  @doc """
  Elementwise bitwise or of integers (logical or for two bools).

      iex> Mx.bitwise_or(Mx.tensor([12, 0]), 10) |> Mx.to_list()
      [14, 10]
  """
  @spec bitwise_or(tensor_like(), tensor_like()) :: t()
  def bitwise_or(a, b), do: int_binary(:bitwise_or, a, b)

  @doc """
  Elementwise bitwise exclusive or of integers (logical xor for two bools).

      iex> Mx.bitwise_xor(Mx.tensor([12, -1]), 10) |> Mx.to_list()
      [6, -11]
  """
  @spec bitwise_xor(tensor_like(), tensor_like()) :: t()
  def bitwise_xor(a, b), do: int_binary(:bitwise_xor, a, b)

  @doc """
  Elementwise `a` shifted left by `b` bits, wrapping in `a`'s type. A count
  that is negative or at least the bit width shifts every bit out: 0 (as XLA
  and numpy).

      iex> Mx.left_shift(Mx.tensor([1, -3]), 2) |> Mx.to_list()
      [4, -12]
      iex> Mx.left_shift(Mx.tensor([1, 1, 1], type: :u8), Mx.tensor([7, 8, 200], type: :u8)) |> Mx.to_list()
      [128, 0, 0]
  """
  @spec left_shift(tensor_like(), tensor_like()) :: t()
  def left_shift(a, b), do: int_binary(:left_shift, a, b)

  @doc """
  Elementwise `a` shifted right by `b` bits: arithmetic (the sign fills in)
  for signed types, logical for unsigned ones, as Nx. A count that is
  negative or at least the bit width shifts every bit out: 0, or -1 for a
  negative signed `a` (as XLA and numpy).

      iex> Mx.right_shift(Mx.tensor([16, -16]), 2) |> Mx.to_list()
      [4, -4]
      iex> Mx.right_shift(Mx.tensor([-16, 16]), 64) |> Mx.to_list()
      [-1, 0]
      iex> Mx.right_shift(Mx.tensor([240], type: :u8), 4) |> Mx.to_list()
      [15]
  """
  @spec right_shift(tensor_like(), tensor_like()) :: t()
  def right_shift(a, b), do: int_binary(:right_shift, a, b)

  @doc """
  Elementwise integer division truncating toward zero (Nx's `quotient`, like
  `div/2`), in the promoted integer type. Division by zero gives 0 (as Mx's
  integer `divide` and `remainder`; it never traps), and the most negative
  value divided by -1 wraps to itself. Floats raise: use `divide/2`.

      iex> Mx.quotient(Mx.tensor([7, -7, 7]), Mx.tensor([2, 2, 0])) |> Mx.to_list()
      [3, -3, 0]
  """
  @spec quotient(tensor_like(), tensor_like()) :: t()
  def quotient(a, b), do: int_binary(:quotient, a, b)

  defp int_binary(op, a, b), do: NIF.binary(op, operand(a, b), operand(b, a)) |> Array.wrap()

  @doc """
  The same bytes read as `type`, which must have the input type's width
  (`s32`, `u32` and `f32` are all 32-bit); shape unchanged. Bool and complex
  types raise (use `as_type/2` and `real/1`/`imag/1`).

      iex> Mx.bitcast(Mx.tensor([1.0, -2.0], type: :f32), :u32) |> Mx.to_list()
      [1065353216, 3221225472]
      iex> Mx.bitcast(Mx.tensor([-1], type: :s8), :u8) |> Mx.to_list()
      [255]
  """
  @spec bitcast(tensor_like(), Type.spec()) :: t()
  def bitcast(a, type), do: NIF.bitcast(to_array(a).ref, Type.normalize!(type)) |> Array.wrap()

  # ---- Nx (when the optional :nx dependency is present) -------------------------------

  if Code.ensure_loaded?(Nx) do
    @doc """
    The Mx array behind an Nx tensor: no copy for a tensor of
    `Mx.Nx.Backend`, one copy through the binary for other backends.

        iex> Mx.from_nx(Nx.tensor([[1, 2]], backend: Nx.BinaryBackend)) |> Mx.to_list()
        [[1, 2]]
    """
    @spec from_nx(Nx.Tensor.t()) :: t()
    defdelegate from_nx(tensor), to: Mx.Nx.Backend

    @doc """
    An Nx tensor on `Mx.Nx.Backend` holding the array, without a copy (Mx's
    `:bool` becomes Nx's `{:u, 8}`).

        iex> Mx.to_nx(Mx.tensor([1.0, 2.0])) |> Nx.sum() |> Nx.to_number()
        3.0
    """
    @spec to_nx(t()) :: Nx.Tensor.t()
    defdelegate to_nx(array), to: Mx.Nx.Backend
  end

  # ---- convolution and window reductions (Mx.Conv) ----------------------------------------

  @doc "See `Mx.Conv.conv/3`."
  @spec conv(tensor_like(), tensor_like(), keyword()) :: t()
  defdelegate conv(input, kernel, opts \\ []), to: Mx.Conv

  @doc "See `Mx.Conv.window_sum/3`."
  @spec window_sum(tensor_like(), tuple(), keyword()) :: t()
  defdelegate window_sum(t, window_dimensions, opts \\ []), to: Mx.Conv

  @doc "See `Mx.Conv.window_product/3`."
  @spec window_product(tensor_like(), tuple(), keyword()) :: t()
  defdelegate window_product(t, window_dimensions, opts \\ []), to: Mx.Conv

  @doc "See `Mx.Conv.window_max/3`."
  @spec window_max(tensor_like(), tuple(), keyword()) :: t()
  defdelegate window_max(t, window_dimensions, opts \\ []), to: Mx.Conv

  @doc "See `Mx.Conv.window_min/3`."
  @spec window_min(tensor_like(), tuple(), keyword()) :: t()
  defdelegate window_min(t, window_dimensions, opts \\ []), to: Mx.Conv

  @doc "See `Mx.Conv.window_scatter_max/5`."
  @spec window_scatter_max(tensor_like(), tensor_like(), tensor_like(), tuple(), keyword()) :: t()
  defdelegate window_scatter_max(t, source, init_value, window_dimensions, opts \\ []), to: Mx.Conv

  @doc "See `Mx.Conv.window_scatter_min/5`."
  @spec window_scatter_min(tensor_like(), tensor_like(), tensor_like(), tuple(), keyword()) :: t()
  defdelegate window_scatter_min(t, source, init_value, window_dimensions, opts \\ []), to: Mx.Conv

  # ---- quantization as MLX does it (Mx.Quantize) ------------------------------------------

  @doc "See `Mx.Quantize.quantize/2`."
  @spec quantize(tensor_like(), keyword()) :: {t(), t(), t()}
  defdelegate quantize(w, opts \\ []), to: Mx.Quantize

  @doc "See `Mx.Quantize.dequantize/4`."
  @spec dequantize(t(), t(), t(), keyword()) :: t()
  defdelegate dequantize(w_q, scales, biases, opts \\ []), to: Mx.Quantize

  @doc "See `Mx.Quantize.quantized_matmul/5`."
  @spec quantized_matmul(tensor_like(), t(), t(), t(), keyword()) :: t()
  defdelegate quantized_matmul(x, w_q, scales, biases, opts \\ []), to: Mx.Quantize
end
