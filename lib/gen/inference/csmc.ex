defmodule Gen.Inference.CSMC do
  @moduledoc """
  Conditional SMC and particle Gibbs (Andrieu, Doucet & Holenstein 2010),
  on the GFI alone.

  `csmc/6` runs the particle filter of `Gen.Inference.smc/5` with particle
  0 held to a reference trajectory: at step t it is the reference's prefix,
  the model run on `args_fn.(t)` with the observations and, at every latent
  address the step adds, the reference's value. Its weight increment is the
  one it would have had if the prior had proposed those values,

      score(new) − score(old) − Σ log p(new latent choices)

  (the update weight with the new latents as proposed, not constrained).
  Every step resamples: particle 0 keeps its place and the other n − 1
  ancestors are drawn multinomially from all n weights. After the last step
  a new reference is drawn from the final weights.

  Which addresses a step adds is found by running the step once (update or
  generate with the observations only) and reading the new trace; when the
  structure depends on the new values, constraining is repeated until every
  new latent address holds the reference's value. The reference must be a
  trace of the model on `args_fn.(T - 1)` holding the observations.

  `kernel/4` is the particle-Gibbs kernel: from a trace, csmc with that
  trace as reference, returning the new reference. It leaves the posterior
  of all latent choices given the observations invariant for any n ≥ 2.

  Use them through `Gen.Inference.csmc/6` and `Gen.Inference.particle_gibbs/4`.
  """

  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Inference.{Resample, SMC}

  @doc false
  @spec csmc(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          Trace.t(),
          keyword()
        ) :: {[Trace.t()], Mx.t(), Trace.t(), non_neg_integer()}
  def csmc(gf, args_fn, observations, n, reference, opts) do
    Mx.Opts.validate!(opts, [:key], "Gen.Inference.csmc")
    check!(args_fn, observations, n, reference || :missing)
    key = Keyword.get_lazy(opts, :key, &Gen.next_key/0)
    [obs0 | rest] = Enum.map(observations, &Choicemap.new/1)
    ref = Gen.get_choices(reference)

    {[k0 | pkeys], _, _} = SMC.step_keys(key, 0, n)
    args0 = args_fn.(0)
    first = conditioned(gf, nil, args0, obs0, ref, k0)

    others =
      Enum.map(pkeys, fn k ->
        {tr, w} = Gen.generate(gf, args0, obs0, key: k)
        {Gen.Inference.force(tr), Mx.to_number(w)}
      end)

    {traces, log_w} = Enum.unzip([first | others])

    {traces, log_w} =
      rest
      |> Enum.with_index(1)
      |> Enum.reduce({traces, log_w}, fn {obs, t}, {traces, log_w} ->
        {[k0 | pkeys], rkey, _} = SMC.step_keys(key, t, n)
        check_weights!(log_w, t - 1)
        # Conditional multinomial resampling: the reference keeps index 0.
        tv = List.to_tuple(traces)
        ancestors = Resample.multinomial(log_w, rkey, n - 1)
        args = args_fn.(t)
        first = conditioned(gf, elem(tv, 0), args, obs, ref, k0)

        others =
          ancestors
          |> Enum.zip(pkeys)
          |> Enum.map(fn {a, k} ->
            {tr, w, _, _} = Gen.update(elem(tv, a), args, :unknown_change, obs, key: k)
            {Gen.Inference.force(tr), Mx.to_number(w)}
          end)

        Enum.unzip([first | others])
      end)

    check_weights!(log_w, length(observations) - 1)
    {_, pick_key, _} = SMC.step_keys(key, length(observations), n)
    lse = SMC.logsumexp(log_w)
    lnw = Mx.tensor(Enum.map(log_w, &SMC.add(&1, -lse)), type: :f64)
    [i] = Resample.multinomial(log_w, pick_key, 1)
    {traces, lnw, Enum.at(traces, i), i}
  end

  @doc false
  @spec kernel(
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) ::
          Gen.Inference.Kernel.t()
  def kernel(args_fn, observations, n, opts) do
    Mx.Opts.validate!(opts, [:key], "Gen.Inference.particle_gibbs")
    check!(args_fn, observations, n, nil)
    pg_opts = Keyword.delete(opts, :key)

    fn %Trace{} = trace, k_opts ->
      c_opts = Keyword.merge(pg_opts, Keyword.take(k_opts, [:key]))
      {_, _, new_ref, i} = csmc(Gen.get_gen_fn(trace), args_fn, observations, n, trace, c_opts)
      {new_ref, i != 0}
    end
  end

  # Particle 0 at one step: the reference's values at the step's new latent addresses.
  defp conditioned(gf, prev, args, obs, ref, key) do
    {trial, _} = move(gf, prev, args, obs, key)
    old = if prev, do: addresses(Gen.get_choices(prev)), else: MapSet.new()
    observed = addresses(obs)
    tr = constrain(gf, prev, args, obs, ref, old, observed, trial, key, 0)

    new_latents =
      tr
      |> Gen.get_choices()
      |> addresses()
      |> MapSet.difference(old)
      |> MapSet.difference(observed)

    q =
      if MapSet.size(new_latents) == 0,
        do: 0.0,
        else: Mx.to_number(Gen.project(tr, Selection.new(MapSet.to_list(new_latents))))

    old_score = if prev, do: Mx.to_number(Gen.get_score(prev)), else: 0.0
    {Gen.Inference.force(tr), Mx.to_number(Gen.get_score(tr)) - old_score - q}
  end

  # Constrain the new latents of `trial` to the reference until a run adds no address the reference lacks a value for.
  defp constrain(gf, prev, args, obs, ref, old, observed, trial, key, round) do
    choices = Gen.get_choices(trial)

    new =
      choices
      |> Choicemap.to_list()
      |> Enum.reject(fn {p, _} -> MapSet.member?(old, p) or MapSet.member?(observed, p) end)

    unset =
      Enum.reject(new, fn {p, v} ->
        case Choicemap.fetch(ref, p) do
          {:ok, rv} -> same?(rv, v)
          :error -> false
        end
      end)

    cond do
      unset == [] ->
        trial

      round >= 8 ->
        raise ArgumentError,
              "Gen.Inference.csmc: the reference trace's addresses do not settle for step args #{inspect(args)}; is the reference a trace of this model?"

      true ->
        missing = Enum.filter(new, fn {p, _} -> Choicemap.fetch(ref, p) == :error end)

        if missing != [] do
          raise ArgumentError,
                "Gen.Inference.csmc: the reference trace has no value at #{Choicemap.format_path(elem(hd(missing), 0))}, which the model visits at args #{inspect(args)}; the reference must be a trace of the model on args_fn.(T - 1) with the observations"
        end

        cm =
          Enum.reduce(new, obs, fn {p, _}, cm -> Choicemap.put(cm, p, Choicemap.get(ref, p)) end)

        {tr, _} = move(gf, prev, args, cm, key)
        constrain(gf, prev, args, obs, ref, old, observed, tr, key, round + 1)
    end
  end

  defp move(gf, nil, args, cm, key), do: Gen.generate(gf, args, cm, key: key)

  defp move(_gf, prev, args, cm, key) do
    {tr, w, _, _} = Gen.update(prev, args, :unknown_change, cm, key: key)
    {tr, w}
  end

  defp same?(a, b), do: Mx.to_list(a) == Mx.to_list(b)

  defp addresses(cm), do: cm |> Choicemap.to_list() |> MapSet.new(&elem(&1, 0))

  defp check_weights!(log_w, t) do
    if SMC.logsumexp(log_w) == :neg_infinity do
      raise ArgumentError,
            "Gen.Inference.csmc: every particle has weight zero after step #{t}; the observations are impossible under the model (or the reference is not a trace holding them)"
    end
  end

  defp check!(args_fn, observations, n, reference) do
    unless is_function(args_fn, 1),
      do:
        raise(
          ArgumentError,
          "Gen.Inference.csmc: args_fn must be a function of the step t returning the model's argument list, got #{inspect(args_fn)}"
        )

    unless is_list(observations) and observations != [],
      do:
        raise(
          ArgumentError,
          "Gen.Inference.csmc: observations must be a non-empty list of choicemaps, one per step, got #{inspect(observations)}"
        )

    unless is_integer(n) and n >= 2,
      do:
        raise(
          ArgumentError,
          "Gen.Inference.csmc: the number of particles must be an integer >= 2 (the reference and at least one free particle), got #{inspect(n)}"
        )

    unless reference == nil or match?(%Trace{}, reference),
      do:
        raise(
          ArgumentError,
          "Gen.Inference.csmc: the reference must be a Gen.Trace of the model on args_fn.(T - 1) with the observations, got #{inspect(reference)}"
        )
  end
end
