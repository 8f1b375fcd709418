defmodule Mx.NN.Init do
  @moduledoc """
  The 10 initializers of `mlx.nn.init`, as functions of a key (where they
  draw), a shape and options (`type:`, default `:f32`). Fans follow MLX's
  channels-last layout: for a shape `{out, k..., in}`, `fan_in = in · Π k`
  and `fan_out = out · Π k` (for a matrix `{out, in}`, as PyTorch).

      iex> w = Mx.NN.Init.glorot_uniform(Mx.Random.key(0), {4, 3})
      iex> Mx.describe(w)
      "f32[4][3]"
  """

  alias Mx.Array

  @doc """
  Every element `value`.

      iex> Mx.NN.Init.constant({2}, 0.5) |> Mx.to_list()
      [0.5, 0.5]
  """
  @spec constant(tuple(), number(), keyword()) :: Array.t()
  def constant(shape, value, opts \\ []) do
    type = Mx.Opts.validate!(opts, [type: :f32], "Mx.NN.Init.constant")[:type]
    Mx.full(shape, value, type: type)
  end

  @doc """
  Normal draws with `mean:` (default 0) and `std:` (default 1).

      iex> Mx.NN.Init.normal(Mx.Random.key(0), {2, 3}, std: 0.1) |> Mx.describe()
      "f32[2][3]"
  """
  @spec normal(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def normal(key, shape, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [mean: 0.0, std: 1.0, type: :f32], "Mx.NN.Init.normal")
    Mx.Random.normal(key, opts[:mean] * 1.0, opts[:std] * 1.0, shape: shape, type: opts[:type])
  end

  @doc """
  Uniform draws in `[low, high)` (defaults 0 and 1).

      iex> w = Mx.NN.Init.uniform(Mx.Random.key(0), {100}, low: -1.0, high: 1.0)
      iex> Mx.to_number(Mx.reduce_max(Mx.abs(w))) < 1.0
      true
  """
  @spec uniform(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def uniform(key, shape, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [low: 0.0, high: 1.0, type: :f32], "Mx.NN.Init.uniform")
    Mx.Random.uniform(key, opts[:low] * 1.0, opts[:high] * 1.0, shape: shape, type: opts[:type])
  end

  @doc """
  The identity matrix of a square shape `{n, n}`.

      iex> Mx.NN.Init.identity({2, 2}) |> Mx.to_list()
      [[1.0, 0.0], [0.0, 1.0]]
  """
  @spec identity(tuple(), keyword()) :: Array.t()
  def identity(shape, opts \\ [])

  def identity({n, n}, opts) do
    type = Mx.Opts.validate!(opts, [type: :f32], "Mx.NN.Init.identity")[:type]
    Mx.eye(n, type: type)
  end

  def identity(shape, _opts),
    do:
      raise(
        ArgumentError,
        "Mx.NN.Init.identity: the shape must be square {n, n}, got #{inspect(shape)}"
      )

  @doc """
  Glorot (Xavier) normal: std `gain · √(2 / (fan_in + fan_out))` (`gain:`, default 1).

      iex> Mx.NN.Init.glorot_normal(Mx.Random.key(0), {3, 5}, type: :f64) |> Mx.describe()
      "f64[3][5]"
  """
  @spec glorot_normal(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def glorot_normal(key, shape, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [gain: 1.0, type: :f32], "Mx.NN.Init.glorot_normal")
    {fan_in, fan_out} = fans!(shape, "glorot_normal")
    std = opts[:gain] * :math.sqrt(2.0 / (fan_in + fan_out))
    Mx.Random.normal(key, 0.0, std, shape: shape, type: opts[:type])
  end

  @doc """
  Glorot (Xavier) uniform: limit `gain · √(6 / (fan_in + fan_out))` (`gain:`, default 1).

      iex> w = Mx.NN.Init.glorot_uniform(Mx.Random.key(0), {3, 5})
      iex> Mx.to_number(Mx.reduce_max(Mx.abs(w))) <= :math.sqrt(6 / 8)
      true
  """
  @spec glorot_uniform(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def glorot_uniform(key, shape, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [gain: 1.0, type: :f32], "Mx.NN.Init.glorot_uniform")
    {fan_in, fan_out} = fans!(shape, "glorot_uniform")
    limit = opts[:gain] * :math.sqrt(6.0 / (fan_in + fan_out))
    Mx.Random.uniform(key, -limit, limit, shape: shape, type: opts[:type])
  end

  @doc """
  He (Kaiming) normal: std `gain / √fan`, `fan` by `mode:` (`:fan_in`, the
  default, or `:fan_out`); `gain:` defaults to 1 as in MLX (PyTorch's
  `kaiming_normal_` for ReLU uses `√2`).

      iex> Mx.NN.Init.he_normal(Mx.Random.key(0), {4, 12}, mode: :fan_out, gain: :math.sqrt(2)) |> Mx.shape()
      {4, 12}
  """
  @spec he_normal(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def he_normal(key, shape, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [mode: :fan_in, gain: 1.0, type: :f32], "Mx.NN.Init.he_normal")
    std = opts[:gain] / :math.sqrt(fan!(shape, opts[:mode], "he_normal"))
    Mx.Random.normal(key, 0.0, std, shape: shape, type: opts[:type])
  end

  @doc """
  He (Kaiming) uniform: limit `gain · √(3 / fan)` (see `he_normal/3` for `mode:` and `gain:`).

      iex> w = Mx.NN.Init.he_uniform(Mx.Random.key(0), {4, 12}, mode: :fan_in)
      iex> Mx.to_number(Mx.reduce_max(Mx.abs(w))) <= 0.5
      true
  """
  @spec he_uniform(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def he_uniform(key, shape, opts \\ []) do
    opts =
      Mx.Opts.validate!(opts, [mode: :fan_in, gain: 1.0, type: :f32], "Mx.NN.Init.he_uniform")

    limit = opts[:gain] * :math.sqrt(3.0 / fan!(shape, opts[:mode], "he_uniform"))
    Mx.Random.uniform(key, -limit, limit, shape: shape, type: opts[:type])
  end

  @doc """
  A random orthogonal matrix times `gain:` (default 1) for a shape
  `{rows, cols}`: orthonormal rows if `rows <= cols`, orthonormal columns
  otherwise. The Q of a QR factorization of a normal matrix, its columns'
  signs fixed by R's diagonal so the result is Haar-distributed (as PyTorch).

      iex> q = Mx.NN.Init.orthogonal(Mx.Random.key(1), {3, 3}, type: :f64)
      iex> Mx.matmul(q, Mx.transpose(q)) |> Mx.subtract(Mx.eye(3, type: :f64)) |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number() < 1.0e-12
      true
  """
  @spec orthogonal(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def orthogonal(key, shape, opts \\ [])

  def orthogonal(key, {rows, cols}, opts) do
    opts = Mx.Opts.validate!(opts, [gain: 1.0, type: :f32], "Mx.NN.Init.orthogonal")
    # QR needs a tall matrix: factor the transpose when wide.
    {m, n} = if rows < cols, do: {cols, rows}, else: {rows, cols}
    a = Mx.Random.normal(key, shape: {m, n}, type: opts[:type])
    {q, r} = Mx.Linalg.qr(a)
    d = r |> Mx.multiply(Mx.eye(n, type: opts[:type])) |> Mx.sum(axes: [0])
    q = Mx.multiply(q, Mx.sign(d))
    q = if rows < cols, do: Mx.transpose(q), else: q
    Mx.multiply(q, opts[:gain])
  end

  def orthogonal(_key, shape, _opts),
    do:
      raise(
        ArgumentError,
        "Mx.NN.Init.orthogonal: the shape must be 2-d {rows, cols}, got #{inspect(shape)}"
      )

  @doc """
  A sparse matrix for a shape `{rows, cols}`: in every column exactly
  `ceil(sparsity · rows)` entries, at random rows, are 0; the others are
  normal with `mean:` (default 0) and `std:` (default 1). `sparsity:` is
  required, in `[0, 1]`.

      iex> w = Mx.NN.Init.sparse(Mx.Random.key(2), {10, 3}, sparsity: 0.5)
      iex> w |> Mx.equal(0) |> Mx.sum(axes: [0]) |> Mx.to_list()
      [5, 5, 5]
  """
  @spec sparse(Mx.Random.key(), tuple(), keyword()) :: Array.t()
  def sparse(key, shape, opts \\ [])

  def sparse(key, {rows, cols}, opts) do
    opts =
      Mx.Opts.validate!(opts, [:sparsity, mean: 0.0, std: 1.0, type: :f32], "Mx.NN.Init.sparse")

    s = opts[:sparsity]

    unless is_number(s) and s >= 0 and s <= 1 do
      raise ArgumentError,
            "Mx.NN.Init.sparse: sparsity: must be a number in [0, 1], got #{inspect(s)}"
    end

    zeros = ceil(s * rows)
    [k_perm, k_val] = Mx.NN.split_keys(key, 2)
    # Each column's rank of an independent random value: a uniform random permutation per column.
    rank =
      Mx.Random.bits(k_perm, shape: {rows, cols}, type: :u64)
      |> Mx.argsort(axis: 0)
      |> Mx.argsort(axis: 0)

    values =
      Mx.Random.normal(k_val, opts[:mean] * 1.0, opts[:std] * 1.0,
        shape: {rows, cols},
        type: opts[:type]
      )

    Mx.select(Mx.greater_equal(rank, zeros), values, 0.0)
  end

  def sparse(_key, shape, _opts),
    do:
      raise(
        ArgumentError,
        "Mx.NN.Init.sparse: the shape must be 2-d {rows, cols}, got #{inspect(shape)}"
      )

  @doc """
  `{fan_in, fan_out}` of a weight shape `{out, k..., in}` (rank ≥ 2).

      iex> Mx.NN.Init.fans({8, 5, 5, 3})
      {75, 200}
  """
  @spec fans(tuple()) :: {pos_integer(), pos_integer()}
  def fans(shape), do: fans!(shape, "fans")

  defp fans!(shape, _name) when tuple_size(shape) >= 2 do
    [out | rest] = Tuple.to_list(shape)
    {k, [inp]} = Enum.split(rest, -1)
    receptive = Enum.reduce(k, 1, &*/2)
    {inp * receptive, out * receptive}
  end

  defp fans!(shape, name),
    do:
      raise(
        ArgumentError,
        "Mx.NN.Init.#{name}: fans need a shape of rank >= 2 ({out, in, ...}), got #{inspect(shape)}"
      )

  defp fan!(shape, :fan_in, name), do: elem(fans!(shape, name), 0)
  defp fan!(shape, :fan_out, name), do: elem(fans!(shape, name), 1)

  defp fan!(_shape, mode, name),
    do:
      raise(
        ArgumentError,
        "Mx.NN.Init.#{name}: mode must be :fan_in or :fan_out, got #{inspect(mode)}"
      )
end
