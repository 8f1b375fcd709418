defmodule Gen.Optim do
  @moduledoc """
  First-order optimisers on parameter containers, as pure state and step
  functions: `sgd/1` (with optional heavy-ball momentum) and `adam/1`
  (Kingma & Ba 2015, with bias correction). The steps are `Mx.Optim`'s
  (`Mx.Optim.sgd/1`, `Mx.Optim.adam/1`); this module adds Gen's conventions:
  ascent by default, schedules of the step t = 1, 2, ..., evaluated state,
  and `fit/3`.

  A parameter container is an Mx floating-point array, or a map (not a
  struct) or list of containers: `%{mu: Mx.tensor(0.0, type: :f64), w:
  Mx.tensor([1.0, 2.0], type: :f64)}`. Gradients have the same shape of
  container, as `Mx.value_and_grad/2` returns them.

  **Direction.** Gen's objectives (log-likelihoods, log posteriors, ELBOs)
  are maximised, so every optimiser *ascends* by default: a step moves the
  parameters along `+grad`. Pass `maximize: false` to descend (minimise a
  loss).

      opt = Gen.Optim.adam(learning_rate: 0.05)
      state = Gen.Optim.init(opt, params)
      {params, state} = Gen.Optim.update(opt, state, params, grads)

  `fit/3` runs that loop on an objective differentiated with
  `Mx.value_and_grad/2`, keeping memory flat (parameters and state are
  evaluated every step).

  ## Updates (ascent; for descent replace g by -g)

    * SGD: `v ← μ·v + g`, `θ ← θ + η·v` (μ = `momentum:`, 0 by default,
      which is plain gradient ascent `θ ← θ + η·g`).
    * Adam: `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`, `m̂ = m/(1-β₁ᵗ)`,
      `v̂ = v/(1-β₂ᵗ)`, `θ ← θ + η·m̂/(√v̂ + ε)` at step t = 1, 2, ...
  """

  import Gen.Inference.Common, only: [positive!: 4]

  @enforce_keys [:method, :learning_rate, :maximize]
  defstruct [
    :method,
    :learning_rate,
    :maximize,
    momentum: 0.0,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1.0e-8
  ]

  @type t :: %__MODULE__{
          method: :sgd | :adam,
          learning_rate: float() | (pos_integer() -> number()),
          maximize: boolean(),
          momentum: float(),
          beta1: float(),
          beta2: float(),
          eps: float()
        }
  @type params :: Mx.t() | %{optional(term()) => params()} | [params()]
  @type state :: %{step: non_neg_integer(), slots: term()}

  @doc """
  Stochastic gradient ascent (descent with `maximize: false`). Options:
  `learning_rate:` (required: a positive number, or a schedule, a function
  of the step t = 1, 2, ... returning one, e.g. Robbins–Monro's
  `fn t -> 0.1 / t ** 0.6 end`), `momentum:` (0.0, in [0, 1)), `maximize:`
  (true).

      iex> opt = Gen.Optim.sgd(learning_rate: 0.1)
      iex> p = %{x: Mx.tensor(1.0, type: :f64)}
      iex> {p2, _} = Gen.Optim.update(opt, Gen.Optim.init(opt, p), p, %{x: Mx.tensor(2.0, type: :f64)})
      iex> Mx.to_number(p2.x)
      1.2
  """
  @spec sgd(keyword()) :: t()
  def sgd(opts \\ []) do
    check_keys!(opts, [:learning_rate, :momentum, :maximize], "sgd")

    %__MODULE__{
      method: :sgd,
      learning_rate: rate!(opts, nil, "sgd"),
      momentum: unit!(opts, :momentum, 0.0, "sgd"),
      maximize: bool!(opts, :maximize, "sgd")
    }
  end

  @doc """
  Adam with bias-corrected moments. Options: `learning_rate:` (0.001; a
  number or a schedule, as in `sgd/1`),
  `beta1:` (0.9), `beta2:` (0.999), `eps:` (1.0e-8), `maximize:` (true).

  The first bias-corrected step moves every coordinate by ±η·g/(|g| + ε),
  about the learning rate:

      iex> opt = Gen.Optim.adam(learning_rate: 0.1)
      iex> p = Mx.tensor([0.0, 0.0], type: :f64)
      iex> {p2, _} = Gen.Optim.update(opt, Gen.Optim.init(opt, p), p, Mx.tensor([3.0, -0.5], type: :f64))
      iex> Mx.to_list(p2) |> Enum.map(&Float.round(&1, 6))
      [0.1, -0.1]
  """
  @spec adam(keyword()) :: t()
  def adam(opts \\ []) do
    check_keys!(opts, [:learning_rate, :beta1, :beta2, :eps, :maximize], "adam")

    %__MODULE__{
      method: :adam,
      learning_rate: rate!(opts, 0.001, "adam"),
      beta1: unit!(opts, :beta1, 0.9, "adam"),
      beta2: unit!(opts, :beta2, 0.999, "adam"),
      eps: positive!(opts, :eps, 1.0e-8, "Gen.Optim.adam"),
      maximize: bool!(opts, :maximize, "adam")
    }
  end

  @doc """
  The optimiser's initial state for `params`: zero moments, step 0. The
  moments of each parameter are a tuple (`{m, v}` for Adam).

      iex> st = Gen.Optim.init(Gen.Optim.adam(), %{w: Mx.tensor([1.0, 2.0], type: :f64)})
      iex> {st.step, Mx.to_list(elem(st.slots.w, 0))}
      {0, [0.0, 0.0]}
  """
  @spec init(t(), params()) :: state()
  def init(%__MODULE__{} = opt, params) do
    Mx.Optim.check_params!(params, "Gen.Optim.init")
    # The learning rate does not enter the state.
    %{step: 0, slots: opt |> mx_optimizer(0.0) |> Mx.Optim.init(params) |> to_slots()}
  end

  @doc """
  One step: `{new_params, new_state}` from the gradient `grads` (same
  container shape as `params`). The new parameters and state are evaluated.

      iex> opt = Gen.Optim.sgd(learning_rate: 0.5, maximize: false)
      iex> p = [Mx.tensor(1.0, type: :f64)]
      iex> {[x], _} = Gen.Optim.update(opt, Gen.Optim.init(opt, p), p, [Mx.tensor(1.0, type: :f64)])
      iex> Mx.to_number(x)
      0.5
  """
  @spec update(t(), state(), params(), params()) :: {params(), state()}
  def update(%__MODULE__{} = opt, %{step: step, slots: slots}, params, grads) do
    Mx.Optim.same_structure!(params, grads, "Gen.Optim.update")
    mx = mx_optimizer(opt, rate(opt, step + 1))
    # Mx.Optim descends; ascent descends along -grad.
    grads = if opt.maximize, do: Mx.Tree.map(grads, &Mx.negate/1), else: grads
    {new_params, new_state} = Mx.Optim.update(mx, grads, from_slots(opt, slots, step), params)

    Mx.eval({new_params, new_state})
    {new_params, %{step: step + 1, slots: to_slots(new_state)}}
  end

  # The Mx.Optim optimizer with this step's learning rate (Gen's schedules take t = 1, 2, ...).
  defp mx_optimizer(%{method: :sgd, momentum: mu}, lr),
    do: Mx.Optim.sgd(learning_rate: lr, momentum: mu)

  defp mx_optimizer(%{method: :adam} = o, lr),
    do: Mx.Optim.adam(learning_rate: lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps)

  # Gen's state keeps each parameter's slots together in a tuple, in slot-name order.
  defp to_slots(state) do
    case slot_names(state) do
      [] -> nil
      names -> Mx.Tree.zip_with(Enum.map(names, &Map.fetch!(state, &1)), &List.to_tuple/1)
    end
  end

  defp from_slots(opt, slots, step) do
    opt
    |> slots_of()
    |> Enum.with_index()
    |> Map.new(fn {name, i} -> {name, Mx.Tree.map(slots, &elem(&1, i), leaf?: &slot_tuple?/1)} end)
    |> Map.put(:step, Mx.tensor(step, type: :s32))
  end

  defp slot_names(state), do: state |> Map.keys() |> List.delete(:step) |> Enum.sort()

  # The slot names Mx.Optim.init gives these optimizers, sorted.
  defp slots_of(%{method: :sgd, momentum: mu}), do: if(mu == 0, do: [], else: [:v])
  defp slots_of(%{method: :adam}), do: [:m, :v]
  # A slot tuple holds arrays only; a parameter tuple holds slot tuples.
  defp slot_tuple?(x), do: is_tuple(x) and Enum.all?(Tuple.to_list(x), &is_struct(&1, Mx.Array))

  defp rate(%{learning_rate: lr}, _t) when is_float(lr), do: lr

  defp rate(%{learning_rate: f}, t) do
    case f.(t) do
      x when is_number(x) and x > 0 ->
        x * 1.0

      other ->
        raise ArgumentError,
              "Gen.Optim.update: the learning-rate schedule returned #{inspect(other)} at step #{t}; it must return a positive number"
    end
  end

  defp rate!(opts, default, fun) do
    case Keyword.get(opts, :learning_rate, default) do
      f when is_function(f, 1) -> f
      _ -> positive!(opts, :learning_rate, default, "Gen.Optim.#{fun}")
    end
  end

  @doc """
  Optimises `objective`, a function `fn params, iteration -> scalar end`
  (iteration counts from 0, e.g. for a per-step key), with `steps:`
  optimiser steps on `Mx.value_and_grad/2` of it. Returns `{params,
  history}`, `history` the objective's value (a float) at each step, taken
  before that step's update.

  Options: `steps:` (required), `optimizer:` (`adam(learning_rate:
  0.01)`), `callback:` (called after each step with `%{iteration: i,
  params: new_params, value: v}`, or nil).

      iex> # maximise -(x - 3)²: gradient ascent converges to x = 3
      iex> f = fn p, _i -> Mx.negate(Mx.square(Mx.subtract(p.x, 3.0))) end
      iex> {p, hist} = Gen.Optim.fit(f, %{x: Mx.tensor(0.0, type: :f64)}, steps: 50, optimizer: Gen.Optim.sgd(learning_rate: 0.25))
      iex> {Float.round(Mx.to_number(p.x), 10), hd(hist)}
      {3.0, -9.0}
  """
  @spec fit((params(), non_neg_integer() -> Mx.t()), params(), keyword()) :: {params(), [float()]}
  def fit(objective, params, opts) when is_function(objective, 2) do
    check_keys!(opts, [:steps, :optimizer, :callback], "fit")
    steps = Keyword.get(opts, :steps)

    unless is_integer(steps) and steps >= 0 do
      raise ArgumentError,
            "Gen.Optim.fit: steps: must be a non-negative integer (required), got #{inspect(steps)}"
    end

    opt = optimizer!(opts, adam(learning_rate: 0.01), "Gen.Optim.fit")
    callback = callback!(opts, "Gen.Optim.fit")
    vg = Mx.value_and_grad(objective, 0)

    {params, _state, hist} =
      Enum.reduce(0..(steps - 1)//1, {params, init(opt, params), []}, fn i, {p, st, hist} ->
        {v, g} = vg.(p, i)
        value = Mx.to_number(v)
        {p2, st2} = update(opt, st, p, g)
        if callback, do: callback.(%{iteration: i, params: p2, value: value})
        {p2, st2, [value | hist]}
      end)

    {params, Enum.reverse(hist)}
  end

  def fit(objective, _params, _opts) do
    raise ArgumentError,
          "Gen.Optim.fit: the objective must be a function of two arguments (params, iteration), got #{inspect(objective)}"
  end

  @doc false
  # The `optimizer:` option, shared with the training, MAP and VI drivers.
  @spec optimizer!(keyword(), t() | nil, String.t()) :: t()
  def optimizer!(opts, default, fun) do
    case Keyword.get(opts, :optimizer, default) do
      %__MODULE__{} = o ->
        o

      other ->
        raise ArgumentError,
              "#{fun}: optimizer: must be a Gen.Optim (Gen.Optim.adam/1 or Gen.Optim.sgd/1), got #{inspect(other)}"
    end
  end

  @doc false
  @spec callback!(keyword(), String.t()) :: (map() -> term()) | nil
  def callback!(opts, fun) do
    case Keyword.get(opts, :callback) do
      nil ->
        nil

      f when is_function(f, 1) ->
        f

      other ->
        raise ArgumentError,
              "#{fun}: callback: must be a function of one argument or nil, got #{inspect(other)}"
    end
  end

  defp check_keys!(opts, allowed, fun), do: Mx.Opts.validate!(opts, allowed, "Gen.Optim.#{fun}")

  defp unit!(opts, name, default, fun) do
    case Keyword.get(opts, name, default) do
      x when is_number(x) and x >= 0 and x < 1 ->
        x * 1.0

      other ->
        raise ArgumentError,
              "Gen.Optim.#{fun}: #{name}: must be a number in [0, 1), got #{inspect(other)}"
    end
  end

  defp bool!(opts, name, fun) do
    case Keyword.get(opts, name, true) do
      b when is_boolean(b) ->
        b

      other ->
        raise ArgumentError,
              "Gen.Optim.#{fun}: #{name}: must be true or false, got #{inspect(other)}"
    end
  end
end
