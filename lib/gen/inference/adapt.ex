defmodule Gen.Inference.Adapt do
  @moduledoc """
  Warmup adaptation for HMC and NUTS, as Stan does it.

    * Step size: Nesterov dual averaging (Hoffman & Gelman 2014, §3.2) with
      Stan's constants γ = 0.05, t₀ = 10, κ = 0.75 and μ = log(10·ε₀),
      driving the mean acceptance statistic to `delta` (0.8). During warmup
      the sampler uses `step_size/1` (the iterate xₜ); after warmup
      `final_step_size/1` (the averaged x̄ₜ).
    * Diagonal mass matrix (inverse metric = posterior variances): Welford
      running variances collected in Stan's windows — an initial fast buffer
      of 75 iterations, slow windows of 25, 50, 100, … (the last one
      stretched to the terminal buffer), a terminal fast buffer of 50; for
      warmups shorter than 75 + 25 + 50 the buffers become 15 % and 10 % of
      the warmup. At the end of each slow window the variance estimate is
      shrunk towards 10⁻³ as Stan does, `(n/(n+5))·var + 10⁻³·(5/(n+5))`,
      and the Welford accumulator restarts.

  Everything here is plain Elixir floats: the adaptation is O(dimension) per
  iteration and runs beside the sampler, never inside the gradient graph.

      iex> alias Gen.Inference.Adapt
      iex> da = Adapt.dual_averaging(1.0, delta: 0.8)
      iex> da = Enum.reduce(1..50, da, fn _, s -> Adapt.learn_step_size(s, 0.3) end)
      iex> Adapt.step_size(da) < 1.0
      true
      iex> w = Adapt.windows(500)
      iex> {w.init_buffer, w.term_buffer, w.base_window, Adapt.window_ends(w)}
      {75, 50, 25, [99, 149, 249, 449]}
  """

  # ---- dual averaging -------------------------------------------------------------

  defmodule DualAveraging do
    @moduledoc "State of Nesterov dual averaging for the step size (see `Gen.Inference.Adapt`)."
    defstruct mu: 0.0,
              delta: 0.8,
              gamma: 0.05,
              t0: 10.0,
              kappa: 0.75,
              counter: 0,
              s_bar: 0.0,
              x: 0.0,
              x_bar: 0.0

    @type t :: %__MODULE__{
            mu: float(),
            delta: float(),
            gamma: float(),
            t0: float(),
            kappa: float(),
            counter: non_neg_integer(),
            s_bar: float(),
            x: float(),
            x_bar: float()
          }
  end

  defmodule Welford do
    @moduledoc "Welford's running mean and sum of squared deviations, per coordinate."
    defstruct n: 0, mean: [], m2: []
    @type t :: %__MODULE__{n: non_neg_integer(), mean: [float()], m2: [float()]}
  end

  defmodule Windows do
    @moduledoc "Stan's windowed-adaptation schedule and the diagonal metric accumulator."
    defstruct num_warmup: 0,
              init_buffer: 75,
              term_buffer: 50,
              base_window: 25,
              counter: 0,
              window_size: 25,
              next_window: 99,
              welford: %Gen.Inference.Adapt.Welford{}

    @type t :: %__MODULE__{
            num_warmup: non_neg_integer(),
            init_buffer: non_neg_integer(),
            term_buffer: non_neg_integer(),
            base_window: non_neg_integer(),
            counter: non_neg_integer(),
            window_size: non_neg_integer(),
            next_window: integer(),
            welford: Gen.Inference.Adapt.Welford.t()
          }
  end

  @doc """
  A fresh dual-averaging state for initial step size `eps0`:
  μ = log(10·ε₀), the first iterate log ε₀. Options: `delta:` (target
  acceptance, 0.8), `gamma:` (0.05), `t0:` (10), `kappa:` (0.75).

      iex> da = Gen.Inference.Adapt.dual_averaging(0.5)
      iex> {Float.round(da.mu, 12) == Float.round(:math.log(5.0), 12), Gen.Inference.Adapt.step_size(da)}
      {true, 0.5}
  """
  @spec dual_averaging(number(), keyword()) :: DualAveraging.t()
  def dual_averaging(eps0, opts \\ []) do
    unless is_number(eps0) and eps0 > 0 do
      raise ArgumentError,
            "Gen.Inference.Adapt.dual_averaging: eps0 must be a positive number, got #{inspect(eps0)}"
    end

    Mx.Opts.validate!(opts, [:delta, :gamma, :t0, :kappa], "Gen.Inference.Adapt.dual_averaging")
    delta = Keyword.get(opts, :delta, 0.8)

    unless is_number(delta) and delta > 0 and delta < 1 do
      raise ArgumentError,
            "Gen.Inference.Adapt.dual_averaging: delta: the target acceptance must lie in (0, 1), got #{inspect(delta)}"
    end

    %DualAveraging{
      mu: :math.log(10 * eps0),
      delta: delta * 1.0,
      gamma: Keyword.get(opts, :gamma, 0.05) * 1.0,
      t0: Keyword.get(opts, :t0, 10) * 1.0,
      kappa: Keyword.get(opts, :kappa, 0.75) * 1.0,
      x: :math.log(eps0)
    }
  end

  @doc """
  Restarts dual averaging around a new step size `eps` (after a metric
  update, as Stan does): μ = log(10·ε), counters and averages to zero.

      iex> da = Gen.Inference.Adapt.dual_averaging(1.0) |> Gen.Inference.Adapt.learn_step_size(0.1)
      iex> da = Gen.Inference.Adapt.restart(da, 0.25)
      iex> {da.counter, Gen.Inference.Adapt.step_size(da)}
      {0, 0.25}
  """
  @spec restart(DualAveraging.t(), number()) :: DualAveraging.t()
  def restart(%DualAveraging{} = da, eps) when is_number(eps) and eps > 0,
    do: %{da | mu: :math.log(10 * eps), counter: 0, s_bar: 0.0, x: :math.log(eps), x_bar: 0.0}

  @doc """
  One dual-averaging update with the iteration's acceptance statistic
  (capped at 1; NaN counts as 0):

      s̄ₜ = (1 − 1/(t+t₀))·s̄ₜ₋₁ + (δ − a)/(t+t₀),  xₜ = μ − √t·s̄ₜ/γ,
      x̄ₜ = t^(−κ)·xₜ + (1 − t^(−κ))·x̄ₜ₋₁.

      iex> da = Gen.Inference.Adapt.dual_averaging(1.0) |> Gen.Inference.Adapt.learn_step_size(1.0)
      iex> # a = 1 > δ: the step grows above μ's 10·ε₀ shrunk by √1·(−0.2/11)/0.05
      iex> Float.round(Gen.Inference.Adapt.step_size(da), 6) == Float.round(:math.exp(:math.log(10.0) + 0.2 / 11 / 0.05), 6)
      true
  """
  @spec learn_step_size(DualAveraging.t(), number() | atom()) :: DualAveraging.t()
  def learn_step_size(%DualAveraging{} = da, accept_stat) do
    a = if is_number(accept_stat), do: min(accept_stat * 1.0, 1.0), else: 0.0
    t = da.counter + 1
    eta = 1.0 / (t + da.t0)
    s_bar = (1.0 - eta) * da.s_bar + eta * (da.delta - a)
    x = da.mu - s_bar * :math.sqrt(t) / da.gamma
    x_eta = :math.pow(t, -da.kappa)
    x_bar = (1.0 - x_eta) * da.x_bar + x_eta * x
    %{da | counter: t, s_bar: s_bar, x: x, x_bar: x_bar}
  end

  @doc "The current step size exp(xₜ), used during warmup."
  @spec step_size(DualAveraging.t()) :: float()
  def step_size(%DualAveraging{x: x}), do: :math.exp(x)

  @doc """
  The adapted step size exp(x̄ₜ), used after warmup (the iterate itself
  before any update).
  """
  @spec final_step_size(DualAveraging.t()) :: float()
  def final_step_size(%DualAveraging{counter: 0, x: x}), do: :math.exp(x)
  def final_step_size(%DualAveraging{x_bar: x_bar}), do: :math.exp(x_bar)

  # ---- Welford variances --------------------------------------------------------

  @doc """
  An empty Welford accumulator.

      iex> alias Gen.Inference.Adapt
      iex> w = Enum.reduce([[1.0, 10.0], [2.0, 10.0], [4.0, 13.0]], Adapt.welford(), &Adapt.welford_add(&2, &1))
      iex> Adapt.welford_variance(w) |> Enum.map(&Float.round(&1, 12))
      [2.333333333333, 3.0]
  """
  @spec welford() :: Welford.t()
  def welford, do: %Welford{}

  @doc "Adds one draw (a list of floats) to the accumulator."
  @spec welford_add(Welford.t(), [float()]) :: Welford.t()
  def welford_add(%Welford{n: 0}, xs),
    do: %Welford{n: 1, mean: Enum.map(xs, &(&1 * 1.0)), m2: Enum.map(xs, fn _ -> 0.0 end)}

  def welford_add(%Welford{n: n, mean: mean, m2: m2}, xs) do
    n = n + 1

    {mean, m2} =
      Enum.zip_with([xs, mean, m2], fn [x, m, s] ->
        d = x - m
        m = m + d / n
        {m, s + d * (x - m)}
      end)
      |> Enum.unzip()

    %Welford{n: n, mean: mean, m2: m2}
  end

  @doc "The sample variances m2/(n − 1) per coordinate (needs n ≥ 2)."
  @spec welford_variance(Welford.t()) :: [float()]
  def welford_variance(%Welford{n: n, m2: m2}) when n >= 2, do: Enum.map(m2, &(&1 / (n - 1)))

  def welford_variance(%Welford{n: n}),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.Adapt.welford_variance: needs at least 2 draws, got #{n}"
      )

  @doc """
  Stan's regularised variance from `n` draws: `(n/(n+5))·var + 10⁻³·(5/(n+5))`.

      iex> Gen.Inference.Adapt.regularize([2.0], 5)
      [1.0005]
  """
  @spec regularize([float()], non_neg_integer()) :: [float()]
  def regularize(var, n), do: Enum.map(var, &(n / (n + 5.0) * &1 + 1.0e-3 * (5.0 / (n + 5.0))))

  # ---- windows ----------------------------------------------------------------------

  @doc """
  Stan's adaptation windows for `num_warmup` iterations. Options:
  `init_buffer:` (75), `term_buffer:` (50), `base_window:` (25). When the
  three do not fit, they become 15 %, 10 % and the rest of the warmup;
  under 20 warmup iterations there is no metric adaptation at all.

      iex> w = Gen.Inference.Adapt.windows(100)
      iex> {w.init_buffer, w.term_buffer, w.base_window, Gen.Inference.Adapt.window_ends(w)}
      {15, 10, 75, [89]}
  """
  @spec windows(non_neg_integer(), keyword()) :: Windows.t()
  def windows(num_warmup, opts \\ []) do
    unless is_integer(num_warmup) and num_warmup >= 0 do
      raise ArgumentError,
            "Gen.Inference.Adapt.windows: num_warmup must be a non-negative integer, got #{inspect(num_warmup)}"
    end

    Mx.Opts.validate!(
      opts,
      [:init_buffer, :term_buffer, :base_window],
      "Gen.Inference.Adapt.windows"
    )

    init = Keyword.get(opts, :init_buffer, 75)
    term = Keyword.get(opts, :term_buffer, 50)
    base = Keyword.get(opts, :base_window, 25)

    {init, term, base} =
      cond do
        # Too short to adapt a metric: the windows never open.
        num_warmup < 20 -> {num_warmup, 0, 0}
        init + base + term > num_warmup -> scaled(num_warmup)
        true -> {init, term, base}
      end

    %Windows{
      num_warmup: num_warmup,
      init_buffer: init,
      term_buffer: term,
      base_window: base,
      window_size: base,
      next_window: if(base == 0, do: -1, else: init + base - 1)
    }
  end

  defp scaled(n) do
    init = trunc(0.15 * n)
    term = trunc(0.1 * n)
    {init, term, n - (init + term)}
  end

  @doc """
  Feeds the position of warmup iteration `counter` (the draw just made, in
  the sampler's unconstrained coordinates). Returns `{windows, :none}`, or
  `{windows, {:metric, inverse_metric}}` at the end of a slow window with
  the regularised variances as the new diagonal inverse metric.
  """
  @spec learn_variance(Windows.t(), [float()]) :: {Windows.t(), :none | {:metric, [float()]}}
  def learn_variance(%Windows{} = w, q), do: learn_variances(w, [q])

  @doc """
  `learn_variance/2` for one warmup iteration of several chains: `qs` holds
  each chain's position, all pooled into the variances (a metric shared by
  the chains, as the vectorized samplers adapt it).

      iex> alias Gen.Inference.Adapt
      iex> w = Adapt.windows(20, init_buffer: 2, term_buffer: 2, base_window: 16)
      iex> {w, :none} = Adapt.learn_variances(w, [[0.0], [1.0]])
      iex> {w, :none} = Adapt.learn_variances(w, [[0.0], [1.0]])
      iex> w = Enum.reduce(2..16, w, fn _, w -> elem(Adapt.learn_variances(w, [[0.0], [2.0]]), 0) end)
      iex> {_w, {:metric, [v]}} = Adapt.learn_variances(w, [[0.0], [2.0]])
      iex> # 32 draws, half 0 and half 2: variance 32/31, shrunk as Stan does
      iex> Float.round(v, 6) == Float.round(32 / 37 * (32 / 31) + 1.0e-3 * 5 / 37, 6)
      true
  """
  @spec learn_variances(Windows.t(), [[float()]]) :: {Windows.t(), :none | {:metric, [float()]}}
  def learn_variances(%Windows{} = w, qs) when is_list(qs) do
    c = w.counter
    in_window = c >= w.init_buffer and c < w.num_warmup - w.term_buffer and c != w.num_warmup
    welford = if in_window, do: Enum.reduce(qs, w.welford, &welford_add(&2, &1)), else: w.welford

    if c == w.next_window and c != w.num_warmup and w.base_window > 0 do
      w = next_window(%{w | welford: welford})
      var = w.welford |> welford_variance() |> regularize(w.welford.n)
      {%{w | welford: welford(), counter: c + 1}, {:metric, var}}
    else
      {%{w | welford: welford, counter: c + 1}, :none}
    end
  end

  defp next_window(%Windows{} = w) do
    last = w.num_warmup - w.term_buffer - 1

    if w.next_window == last do
      w
    else
      size = w.window_size * 2
      next = w.counter + size

      # A window that would leave less than twice its size before the terminal buffer absorbs the rest.
      next =
        if next != last and next + 2 * size >= w.num_warmup - w.term_buffer, do: last, else: next

      %{w | window_size: size, next_window: next}
    end
  end

  @doc """
  The warmup iterations at which the metric is updated (the ends of the
  slow windows), by running the schedule.
  """
  @spec window_ends(Windows.t()) :: [non_neg_integer()]
  def window_ends(%Windows{num_warmup: n} = w) do
    {_, ends} =
      Enum.reduce(0..(n - 1)//1, {w, []}, fn i, {w, acc} ->
        {w, ev} = learn_variance(w, [i * 1.0])
        {w, if(ev == :none, do: acc, else: [i | acc])}
      end)

    Enum.reverse(ends)
  end
end
