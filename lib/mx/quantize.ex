defmodule Mx.Quantize do
  @moduledoc """
  Quantization as MLX does it (`mlx.core.quantize`, `dequantize`, `quantized_matmul`
  with `mode="affine"`), so MLX community checkpoints (`weight`, `scales`, `biases`
  tensors) load and run as they are. `Mx` delegates to these functions.

  ## The scheme (what we follow, from MLX's CPU kernel, mlx/backend/cpu/quantized.cpp)

  Each group of `group_size` (32, 64 or 128) consecutive elements of the last axis
  shares a scale and a bias; each element becomes an unsigned `bits`-wide integer
  `q` (bits 2, 4 or 8) with `w ≈ scale * q + bias`. Per group, in the weight's
  precision (f32 or f64), with `n = 2^bits - 1`:

    * `scale = max((max - min) / n, 1.0e-7)`, negated unless `|min| > |max|`, and
      `edge` is `min` if `|min| > |max|`, else `max` (the edge of larger magnitude
      maps to `q = 0`);
    * `q0 = rint(edge / scale)`; if `q0 != 0`, `scale = edge / q0` and `bias = edge`
      (so 0 is exactly `q = -q0`), else `bias = 0`;
    * `q = clamp(rint((w - bias) / scale), 0, n)`, rint rounding half to even.

  `w_q` is u32 with `32 / bits` values a word along the last axis, the first in the
  lowest bits (MLX's packing): `{..., k}` becomes `{..., k * bits / 32}`, and
  `scales` and `biases` are `{..., k / group_size}` in `w`'s type. Dequantizing
  computes `scale * q + bias` (rounded after the product, as MLX). An element inside its
  group's range `[bias, bias + n * scale]` comes back within `|scale| / 2` (plus rounding);
  the rescale to `edge / q0` can shrink that range below `[min, max]`, and an element beyond
  it is clamped to the range's end (MLX does the same). A group holding a NaN
  or infinity raises when evaluated (MLX has no defined result for it).

  `quantized_matmul/5` is a primitive. With `transpose: true` and few rows in
  `x`'s second-to-last axis (a vector counts as one), a direct loop runs over the
  packed words (the weight is never expanded): up to 32 rows for f32 on a CPU with
  AVX2 and FMA (16 levels unpacked into registers at a time, up to 4 rows of `x` per
  pass), else up to 8 rows; past that a tile of the weight (about 1 MiB, the size of
  a core's L2) at a time is dequantized into a scratch buffer for BLAS gemm, on engine
  threads. The paths round differently (within the bound of a matmul); leading axes
  never change the path. The weight may have leading batch axes (`w_q` `{..., n, k * bits / 32}`,
  `scales` and `biases` `{..., n, k / group_size}`): then `x`'s axes before its last two are a
  batch too, and both broadcast as `Mx.matmul/2`'s do (a vector `x` is one row).
  Its gradient with respect to `x` is a `quantized_matmul` with the transpose
  flipped; the packed weights, scales and biases have none (differentiating them
  raises). `Mx.vmap/3` over `x` is one call on the larger `x`; over the weights,
  one call on batched weights.
  """

  alias Mx.{Array, NIF}

  @scheme_opts [group_size: 64, bits: 4]

  @doc """
  Quantizes `w` (f32 or f64, last axis a multiple of `:group_size`) with MLX's affine
  scheme (see the module doc): returns `{w_q, scales, biases}`. `Mx.quantize/2` delegates here.

  Options: `:group_size` (32, 64 or 128; default 64), `:bits` (2, 4 or 8; default 4).

  ## Examples

      iex> w = Mx.remainder(Mx.iota({1, 32}, type: :f32), 16.0)
      iex> {w_q, scales, biases} = Mx.quantize(w, group_size: 32, bits: 4)
      iex> {Mx.type(w_q), Mx.shape(w_q), Mx.to_list(scales), Mx.to_list(biases)}
      {:u32, {1, 4}, [[-1.0]], [[15.0]]}
      iex> Mx.to_list(w_q) |> hd() |> hd() |> Integer.to_string(16)
      "89ABCDEF"

      iex> Mx.quantize(Mx.ones({2, 48}), group_size: 32)
      ** (Mx.Error) [quantize] the last axis of w f32[2][48] must be a multiple of group_size 32; pad it or pick a group_size that divides it
  """
  @spec quantize(Mx.tensor_like(), keyword()) :: {Mx.t(), Mx.t(), Mx.t()}
  def quantize(w, opts \\ []) do
    opts = Mx.Opts.validate!(opts, @scheme_opts, "Mx.quantize")
    {gs, bits} = scheme!(opts, "Mx.quantize")
    {q, s, b} = NIF.quantize(to_array(w).ref, gs, bits)
    {Array.wrap(q), Array.wrap(s), Array.wrap(b)}
  end

  @doc """
  The weights `quantize/2` packed (`Mx.dequantize/4` delegates here): `scale * q + bias` per element, `{..., k}` from
  `w_q` `{..., k * bits / 32}` and `scales`, `biases` `{..., k / group_size}`.
  Pass the `:group_size` and `:bits` that quantized them (defaults 64 and 4).

  ## Examples

      iex> w = Mx.remainder(Mx.iota({1, 32}, type: :f32), 16.0)
      iex> {w_q, s, b} = Mx.quantize(w, group_size: 32, bits: 4)
      iex> Mx.dequantize(w_q, s, b, group_size: 32, bits: 4) |> Mx.equal(w) |> Mx.all() |> Mx.to_number()
      true

      iex> {w_q, s, b} = Mx.quantize(Mx.ones({1, 64}))
      iex> Mx.dequantize(w_q, s, b, bits: 8)
      ** (Mx.Error) [dequantize] w_q u32[1][8], scales f32[1][1] and biases f32[1][1] do not fit group_size 64 and bits 8: w_q's last axis must be K*bits/32 and the scales' K/group_size, other axes equal; pass the group_size and bits quantize used
  """
  @spec dequantize(Mx.t(), Mx.t(), Mx.t(), keyword()) :: Mx.t()
  def dequantize(w_q, scales, biases, opts \\ []) do
    opts = Mx.Opts.validate!(opts, @scheme_opts, "Mx.dequantize")
    {gs, bits} = scheme!(opts, "Mx.dequantize")

    NIF.dequantize(to_array(w_q).ref, to_array(scales).ref, to_array(biases).ref, gs, bits)
    |> Array.wrap()
  end

  @doc """
  `x @ w^T` (`Mx.quantized_matmul/5` delegates here; `transpose: true`, the default, as for MLX's `nn.QuantizedLinear`:
  `w` is `{n, k}`) or `x @ w` (`transpose: false`: `w` is `{k, n}`) against the
  weight `quantize/2` packed, without expanding it: `x` `{..., k}` gives `{..., n}`.
  `x` must have the scales' type (f32 or f64). A weight with leading batch axes
  (`{..., n, k}` before packing) multiplies `x` `{..., m, k}` matrix by matrix, the batch
  axes broadcasting as in `Mx.matmul/2`: `{..., m, n}` (a vector `x` gives `{..., n}`).

  Options: `:transpose` (default true), `:group_size` (default 64), `:bits` (default 4).

  ## Examples

      iex> w = Mx.remainder(Mx.iota({1, 32}, type: :f32), 16.0)
      iex> {w_q, s, b} = Mx.quantize(w, group_size: 32, bits: 4)
      iex> Mx.quantized_matmul(Mx.ones({2, 32}), w_q, s, b, group_size: 32, bits: 4) |> Mx.to_list()
      [[240.0], [240.0]]

      iex> w = Mx.stack([Mx.ones({2, 32}), Mx.multiply(Mx.ones({2, 32}), 2.0)])
      iex> {w_q, s, b} = Mx.quantize(w, group_size: 32, bits: 4)
      iex> Mx.quantized_matmul(Mx.ones({1, 32}), w_q, s, b, group_size: 32, bits: 4) |> Mx.to_list()
      [[[32.0, 32.0]], [[64.0, 64.0]]]

      iex> {w_q, s, b} = Mx.quantize(Mx.ones({4, 64}))
      iex> Mx.quantized_matmul(Mx.ones({2, 32}), w_q, s, b)
      ** (Mx.Error) [quantized_matmul] x f32[2][32] needs a last axis of 64 to match w (u32[4][8], transpose: true); check transpose
  """
  @spec quantized_matmul(Mx.tensor_like(), Mx.t(), Mx.t(), Mx.t(), keyword()) :: Mx.t()
  def quantized_matmul(x, w_q, scales, biases, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [transpose: true] ++ @scheme_opts, "Mx.quantized_matmul")
    {gs, bits} = scheme!(opts, "Mx.quantized_matmul")

    unless is_boolean(opts[:transpose]) do
      raise ArgumentError,
            "Mx.quantized_matmul: :transpose must be true or false, got #{inspect(opts[:transpose])}"
    end

    [x, w_q, scales, biases] = Enum.map([x, w_q, scales, biases], &to_array/1)

    NIF.quantized_matmul(x.ref, w_q.ref, scales.ref, biases.ref, opts[:transpose], gs, bits)
    |> Array.wrap()
  end

  defp scheme!(opts, where) do
    for key <- [:group_size, :bits], not is_integer(opts[key]) do
      raise ArgumentError, "#{where}: :#{key} must be an integer, got #{inspect(opts[key])}"
    end

    {opts[:group_size], opts[:bits]}
  end

  defp to_array(%Array{} = a), do: a
  defp to_array(x), do: Mx.tensor(x)
end
