defmodule Mx.NN.Activations do
  @moduledoc """
  The 27 activations of `mlx.nn`, composed of Mx ops (so they differentiate
  and compile like any op). Names follow Axon where it has one
  (`hard_tanh`, `hard_swish`) and MLX elsewhere; MLX's `relu2` is
  `relu_squared`, its `softshrink` is `soft_shrink`.

  Every function takes an array, and those with parameters (`alpha:`,
  `axis:`, ...) optional keyword options; in
  `Mx.NN.Sequential` an activation is named by its atom (`:relu`) or given
  with options (`{:leaky_relu, negative_slope: 0.2}`).

      iex> Mx.NN.Activations.relu(Mx.tensor([-1.0, 2.0])) |> Mx.to_list()
      [0.0, 2.0]
  """

  alias Mx.Array

  @selu_alpha 1.6732632423543772848170429916717
  @selu_scale 1.0507009873554804934193349852946

  @names [
    :relu,
    :relu6,
    :leaky_relu,
    :prelu,
    :elu,
    :selu,
    :celu,
    :gelu,
    :gelu_approx,
    :gelu_fast_approx,
    :silu,
    :sigmoid,
    :log_sigmoid,
    :tanh,
    :hard_tanh,
    :hard_swish,
    :hard_shrink,
    :soft_shrink,
    :softplus,
    :softsign,
    :mish,
    :glu,
    :step,
    :log_softmax,
    :softmax,
    :softmin,
    :relu_squared
  ]

  @doc """
  The names of the 27 activations.

      iex> length(Mx.NN.Activations.names())
      27
  """
  @spec names() :: [atom()]
  def names, do: @names

  @doc """
  `max(x, 0)`.

      iex> Mx.NN.Activations.relu(Mx.tensor([-1.0, 2.0])) |> Mx.to_list()
      [0.0, 2.0]
  """
  @spec relu(Array.t()) :: Array.t()
  def relu(x), do: Mx.max(x, 0)

  @doc """
  `min(max(x, 0), 6)`.

      iex> Mx.NN.Activations.relu6(Mx.tensor([-1.0, 3.0, 9.0])) |> Mx.to_list()
      [0.0, 3.0, 6.0]
  """
  @spec relu6(Array.t()) :: Array.t()
  def relu6(x), do: Mx.clip(x, 0, 6)

  @doc """
  `relu(x)²` (MLX's `relu2`).

      iex> Mx.NN.Activations.relu_squared(Mx.tensor([-1.0, 3.0])) |> Mx.to_list()
      [0.0, 9.0]
  """
  @spec relu_squared(Array.t()) :: Array.t()
  def relu_squared(x), do: Mx.square(Mx.max(x, 0))

  @doc """
  `x` where positive, `negative_slope · x` elsewhere (`negative_slope:`,
  default 0.01).

      iex> Mx.NN.Activations.leaky_relu(Mx.tensor([-2.0, 2.0]), negative_slope: 0.5) |> Mx.to_list()
      [-1.0, 2.0]
  """
  @spec leaky_relu(Array.t(), keyword()) :: Array.t()
  def leaky_relu(x, opts \\ []) do
    slope =
      Mx.Opts.validate!(opts, [negative_slope: 0.01], "Mx.NN.Activations.leaky_relu")[
        :negative_slope
      ]

    Mx.select(Mx.greater(x, 0), x, Mx.multiply(x, slope))
  end

  @doc """
  Parametric ReLU: `max(x, 0) + alpha · min(x, 0)`; `alpha:` is an array
  broadcasting against `x` (learned by `Mx.NN.PReLU`) or a number.

      iex> Mx.NN.Activations.prelu(Mx.tensor([-2.0, 2.0]), alpha: Mx.tensor([0.25])) |> Mx.to_list()
      [-0.5, 2.0]
  """
  @spec prelu(Array.t(), keyword()) :: Array.t()
  def prelu(x, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [:alpha], "Mx.NN.Activations.prelu")

    alpha =
      opts[:alpha] ||
        raise ArgumentError, "Mx.NN.Activations.prelu: alpha: is required (an array or a number)"

    Mx.add(Mx.max(x, 0), Mx.multiply(alpha, Mx.min(x, 0)))
  end

  @doc """
  `x` where positive, `alpha · (eˣ - 1)` elsewhere (`alpha:`, default 1.0).

      iex> Mx.NN.Activations.elu(Mx.tensor([:neg_infinity, 0.0, 3.0]), alpha: 2.0) |> Mx.to_list()
      [-2.0, 0.0, 3.0]
  """
  @spec elu(Array.t(), keyword()) :: Array.t()
  def elu(x, opts \\ []) do
    alpha = Mx.Opts.validate!(opts, [alpha: 1.0], "Mx.NN.Activations.elu")[:alpha]
    elu_(x, alpha)
  end

  # expm1 of min(x, 0): the unselected branch stays finite, so its gradient (times 0) is not NaN.
  defp elu_(x, alpha),
    do: Mx.select(Mx.greater(x, 0), x, Mx.multiply(alpha, Mx.expm1(Mx.min(x, 0))))

  @doc """
  `scale · elu(x, alpha)` with SELU's fixed α ≈ 1.6733 and scale ≈ 1.0507.

      iex> Mx.NN.Activations.selu(Mx.tensor([:neg_infinity, 0.0], type: :f64)) |> Mx.to_list()
      [-1.7580993408473766, 0.0]
  """
  @spec selu(Array.t()) :: Array.t()
  def selu(x), do: Mx.multiply(elu_(x, @selu_alpha), @selu_scale)

  @doc """
  `max(x, 0) + min(0, alpha · (e^(x/alpha) - 1))` (`alpha:`, default 1.0).

      iex> Mx.NN.Activations.celu(Mx.tensor([:neg_infinity, 2.0]), alpha: 0.5) |> Mx.to_list()
      [-0.5, 2.0]
  """
  @spec celu(Array.t(), keyword()) :: Array.t()
  def celu(x, opts \\ []) do
    alpha = Mx.Opts.validate!(opts, [alpha: 1.0], "Mx.NN.Activations.celu")[:alpha]
    Mx.add(Mx.max(x, 0), Mx.multiply(alpha, Mx.expm1(Mx.divide(Mx.min(x, 0), alpha))))
  end

  @doc """
  The exact GELU: `x · Φ(x) = x (1 + erf(x/√2)) / 2`.

      iex> Mx.NN.Activations.gelu(Mx.tensor([0.0])) |> Mx.to_list()
      [0.0]
  """
  @spec gelu(Array.t()) :: Array.t()
  def gelu(x),
    do:
      x
      |> Mx.multiply(:math.sqrt(0.5))
      |> Mx.erf()
      |> Mx.add(1)
      |> Mx.multiply(x)
      |> Mx.multiply(0.5)

  @doc """
  GELU's tanh approximation `x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2` (PyTorch's `approximate='tanh'`).

      iex> Mx.NN.Activations.gelu_approx(Mx.tensor([0.0, 10.0])) |> Mx.to_list()
      [0.0, 10.0]
  """
  @spec gelu_approx(Array.t()) :: Array.t()
  def gelu_approx(x) do
    inner =
      x
      |> Mx.multiply(Mx.square(x))
      |> Mx.multiply(0.044715)
      |> Mx.add(x)
      |> Mx.multiply(:math.sqrt(2 / :math.pi()))

    inner |> Mx.tanh() |> Mx.add(1) |> Mx.multiply(x) |> Mx.multiply(0.5)
  end

  @doc """
  GELU's sigmoid approximation `x · sigmoid(1.702 x)` (MLX's `gelu_fast_approx`).

      iex> Mx.NN.Activations.gelu_fast_approx(Mx.tensor([0.0, 20.0])) |> Mx.to_list()
      [0.0, 20.0]
  """
  @spec gelu_fast_approx(Array.t()) :: Array.t()
  def gelu_fast_approx(x), do: Mx.multiply(x, Mx.sigmoid(Mx.multiply(x, 1.702)))

  @doc """
  `x · sigmoid(x)` (swish).

      iex> Mx.NN.Activations.silu(Mx.tensor([0.0, 20.0])) |> Mx.to_list()
      [0.0, 20.0]
  """
  @spec silu(Array.t()) :: Array.t()
  def silu(x), do: Mx.multiply(x, Mx.sigmoid(x))

  @doc """
  `1 / (1 + e⁻ˣ)`.

      iex> Mx.NN.Activations.sigmoid(Mx.tensor([0.0])) |> Mx.to_list()
      [0.5]
  """
  @spec sigmoid(Array.t()) :: Array.t()
  def sigmoid(x), do: Mx.sigmoid(x)

  @doc """
  `log(sigmoid(x)) = -softplus(-x)`, stable for large |x|.

      iex> Mx.NN.Activations.log_sigmoid(Mx.tensor([-100.0])) |> Mx.to_list()
      [-100.0]
  """
  @spec log_sigmoid(Array.t()) :: Array.t()
  def log_sigmoid(x), do: Mx.negate(softplus_(Mx.negate(x)))

  @doc """
  The hyperbolic tangent.

      iex> Mx.NN.Activations.tanh(Mx.tensor([0.0])) |> Mx.to_list()
      [0.0]
  """
  @spec tanh(Array.t()) :: Array.t()
  def tanh(x), do: Mx.tanh(x)

  @doc """
  `x` clipped to `[min_val, max_val]` (defaults -1 and 1).

      iex> Mx.NN.Activations.hard_tanh(Mx.tensor([-3.0, 0.5, 3.0])) |> Mx.to_list()
      [-1.0, 0.5, 1.0]
  """
  @spec hard_tanh(Array.t(), keyword()) :: Array.t()
  def hard_tanh(x, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [min_val: -1.0, max_val: 1.0], "Mx.NN.Activations.hard_tanh")
    Mx.max(Mx.min(x, opts[:max_val]), opts[:min_val])
  end

  @doc """
  `x · min(max(x + 3, 0), 6) / 6`.

      iex> Mx.NN.Activations.hard_swish(Mx.tensor([-4.0, 0.0, 4.0])) |> Mx.to_list()
      [-0.0, 0.0, 4.0]
  """
  @spec hard_swish(Array.t()) :: Array.t()
  def hard_swish(x), do: x |> Mx.add(3) |> Mx.clip(0, 6) |> Mx.multiply(x) |> Mx.divide(6)

  @doc """
  `x` where `|x| > lambd`, 0 elsewhere (`lambd:`, default 0.5).

      iex> Mx.NN.Activations.hard_shrink(Mx.tensor([-1.0, 0.2, 0.7])) |> Mx.to_list()
      [-1.0, 0.0, 0.699999988079071]
  """
  @spec hard_shrink(Array.t(), keyword()) :: Array.t()
  def hard_shrink(x, opts \\ []) do
    l = Mx.Opts.validate!(opts, [lambd: 0.5], "Mx.NN.Activations.hard_shrink")[:lambd]
    Mx.select(Mx.greater(Mx.abs(x), l), x, 0.0)
  end

  @doc """
  `x - lambd` above `lambd`, `x + lambd` below `-lambd`, 0 between
  (`lambd:`, default 0.5).

      iex> Mx.NN.Activations.soft_shrink(Mx.tensor([-1.0, 0.2, 1.5])) |> Mx.to_list()
      [-0.5, 0.0, 1.0]
  """
  @spec soft_shrink(Array.t(), keyword()) :: Array.t()
  def soft_shrink(x, opts \\ []) do
    l = Mx.Opts.validate!(opts, [lambd: 0.5], "Mx.NN.Activations.soft_shrink")[:lambd]
    Mx.select(Mx.greater(x, l), Mx.subtract(x, l), Mx.select(Mx.less(x, -l), Mx.add(x, l), 0.0))
  end

  @doc """
  `log(1 + eˣ)`, stable for large |x| (no threshold switch).

      iex> Mx.NN.Activations.softplus(Mx.tensor([0.0, 100.0])) |> Mx.to_list()
      [0.6931471824645996, 100.0]
  """
  @spec softplus(Array.t()) :: Array.t()
  def softplus(x), do: softplus_(x)

  defp softplus_(x), do: Mx.logaddexp(x, 0.0)

  @doc """
  `x / (1 + |x|)`.

      iex> Mx.NN.Activations.softsign(Mx.tensor([-1.0, 3.0])) |> Mx.to_list()
      [-0.5, 0.75]
  """
  @spec softsign(Array.t()) :: Array.t()
  def softsign(x), do: Mx.divide(x, Mx.add(Mx.abs(x), 1))

  @doc """
  `x · tanh(softplus(x))`.

      iex> Mx.NN.Activations.mish(Mx.tensor([0.0, 20.0])) |> Mx.to_list()
      [0.0, 20.0]
  """
  @spec mish(Array.t()) :: Array.t()
  def mish(x), do: Mx.multiply(x, Mx.tanh(softplus_(x)))

  @doc """
  Gated linear unit: `a · sigmoid(b)` where `a` and `b` are the two halves
  of `x` along `axis:` (default -1, which must have even size).

      iex> Mx.NN.Activations.glu(Mx.tensor([[2.0, 0.0]])) |> Mx.to_list()
      [[1.0]]
  """
  @spec glu(Array.t(), keyword()) :: Array.t()
  def glu(x, opts \\ []) do
    axis = Mx.Opts.validate!(opts, [axis: -1], "Mx.NN.Activations.glu")[:axis]
    axis = norm_axis(x, axis)
    n = elem(x.shape, axis)

    if rem(n, 2) != 0,
      do:
        raise(
          ArgumentError,
          "Mx.NN.Activations.glu: axis #{axis} of #{Mx.describe(x)} must have even size"
        )

    a = Mx.slice_axis(x, 0, div(n, 2), axis)
    b = Mx.slice_axis(x, div(n, 2), div(n, 2), axis)
    Mx.multiply(a, Mx.sigmoid(b))
  end

  @doc """
  1 where `x > threshold` (default 0), else 0, in `x`'s type (integers: `s64`).

      iex> Mx.NN.Activations.step(Mx.tensor([-1.0, 0.0, 2.0])) |> Mx.to_list()
      [0.0, 0.0, 1.0]
  """
  @spec step(Array.t(), keyword()) :: Array.t()
  def step(x, opts \\ []) do
    t = Mx.Opts.validate!(opts, [threshold: 0.0], "Mx.NN.Activations.step")[:threshold]
    type = if Mx.Type.float?(x.type), do: x.type, else: :s64
    Mx.as_type(Mx.greater(x, t), type)
  end

  @doc """
  `x - logsumexp(x)` along `axis:` (default -1).

      iex> Mx.NN.Activations.log_softmax(Mx.tensor([0.0, 0.0])) |> Mx.to_list()
      [-0.6931471824645996, -0.6931471824645996]
  """
  @spec log_softmax(Array.t(), keyword()) :: Array.t()
  def log_softmax(x, opts \\ []) do
    axis = Mx.Opts.validate!(opts, [axis: -1], "Mx.NN.Activations.log_softmax")[:axis]
    Mx.subtract(x, Mx.logsumexp(x, axes: [axis], keep_axes: true))
  end

  @doc """
  `eˣ / sum(eˣ)` along `axis:` (default -1), computed from `log_softmax/2`.

      iex> Mx.NN.Activations.softmax(Mx.tensor([1.0, 1.0])) |> Mx.to_list()
      [0.5, 0.5]
  """
  @spec softmax(Array.t(), keyword()) :: Array.t()
  def softmax(x, opts \\ []) do
    axis = Mx.Opts.validate!(opts, [axis: -1], "Mx.NN.Activations.softmax")[:axis]
    Mx.exp(log_softmax(x, axis: axis))
  end

  @doc """
  `softmax(-x)` along `axis:` (default -1).

      iex> Mx.NN.Activations.softmin(Mx.tensor([0.0, :infinity])) |> Mx.to_list()
      [1.0, 0.0]
  """
  @spec softmin(Array.t(), keyword()) :: Array.t()
  def softmin(x, opts \\ []) do
    axis = Mx.Opts.validate!(opts, [axis: -1], "Mx.NN.Activations.softmin")[:axis]
    softmax(Mx.negate(x), axis: axis)
  end

  @doc false
  def norm_axis(x, axis) do
    r = Mx.rank(x)
    a = if axis < 0, do: axis + r, else: axis

    unless a >= 0 and a < r,
      do: raise(ArgumentError, "axis #{axis} is out of range for #{Mx.describe(x)}")

    a
  end
end
