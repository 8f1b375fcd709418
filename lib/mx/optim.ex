defmodule Mx.Optim do
  @moduledoc """
  Optimizers as pure functions over parameter trees (`Mx.Tree`: nested maps,
  lists and tuples of floating-point arrays), in the manner of Optax and
  Polaris, with MLX's set of optimizers and schedules.

  ## The contract

  An optimizer is a `%Mx.Optim{}` holding two functions:

    * `init(optimizer, params)` → `state`, a map of arrays: `:step` (an `s32`
      scalar, the number of updates done) and one tree per slot, shaped like
      `params` (`:m` and `:v` for Adam);
    * `update(optimizer, grads, state, params)` → `{new_params, new_state}`,
      `grads` a tree of the structure of `params` (what `Mx.value_and_grad/2`
      returns). Optimizers *descend*: they minimise a loss.

  Both are lazy: nothing is evaluated, so a step runs inside `Mx.compile/2`
  (the step count and the state are arrays, so one trace serves every step).
  Outside `compile`, `Mx.eval({params, state})` after each step keeps memory
  flat. The state is plain data: `state_to_map/1` and `state_from_map/2` turn
  it into a map of names to arrays that `Mx.IO.save_safetensors/3` writes.

      iex> opt = Mx.Optim.adam(learning_rate: 0.1)
      iex> params = %{w: Mx.tensor([1.0, -1.0])}
      iex> state = Mx.Optim.init(opt, params)
      iex> {params, state} = Mx.Optim.update(opt, %{w: Mx.tensor([0.5, -2.0])}, state, params)
      iex> {Enum.map(Mx.to_list(params.w), &Float.round(&1, 6)), Mx.to_number(state.step)}
      {[0.9, -0.9], 1}

  ## Learning rates

  `learning_rate:` is a non-negative number or a *schedule*: a function of
  the step count (an `s32` scalar array: 0 at the first update) returning a
  number or a scalar array, as in MLX and Optax. `step_decay/3`,
  `exponential_decay/2`, `cosine_decay/3`, `linear_schedule/3` and
  `join_schedules/2` build schedules from Mx ops, so they trace into a
  compiled step.

  ## References

  SGD, RMSprop, Adagrad, AdaDelta, Adam, AdamW and Adamax follow PyTorch's
  `torch.optim` update order and defaults (test/reference/generate_optim.py
  checks them against it); Lion, Adafactor and Muon follow MLX's
  `mlx.optimizers`, checked against the papers' formulas written in NumPy.
  Parameters of any float type keep their type; gradients are cast to it.
  """

  alias Mx.Tree

  @enforce_keys [:name, :init, :update]
  defstruct [:name, :init, :update]

  @type t :: %__MODULE__{
          name: atom(),
          init: (Tree.t() -> state()),
          update: (Tree.t(), state(), Tree.t() -> {Tree.t(), state()})
        }
  @type state :: %{required(:step) => Mx.t(), optional(atom()) => Tree.t()}
  @type schedule :: (Mx.t() | non_neg_integer() -> Mx.t() | number())
  @type learning_rate :: number() | schedule()

  # A per-leaf result while splitting {param, slots} pairs back into trees.
  @tag :"$mx_optim_leaf"

  # ---- the contract ----------------------------------------------------------------------

  @doc """
  The optimizer's initial state for `params`: step 0 and zeroed slots.
  Raises when a leaf is a number or a non-float array (wrap numbers with
  `Mx.tensor(x, type: :f32)`).

      iex> st = Mx.Optim.init(Mx.Optim.sgd(learning_rate: 0.1, momentum: 0.9), [Mx.tensor([1.0, 2.0])])
      iex> {Mx.to_number(st.step), Enum.map(st.v, &Mx.to_list/1)}
      {0, [[0.0, 0.0]]}
  """
  @spec init(t(), Tree.t()) :: state()
  def init(%__MODULE__{init: init, name: name}, params) do
    check_params!(params, "Mx.Optim.init (#{name})")
    init.(params)
  end

  @doc """
  One step: `{new_params, new_state}` from `grads` (a tree of the structure
  of `params`). Lazy; see the module documentation.

      iex> opt = Mx.Optim.sgd(learning_rate: 0.5)
      iex> p = [Mx.tensor(1.0)]
      iex> {[x], _} = Mx.Optim.update(opt, [Mx.tensor(1.0)], Mx.Optim.init(opt, p), p)
      iex> Mx.to_number(x)
      0.5
  """
  @spec update(t(), Tree.t(), state(), Tree.t()) :: {Tree.t(), state()}
  def update(%__MODULE__{update: update, name: name}, grads, state, params) do
    same_structure!(params, grads, "Mx.Optim.update (#{name})")
    update.(grads, state, params)
  end

  @doc false
  # Raises unless every leaf of `params` is a float array; other terms (atoms, nil) ride along.
  @spec check_params!(Tree.t(), String.t()) :: :ok
  def check_params!(params, where) do
    Tree.reduce(
      params,
      :ok,
      fn
        %Mx.Array{} = a, :ok ->
          if Mx.Type.float?(Mx.type(a)), do: :ok, else: bad_leaf!(a, where)

        x, :ok when is_number(x) ->
          bad_leaf!(x, where)

        _, :ok ->
          :ok
      end,
      leaf?: &(not Tree.container?(&1))
    )
  end

  defp bad_leaf!(x, where) do
    raise ArgumentError,
          "#{where}: parameters must be floating-point Mx arrays in maps, lists or tuples, got #{inspect(x)}; wrap numbers with Mx.tensor(x, type: :f64)"
  end

  @doc false
  @spec same_structure!(Tree.t(), Tree.t(), String.t()) :: Tree.t()
  def same_structure!(params, grads, where) do
    Tree.zip_with([params, grads], &hd/1, where: where)
  rescue
    e in ArgumentError ->
      raise ArgumentError,
            "#{where}: the gradients do not have the container shape of the parameters (#{e.message}); pass the gradient Mx.value_and_grad returns for these parameters"
  end

  # ---- the per-leaf mechanism --------------------------------------------------------------

  # Every built-in optimizer is per leaf (as MLX's init_single/apply_single): `slots` names its
  # state trees, `init_leaf.(p)` gives a leaf's slots as a map, `step_leaf.(p, g, slots, ctx)`
  # returns {new_p, new_slots} with ctx.lr (this step's learning rate in p's type ctx.ty), and
  # ctx.lr64 and ctx.t (the rate and the 1-based step number in f64) for step-dependent scalars.
  defp per_leaf(name, slots, lr, init_leaf, step_leaf) do
    %__MODULE__{
      name: name,
      init: fn params ->
        per_slot = Tree.map(params, &{@tag, init_leaf.(&1)})
        leaf? = &match?({@tag, _}, &1)

        Map.new(slots, fn s ->
          {s, Tree.map(per_slot, fn {@tag, m} -> Map.fetch!(m, s) end, leaf?: leaf?)}
        end)
        |> Map.put(:step, Mx.tensor(0, type: :s32))
      end,
      update: fn grads, state, params ->
        step = Map.fetch!(state, :step)
        lr_now = rate(lr, step, name)
        t = Mx.add(step, 1)
        # Step-dependent scalars (bias corrections) are formed in f64, as PyTorch forms them in
        # Python floats, and cast once: 1 - β^t in f32 would lose digits to cancellation.
        t64 = Mx.as_type(t, :f64)
        lr64 = cast(lr_now, :f64)
        trees = [params, grads | Enum.map(slots, &Map.fetch!(state, &1))]

        pairs =
          Tree.zip_with(
            trees,
            fn
              [nil | _] ->
                {@tag, nil, Map.new(slots, &{&1, nil})}

              [p, g | ss] ->
                ty = Mx.type(p)
                ctx = %{lr: cast(lr_now, ty), lr64: lr64, t: t64, ty: ty}
                {p2, s2} = step_leaf.(p, Mx.as_type(g, ty), Map.new(Enum.zip(slots, ss)), ctx)
                {@tag, p2, s2}
            end,
            leaf?: &(is_nil(&1) or is_struct(&1, Mx.Array)),
            where: "Mx.Optim.update (#{name})"
          )

        leaf? = &match?({@tag, _, _}, &1)
        new_params = Tree.map(pairs, &elem(&1, 1), leaf?: leaf?)

        new_state =
          Map.new(slots, fn s ->
            {s, Tree.map(pairs, &Map.fetch!(elem(&1, 2), s), leaf?: leaf?)}
          end)
          |> Map.put(:step, t)

        {new_params, new_state}
      end
    }
  end

  defp cast(x, _ty) when is_number(x), do: x
  defp cast(%Mx.Array{} = x, ty), do: Mx.as_type(x, ty)

  defp rate(lr, _step, _name) when is_number(lr), do: lr

  defp rate(f, step, name) when is_function(f, 1) do
    case f.(step) do
      x when is_number(x) ->
        x

      %Mx.Array{shape: {}} = x ->
        x

      other ->
        raise ArgumentError,
              "Mx.Optim.update (#{name}): the learning-rate schedule returned #{inspect(other)}; it must return a number or a scalar Mx array"
    end
  end

  defp zeros(p), do: Mx.zeros(Mx.shape(p), type: Mx.type(p))

  # ---- optimizers ----------------------------------------------------------------------------

  @doc """
  Stochastic gradient descent, as `torch.optim.SGD`. Options:
  `learning_rate:` (required), `momentum:` (0.0), `dampening:` (0.0),
  `nesterov:` (false; needs momentum > 0 and no dampening),
  `weight_decay:` (0.0, added to the gradient as an L2 penalty).

      g ← g + λθ;  b ← g at the first step, μb + (1 - τ)g after;
      d ← g + μb (Nesterov) or b;  θ ← θ - η d

  The state has a slot `:v` (the buffer b) when momentum > 0.

      iex> opt = Mx.Optim.sgd(learning_rate: 0.1, momentum: 0.9)
      iex> p = Mx.tensor(1.0, type: :f64)
      iex> {p1, s1} = Mx.Optim.update(opt, Mx.tensor(1.0, type: :f64), Mx.Optim.init(opt, p), p)
      iex> {p2, _} = Mx.Optim.update(opt, Mx.tensor(1.0, type: :f64), s1, p1)
      iex> Float.round(Mx.to_number(p2), 12)
      0.71
      iex> Mx.Optim.sgd(learning_rate: 0.1, nesterov: true)
      ** (ArgumentError) Mx.Optim.sgd: nesterov: true needs momentum: > 0 and dampening: 0
  """
  @spec sgd(keyword()) :: t()
  def sgd(opts) do
    o =
      opts!(
        opts,
        [:learning_rate, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0],
        "sgd"
      )

    lr = lr!(o, :required, "sgd")
    mu = nonneg!(o, :momentum, "sgd")
    damp = nonneg!(o, :dampening, "sgd")
    nesterov = bool!(o, :nesterov, "sgd")
    wd = nonneg!(o, :weight_decay, "sgd")

    if nesterov and (mu == 0 or damp != 0) do
      raise ArgumentError, "Mx.Optim.sgd: nesterov: true needs momentum: > 0 and dampening: 0"
    end

    if mu == 0 do
      per_leaf(:sgd, [], lr, fn _ -> %{} end, fn p, g, _, c ->
        g = decay(g, p, wd)
        {Mx.subtract(p, Mx.multiply(c.lr, g)), %{}}
      end)
    else
      per_leaf(:sgd, [:v], lr, &%{v: zeros(&1)}, fn p, g, %{v: v}, c ->
        g = decay(g, p, wd)
        b = Mx.add(Mx.multiply(v, mu), if(damp == 0, do: g, else: Mx.multiply(g, 1 - damp)))
        # PyTorch starts the buffer at g itself, undamped.
        b = if damp == 0, do: b, else: Mx.where(Mx.equal(c.t, 1), g, b)
        d = if nesterov, do: Mx.add(g, Mx.multiply(b, mu)), else: b
        {Mx.subtract(p, Mx.multiply(c.lr, d)), %{v: b}}
      end)
    end
  end

  @doc """
  RMSprop, as `torch.optim.RMSprop`. Options: `learning_rate:` (0.01),
  `alpha:` (0.99), `eps:` (1.0e-8), `momentum:` (0.0), `centered:` (false),
  `weight_decay:` (0.0).

      v ← αv + (1 - α)g²;  (centered) m ← αm + (1 - α)g, s = √(v - m²) + ε, else s = √v + ε
      b ← μb + g/s, θ ← θ - ηb (momentum), else θ ← θ - ηg/s

  Slots: `:v`, `:grad_avg` (centered), `:buf` (momentum).

      iex> opt = Mx.Optim.rmsprop(learning_rate: 0.01, alpha: 0.0, eps: 0.0)
      iex> p = Mx.tensor([1.0], type: :f64)
      iex> {p1, _} = Mx.Optim.update(opt, Mx.tensor([-4.0], type: :f64), Mx.Optim.init(opt, p), p)
      iex> Mx.to_list(p1)
      [1.01]
  """
  @spec rmsprop(keyword()) :: t()
  def rmsprop(opts \\ []) do
    o =
      opts!(
        opts,
        [
          learning_rate: 0.01,
          alpha: 0.99,
          eps: 1.0e-8,
          momentum: 0.0,
          centered: false,
          weight_decay: 0.0
        ],
        "rmsprop"
      )

    lr = lr!(o, 0.01, "rmsprop")
    alpha = unit!(o, :alpha, "rmsprop")
    eps = nonneg!(o, :eps, "rmsprop")
    mu = nonneg!(o, :momentum, "rmsprop")
    centered = bool!(o, :centered, "rmsprop")
    wd = nonneg!(o, :weight_decay, "rmsprop")
    slots = [:v] ++ if(centered, do: [:grad_avg], else: []) ++ if(mu > 0, do: [:buf], else: [])

    per_leaf(:rmsprop, slots, lr, &Map.new(slots, fn s -> {s, zeros(&1)} end), fn p, g, s, c ->
      g = decay(g, p, wd)
      v = ema(s.v, Mx.square(g), alpha)

      {avg, s2} =
        if centered do
          m = ema(s.grad_avg, g, alpha)
          {Mx.sqrt(Mx.subtract(v, Mx.square(m))), %{v: v, grad_avg: m}}
        else
          {Mx.sqrt(v), %{v: v}}
        end

      step = Mx.divide(g, Mx.add(avg, eps))

      if mu > 0 do
        b = Mx.add(Mx.multiply(s.buf, mu), step)
        {Mx.subtract(p, Mx.multiply(c.lr, b)), Map.put(s2, :buf, b)}
      else
        {Mx.subtract(p, Mx.multiply(c.lr, step)), s2}
      end
    end)
  end

  @doc """
  Adagrad, as `torch.optim.Adagrad` (for its `lr_decay:` pass a schedule).
  Options: `learning_rate:` (0.01), `eps:` (1.0e-10),
  `initial_accumulator_value:` (0.0), `weight_decay:` (0.0).

      v ← v + g²;  θ ← θ - η g/(√v + ε)

      iex> opt = Mx.Optim.adagrad(learning_rate: 1.0, eps: 0.0)
      iex> p = Mx.tensor([0.0, 0.0], type: :f64)
      iex> {p1, _} = Mx.Optim.update(opt, Mx.tensor([3.0, -0.5], type: :f64), Mx.Optim.init(opt, p), p)
      iex> Mx.to_list(p1)
      [-1.0, 1.0]
  """
  @spec adagrad(keyword()) :: t()
  def adagrad(opts \\ []) do
    o =
      opts!(
        opts,
        [learning_rate: 0.01, eps: 1.0e-10, initial_accumulator_value: 0.0, weight_decay: 0.0],
        "adagrad"
      )

    lr = lr!(o, 0.01, "adagrad")
    eps = nonneg!(o, :eps, "adagrad")
    v0 = nonneg!(o, :initial_accumulator_value, "adagrad")
    wd = nonneg!(o, :weight_decay, "adagrad")

    per_leaf(:adagrad, [:v], lr, &%{v: Mx.full(Mx.shape(&1), v0, type: Mx.type(&1))}, fn p,
                                                                                         g,
                                                                                         %{v: v},
                                                                                         c ->
      g = decay(g, p, wd)
      v = Mx.add(v, Mx.square(g))
      {Mx.subtract(p, Mx.multiply(c.lr, Mx.divide(g, Mx.add(Mx.sqrt(v), eps)))), %{v: v}}
    end)
  end

  @doc """
  AdaDelta (Zeiler 2012), as `torch.optim.Adadelta`. Options:
  `learning_rate:` (1.0), `rho:` (0.9), `eps:` (1.0e-6), `weight_decay:` (0.0).

      v ← ρv + (1 - ρ)g²;  d = √(u + ε)/√(v + ε)·g;  u ← ρu + (1 - ρ)d²;  θ ← θ - ηd

      iex> opt = Mx.Optim.adadelta()
      iex> p = Mx.tensor([0.0], type: :f64)
      iex> {p1, st} = Mx.Optim.update(opt, Mx.tensor([1.0], type: :f64), Mx.Optim.init(opt, p), p)
      iex> {Float.round(hd(Mx.to_list(p1)), 8), Map.keys(st)}
      {-0.00316226, [:step, :u, :v]}
  """
  @spec adadelta(keyword()) :: t()
  def adadelta(opts \\ []) do
    o = opts!(opts, [learning_rate: 1.0, rho: 0.9, eps: 1.0e-6, weight_decay: 0.0], "adadelta")
    lr = lr!(o, 1.0, "adadelta")
    rho = unit!(o, :rho, "adadelta")
    eps = nonneg!(o, :eps, "adadelta")
    wd = nonneg!(o, :weight_decay, "adadelta")

    per_leaf(:adadelta, [:u, :v], lr, &%{u: zeros(&1), v: zeros(&1)}, fn p, g, %{u: u, v: v}, c ->
      g = decay(g, p, wd)
      v = ema(v, Mx.square(g), rho)
      d = Mx.multiply(Mx.divide(Mx.sqrt(Mx.add(u, eps)), Mx.sqrt(Mx.add(v, eps))), g)
      u = ema(u, Mx.square(d), rho)
      {Mx.subtract(p, Mx.multiply(c.lr, d)), %{u: u, v: v}}
    end)
  end

  @adam_keys [
    learning_rate: 0.001,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1.0e-8,
    weight_decay: 0.0,
    amsgrad: false,
    bias_correction: true
  ]

  @doc """
  Adam (Kingma & Ba 2015), as `torch.optim.Adam`. Options: `learning_rate:`
  (0.001), `beta1:` (0.9), `beta2:` (0.999), `eps:` (1.0e-8),
  `weight_decay:` (0.0, an L2 penalty added to the gradient), `amsgrad:`
  (false), `bias_correction:` (true; false gives MLX's default Adam).

      m ← β₁m + (1 - β₁)g;  v ← β₂v + (1 - β₂)g²
      θ ← θ - η/(1 - β₁ᵗ) · m/(√v/√(1 - β₂ᵗ) + ε)   at step t = 1, 2, ...

  Slots `:m`, `:v` (and `:v_max` with amsgrad).

      iex> opt = Mx.Optim.adam(learning_rate: 0.1)
      iex> p = Mx.tensor([0.0, 0.0], type: :f64)
      iex> {p1, _} = Mx.Optim.update(opt, Mx.tensor([3.0, -0.5], type: :f64), Mx.Optim.init(opt, p), p)
      iex> Mx.to_list(p1) |> Enum.map(&Float.round(&1, 6))
      [-0.1, 0.1]
  """
  @spec adam(keyword()) :: t()
  def adam(opts \\ []), do: adam_like(:adam, opts!(opts, @adam_keys, "adam"))

  @doc """
  AdamW (Loshchilov & Hutter 2019), as `torch.optim.AdamW`: Adam with the
  weight decay applied to the parameters, `θ ← θ(1 - ηλ)`, before the Adam
  step. Options as `adam/1`, with `weight_decay:` 0.01 by default.

      iex> opt = Mx.Optim.adamw(learning_rate: 0.1, weight_decay: 0.5)
      iex> p = Mx.tensor([2.0], type: :f64)
      iex> {p1, _} = Mx.Optim.update(opt, Mx.tensor([0.0], type: :f64), Mx.Optim.init(opt, p), p)
      iex> Mx.to_list(p1)
      [1.9]
  """
  @spec adamw(keyword()) :: t()
  def adamw(opts \\ []),
    do: adam_like(:adamw, opts!(opts, Keyword.put(@adam_keys, :weight_decay, 0.01), "adamw"))

  defp adam_like(name, o) do
    fun = Atom.to_string(name)
    lr = lr!(o, 0.001, fun)
    b1 = unit!(o, :beta1, fun)
    b2 = unit!(o, :beta2, fun)
    eps = nonneg!(o, :eps, fun)
    wd = nonneg!(o, :weight_decay, fun)
    ams = bool!(o, :amsgrad, fun)
    bc = bool!(o, :bias_correction, fun)
    slots = if ams, do: [:m, :v, :v_max], else: [:m, :v]

    per_leaf(name, slots, lr, &Map.new(slots, fn s -> {s, zeros(&1)} end), fn p, g, s, c ->
      {p, g} = if name == :adamw, do: {decay_params(p, c, wd), g}, else: {p, decay(g, p, wd)}
      m = ema(s.m, g, b1)
      v = ema(s.v, Mx.square(g), b2)

      {vd, s2} =
        if ams,
          do: Mx.max(s.v_max, v) |> then(&{&1, %{m: m, v: v, v_max: &1}}),
          else: {v, %{m: m, v: v}}

      step =
        if bc do
          bc2_sqrt = Mx.sqrt(Mx.subtract(1, Mx.pow(b2, c.t))) |> cast(c.ty)
          step_size = Mx.divide(c.lr64, Mx.subtract(1, Mx.pow(b1, c.t))) |> cast(c.ty)
          Mx.multiply(step_size, Mx.divide(m, Mx.add(Mx.divide(Mx.sqrt(vd), bc2_sqrt), eps)))
        else
          Mx.multiply(c.lr, Mx.divide(m, Mx.add(Mx.sqrt(vd), eps)))
        end

      {Mx.subtract(p, step), s2}
    end)
  end

  @doc """
  Adamax (Kingma & Ba 2015, §7.1), as `torch.optim.Adamax`. Options:
  `learning_rate:` (0.002), `beta1:` (0.9), `beta2:` (0.999), `eps:`
  (1.0e-8), `weight_decay:` (0.0).

      m ← β₁m + (1 - β₁)g;  u ← max(β₂u, |g| + ε);  θ ← θ - η/(1 - β₁ᵗ) · m/u

      iex> opt = Mx.Optim.adamax(learning_rate: 0.1, eps: 0.0)
      iex> p = Mx.tensor([0.0, 0.0], type: :f64)
      iex> {p1, _} = Mx.Optim.update(opt, Mx.tensor([3.0, -0.5], type: :f64), Mx.Optim.init(opt, p), p)
      iex> Mx.to_list(p1) |> Enum.map(&Float.round(&1, 12))
      [-0.1, 0.1]
  """
  @spec adamax(keyword()) :: t()
  def adamax(opts \\ []) do
    o =
      opts!(
        opts,
        [learning_rate: 0.002, beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0.0],
        "adamax"
      )

    lr = lr!(o, 0.002, "adamax")
    b1 = unit!(o, :beta1, "adamax")
    b2 = unit!(o, :beta2, "adamax")
    eps = nonneg!(o, :eps, "adamax")
    wd = nonneg!(o, :weight_decay, "adamax")

    per_leaf(:adamax, [:m, :u], lr, &%{m: zeros(&1), u: zeros(&1)}, fn p, g, %{m: m, u: u}, c ->
      g = decay(g, p, wd)
      m = ema(m, g, b1)
      u = Mx.max(Mx.multiply(u, b2), Mx.add(Mx.abs(g), eps))
      clr = Mx.divide(c.lr64, Mx.subtract(1, Mx.pow(b1, c.t))) |> cast(c.ty)
      {Mx.subtract(p, Mx.multiply(clr, Mx.divide(m, u))), %{m: m, u: u}}
    end)
  end

  @doc """
  Lion (Chen et al. 2023, "Symbolic discovery of optimization algorithms"),
  as `mlx.optimizers.Lion`. Options: `learning_rate:` (required), `beta1:`
  (0.9), `beta2:` (0.99), `weight_decay:` (0.0).

      c = β₁m + (1 - β₁)g;  m ← β₂m + (1 - β₂)g;  θ ← θ(1 - ηλ) - η·sign(c)

      iex> opt = Mx.Optim.lion(learning_rate: 0.1)
      iex> p = Mx.tensor([0.0, 0.0, 0.0], type: :f64)
      iex> {p1, _} = Mx.Optim.update(opt, Mx.tensor([3.0, -0.5, 0.0], type: :f64), Mx.Optim.init(opt, p), p)
      iex> Mx.to_list(p1)
      [-0.1, 0.1, 0.0]
  """
  @spec lion(keyword()) :: t()
  def lion(opts) do
    o = opts!(opts, [:learning_rate, beta1: 0.9, beta2: 0.99, weight_decay: 0.0], "lion")
    lr = lr!(o, :required, "lion")
    b1 = unit!(o, :beta1, "lion")
    b2 = unit!(o, :beta2, "lion")
    wd = nonneg!(o, :weight_decay, "lion")

    per_leaf(:lion, [:m], lr, &%{m: zeros(&1)}, fn p, g, %{m: m}, c ->
      dir = Mx.sign(ema(m, g, b1))
      p = decay_params(p, c, wd)
      {Mx.subtract(p, Mx.multiply(c.lr, dir)), %{m: ema(m, g, b2)}}
    end)
  end

  @doc """
  Adafactor (Shazeer & Stern 2018), as `mlx.optimizers.Adafactor`: second
  moments factored into row and column means for parameters of rank ≥ 2.
  Options: `learning_rate:` (nil: the relative step min(10⁻², 1/√t), or
  10⁻⁶·t with `warmup_init: true`; a rate needs `relative_step: false`),
  `eps:` ({1.0e-30, 1.0e-3}), `clip_threshold:` (1.0), `decay_rate:` (-0.8),
  `beta1:` (nil: no first moment), `weight_decay:` (0.0), `scale_parameter:`
  (true: the rate is scaled by max(ε₂, RMS(θ))), `relative_step:` (true),
  `warmup_init:` (false).

      β₂ = 1 - t^decay_rate;  r ← β₂r + (1 - β₂)·mean(g² + ε₁, last axis);  c likewise over the
      second-to-last axis;  u = g/√(r cᵀ/mean(r));  u ← ρ·u/max(1, RMS(u)/clip);  θ ← θ - u

  Slots `:v_row` and `:v_col` (for a parameter of rank < 2, `:v_row` holds
  the full second moment and `:v_col` is nil), and `:m` with `beta1:`.

      iex> opt = Mx.Optim.adafactor()
      iex> p = %{w: Mx.ones({2, 3}, type: :f64)}
      iex> st = Mx.Optim.init(opt, p)
      iex> {Mx.shape(st.v_row.w), Mx.shape(st.v_col.w)}
      {{2}, {3}}
      iex> {p1, _} = Mx.Optim.update(opt, %{w: Mx.full({2, 3}, 2.0, type: :f64)}, st, p)
      iex> Mx.to_list(p1.w) |> hd() |> Enum.map(&Float.round(&1, 12))
      [0.99, 0.99, 0.99]
  """
  @spec adafactor(keyword()) :: t()
  def adafactor(opts \\ []) do
    o =
      opts!(
        opts,
        [
          :learning_rate,
          eps: {1.0e-30, 1.0e-3},
          clip_threshold: 1.0,
          decay_rate: -0.8,
          beta1: nil,
          weight_decay: 0.0,
          scale_parameter: true,
          relative_step: true,
          warmup_init: false
        ],
        "adafactor"
      )

    relative = bool!(o, :relative_step, "adafactor")
    warmup = bool!(o, :warmup_init, "adafactor")
    scale = bool!(o, :scale_parameter, "adafactor")

    lr =
      cond do
        relative and o[:learning_rate] != nil ->
          raise ArgumentError,
                "Mx.Optim.adafactor: learning_rate: is ignored with relative_step: true (the default); pass relative_step: false to use it"

        relative ->
          nil

        true ->
          lr!(o, :required, "adafactor")
      end

    {eps1, eps2} =
      case o[:eps] do
        {a, b} when is_number(a) and is_number(b) and a >= 0 and b >= 0 ->
          {a, b}

        other ->
          raise ArgumentError,
                "Mx.Optim.adafactor: eps: must be a pair {ε₁, ε₂} of non-negative numbers, got #{inspect(other)}"
      end

    clip = positive!(o, :clip_threshold, "adafactor")
    decay_rate = o[:decay_rate]

    unless is_number(decay_rate) and decay_rate < 0,
      do:
        raise(
          ArgumentError,
          "Mx.Optim.adafactor: decay_rate: must be a negative number, got #{inspect(decay_rate)}"
        )

    beta1 = if o[:beta1] == nil, do: nil, else: unit!(o, :beta1, "adafactor")
    wd = nonneg!(o, :weight_decay, "adafactor")
    slots = [:v_col, :v_row] ++ if(beta1, do: [:m], else: [])

    init_leaf = fn p ->
      {ty, shape} = {Mx.type(p), Mx.shape(p)}
      n = tuple_size(shape)

      base =
        if n >= 2,
          do: %{
            v_row: Mx.zeros(Tuple.delete_at(shape, n - 1), type: ty),
            v_col: Mx.zeros(Tuple.delete_at(shape, n - 2), type: ty)
          },
          else: %{v_row: zeros(p), v_col: nil}

      if beta1, do: Map.put(base, :m, zeros(p)), else: base
    end

    per_leaf(:adafactor, slots, lr || 0.0, init_leaf, fn p, g, s, c ->
      t = c.t

      rel =
        if relative,
          do:
            cast(Mx.min(if(warmup, do: Mx.multiply(t, 1.0e-6), else: 1.0e-2), Mx.rsqrt(t)), c.ty),
          else: c.lr

      rho = if scale, do: Mx.multiply(Mx.max(rms(p), eps2), rel), else: rel
      beta2 = cast(Mx.subtract(1, Mx.pow(t, decay_rate)), c.ty)
      sq = Mx.add(Mx.square(g), eps1)

      {u, s2} =
        if s.v_col do
          row = ema_t(s.v_row, Mx.mean(sq, axes: [-1]), beta2)
          col = ema_t(s.v_col, Mx.mean(sq, axes: [-2]), beta2)
          r = Mx.rsqrt(Mx.divide(row, Mx.mean(row, axes: [-1], keep_axes: true)))
          cf = Mx.rsqrt(col)
          approx = Mx.multiply(Mx.new_axis(r, -1), Mx.new_axis(cf, -2))
          {Mx.multiply(approx, g), %{v_row: row, v_col: col}}
        else
          v = ema_t(s.v_row, sq, beta2)
          {Mx.multiply(Mx.rsqrt(v), g), %{v_row: v, v_col: nil}}
        end

      u = Mx.divide(u, Mx.max(Mx.divide(rms(u), clip), 1.0))
      u = Mx.multiply(rho, u)

      {u, s2} =
        if beta1 do
          m = ema(s.m, u, beta1)
          {m, Map.put(s2, :m, m)}
        else
          {u, s2}
        end

      p = if wd == 0, do: p, else: Mx.add(p, Mx.multiply(p, times(rho, -wd)))
      {Mx.subtract(p, u), s2}
    end)
  end

  defp rms(x), do: Mx.sqrt(Mx.mean(Mx.square(x)))
  # β x + (1 - β) y with β an array
  defp ema_t(x, y, beta), do: Mx.add(Mx.multiply(beta, x), Mx.multiply(Mx.subtract(1, beta), y))

  @ns {3.4445, -4.7750, 2.0315}

  @doc """
  Muon (Jordan et al. 2024, "MomentUm Orthogonalized by Newton–Schulz"), as
  `mlx.optimizers.Muon`. Options: `learning_rate:` (required), `momentum:`
  (0.95), `weight_decay:` (0.01, added to the gradient), `nesterov:`
  (true), `ns_steps:` (5).

      g ← g + λθ;  v ← μv + (1 - μ)g;  u = (1 - μ)g + μv (Nesterov) or v
      θ ← θ - η·√max(1, rows/cols)·NS(u)   for rank ≥ 2, else θ ← θ - ηu

  NS(u) orthogonalizes u (as a matrix of its first axis by the rest) with
  the quintic Newton–Schulz iteration X ← aX + (bA + cA²)X, A = XXᵀ,
  (a, b, c) = (3.4445, -4.7750, 2.0315), from X = u/(‖u‖_F + 10⁻⁷); rows
  and cols are the parameter's last two axes, as in MLX. Unlike MLX, which
  iterates in bfloat16, this iterates in the parameter's type. Five steps
  bring the singular values into a band around 1, not to 1 (0.8 and 1.1 below).

      iex> opt = Mx.Optim.muon(learning_rate: 0.1, weight_decay: 0.0)
      iex> p = Mx.zeros({2, 2}, type: :f64)
      iex> {p1, _} = Mx.Optim.update(opt, Mx.tensor([[3.0, 0.0], [0.0, 1.0]], type: :f64), Mx.Optim.init(opt, p), p)
      iex> Mx.to_list(p1) |> List.flatten() |> Enum.map(&Float.round(&1, 2))
      [-0.08, 0.0, 0.0, -0.11]
  """
  @spec muon(keyword()) :: t()
  def muon(opts) do
    o =
      opts!(
        opts,
        [:learning_rate, momentum: 0.95, weight_decay: 0.01, nesterov: true, ns_steps: 5],
        "muon"
      )

    lr = lr!(o, :required, "muon")
    mu = unit!(o, :momentum, "muon")
    wd = nonneg!(o, :weight_decay, "muon")
    nesterov = bool!(o, :nesterov, "muon")
    steps = o[:ns_steps]

    unless is_integer(steps) and steps >= 1,
      do:
        raise(
          ArgumentError,
          "Mx.Optim.muon: ns_steps: must be a positive integer, got #{inspect(steps)}"
        )

    per_leaf(:muon, [:v], lr, &%{v: zeros(&1)}, fn p, g, %{v: v}, c ->
      g = decay(g, p, wd)
      v = ema(v, g, mu)
      u = if nesterov, do: Mx.add(Mx.multiply(g, 1 - mu), Mx.multiply(v, mu)), else: v
      shape = Mx.shape(p)
      n = tuple_size(shape)

      if n >= 2 do
        o = u |> Mx.reshape({elem(shape, 0), :auto}) |> newton_schulz(steps) |> Mx.reshape(shape)
        scale = :math.sqrt(max(1, elem(shape, n - 2) / elem(shape, n - 1)))
        {Mx.subtract(p, Mx.multiply(times(c.lr, scale), o)), %{v: v}}
      else
        {Mx.subtract(p, Mx.multiply(c.lr, u)), %{v: v}}
      end
    end)
  end

  defp newton_schulz(x, steps) do
    {a, b, c} = @ns
    {rows, cols} = Mx.shape(x)
    x = if rows > cols, do: Mx.transpose(x), else: x
    x = Mx.divide(x, Mx.add(Mx.sqrt(Mx.sum(Mx.square(x))), 1.0e-7))

    x =
      Enum.reduce(1..steps, x, fn _, x ->
        aa = Mx.matmul(x, Mx.transpose(x))
        bb = Mx.add(Mx.multiply(aa, b), Mx.multiply(Mx.matmul(aa, aa), c))
        Mx.add(Mx.multiply(x, a), Mx.matmul(bb, x))
      end)

    if rows > cols, do: Mx.transpose(x), else: x
  end

  # ---- several optimizers by path --------------------------------------------------------------

  @doc """
  One optimizer per group of parameters, chosen by path (MLX's
  `MultiOptimizer`). `rules` is a list of `{filter, optimizer}`, `filter.(path,
  param)` deciding by the leaf's `Mx.Tree` path (such as `[:layers, 0, :w]`);
  the first rule that matches takes the leaf and `default` takes the rest.
  The state is `%{step:, states: [state of each rule's optimizer..., default's]}`.

      iex> matrices = fn _path, p -> Mx.rank(p) == 2 end
      iex> opt = Mx.Optim.multi([{matrices, Mx.Optim.sgd(learning_rate: 1.0)}], Mx.Optim.sgd(learning_rate: 0.0))
      iex> p = %{w: Mx.ones({1, 1}), b: Mx.ones({1})}
      iex> g = %{w: Mx.ones({1, 1}), b: Mx.ones({1})}
      iex> {p1, _} = Mx.Optim.update(opt, g, Mx.Optim.init(opt, p), p)
      iex> {Mx.to_list(p1.w), Mx.to_list(p1.b)}
      {[[0.0]], [1.0]}
  """
  @spec multi([{(Tree.path(), Mx.t() -> as_boolean(term())), t()}], t()) :: t()
  def multi(rules, %__MODULE__{} = default) when is_list(rules) do
    Enum.each(rules, fn
      {f, %__MODULE__{}} when is_function(f, 2) ->
        :ok

      other ->
        raise ArgumentError,
              "Mx.Optim.multi: each rule must be {fn path, param -> boolean end, optimizer}, got #{inspect(other)}"
    end)

    opts = Enum.map(rules, &elem(&1, 1)) ++ [default]
    filters = Enum.map(rules, &elem(&1, 0))
    n = length(opts)

    # The tree with only the leaves that optimizer i owns (nil elsewhere).
    part = fn tree, params, i ->
      owners =
        Tree.map_with_path(params, fn path, p ->
          Enum.find_index(filters, & &1.(path, p)) || n - 1
        end)

      Tree.zip_with([tree, owners], fn [x, o] -> if o == i, do: x, else: nil end,
        leaf?: &(is_struct(&1, Mx.Array) or is_integer(&1))
      )
    end

    %__MODULE__{
      name: :multi,
      init: fn params ->
        states =
          opts
          |> Enum.with_index()
          |> Enum.map(fn {o, i} -> o.init.(part.(params, params, i)) end)

        %{step: Mx.tensor(0, type: :s32), states: states}
      end,
      update: fn grads, %{step: step, states: states}, params ->
        {results, new_states} =
          opts
          |> Enum.zip(states)
          |> Enum.with_index()
          |> Enum.map(fn {{o, s}, i} ->
            o.update.(part.(grads, params, i), s, part.(params, params, i))
          end)
          |> Enum.unzip()

        merged =
          Tree.zip_with(results, &Enum.find(&1, fn x -> x != nil end),
            leaf?: &(is_nil(&1) or is_struct(&1, Mx.Array))
          )

        {merged, %{step: Mx.add(step, 1), states: new_states}}
      end
    }
  end

  def multi(rules, default) do
    raise ArgumentError,
          "Mx.Optim.multi: expected a list of {filter, optimizer} rules and a default Mx.Optim optimizer, got #{inspect(rules)} and #{inspect(default)}"
  end

  # ---- schedules ---------------------------------------------------------------------------------

  @doc """
  `init · decay_rate^⌊step/step_size⌋` (`torch.optim.lr_scheduler.StepLR`).

      iex> f = Mx.Optim.step_decay(0.1, 0.5, 10)
      iex> Enum.map([0, 9, 10, 25], &(f.(&1) |> Mx.to_number() |> Float.round(12)))
      [0.1, 0.1, 0.05, 0.025]
  """
  @spec step_decay(number(), number(), pos_integer()) :: schedule()
  def step_decay(init, decay_rate, step_size) do
    num!(init, "step_decay", "init")
    num!(decay_rate, "step_decay", "decay_rate")
    pos_int!(step_size, "step_decay", "step_size")

    fn step ->
      Mx.multiply(init, Mx.pow(decay_rate * 1.0, Mx.floor(Mx.divide(f64(step), step_size))))
    end
  end

  @doc """
  `init · decay_rate^step` (`torch.optim.lr_scheduler.ExponentialLR`).

      iex> Mx.Optim.exponential_decay(0.1, 0.9).(2) |> Mx.to_number() |> Float.round(12)
      0.081
  """
  @spec exponential_decay(number(), number()) :: schedule()
  def exponential_decay(init, decay_rate) do
    num!(init, "exponential_decay", "init")
    num!(decay_rate, "exponential_decay", "decay_rate")
    fn step -> Mx.multiply(init, Mx.pow(decay_rate * 1.0, f64(step))) end
  end

  @doc """
  Cosine decay from `init` to `end_value` over `decay_steps`, then constant:
  `end + (init - end)(1 + cos(π·min(step, decay_steps)/decay_steps))/2`
  (`torch.optim.lr_scheduler.CosineAnnealingLR` up to `T_max`).

      iex> f = Mx.Optim.cosine_decay(1.0, 100)
      iex> Enum.map([0, 50, 100, 200], &(f.(&1) |> Mx.to_number() |> Float.round(12)))
      [1.0, 0.5, 0.0, 0.0]
  """
  @spec cosine_decay(number(), pos_integer(), number()) :: schedule()
  def cosine_decay(init, decay_steps, end_value \\ 0.0) do
    num!(init, "cosine_decay", "init")
    pos_int!(decay_steps, "cosine_decay", "decay_steps")
    num!(end_value, "cosine_decay", "end_value")

    fn step ->
      s = Mx.min(f64(step), decay_steps * 1.0)
      cos = Mx.add(1, Mx.cos(Mx.multiply(s, :math.pi() / decay_steps)))
      Mx.add(end_value * 1.0, Mx.multiply(cos, 0.5 * (init - end_value)))
    end
  end

  @doc """
  Linear from `init` to `end_value` over `steps`, then constant (a linear
  warmup; `torch.optim.lr_scheduler.LinearLR`).

      iex> f = Mx.Optim.linear_schedule(0.0, 1.0, 4)
      iex> Enum.map([0, 1, 4, 9], &(f.(&1) |> Mx.to_number()))
      [0.0, 0.25, 1.0, 1.0]
  """
  @spec linear_schedule(number(), number(), pos_integer()) :: schedule()
  def linear_schedule(init, end_value, steps) do
    num!(init, "linear_schedule", "init")
    num!(end_value, "linear_schedule", "end_value")
    pos_int!(steps, "linear_schedule", "steps")

    fn step ->
      s = Mx.min(f64(step), steps * 1.0)
      Mx.add(init * 1.0, Mx.multiply(s, (end_value - init) / steps))
    end
  end

  @doc """
  Runs `schedules` one after another: the first until `boundaries`' first
  step, the second from there (its step counted from the boundary), and so
  on (`torch.optim.lr_scheduler.SequentialLR`, MLX's `join_schedules`).

      iex> warm = Mx.Optim.linear_schedule(0.0, 0.1, 10)
      iex> f = Mx.Optim.join_schedules([warm, Mx.Optim.cosine_decay(0.1, 100)], [10])
      iex> Enum.map([0, 5, 10, 60], &(f.(&1) |> Mx.to_number() |> Float.round(12)))
      [0.0, 0.05, 0.1, 0.05]
  """
  @spec join_schedules([schedule()], [pos_integer()]) :: schedule()
  def join_schedules([first | rest] = schedules, boundaries) when is_list(boundaries) do
    unless length(boundaries) == length(rest) and Enum.all?(schedules, &is_function(&1, 1)) do
      raise ArgumentError,
            "Mx.Optim.join_schedules: needs n schedules (functions of the step) and n - 1 boundaries, got #{length(schedules)} schedules and #{inspect(boundaries)}"
    end

    Enum.each(boundaries, &pos_int!(&1, "join_schedules", "each boundary"))

    fn step ->
      s = f64(step)

      Enum.zip(boundaries, rest)
      |> Enum.reduce(to_f64(first.(step)), fn {b, sched}, acc ->
        Mx.where(Mx.less(s, b * 1.0), acc, to_f64(sched.(Mx.subtract(s, b * 1.0))))
      end)
    end
  end

  def join_schedules(schedules, boundaries) do
    raise ArgumentError,
          "Mx.Optim.join_schedules: needs a non-empty list of schedules and a list of boundaries, got #{inspect(schedules)} and #{inspect(boundaries)}"
  end

  defp f64(step) when is_integer(step) and step >= 0, do: Mx.tensor(step, type: :f64)
  defp f64(%Mx.Array{} = step), do: Mx.as_type(step, :f64)

  defp f64(other),
    do:
      raise(
        ArgumentError,
        "Mx.Optim: a schedule takes the step count (a non-negative integer or a scalar Mx array), got #{inspect(other)}"
      )

  defp to_f64(x) when is_number(x), do: Mx.tensor(x * 1.0, type: :f64)
  defp to_f64(%Mx.Array{} = x), do: Mx.as_type(x, :f64)

  # ---- gradient clipping ------------------------------------------------------------------------

  @doc """
  Scales `grads` so that their global L2 norm (over every leaf) is at most
  `max_norm`, as `torch.nn.utils.clip_grad_norm_`: by `min(1, max_norm/(norm
  + 10⁻⁶))`. Returns `{clipped, total_norm}`, the norm before clipping.

      iex> {g, norm} = Mx.Optim.clip_grad_norm(%{a: Mx.tensor([3.0]), b: Mx.tensor([4.0])}, 1.0)
      iex> {Mx.to_number(norm), Float.round(hd(Mx.to_list(g.a)), 5), Float.round(hd(Mx.to_list(g.b)), 5)}
      {5.0, 0.6, 0.8}
  """
  @spec clip_grad_norm(Tree.t(), number()) :: {Tree.t(), Mx.t()}
  def clip_grad_norm(grads, max_norm) do
    unless is_number(max_norm) and max_norm > 0,
      do:
        raise(
          ArgumentError,
          "Mx.Optim.clip_grad_norm: max_norm must be a positive number, got #{inspect(max_norm)}"
        )

    case Tree.leaves(grads) do
      [] ->
        raise ArgumentError, "Mx.Optim.clip_grad_norm: the gradient tree has no arrays"

      leaves ->
        total =
          leaves |> Enum.map(&Mx.sum(Mx.square(&1))) |> Enum.reduce(&Mx.add(&2, &1)) |> Mx.sqrt()

        coef = Mx.min(Mx.divide(max_norm * 1.0, Mx.add(total, 1.0e-6)), 1.0)
        {Tree.map(grads, &Mx.multiply(&1, Mx.as_type(coef, Mx.type(&1)))), total}
    end
  end

  # ---- saving state ------------------------------------------------------------------------------

  @doc """
  The state as a map of dotted names to arrays (`"step"`, `"m.layers.0.w"`),
  for `Mx.IO.save_safetensors/3`. Raises if two paths join to one name.

      iex> opt = Mx.Optim.adam()
      iex> Mx.Optim.init(opt, %{w: Mx.tensor([1.0])}) |> Mx.Optim.state_to_map() |> Map.keys()
      ["m.w", "step", "v.w"]
  """
  @spec state_to_map(state()) :: %{String.t() => Mx.t()}
  def state_to_map(state) when is_map(state) do
    pairs = Tree.flatten(state, join: ".")
    map = Map.new(pairs)

    if map_size(map) != length(pairs) do
      dup =
        pairs
        |> Enum.frequencies_by(&elem(&1, 0))
        |> Enum.filter(&(elem(&1, 1) > 1))
        |> Enum.map(&elem(&1, 0))

      raise ArgumentError,
            "Mx.Optim.state_to_map: the names #{inspect(dup)} stand for more than one array (keys containing \".\"); rename those parameters"
    end

    map
  end

  @doc """
  The state saved by `state_to_map/1`, rebuilt on the structure of
  `template` (`init(optimizer, params)` for the same optimizer and
  parameters). Raises when a name is missing or extra, or an array's shape
  or type differs from the template's.

      iex> opt = Mx.Optim.sgd(learning_rate: 0.1, momentum: 0.9)
      iex> template = Mx.Optim.init(opt, %{w: Mx.tensor([1.0])})
      iex> st = Mx.Optim.state_from_map(%{"step" => Mx.tensor(7, type: :s32), "v.w" => Mx.tensor([0.5])}, template)
      iex> {Mx.to_number(st.step), Mx.to_list(st.v.w)}
      {7, [0.5]}
      iex> Mx.Optim.state_from_map(%{"step" => Mx.tensor(7, type: :s32)}, template)
      ** (ArgumentError) Mx.Optim.state_from_map: the map lacks "v.w" (f32[1]); save the state of this optimizer and these parameters
  """
  @spec state_from_map(%{String.t() => Mx.t()}, state()) :: state()
  def state_from_map(map, template) when is_map(map) and is_map(template) do
    names = template |> Tree.flatten(join: ".") |> Enum.map(&elem(&1, 0))

    values =
      Enum.zip_with(names, Tree.leaves(template), fn name, t ->
        case Map.fetch(map, name) do
          {:ok, %Mx.Array{} = a} ->
            if Mx.shape(a) != Mx.shape(t) or Mx.type(a) != Mx.type(t) do
              raise ArgumentError,
                    "Mx.Optim.state_from_map: #{inspect(name)} is #{Mx.describe(a)}, the template's is #{Mx.describe(t)}; save the state of this optimizer and these parameters"
            end

            a

          _ ->
            raise ArgumentError,
                  "Mx.Optim.state_from_map: the map lacks #{inspect(name)} (#{Mx.describe(t)}); save the state of this optimizer and these parameters"
        end
      end)

    case Map.keys(map) -- names do
      [] ->
        Tree.replace_leaves(template, values)

      extra ->
        raise ArgumentError,
              "Mx.Optim.state_from_map: the names #{inspect(extra)} are not in this optimizer's state"
    end
  end

  # ---- options -------------------------------------------------------------------------------------

  defp opts!(opts, keys, fun), do: Mx.Opts.validate!(opts, keys, "Mx.Optim.#{fun}")

  defp lr!(o, default, fun) do
    case Keyword.get(o, :learning_rate) do
      nil when default == :required ->
        raise ArgumentError,
              "Mx.Optim.#{fun}: learning_rate: is required (a non-negative number or a schedule)"

      f when is_function(f, 1) ->
        f

      x when is_number(x) and x >= 0 ->
        x

      other ->
        raise ArgumentError,
              "Mx.Optim.#{fun}: learning_rate: must be a non-negative number or a schedule (a function of the step count), got #{inspect(other)}"
    end
  end

  defp nonneg!(o, key, fun) do
    case o[key] do
      x when is_number(x) and x >= 0 ->
        x

      other ->
        raise ArgumentError,
              "Mx.Optim.#{fun}: #{key}: must be a non-negative number, got #{inspect(other)}"
    end
  end

  defp positive!(o, key, fun) do
    case o[key] do
      x when is_number(x) and x > 0 ->
        x

      other ->
        raise ArgumentError,
              "Mx.Optim.#{fun}: #{key}: must be a positive number, got #{inspect(other)}"
    end
  end

  defp unit!(o, key, fun) do
    case o[key] do
      x when is_number(x) and x >= 0 and x < 1 ->
        x

      other ->
        raise ArgumentError,
              "Mx.Optim.#{fun}: #{key}: must be a number in [0, 1), got #{inspect(other)}"
    end
  end

  defp bool!(o, key, fun) do
    case o[key] do
      b when is_boolean(b) ->
        b

      other ->
        raise ArgumentError,
              "Mx.Optim.#{fun}: #{key}: must be true or false, got #{inspect(other)}"
    end
  end

  defp num!(x, _fun, _what) when is_number(x), do: x

  defp num!(x, fun, what),
    do: raise(ArgumentError, "Mx.Optim.#{fun}: #{what} must be a number, got #{inspect(x)}")

  defp pos_int!(x, _fun, _what) when is_integer(x) and x > 0, do: x

  defp pos_int!(x, fun, what),
    do:
      raise(
        ArgumentError,
        "Mx.Optim.#{fun}: #{what} must be a positive integer, got #{inspect(x)}"
      )

  # ---- shared update pieces --------------------------------------------------------------------

  # L2 penalty into the gradient (PyTorch's weight_decay): g + λθ
  defp decay(g, _p, wd) when wd == 0, do: g
  defp decay(g, p, wd), do: Mx.add(g, Mx.multiply(p, wd))

  # Decoupled decay (AdamW, Lion): θ(1 - ηλ)
  defp decay_params(p, _c, wd) when wd == 0, do: p
  defp decay_params(p, %{lr64: lr}, wd) when is_number(lr), do: Mx.multiply(p, 1 - lr * wd)

  defp decay_params(p, c, wd),
    do: Mx.multiply(p, cast(Mx.subtract(1, Mx.multiply(c.lr64, wd)), c.ty))

  # A product that stays an Elixir float when both sides are numbers (two numbers would make an f32 array).
  defp times(a, b) when is_number(a) and is_number(b), do: a * b
  defp times(a, b), do: Mx.multiply(a, b)

  # β x + (1 - β) y
  defp ema(x, y, beta), do: Mx.add(Mx.multiply(x, beta), Mx.multiply(y, 1 - beta))
end
