defmodule Gen.Inference.Train do
  @moduledoc """
  Trainable parameters, the GenJAX way: a generative function takes its
  parameters as its first argument (a container of Mx arrays, see
  `Gen.Optim`), and `train/4` maximises the log-likelihood of fully observed
  data, Σᵢ log p(choicesᵢ; params, argsᵢ), each term `Gen.assess/3` of one
  data item, with `Gen.Optim` (Adam or SGD) on gradients from
  `Mx.value_and_grad/2`.

  Use it through `Gen.Inference.train/4`. For data with latent
  (unobserved) choices, maximise an evidence lower bound instead
  (`Gen.Inference.VI`).
  """

  alias Gen.Choicemap

  @doc false
  @spec train(Gen.gen_fn(), Gen.Optim.params(), [term()], keyword()) :: {Gen.Optim.params(), [float()]}
  def train(gf, params, data, opts) do
    Mx.Opts.validate!(opts, [:steps, :optimizer, :batch_size, :key, :callback], "Gen.Inference.train")
    items = items!(data)
    n = length(items)
    steps = Keyword.get(opts, :steps, 1000)

    unless is_integer(steps) and steps >= 0 do
      raise ArgumentError, "Gen.Inference.train: steps: must be a non-negative integer, got #{inspect(steps)}"
    end

    batch = batch_size!(opts, n)
    key = if batch < n, do: Keyword.get_lazy(opts, :key, &Gen.next_key/0)
    tuple = List.to_tuple(items)

    # A minibatch of b items drawn without replacement, its sum scaled by n/b (unbiased for the full sum).
    objective = fn p, i ->
      chosen = if batch == n, do: items, else: Enum.map(subset(key, i, n, batch), &elem(tuple, &1))

      chosen
      |> Enum.map(fn {args, cm} -> log_likelihood(gf, p, args, cm) end)
      |> Enum.reduce(&Mx.add/2)
      |> Mx.multiply(n / batch)
    end

    Gen.Optim.fit(objective, params,
      steps: steps,
      optimizer: Gen.Optim.optimizer!(opts, Gen.Optim.adam(learning_rate: 0.01), "Gen.Inference.train"),
      callback: Gen.Optim.callback!(opts, "Gen.Inference.train")
    )
  end

  defp log_likelihood(gf, p, args, cm) do
    {w, _} = Gen.assess(gf, [p | args], cm)
    w
  rescue
    e in ArgumentError ->
      reraise ArgumentError,
              "Gen.Inference.train: #{Exception.message(e)}; train needs every choice of each data item observed (for latent choices fit a guide with Gen.Inference.VI)",
              __STACKTRACE__
  end

  defp subset(key, i, n, b) do
    u = Mx.Random.uniform(Mx.Random.fold_in(key, i), shape: {n}, type: :f64)
    u |> Mx.argsort() |> Mx.to_flat_list() |> Enum.take(b)
  end

  defp items!(data) when is_list(data) and data != [] do
    Enum.map(data, fn
      {args, cm} when is_list(args) -> {args, Choicemap.new(cm)}
      %Choicemap{} = cm -> {[], cm}
      cm when is_map(cm) -> {[], Choicemap.new(cm)}
      other -> bad_item!(other)
    end)
  end

  defp items!(other) do
    raise ArgumentError,
          "Gen.Inference.train: data must be a non-empty list of observations (choicemaps, or {extra_args, choicemap} pairs), got #{inspect(other)}"
  end

  defp bad_item!(item) do
    raise ArgumentError,
          "Gen.Inference.train: a data item must be a choicemap (or map) of observed choices, or {extra_args, choicemap} with extra_args a list, got #{inspect(item)}"
  end

  defp batch_size!(opts, n) do
    case Keyword.get(opts, :batch_size) do
      nil -> n
      b when is_integer(b) and b >= 1 and b <= n -> b
      other -> raise ArgumentError, "Gen.Inference.train: batch_size: must be an integer in 1..#{n} (the number of data items) or nil, got #{inspect(other)}"
    end
  end
end
