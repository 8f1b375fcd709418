defmodule Gen.Inference.Importance do
  @moduledoc """
  Importance sampling and importance resampling (Gen.jl's
  `importance_sampling` and `importance_resampling`), on the GFI alone:
  `Gen.generate/4` with the prior as the internal proposal, or
  `Gen.propose/3` of a custom proposal then `Gen.generate/4` of the model on
  the proposed choices merged with the observations, the weight being

      log w = log p(proposed, observations) − log q(proposed)

  A NaN weight raises `Gen.NaNError` naming the site (from `Gen.generate/4`)
  rather than giving NaN weights and a NaN log-ML: it is a bug in the model.

  Use them through `Gen.Inference`.
  """

  alias Gen.Choicemap

  @doc false
  @spec importance_sampling(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          pos_integer(),
          keyword()
        ) ::
          {[Gen.Trace.t()], Mx.t(), Mx.t()}
  def importance_sampling(gf, args, observations, n, opts) do
    check_n!(n, "importance_sampling")
    Mx.Opts.validate!(opts, [:key, :proposal], "Gen.Inference.importance_sampling")
    obs = Choicemap.new(observations)
    proposal = proposal!(Keyword.get(opts, :proposal), "importance_sampling")
    keys = particle_keys(opts, n)

    {traces, ws} =
      keys
      |> Enum.map(fn k -> particle(gf, args, obs, proposal, k) end)
      |> Enum.unzip()

    log_w = ws |> Mx.stack() |> Mx.as_type(:f64)
    lse = Mx.logsumexp(log_w)
    lml = Mx.subtract(lse, :math.log(n))
    {traces, Mx.eval(Mx.subtract(log_w, lse)), Mx.eval(lml)}
  end

  @doc false
  @spec importance_resampling(
          Gen.gen_fn(),
          [term()],
          Choicemap.t() | map() | list(),
          pos_integer(),
          keyword()
        ) ::
          {Gen.Trace.t(), Mx.t()}
  def importance_resampling(gf, args, observations, n, opts) do
    check_n!(n, "importance_resampling")
    Mx.Opts.validate!(opts, [:key, :proposal], "Gen.Inference.importance_resampling")
    {k_is, k_pick} = Gen.Inference.two_keys(opts)

    {traces, log_nw, lml} =
      importance_sampling(gf, args, observations, n, Keyword.put(opts, :key, k_is))

    i = Mx.Random.categorical(k_pick, log_nw) |> Mx.to_number()
    {Enum.at(traces, i), lml}
  end

  defp particle(gf, args, obs, nil, key) do
    {tr, w} = Gen.generate(gf, args, obs, key: key)
    {Gen.Inference.force(tr), Mx.eval(w)}
  end

  defp particle(gf, args, obs, {q, q_args}, key) do
    ks = Mx.Random.split(key)
    {proposed, q_w, _} = Gen.propose(q, q_args, key: ks[0])
    {tr, p_w} = Gen.generate(gf, args, Choicemap.merge(obs, proposed), key: ks[1])
    {Gen.Inference.force(tr), Mx.eval(Mx.subtract(p_w, q_w))}
  end

  defp particle_keys(opts, n) do
    case Keyword.fetch(opts, :key) do
      {:ok, k} ->
        ks = Mx.Random.split(k, n)
        for i <- 0..(n - 1), do: ks[i]

      :error ->
        for _ <- 1..n, do: Gen.next_key()
    end
  end

  defp proposal!(nil, _where), do: nil
  defp proposal!({q, q_args} = p, _where) when is_list(q_args) and not is_nil(q), do: p

  defp proposal!(other, where) do
    raise ArgumentError,
          "Gen.Inference.#{where}: proposal: must be {proposal_gen_fn, proposal_args} with args a list, got #{inspect(other)}"
  end

  defp check_n!(n, _where) when is_integer(n) and n >= 1, do: :ok

  defp check_n!(n, where) do
    raise ArgumentError,
          "Gen.Inference.#{where}: the number of particles must be a positive integer, got #{inspect(n)}"
  end
end
