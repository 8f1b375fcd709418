defmodule Mx.Type do
  @moduledoc """
  Dtypes and the promotion rules.

  Names are atoms (`:f32`) and Nx-style tuples (`{:f, 32}`) are accepted
  everywhere a type is expected:

  | atom    | tuple        | storage                         |
  |---------|--------------|---------------------------------|
  | `:bool` | `{:pred, 1}` | one byte, 0 or 1                |
  | `:u8` `:u16` `:u32` `:u64` | `{:u, n}` | unsigned integers |
  | `:s8` `:s16` `:s32` `:s64` | `{:s, n}` | signed integers   |
  | `:f16` `:bf16` | `{:f, 16}` `{:bf, 16}` | storage: ops compute in f32 and round back |
  | `:f32` `:f64` | `{:f, n}` | IEEE floats                        |
  | `:c64` `:c128` | `{:c, 64}` `{:c, 128}` | complex: a pair (re, im) of f32 or f64 |

  ## Promotion (Nx's rules)

  When an op takes two arrays of different types, both are converted to:

    * floats beat integers, keeping the float's width (`s64 + f32 -> f32`);
    * of two floats the wider wins (`f16 + bf16 -> f32`);
    * of two integers of one signedness the wider wins;
    * signed with unsigned gives a signed type wide enough for both
      (`u8 + s8 -> s16`, `u32 + s32 -> s64`, `u64 + s* -> s64`);
    * bool with anything gives the other type; arithmetic on two bools
      computes in `u8`;
    * complex beats floats and integers, with parts as wide as the wider
      float (`c64 + f32 -> c64`, `c64 + f64 -> c128`, `s64 + c64 -> c64`).

  Complex arrays support arithmetic, `exp`/`log`/`sqrt`, `abs`, the parts
  (`Mx.real/1`, `Mx.imag/1`, `Mx.conjugate/1`, `Mx.angle/1`), equality,
  sums, products, matmul and `Mx.FFT`; ops that need an order (`less`,
  `max`, `sort`, `floor`, ...) raise `Mx.Error` for them.

  Elixir numbers are "weak": an integer takes the array's type, a float
  takes a float array's type or `f32` with an integer array.
  Integer ops wrap on overflow. Division (`Mx.divide/2`) and the
  transcendental functions always return floats (`f32` for integer input).
  Sums and products of integers widen to `s64` (`u64` when unsigned); of
  bools, to `s64`.

      iex> Mx.Type.merge(:s64, :f32)
      :f32
      iex> Mx.Type.merge({:u, 8}, {:s, 8})
      :s16
      iex> Mx.Type.merge(:c64, :f64)
      :c128
  """

  import Kernel, except: [byte_size: 1]

  @types [:bool, :u8, :u16, :u32, :u64, :s8, :s16, :s32, :s64, :f16, :bf16, :f32, :f64, :c64, :c128]
  @type t :: :bool | :u8 | :u16 | :u32 | :u64 | :s8 | :s16 | :s32 | :s64 | :f16 | :bf16 | :f32 | :f64 | :c64 | :c128
  @type spec :: t() | {:f | :bf | :s | :u | :c | :pred, pos_integer()}

  @doc """
  All dtype names.

      iex> :f64 in Mx.Type.names()
      true
  """
  @spec names() :: [t()]
  def names, do: @types

  @doc """
  Normalizes a type spec to its atom name; raises `ArgumentError` for
  unknown types.

      iex> Mx.Type.normalize!({:f, 64})
      :f64
      iex> Mx.Type.normalize!(:s32)
      :s32
  """
  @spec normalize!(spec()) :: t()
  def normalize!(t) when t in @types, do: t
  def normalize!({:pred, 1}), do: :bool
  def normalize!({:bf, 16}), do: :bf16

  def normalize!({kind, bits} = spec) when kind in [:f, :s, :u, :c] and is_integer(bits) do
    name = :"#{kind}#{bits}"
    if name in @types, do: name, else: unknown(spec)
  end

  def normalize!(spec), do: unknown(spec)

  defp unknown(spec) do
    raise ArgumentError,
          "unknown type #{inspect(spec)}; use one of #{inspect(@types)} or an Nx-style tuple like {:f, 32}"
  end

  @doc """
  The Nx-style tuple for a type.

      iex> Mx.Type.to_nx(:bf16)
      {:bf, 16}
  """
  @spec to_nx(t()) :: {atom(), pos_integer()}
  def to_nx(:bool), do: {:pred, 1}
  def to_nx(:bf16), do: {:bf, 16}

  def to_nx(t) do
    <<kind::binary-size(1), bits::binary>> = Atom.to_string(t)
    {String.to_atom(kind), String.to_integer(bits)}
  end

  @doc "Bytes per element."
  @spec byte_size(t()) :: pos_integer()
  def byte_size(:bool), do: 1
  def byte_size(t), do: div(elem(to_nx(t), 1), 8)

  @doc "Whether the type is a float type (including f16 and bf16; not complex)."
  @spec float?(t()) :: boolean()
  def float?(t), do: t in [:f16, :bf16, :f32, :f64]

  @doc """
  Whether the type is complex.

      iex> Mx.Type.complex?(:c64)
      true
      iex> Mx.Type.complex?(:f64)
      false
  """
  @spec complex?(t()) :: boolean()
  def complex?(t), do: t in [:c64, :c128]

  @doc """
  The float type of a complex type's parts (and of `Mx.real/1`, `Mx.abs/1`
  of it); other types map to themselves.

      iex> Mx.Type.real_part(:c128)
      :f64
  """
  @spec real_part(t()) :: t()
  def real_part(:c64), do: :f32
  def real_part(:c128), do: :f64
  def real_part(t), do: t

  @doc "Whether the type is an integer type (not bool)."
  @spec integer?(t()) :: boolean()
  def integer?(t), do: t in [:u8, :u16, :u32, :u64, :s8, :s16, :s32, :s64]

  @doc """
  The promoted type of two types (the rules above).

      iex> Mx.Type.merge(:u32, :s32)
      :s64
      iex> Mx.Type.merge(:bool, :u8)
      :u8
  """
  @spec merge(spec(), spec()) :: t()
  def merge(a, b) do
    a = normalize!(a)
    b = normalize!(b)

    cond do
      a == b -> a
      a == :bool -> b
      b == :bool -> a
      complex?(a) or complex?(b) -> if(:c128 in [a, b] or :f64 in [a, b], do: :c128, else: :c64)
      float?(a) and float?(b) -> merge_floats(a, b)
      float?(a) -> a
      float?(b) -> b
      true -> merge_ints(to_nx(a), to_nx(b))
    end
  end

  defp merge_floats(a, b) when {a, b} in [{:f16, :bf16}, {:bf16, :f16}], do: :f32
  defp merge_floats(a, b), do: if(byte_size(a) >= byte_size(b), do: a, else: b)

  defp merge_ints({k, x}, {k, y}), do: :"#{k}#{max(x, y)}"
  defp merge_ints({:s, s}, {:u, u}), do: :"s#{min(64, if(u >= s, do: 2 * u, else: s))}"
  defp merge_ints({:u, u}, {:s, s}), do: merge_ints({:s, s}, {:u, u})
end
