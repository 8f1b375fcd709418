defmodule Gen.Kalman do
  @moduledoc """
  The 1-d linear-Gaussian state-space model the SMC tests share,
  x_0 ~ N(0, 1), x_t ~ N(a x_{t-1}, q), y_t ~ N(x_t, r), with its exact
  Kalman filter and Rauch–Tung–Striebel smoother (plain Elixir floats).
  """
  import Gen

  @params %{a: 0.9, q: 0.25, r: 0.09}

  @doc "The default parameters: a = 0.9, q = 0.5², r = 0.3²."
  def params, do: @params

  @doc """
  The model as an Unfold over steps `i` with args `[t_len, x_init]`: step `i` traces
  `:x` and `:y`. Unfold makes update O(1) per step; a `gen` loop over 0..t re-runs the prefix.
  """
  def ssm(%{a: a, q: q, r: r} \\ @params) do
    step =
      gen(fn i, prev ->
        x =
          if i == 0,
            do: trace(:x, Gen.Dist.normal(0.0, 1.0)),
            else: trace(:x, Gen.Dist.normal(Mx.multiply(prev, a), :math.sqrt(q)))

        trace(:y, Gen.Dist.normal(x, :math.sqrt(r)))
        x
      end)

    Gen.Combinators.unfold(step)
  end

  @doc """
  The same model as `{init, step}` for `Gen.Inference.SMC.filter`: `init` (no arguments)
  traces x_0 and y_0, `step` (args `t, x_{t-1}`) traces x_t and y_t.
  """
  def init_step(%{a: a, q: q, r: r} \\ @params) do
    init =
      gen(fn ->
        x = trace(:x, Gen.Dist.normal(0.0, 1.0))
        trace(:y, Gen.Dist.normal(x, :math.sqrt(r)))
        x
      end)

    step =
      gen(fn _t, prev ->
        x = trace(:x, Gen.Dist.normal(Mx.multiply(prev, a), :math.sqrt(q)))
        trace(:y, Gen.Dist.normal(x, :math.sqrt(r)))
        x
      end)

    {init, step}
  end

  @doc "y_0..y_{t_len-1} simulated from `ssm/0` with a fixed key."
  def data(t_len) do
    tr = Gen.simulate(ssm(), [t_len, 0.0], key: Mx.Random.key(2024))
    for i <- 0..(t_len - 1), do: Mx.to_number(tr[[i, :y]])
  end

  @doc "Kalman filter: `{log p(y_0..y_{T-1}), mean, variance}` of x_{T-1} given all of y."
  def filter(ys, %{a: a, q: q, r: r} \\ @params) do
    {m, p, ll} =
      ys
      |> Enum.with_index()
      |> Enum.reduce({0.0, 1.0, 0.0}, fn {y, t}, {m, p, ll} ->
        {m, p} = if t == 0, do: {m, p}, else: {a * m, a * a * p + q}
        s = p + r
        ll = ll - 0.5 * (:math.log(2 * :math.pi() * s) + (y - m) ** 2 / s)
        k = p / s
        {m + k * (y - m), (1 - k) * p, ll}
      end)

    {ll, m, p}
  end

  @doc "Kalman filter, then the Rauch–Tung–Striebel smoother: `[{mean, var}]` of x_t given all of y."
  def smoother(ys, %{a: a, q: q, r: r} \\ @params) do
    {filtered, _} =
      Enum.map_reduce(ys, nil, fn y, prev ->
        {mp, pp} =
          case prev do
            nil -> {0.0, 1.0}
            {m, p} -> {a * m, a * a * p + q}
          end

        k = pp / (pp + r)
        f = {mp + k * (y - mp), (1 - k) * pp}
        {{f, {mp, pp}}, f}
      end)

    [{last, pred_last} | earlier] = Enum.reverse(filtered)

    {smoothed, _} =
      Enum.map_reduce(earlier, {last, pred_last}, fn {{mf, pf}, pred}, {{ms, ps}, {mpn, ppn}} ->
        g = pf * a / ppn
        s = {mf + g * (ms - mpn), pf + g * g * (ps - ppn)}
        {s, {s, pred}}
      end)

    Enum.reverse(smoothed) ++ [last]
  end
end
