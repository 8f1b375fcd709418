defmodule Gen.Inference.SMC do
  @moduledoc """
  A particle filter (Gen.jl's `initialize_particle_filter`,
  `maybe_resample!` and `particle_filter_step!`) on the GFI alone:
  `Gen.generate/4` at step 0, `Gen.update/5` to move each particle to the
  next step's arguments with the new observations. The weight increment of
  a step is the update weight, log p(new observations, new choices | old) −
  log q(new choices), q being the model's prior on the new choices.

  With `rejuvenate: kernel` (a `Gen.Inference.Kernel.t()`), every particle
  is moved by the kernel after each step, once the step's resampling (if
  any) is done: duplicates made by resampling spread out again, which keeps
  static parameters from collapsing onto the few values drawn at step 0.
  A kernel that leaves the step's posterior invariant keeps the weighted
  particles properly weighted, so the weights and the log marginal
  likelihood estimate are not changed by it.

  Use it through `Gen.Inference.smc/5`.
  """

  alias Gen.Choicemap
  alias Gen.Inference.Resample

  @doc false
  @spec smc(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
          {[Gen.Trace.t()], Mx.t(), Mx.t()}
  def smc(gf, args_fn, observations, n, opts) do
    check!(gf, args_fn, observations, n)
    threshold = threshold!(Keyword.get(opts, :ess_threshold, 0.5))
    resample = scheme!(Keyword.get(opts, :resampling, :multinomial))
    kernel = kernel!(Keyword.get(opts, :rejuvenate))
    key = Keyword.get_lazy(opts, :key, &Gen.next_key/0)
    [obs0 | rest] = Enum.map(observations, &Choicemap.new/1)

    # Step t draws with fold_in(key, t): per-particle keys, the resampling and rejuvenation keys.
    {pkeys, _, _} = step_keys(key, 0, n)
    args0 = args_fn.(0)

    {traces, log_w} =
      pkeys
      |> Enum.map(fn k ->
        {tr, w} = Gen.generate(gf, args0, obs0, key: k)
        {Gen.Inference.force(tr), Mx.to_number(w)}
      end)
      |> Enum.unzip()

    {traces, log_w, lml} =
      rest
      |> Enum.with_index(1)
      |> Enum.reduce({traces, log_w, 0.0}, fn {obs, t}, {traces, log_w, lml} ->
        {pkeys, rkey, jkey} = step_keys(key, t, n)
        {traces, log_w, lml} = maybe_resample(traces, log_w, lml, threshold, resample, rkey)
        # Rejuvenation of step t - 1's particles, after its resampling, before step t's update.
        traces = rejuvenate(traces, kernel, jkey)
        args = args_fn.(t)

        {traces, incs} =
          traces
          |> Enum.zip(pkeys)
          |> Enum.map(fn {tr, k} ->
            {tr2, w, _, _} = Gen.update(tr, args, :unknown_change, obs, key: k)
            {Gen.Inference.force(tr2), Mx.to_number(w)}
          end)
          |> Enum.unzip()

        {traces, Enum.zip_with(log_w, incs, &add/2), lml}
      end)

    {_, _, jkey} = step_keys(key, length(observations), n)
    traces = rejuvenate(traces, kernel, jkey)
    lse = logsumexp(log_w)
    check_weights!(lse, length(observations) - 1)
    lnw = Enum.map(log_w, &add(&1, -lse))
    {traces, Mx.tensor(lnw, type: :f64), Mx.tensor(lml + lse - :math.log(n), type: :f64)}
  end

  # Resampling folds the mean incremental weight into the estimate and resets the weights.
  defp maybe_resample(traces, log_w, lml, threshold, resample, rkey) do
    if Resample.ess(log_w) < threshold * length(log_w) do
      n = length(log_w)
      lse = logsumexp(log_w)
      idx = resample.(log_w, rkey)
      tv = List.to_tuple(traces)
      {Enum.map(idx, &elem(tv, &1)), List.duplicate(0.0, n), lml + lse - :math.log(n)}
    else
      {traces, log_w, lml}
    end
  end

  @doc false
  # The kernel applied to every particle, particle i with fold_in(key, i); traces evaluated.
  @spec rejuvenate([Gen.Trace.t()], Gen.Inference.Kernel.t() | nil, Mx.t()) :: [Gen.Trace.t()]
  def rejuvenate(traces, nil, _key), do: traces

  def rejuvenate(traces, kernel, key) do
    traces
    |> Enum.with_index()
    |> Enum.map(fn {tr, i} ->
      {tr2, _acc} = Gen.Inference.Kernel.call!(kernel, tr, key: Mx.Random.fold_in(key, i))
      Gen.Inference.force(tr2)
    end)
  end

  @doc false
  # n particle keys, a resampling key and a rejuvenation key for step t.
  @spec step_keys(Mx.t(), non_neg_integer(), pos_integer()) :: {[Mx.t()], Mx.t(), Mx.t()}
  def step_keys(key, t, n) do
    ks = Mx.Random.split(Mx.Random.fold_in(key, t), n + 2)
    {for(i <- 0..(n - 1), do: ks[i]), ks[n], ks[n + 1]}
  end

  @doc false
  # log Σ exp over a list of floats and :neg_infinity.
  @spec logsumexp([float() | :neg_infinity]) :: float() | :neg_infinity
  def logsumexp(lw) do
    finite = Enum.filter(lw, &is_float/1)

    case finite do
      [] ->
        :neg_infinity

      _ ->
        m = Enum.max(finite)
        m + :math.log(Enum.reduce(finite, 0.0, &(&2 + :math.exp(&1 - m))))
    end
  end

  @doc false
  # Sum of two log weights, -infinity absorbing; NaN or +infinity raise.
  @spec add(term(), term()) :: float() | :neg_infinity
  def add(:neg_infinity, _), do: :neg_infinity
  def add(_, :neg_infinity), do: :neg_infinity
  def add(a, b) when is_number(a) and is_number(b), do: a + b

  def add(a, b),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.smc: a weight is not a number (#{inspect(a)}, #{inspect(b)}): NaN or +infinity from the model"
      )

  defp check_weights!(:neg_infinity, t) do
    raise ArgumentError,
          "Gen.Inference.smc: every particle has weight zero after step #{t}; the observations are impossible under the model (or under every particle)"
  end

  defp check_weights!(_lse, _t), do: :ok

  defp check!(_gf, args_fn, observations, n) do
    unless is_function(args_fn, 1),
      do:
        raise(
          ArgumentError,
          "Gen.Inference.smc: args_fn must be a function of the step t returning the model's argument list, got #{inspect(args_fn)}"
        )

    unless is_list(observations) and observations != [],
      do:
        raise(
          ArgumentError,
          "Gen.Inference.smc: observations must be a non-empty list of choicemaps, one per step, got #{inspect(observations)}"
        )

    unless is_integer(n) and n >= 1,
      do:
        raise(
          ArgumentError,
          "Gen.Inference.smc: the number of particles must be a positive integer, got #{inspect(n)}"
        )
  end

  defp threshold!(x) when is_number(x) and x >= 0 and x <= 1, do: x

  defp threshold!(x),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.smc: ess_threshold: must be a number in [0, 1] (resample when ESS < threshold · n), got #{inspect(x)}"
      )

  defp kernel!(nil), do: nil
  defp kernel!(k) when is_function(k, 2), do: k

  defp kernel!(k),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.smc: rejuvenate: must be a kernel, fn trace, opts -> {trace, accepted?} end (e.g. Gen.Inference.Kernel.mh(Gen.select(...))), got #{inspect(k)}"
      )

  defp scheme!(:multinomial), do: &Resample.multinomial/2
  defp scheme!(:systematic), do: &Resample.systematic/2
  defp scheme!(:residual), do: &Resample.residual/2

  defp scheme!(s),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.smc: resampling: must be :multinomial, :systematic or :residual, got #{inspect(s)}"
      )
end
