defmodule Gen.Inference.Gradient do
  @moduledoc """
  Gradient-based MCMC kernels on the selected continuous choices of a trace
  (Gen.jl's `mala` and `hmc`), on the GFI alone: the log joint is
  `Gen.assess/3` on the trace's choices with the selected values replaced,
  differentiated with `Mx.value_and_grad/2`; moves are written with
  `Gen.update/3`, whose weight is the change in the log joint. A proposal
  whose log joint is not finite (a parameter computed from the moved values
  is out of range) or whose evaluation raises `Mx.Error` (a covariance that
  is not positive definite) is rejected without being written, and the
  chain goes on.

  Use them through `Gen.Inference.mala/3` and `Gen.Inference.hmc/3`.
  """

  alias Gen.{Choicemap, Selection, Trace}
  import Gen.Inference.Common, only: [positive!: 4, accept: 4]

  @doc """
  The log joint of `trace` and its gradient with respect to the selected
  choices (all floating-point): `{log_joint, gradients}`, the gradients a
  choicemap at the selected addresses.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{mu: 0.5, y: 2.0})
      iex> {lp, g} = Gen.Inference.Gradient.choice_gradients(t, Gen.select(:mu))
      iex> # d/dmu [-mu²/2 - (y - mu)²/2] = -mu + (y - mu) = 1.0
      iex> {Float.round(Mx.to_number(lp), 10) == Float.round(Mx.to_number(Gen.get_score(t)), 10), Mx.to_number(g[:mu])}
      {true, 1.0}
  """
  @spec choice_gradients(Trace.t(), Selection.t()) :: {Mx.t(), Choicemap.t()}
  def choice_gradients(%Trace{} = trace, %Selection{} = sel) do
    paths = selected_paths!(trace, sel, "choice_gradients")
    {lp, grads} = value_and_grad(trace, paths, Enum.map(paths, &Gen.get_choices(trace)[&1]))
    {lp, Choicemap.new(Enum.zip(paths, grads))}
  end

  @doc false
  @spec mala(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def mala(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:tau, :key], "Gen.Inference.mala")
    tau = positive!(opts, :tau, nil, "Gen.Inference.mala")
    {k_move, k_accept} = Gen.Inference.two_keys(opts)
    paths = selected_paths!(trace, sel, "mala")
    xs = Enum.map(paths, &Gen.get_choices(trace)[&1])
    {_lp, gs} = value_and_grad(trace, paths, xs)
    sd = :math.sqrt(2 * tau)
    keys = split(k_move, length(xs))

    # Langevin proposal x' ~ N(x + τ∇log p(x), 2τ I), per selected choice.
    new_xs =
      Enum.zip_with([xs, gs, keys], fn [x, g, k] ->
        Mx.add(Mx.add(x, Mx.multiply(g, tau)), Mx.multiply(noise(k, x), sd))
      end)

    Mx.eval(new_xs)

    case proposal_value_and_grad(trace, paths, new_xs) do
      {:ok, {_lp2, new_gs}} ->
        fwd = log_q(new_xs, xs, gs, tau, sd)
        bwd = log_q(xs, new_xs, new_gs, tau, sd)
        {new, w} = write(trace, paths, new_xs)
        accept(trace, new, Mx.add(w, Mx.subtract(bwd, fwd)), k_accept)

      :rejected ->
        {trace, false}
    end
  end

  @doc false
  @spec hmc(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def hmc(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:step_size, :n_leapfrog, :key], "Gen.Inference.hmc")
    eps = positive!(opts, :step_size, nil, "Gen.Inference.hmc")

    {new, accepted?, _alpha} =
      hmc_step(trace, selected_paths!(trace, sel, "hmc"), eps, n_leapfrog!(opts, "hmc"), opts)

    {new, accepted?}
  end

  @doc false
  @spec hmc_warmup(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), float(), [map()]}
  def hmc_warmup(%Trace{} = trace, %Selection{} = sel, opts) do
    fun = "hmc_warmup"

    Mx.Opts.validate!(
      opts,
      [:warmup, :n_leapfrog, :step_size, :target_accept, :key],
      "Gen.Inference.hmc_warmup"
    )

    warmup = Keyword.get(opts, :warmup, 500)

    unless is_integer(warmup) and warmup >= 1 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: warmup: must be a positive integer, got #{inspect(warmup)}"
    end

    n = n_leapfrog!(opts, fun)
    eps0 = Keyword.get(opts, :step_size, 1.0)

    unless is_number(eps0) and eps0 > 0 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: step_size: the initial step must be a positive number, got #{inspect(eps0)}"
    end

    paths = selected_paths!(trace, sel, fun)
    key = Keyword.get_lazy(opts, :key, &Gen.next_key/0)
    da = Gen.Inference.Adapt.dual_averaging(eps0, delta: Keyword.get(opts, :target_accept, 0.8))
    eps = init_step_size(trace, paths, eps0 * 1.0, Mx.Random.fold_in(key, -1))
    da = %{da | x: :math.log(eps)}

    {t, da, stats} =
      Enum.reduce(0..(warmup - 1), {Gen.Inference.force(trace), da, []}, fn i, {t, da, acc} ->
        eps = Gen.Inference.Adapt.step_size(da)
        {t, _acc?, alpha} = hmc_step(t, paths, eps, n, key: Mx.Random.fold_in(key, i))

        {t, Gen.Inference.Adapt.learn_step_size(da, alpha),
         [%{step_size: eps, accept_prob: alpha} | acc]}
      end)

    {t, Gen.Inference.Adapt.final_step_size(da), Enum.reverse(stats)}
  end

  # One HMC step: {trace, accepted?, min(1, exp(log α))} (α = 0 for a non-finite Hamiltonian).
  defp hmc_step(trace, paths, eps, n, opts) do
    {k_move, k_accept} = Gen.Inference.two_keys(opts)
    xs = Enum.map(paths, &Gen.get_choices(trace)[&1])
    ps = Enum.zip_with(xs, split(k_move, length(xs)), fn x, k -> noise(k, x) end)

    case leapfrogs(trace, paths, xs, ps, eps, n) do
      {:ok, {new_xs, new_ps}} ->
        {new, w} = write(trace, paths, new_xs)
        log_alpha = Mx.add(w, Mx.subtract(kinetic(ps), kinetic(new_ps)))
        {t, acc?} = accept(trace, new, log_alpha, k_accept)

        alpha =
          case Mx.to_number(log_alpha) do
            x when is_float(x) -> min(1.0, :math.exp(min(x, 0.0)))
            :infinity -> 1.0
            _ -> 0.0
          end

        {t, acc?, alpha}

      :rejected ->
        {trace, false, 0.0}
    end
  end

  # Leapfrog with unit mass: half step in p, then alternating full steps, closing with a half
  # step. {:ok, {xs, ps}}, or :rejected when a step leaves the density's domain.
  defp leapfrogs(trace, paths, xs, ps, eps, n) do
    {_lp, gs} = value_and_grad(trace, paths, xs)

    Enum.reduce_while(1..n, {:ok, {xs, ps, gs}}, fn _, {:ok, {x, p, g}} ->
      p_half = axpy(p, g, eps / 2)
      x2 = axpy(x, p_half, eps)
      Mx.eval(x2)

      case proposal_value_and_grad(trace, paths, x2) do
        {:ok, {_lp, g2}} ->
          p2 = axpy(p_half, g2, eps / 2)
          Mx.eval([p2 | g2])
          {:cont, {:ok, {x2, p2, g2}}}

        :rejected ->
          {:halt, :rejected}
      end
    end)
    |> case do
      {:ok, {new_xs, new_ps, _gs}} -> {:ok, {new_xs, new_ps}}
      :rejected -> :rejected
    end
  end

  # The log joint and gradient at a proposal: :rejected where the log joint is not finite
  # (or its evaluation raised Mx.Error), so no trace is written for a point out of the domain.
  defp proposal_value_and_grad(trace, paths, xs) do
    case Gen.Inference.Common.at_proposal(fn -> value_and_grad(trace, paths, xs) end) do
      {:ok, {lp, _gs}} = ok -> if is_float(Mx.to_number(lp)), do: ok, else: :rejected
      :rejected -> :rejected
    end
  end

  # Stan's heuristic for the first step size: double (or halve) ε until one leapfrog's acceptance crosses 0.8.
  defp init_step_size(trace, paths, eps, key) do
    xs = Enum.map(paths, &Gen.get_choices(trace)[&1])
    log08 = :math.log(0.8)

    dh = fn eps, i ->
      ps =
        Enum.zip_with(xs, split(Mx.Random.fold_in(key, i), length(xs)), fn x, k -> noise(k, x) end)

      with {:ok, {new_xs, new_ps}} <- leapfrogs(trace, paths, xs, ps, eps, 1),
           {_new, w} = write(trace, paths, new_xs),
           x when is_float(x) <-
             Mx.to_number(Mx.add(w, Mx.subtract(kinetic(ps), kinetic(new_ps)))) do
        x
      else
        :infinity -> 1.0e300
        # Erlang orders atoms above numbers: a non-finite energy error must stay a float.
        _ -> -1.0e300
      end
    end

    dir = if dh.(eps, 0) > log08, do: 1, else: -1

    Enum.reduce_while(1..2000, eps, fn i, eps ->
      d = dh.(eps, i)

      cond do
        dir == 1 and not (d > log08) ->
          {:halt, eps}

        dir == -1 and not (d < log08) ->
          {:halt, eps}

        eps > 1.0e7 or eps < 1.0e-300 ->
          raise ArgumentError,
                "Gen.Inference.hmc_warmup: the step-size search left [1e-300, 1e7]; check that the log density is proper and finite at the trace"

        dir == 1 ->
          {:cont, eps * 2}

        true ->
          {:cont, eps / 2}
      end
    end)
  end

  defp n_leapfrog!(opts, fun) do
    n = Keyword.get(opts, :n_leapfrog, 10)

    unless is_integer(n) and n >= 1 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: n_leapfrog: must be a positive integer, got #{inspect(n)}"
    end

    n
  end

  # The log joint at `xs` (the selected values) and its gradient, through assess.
  defp value_and_grad(%Trace{} = trace, paths, xs) do
    gf = Gen.get_gen_fn(trace)
    args = Gen.get_args(trace)
    base = Gen.get_choices(trace)

    f = fn vals ->
      cm =
        Enum.zip(paths, vals) |> Enum.reduce(base, fn {p, v}, acc -> Choicemap.put(acc, p, v) end)

      {w, _retval} = Gen.assess(gf, args, cm)
      w
    end

    {lp, gs} = Mx.value_and_grad(f).(xs)
    Mx.eval([lp | gs])
    {lp, gs}
  end

  @doc false
  # The selected choices' paths, each checked to be a floating-point array.
  def selected_paths!(trace, sel, fun) do
    paths =
      for {path, v} <- Choicemap.to_list(Gen.get_choices(trace)), Selection.member?(sel, path) do
        unless match?(%Mx.Array{}, v) and Mx.Type.float?(Mx.type(v)) do
          raise ArgumentError,
                "Gen.Inference.#{fun}: the selected choice at #{Choicemap.format_path(path)} is #{Gen.Inference.Common.describe(v)}, not a floating-point array; select only continuous choices"
        end

        path
      end

    if paths == [],
      do:
        Gen.Inference.Common.none_selected!(
          trace,
          sel,
          "Gen.Inference.#{fun}",
          "select the continuous choices to move"
        )

    paths
  end

  defp split(key, 1), do: [key]

  defp split(key, n),
    do: key |> Mx.Random.split(n) |> then(fn ks -> for i <- 0..(n - 1), do: ks[i] end)

  defp noise(key, x), do: Mx.Random.normal(key, shape: Mx.shape(x), type: Mx.type(x))

  defp axpy(ys, xs, a), do: Enum.zip_with(ys, xs, fn y, x -> Mx.add(y, Mx.multiply(x, a)) end)

  # log N(to; from + τ·g, sd²·I) summed over every element of every choice.
  defp log_q(to, from, gs, tau, sd) do
    Enum.zip_with([to, from, gs], fn [t, f, g] ->
      z = Mx.divide(Mx.subtract(t, Mx.add(f, Mx.multiply(g, tau))), sd)
      size = Enum.reduce(Tuple.to_list(Mx.shape(t)), 1, &(&1 * &2))

      Mx.subtract(
        Mx.multiply(Mx.sum(Mx.multiply(z, z)), -0.5),
        size * (:math.log(sd) + 0.5 * :math.log(2 * :math.pi()))
      )
    end)
    |> Enum.reduce(&Mx.add/2)
  end

  defp kinetic(ps),
    do: ps |> Enum.map(&Mx.multiply(Mx.sum(Mx.multiply(&1, &1)), 0.5)) |> Enum.reduce(&Mx.add/2)

  defp write(trace, paths, xs) do
    {new, w, _retdiff, _discard} = Gen.update(trace, Choicemap.new(Enum.zip(paths, xs)))
    {new, w}
  end
end
