defmodule Mx.FFT do
  @moduledoc """
  Discrete Fourier transforms, as numpy's `np.fft`.

  `fft/2` and `ifft/2` transform complex arrays along one axis (real input is
  converted to complex: `f64` to `c128`, other types to `c64`); `rfft/2`
  takes real input and returns the `n/2 + 1` non-negative frequencies;
  `irfft/2` inverts it. `fft2/2`, `fftn/2` and their inverses apply the 1-d
  transform along several axes in turn.

  Options of the 1-d transforms:

    * `axis:` the axis to transform (default -1, the last);
    * `n:` the transform length: the input is cropped or zero-padded to it
      (default: the axis length; for `irfft/2`, `2 * (m - 1)` for `m` inputs);
    * `norm:` `"backward"` (default: the inverse scales by 1/n), `"ortho"`
      (both directions by 1/√n) or `"forward"` (the forward one by 1/n);
      atoms `:backward`, `:ortho`, `:forward` are accepted too.

  Conventions are numpy's: `X[k] = Σ x[t] e^(-2πi tk/n)`. Any length works:
  lengths with small prime factors run a mixed-radix FFT, others Bluestein's
  algorithm, all in O(n log n) and computed in double (`c64` results are
  the double results rounded once).

      iex> Mx.FFT.fft(Mx.tensor([1.0, 2.0, 3.0, 4.0])) |> Mx.to_list()
      [{10.0, 0.0}, {-2.0, 2.0}, {-2.0, 0.0}, {-2.0, -2.0}]
      iex> Mx.FFT.rfft(Mx.tensor([1.0, 2.0, 3.0, 4.0])) |> Mx.FFT.irfft() |> Mx.to_list()
      [1.0, 2.0, 3.0, 4.0]

  Gradients flow through every transform (`Mx.grad/2`), with JAX's
  convention for complex values (see `Mx.Transforms`).
  """

  alias Mx.{Array, NIF}

  @typedoc "numpy's normalization modes."
  @type norm :: String.t() | :backward | :ortho | :forward

  @doc """
  The discrete Fourier transform along `axis:` (see the module doc for `n:`
  and `norm:`).

      iex> Mx.FFT.fft(Mx.tensor([1.0, 0.0, 0.0]), n: 2) |> Mx.to_list()
      [{1.0, 0.0}, {1.0, 0.0}]
  """
  @spec fft(Mx.tensor_like(), keyword()) :: Mx.t()
  def fft(a, opts \\ []), do: one(:fft, a, Mx.Opts.validate!(opts, [:axis, :n, :norm], "Mx.FFT.fft"))

  @doc """
  The inverse discrete Fourier transform along `axis:` (numpy's `ifft`).

      iex> Mx.FFT.ifft(Mx.tensor([4.0, 0.0, 0.0, 0.0])) |> Mx.to_list()
      [{1.0, 0.0}, {1.0, 0.0}, {1.0, 0.0}, {1.0, 0.0}]
  """
  @spec ifft(Mx.tensor_like(), keyword()) :: Mx.t()
  def ifft(a, opts \\ []), do: one(:ifft, a, Mx.Opts.validate!(opts, [:axis, :n, :norm], "Mx.FFT.ifft"))

  @doc """
  The transform of real input: the `n/2 + 1` frequencies `0..n/2` (the others
  are their conjugates). Complex input raises; use `fft/2` for it.

      iex> Mx.FFT.rfft(Mx.tensor([1.0, 1.0, 1.0])) |> Mx.to_list()
      [{3.0, 0.0}, {0.0, 0.0}]
  """
  @spec rfft(Mx.tensor_like(), keyword()) :: Mx.t()
  def rfft(a, opts \\ []), do: one(:rfft, a, Mx.Opts.validate!(opts, [:axis, :n, :norm], "Mx.FFT.rfft"))

  @doc """
  The inverse of `rfft/2`: from the `m` frequencies `0..n/2` to `n` real
  values (default `n = 2 * (m - 1)`; pass `n:` for odd lengths). The
  imaginary parts of frequency 0 (and n/2 for even n) are ignored.

      iex> Mx.FFT.irfft(Mx.complex(Mx.tensor([3.0, 0.0]), 0.0), n: 3) |> Mx.to_list()
      [1.0, 1.0, 1.0]
  """
  @spec irfft(Mx.tensor_like(), keyword()) :: Mx.t()
  def irfft(a, opts \\ []), do: one(:irfft, a, Mx.Opts.validate!(opts, [:axis, :n, :norm], "Mx.FFT.irfft"))

  @doc """
  The 2-d transform over the last two axes (or `axes:`), with `s:` the
  lengths per axis and `norm:` as for `fft/2`.

      iex> Mx.FFT.fft2(Mx.tensor([[1.0, 2.0], [3.0, 4.0]])) |> Mx.to_list()
      [[{10.0, 0.0}, {-2.0, 0.0}], [{-4.0, 0.0}, {0.0, 0.0}]]
  """
  @spec fft2(Mx.tensor_like(), keyword()) :: Mx.t()
  def fft2(a, opts \\ []),
    do: fftn(a, opts |> Mx.Opts.validate!([:axes, :s, :norm], "Mx.FFT.fft2") |> Keyword.put_new(:axes, [-2, -1]))

  @doc """
  The inverse of `fft2/2`.

      iex> Mx.FFT.ifft2(Mx.FFT.fft2(Mx.tensor([[1.0, 2.0], [3.0, 4.0]]))) |> Mx.real() |> Mx.to_list()
      [[1.0, 2.0], [3.0, 4.0]]
  """
  @spec ifft2(Mx.tensor_like(), keyword()) :: Mx.t()
  def ifft2(a, opts \\ []),
    do: ifftn(a, opts |> Mx.Opts.validate!([:axes, :s, :norm], "Mx.FFT.ifft2") |> Keyword.put_new(:axes, [-2, -1]))

  @doc """
  The n-dimensional transform over `axes:` (default: all; with `s:` and no
  axes, the last `length(s)` axes), one 1-d transform per axis. `s:` gives
  the length per axis (cropping or zero-padding).

      iex> Mx.FFT.fftn(Mx.ones({2, 2, 2})) |> Mx.real() |> Mx.to_list() |> List.flatten()
      [8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  """
  @spec fftn(Mx.tensor_like(), keyword()) :: Mx.t()
  def fftn(a, opts \\ []), do: many(:fft, a, Mx.Opts.validate!(opts, [:axes, :s, :norm], "Mx.FFT.fftn"))

  @doc """
  The inverse of `fftn/2`.

      iex> Mx.FFT.ifftn(Mx.FFT.fftn(Mx.tensor([[1.0, 2.0]]))) |> Mx.real() |> Mx.to_list()
      [[1.0, 2.0]]
  """
  @spec ifftn(Mx.tensor_like(), keyword()) :: Mx.t()
  def ifftn(a, opts \\ []), do: many(:ifft, a, Mx.Opts.validate!(opts, [:axes, :s, :norm], "Mx.FFT.ifftn"))

  defp one(op, a, opts) do
    a = to_array(a)
    NIF.fft(op, a.ref, opts[:axis] || -1, opts[:n], norm!(opts[:norm])) |> Array.wrap()
  end

  # numpy applies the last axis first; every pass is a linear map, so the order
  # only changes rounding.
  defp many(op, a, opts) do
    a = to_array(a)
    rank = tuple_size(a.shape)

    axes =
      case {opts[:axes], opts[:s]} do
        {nil, nil} -> Enum.to_list(0..(rank - 1)//1)
        {nil, s} when is_list(s) -> Enum.to_list((rank - length(s))..(rank - 1)//1)
        {axes, _} when is_list(axes) -> axes
        {other, _} -> raise ArgumentError, "[#{op}n] axes must be a list of integers, got #{inspect(other)}"
      end

    sizes = opts[:s] || List.duplicate(nil, length(axes))

    unless is_list(sizes) and length(sizes) == length(axes) do
      raise ArgumentError, "[#{op}n] s: needs one length per axis (#{length(axes)} axes), got #{inspect(sizes)}"
    end

    if axes == [], do: raise(ArgumentError, "[#{op}n] needs at least one axis; #{Mx.describe(a)} has rank 0")
    norm = norm!(opts[:norm])

    Enum.zip(axes, sizes)
    |> Enum.reverse()
    |> Enum.reduce(a, fn {axis, n}, acc -> NIF.fft(op, acc.ref, axis, n, norm) |> Array.wrap() end)
  end

  defp norm!(nil), do: :backward
  defp norm!(n) when n in [:backward, :ortho, :forward], do: n
  defp norm!(n) when n in ["backward", "ortho", "forward"], do: String.to_existing_atom(n)

  defp norm!(other) do
    raise ArgumentError, ~s(norm must be "backward", "ortho" or "forward", got #{inspect(other)})
  end

  defp to_array(%Array{} = a), do: a
  defp to_array(x), do: Mx.tensor(x)
end
