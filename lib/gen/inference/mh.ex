defmodule Gen.Inference.MH do
  @moduledoc """
  Metropolis–Hastings kernels (Gen.jl's `metropolis_hastings`), on the GFI
  alone. With a selection the move is `Gen.regenerate/3` (the selected
  choices resampled from their prior; the weight is the log acceptance
  ratio). With a custom proposal it is `Gen.edit/3` with
  `Gen.Edit.proposal/2`: propose, update, and assess of the proposal on the
  discarded choices for the backward move. The move is accepted with
  probability min(1, exp(weight)). A proposal whose density is `-Inf` (a
  parameter computed from the proposed values is out of range) or whose
  evaluation raises `Mx.Error` (a covariance that is not positive definite)
  is rejected, and the chain goes on.

  Use them through `Gen.Inference.mh/3` and `Gen.Inference.mh/4`.
  """

  alias Gen.{Selection, Trace}

  @doc false
  @spec mh_selection(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def mh_selection(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:key], "Gen.Inference.mh")

    Gen.Inference.Common.selects_some!(
      trace,
      sel,
      "Gen.Inference.mh",
      "select the choices to resample"
    )

    {k_move, k_accept} = Gen.Inference.two_keys(opts)

    propose(trace, k_accept, fn ->
      {new, w, _retdiff} = Gen.regenerate(trace, sel, key: k_move)
      {new, w}
    end)
  end

  @doc false
  @spec mh_proposal(Trace.t(), Gen.gen_fn(), [term()], keyword()) :: {Trace.t(), boolean()}
  def mh_proposal(%Trace{} = trace, q, q_args, opts) when is_list(q_args) do
    Mx.Opts.validate!(opts, [:key], "Gen.Inference.mh")
    {k_move, k_accept} = Gen.Inference.two_keys(opts)

    propose(trace, k_accept, fn ->
      {new, w, _discard} = Gen.edit(trace, Gen.Edit.proposal(q, q_args), key: k_move)
      {new, w}
    end)
  end

  def mh_proposal(%Trace{}, _q, q_args, _opts) do
    raise ArgumentError,
          "Gen.Inference.mh/4: the proposal's arguments must be a list, got #{inspect(q_args)}"
  end

  # The move's weight is evaluated inside at_proposal, so an engine error there rejects it.
  defp propose(trace, k_accept, move) do
    case Gen.Inference.Common.at_proposal(fn -> move.() |> tap(fn {_new, w} -> Mx.eval(w) end) end) do
      {:ok, {new, w}} -> decide(trace, new, w, k_accept)
      :rejected -> {trace, false}
    end
  end

  # Accept when log u < weight; -Inf and NaN weights (a move out of the support) reject.
  defp decide(old, new, w, key) do
    log_u = key |> Mx.Random.uniform(type: :f64) |> Mx.to_number() |> safe_log()

    accept? =
      case Mx.to_number(w) do
        :infinity -> true
        x when is_float(x) -> log_u < x
        _ -> false
      end

    if accept?, do: {Gen.Inference.force(new), true}, else: {old, false}
  end

  defp safe_log(u) when u > 0.0, do: :math.log(u)
  defp safe_log(_), do: -1.0e308
end
