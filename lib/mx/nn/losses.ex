defmodule Mx.NN.Losses do
  @moduledoc """
  The 14 losses of `mlx.nn.losses`, with MLX's names, arguments and
  default reductions. `reduction:` is `:none` (one loss per example),
  `:mean` or `:sum` over all of them; each function's doc gives its default.

  Where MLX and PyTorch differ, the doc says which meaning Mx takes
  (`triplet_loss/4` takes PyTorch's distance; `binary_cross_entropy/3`
  clamps logarithms at -100 as both do).

      iex> Mx.NN.Losses.mse_loss(Mx.tensor([1.0, 2.0]), Mx.tensor([1.0, 4.0])) |> Mx.to_number()
      2.0
  """

  alias Mx.Array
  alias Mx.NN.Activations

  @doc """
  Cross-entropy between `logits` and `targets` along `axis:` (default -1).
  Targets of one rank less than `logits` are class indices (an integer
  array); targets of the same rank are probabilities. `label_smoothing:`
  (default 0) mixes the targets with the uniform distribution, as PyTorch
  does; `weights:` multiply the per-example losses. Default reduction `:none`.

      iex> logits = Mx.tensor([[0.0, 0.0]])
      iex> Mx.NN.Losses.cross_entropy(logits, Mx.tensor([1])) |> Mx.to_list()
      [0.6931471824645996]
      iex> Mx.NN.Losses.cross_entropy(logits, Mx.tensor([[0.0, 1.0]])) |> Mx.to_list()
      [0.6931471824645996]
  """
  @spec cross_entropy(Array.t(), Array.t(), keyword()) :: Array.t()
  def cross_entropy(logits, targets, opts \\ []) do
    opts =
      Mx.Opts.validate!(
        opts,
        [axis: -1, label_smoothing: 0.0, weights: nil, reduction: :none],
        "Mx.NN.Losses.cross_entropy"
      )

    axis = Activations.norm_axis(logits, opts[:axis])
    eps = opts[:label_smoothing]

    unless is_number(eps) and eps >= 0 and eps < 1 do
      raise ArgumentError,
            "Mx.NN.Losses.cross_entropy: label_smoothing must be in [0, 1), got #{inspect(eps)}"
    end

    logp = Activations.log_softmax(logits, axis: axis)
    k = elem(logits.shape, axis)

    loss =
      cond do
        Mx.rank(targets) == Mx.rank(logits) ->
          t = if eps == 0, do: targets, else: targets |> Mx.multiply(1 - eps) |> Mx.add(eps / k)
          Mx.negate(Mx.sum(Mx.multiply(t, logp), axes: [axis]))

        Mx.rank(targets) == Mx.rank(logits) - 1 and not Mx.Type.float?(targets.type) ->
          nll = pick(logp, targets, axis) |> Mx.negate()

          if eps == 0,
            do: nll,
            else:
              Mx.add(Mx.multiply(nll, 1 - eps), Mx.multiply(Mx.mean(logp, axes: [axis]), -eps))

        true ->
          raise ArgumentError,
                "Mx.NN.Losses.cross_entropy: targets #{Mx.describe(targets)} must be class indices (an integer array of rank #{Mx.rank(logits) - 1}) or probabilities (rank #{Mx.rank(logits)}) for logits #{Mx.describe(logits)}"
      end

    loss |> weigh(opts[:weights]) |> reduce(opts[:reduction], "cross_entropy")
  end

  # logp[..., targets[...], ...] along axis.
  defp pick(logp, targets, axis) do
    logp |> Mx.take_along_axis(Mx.new_axis(targets, axis), axis: axis) |> Mx.squeeze(axes: [axis])
  end

  @doc """
  Binary cross-entropy. With `with_logits: true` (the default) `inputs`
  are logits and the loss is `softplus(x) - x·t`, stable for any `x`; with
  `with_logits: false` they are probabilities and the loss is
  `-(t log p + (1 - t) log(1 - p))` with each log clamped at -100 (as
  PyTorch's `binary_cross_entropy`). `weights:` multiply elementwise.
  Default reduction `:mean`.

      iex> Mx.NN.Losses.binary_cross_entropy(Mx.tensor([0.0]), Mx.tensor([1.0])) |> Mx.to_number()
      0.6931471824645996
      iex> Mx.NN.Losses.binary_cross_entropy(Mx.tensor([0.5]), Mx.tensor([1.0]), with_logits: false) |> Mx.to_number()
      0.6931471824645996
  """
  @spec binary_cross_entropy(Array.t(), Array.t(), keyword()) :: Array.t()
  def binary_cross_entropy(inputs, targets, opts \\ []) do
    opts =
      Mx.Opts.validate!(
        opts,
        [with_logits: true, weights: nil, reduction: :mean],
        "Mx.NN.Losses.binary_cross_entropy"
      )

    loss =
      if opts[:with_logits] do
        inputs |> Mx.logaddexp(0.0) |> Mx.subtract(Mx.multiply(inputs, targets))
      else
        log_p = Mx.max(Mx.log(inputs), -100.0)
        log_q = Mx.max(Mx.log1p(Mx.negate(inputs)), -100.0)

        Mx.negate(
          Mx.add(Mx.multiply(targets, log_p), Mx.multiply(Mx.subtract(1, targets), log_q))
        )
      end

    loss |> weigh(opts[:weights]) |> reduce(opts[:reduction], "binary_cross_entropy")
  end

  @doc """
  `|predictions - targets|`. Default reduction `:mean`.

      iex> Mx.NN.Losses.l1_loss(Mx.tensor([1.0, 2.0]), Mx.tensor([0.0, 4.0]), reduction: :sum) |> Mx.to_number()
      3.0
  """
  @spec l1_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def l1_loss(predictions, targets, opts \\ []) do
    r = Mx.Opts.validate!(opts, [reduction: :mean], "Mx.NN.Losses.l1_loss")[:reduction]
    predictions |> Mx.subtract(targets) |> Mx.abs() |> reduce(r, "l1_loss")
  end

  @doc """
  `(predictions - targets)²`. Default reduction `:mean`.

      iex> Mx.NN.Losses.mse_loss(Mx.tensor([1.0, 2.0]), Mx.tensor([0.0, 4.0]), reduction: :none) |> Mx.to_list()
      [1.0, 4.0]
  """
  @spec mse_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def mse_loss(predictions, targets, opts \\ []) do
    r = Mx.Opts.validate!(opts, [reduction: :mean], "Mx.NN.Losses.mse_loss")[:reduction]
    predictions |> Mx.subtract(targets) |> Mx.square() |> reduce(r, "mse_loss")
  end

  @doc """
  Negative log-likelihood `-inputs[target]` along `axis:` (default -1):
  `inputs` are log-probabilities, `targets` class indices. Default
  reduction `:none`.

      iex> Mx.NN.Losses.nll_loss(Mx.tensor([[-1.0, -2.0]]), Mx.tensor([1])) |> Mx.to_list()
      [2.0]
  """
  @spec nll_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def nll_loss(inputs, targets, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: -1, reduction: :none], "Mx.NN.Losses.nll_loss")

    inputs
    |> pick(targets, Activations.norm_axis(inputs, opts[:axis]))
    |> Mx.negate()
    |> reduce(opts[:reduction], "nll_loss")
  end

  @doc """
  Kullback–Leibler divergence `KL(targets ‖ inputs) = Σ eᵗ (t - x)` along
  `axis:` (default -1), where `inputs` and `targets` are both
  log-probabilities (MLX's meaning; PyTorch's `kl_div` with
  `log_target=True`, summed over the axis). Default reduction `:none`.

      iex> logp = Mx.log(Mx.tensor([[0.5, 0.5]], type: :f64))
      iex> Mx.NN.Losses.kl_div_loss(logp, logp) |> Mx.to_list()
      [0.0]
  """
  @spec kl_div_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def kl_div_loss(inputs, targets, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [axis: -1, reduction: :none], "Mx.NN.Losses.kl_div_loss")

    targets
    |> Mx.exp()
    |> Mx.multiply(Mx.subtract(targets, inputs))
    |> Mx.sum(axes: [opts[:axis]])
    |> reduce(opts[:reduction], "kl_div_loss")
  end

  @doc """
  Smooth L1: `0.5 d² / beta` where `d = |predictions - targets| < beta`
  (default 1.0), `d - 0.5 beta` elsewhere. Default reduction `:mean`.

      iex> Mx.NN.Losses.smooth_l1_loss(Mx.tensor([0.5, 3.0]), Mx.tensor([0.0, 0.0]), reduction: :none) |> Mx.to_list()
      [0.125, 2.5]
  """
  @spec smooth_l1_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def smooth_l1_loss(predictions, targets, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [beta: 1.0, reduction: :mean], "Mx.NN.Losses.smooth_l1_loss")
    beta = opts[:beta]
    d = Mx.abs(Mx.subtract(predictions, targets))

    Mx.select(Mx.less(d, beta), Mx.multiply(Mx.square(d), 0.5 / beta), Mx.subtract(d, 0.5 * beta))
    |> reduce(opts[:reduction], "smooth_l1_loss")
  end

  @doc """
  Triplet margin loss `max(d(a, p) - d(a, n) + margin, 0)` with PyTorch's
  distance `d(x, y) = ‖x - y + eps‖_p` along `axis:` (default -1);
  `p:` 2, `margin:` 1.0, `eps:` 1e-6 by default. (MLX instead takes
  `sqrt(Σ (x - y)^p + eps)`.) Default reduction `:none`.

      iex> a = Mx.tensor([[0.0, 0.0]], type: :f64)
      iex> Mx.NN.Losses.triplet_loss(a, a, Mx.tensor([[3.0, 4.0]], type: :f64), eps: 0.0, margin: 6.0) |> Mx.to_list()
      [1.0]
  """
  @spec triplet_loss(Array.t(), Array.t(), Array.t(), keyword()) :: Array.t()
  def triplet_loss(anchors, positives, negatives, opts \\ []) do
    opts =
      Mx.Opts.validate!(
        opts,
        [axis: -1, p: 2, margin: 1.0, eps: 1.0e-6, reduction: :none],
        "Mx.NN.Losses.triplet_loss"
      )

    dist = fn x, y -> pnorm(x |> Mx.subtract(y) |> Mx.add(opts[:eps]), opts[:p], opts[:axis]) end

    dist.(anchors, positives)
    |> Mx.subtract(dist.(anchors, negatives))
    |> Mx.add(opts[:margin])
    |> Mx.max(0.0)
    |> reduce(opts[:reduction], "triplet_loss")
  end

  defp pnorm(d, 2, axis), do: d |> Mx.square() |> Mx.sum(axes: [axis]) |> Mx.sqrt()
  defp pnorm(d, 1, axis), do: d |> Mx.abs() |> Mx.sum(axes: [axis])

  defp pnorm(d, p, axis) when is_number(p) and p > 0,
    do: d |> Mx.abs() |> Mx.pow(p * 1.0) |> Mx.sum(axes: [axis]) |> Mx.pow(1.0 / p)

  defp pnorm(_d, p, _axis),
    do:
      raise(
        ArgumentError,
        "Mx.NN.Losses.triplet_loss: p must be a positive number, got #{inspect(p)}"
      )

  @doc """
  Hinge loss `max(1 - inputs · targets, 0)` with targets ±1. Default reduction `:none`.

      iex> Mx.NN.Losses.hinge_loss(Mx.tensor([0.5, 2.0]), Mx.tensor([1.0, 1.0])) |> Mx.to_list()
      [0.5, 0.0]
  """
  @spec hinge_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def hinge_loss(inputs, targets, opts \\ []) do
    r = Mx.Opts.validate!(opts, [reduction: :none], "Mx.NN.Losses.hinge_loss")[:reduction]
    1 |> Mx.subtract(Mx.multiply(inputs, targets)) |> Mx.max(0.0) |> reduce(r, "hinge_loss")
  end

  @doc """
  Huber loss: `0.5 d²` where `d = |inputs - targets| ≤ delta` (default
  1.0), `delta (d - 0.5 delta)` elsewhere. Default reduction `:none`.

      iex> Mx.NN.Losses.huber_loss(Mx.tensor([0.5, 3.0]), Mx.tensor([0.0, 0.0])) |> Mx.to_list()
      [0.125, 2.5]
  """
  @spec huber_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def huber_loss(inputs, targets, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [delta: 1.0, reduction: :none], "Mx.NN.Losses.huber_loss")
    delta = opts[:delta]
    d = Mx.abs(Mx.subtract(inputs, targets))

    Mx.select(
      Mx.less_equal(d, delta),
      Mx.multiply(Mx.square(d), 0.5),
      Mx.multiply(Mx.subtract(d, 0.5 * delta), delta)
    )
    |> reduce(opts[:reduction], "huber_loss")
  end

  @doc """
  `log(cosh(inputs - targets))`, computed as `logaddexp(d, -d) - log 2` so
  large differences do not overflow. Default reduction `:none`.

      iex> Mx.NN.Losses.log_cosh_loss(Mx.tensor([1000.0]), Mx.tensor([0.0])) |> Mx.to_list()
      [999.3068237304688]
  """
  @spec log_cosh_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def log_cosh_loss(inputs, targets, opts \\ []) do
    r = Mx.Opts.validate!(opts, [reduction: :none], "Mx.NN.Losses.log_cosh_loss")[:reduction]
    d = Mx.subtract(inputs, targets)
    d |> Mx.logaddexp(Mx.negate(d)) |> Mx.subtract(:math.log(2)) |> reduce(r, "log_cosh_loss")
  end

  @doc """
  Cosine similarity `x₁·x₂ / max(‖x₁‖ ‖x₂‖, eps)` along `axis:` (default
  1, as MLX; `eps:` 1e-8). A similarity, not a distance: larger is closer.
  Default reduction `:none`.

      iex> Mx.NN.Losses.cosine_similarity_loss(Mx.tensor([[1.0, 0.0]]), Mx.tensor([[2.0, 0.0]])) |> Mx.to_list()
      [1.0]
  """
  @spec cosine_similarity_loss(Array.t(), Array.t(), keyword()) :: Array.t()
  def cosine_similarity_loss(x1, x2, opts \\ []) do
    opts =
      Mx.Opts.validate!(
        opts,
        [axis: 1, eps: 1.0e-8, reduction: :none],
        "Mx.NN.Losses.cosine_similarity_loss"
      )

    axis = opts[:axis]
    n1 = pnorm(x1, 2, axis)
    n2 = pnorm(x2, 2, axis)

    x1
    |> Mx.multiply(x2)
    |> Mx.sum(axes: [axis])
    |> Mx.divide(Mx.max(Mx.multiply(n1, n2), opts[:eps]))
    |> reduce(opts[:reduction], "cosine_similarity_loss")
  end

  @doc """
  Margin ranking loss `max(0, -targets · (inputs1 - inputs2) + margin)`
  with targets ±1 (`margin:`, default 0). Default reduction `:none`.

      iex> Mx.NN.Losses.margin_ranking_loss(Mx.tensor([1.0, 1.0]), Mx.tensor([2.0, 0.0]), Mx.tensor([1.0, 1.0])) |> Mx.to_list()
      [1.0, 0.0]
  """
  @spec margin_ranking_loss(Array.t(), Array.t(), Array.t(), keyword()) :: Array.t()
  def margin_ranking_loss(inputs1, inputs2, targets, opts \\ []) do
    opts =
      Mx.Opts.validate!(opts, [margin: 0.0, reduction: :none], "Mx.NN.Losses.margin_ranking_loss")

    targets
    |> Mx.multiply(Mx.subtract(inputs1, inputs2))
    |> Mx.negate()
    |> Mx.add(opts[:margin])
    |> Mx.max(0.0)
    |> reduce(opts[:reduction], "margin_ranking_loss")
  end

  @doc """
  Gaussian negative log-likelihood of `targets` under means `inputs` and
  variances `vars` (clamped below at `eps:`, default 1e-6):
  `0.5 (log v + (t - x)² / v)`, plus `0.5 log 2π` with `full: true`.
  Default reduction `:mean`.

      iex> Mx.NN.Losses.gaussian_nll_loss(Mx.tensor([0.0]), Mx.tensor([2.0]), Mx.tensor([1.0])) |> Mx.to_number()
      2.0
  """
  @spec gaussian_nll_loss(Array.t(), Array.t(), Array.t(), keyword()) :: Array.t()
  def gaussian_nll_loss(inputs, targets, vars, opts \\ []) do
    opts =
      Mx.Opts.validate!(
        opts,
        [full: false, eps: 1.0e-6, reduction: :mean],
        "Mx.NN.Losses.gaussian_nll_loss"
      )

    v = Mx.max(vars, opts[:eps])

    loss =
      Mx.multiply(Mx.add(Mx.log(v), Mx.divide(Mx.square(Mx.subtract(targets, inputs)), v)), 0.5)

    loss = if opts[:full], do: Mx.add(loss, 0.5 * :math.log(2 * :math.pi())), else: loss
    reduce(loss, opts[:reduction], "gaussian_nll_loss")
  end

  defp weigh(loss, nil), do: loss
  defp weigh(loss, weights), do: Mx.multiply(loss, weights)

  defp reduce(loss, :none, _name), do: loss
  defp reduce(loss, :mean, _name), do: Mx.mean(loss)
  defp reduce(loss, :sum, _name), do: Mx.sum(loss)

  defp reduce(_loss, other, name),
    do:
      raise(
        ArgumentError,
        "Mx.NN.Losses.#{name}: reduction must be :none, :mean or :sum, got #{inspect(other)}"
      )
end
