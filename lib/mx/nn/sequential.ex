defmodule Mx.NN.Sequential do
  @moduledoc """
  Layers run one after another. `layers:` is a list of specs:

    * `{module, opts}`: a layer module (`Mx.NN.Linear`, ...) and its options;
    * an atom naming an activation of `Mx.NN.Activations` (`:relu`), or
      `{name, opts}` with its options (`{:leaky_relu, negative_slope: 0.2}`);
    * a function of one argument.

  `init/2` returns a list with one parameter map per layer (`%{}` for
  activations and functions), so parameter paths read `[0, :weight]`.
  `apply/3` passes `mode:` to every layer and, in training, a fresh key
  split from `key:` to each; in `mode: :train` it returns `{output,
  new_params}` (batch-norm statistics updated), in `:eval` the output.

      iex> layers = [{Mx.NN.Linear, input_dims: 2, output_dims: 2}, {:leaky_relu, negative_slope: 0.5}]
      iex> p = [%{weight: Mx.tensor([[1.0, 0.0], [0.0, -1.0]]), bias: Mx.tensor([0.0, 0.0])}, %{}]
      iex> Mx.NN.Sequential.apply(p, Mx.tensor([[2.0, 2.0]]), layers: layers) |> Mx.to_list()
      [[2.0, -1.0]]
  """

  @keys [:layers]

  @doc "One parameter map per layer, from independent keys."
  @spec init(Mx.Random.key(), keyword()) :: [map()]
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Sequential.init")
    layers = layers!(opts)
    keys = Mx.NN.split_keys(key, max(length(layers), 1))

    Enum.zip_with(layers, Enum.take(keys, length(layers)), fn
      {:layer, module, lopts}, k -> module.init(k, lopts)
      _activation_or_fun, _k -> %{}
    end)
  end

  @doc "Runs the layers in order (see the module doc for what comes back)."
  @spec apply([map()], term(), keyword()) :: term() | {term(), [map()]}
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Sequential.apply")
    layers = layers!(opts)
    mode = opts[:mode]

    unless is_list(params) and length(params) == length(layers) do
      raise ArgumentError,
            "Mx.NN.Sequential.apply: params must be a list with one entry per layer (#{length(layers)}); build them with init/2"
    end

    keys =
      if mode == :train and opts[:key],
        do: Mx.NN.split_keys(opts[:key], max(length(layers), 1)),
        else: List.duplicate(nil, length(layers))

    {new_params, y} =
      [layers, params, Enum.take(keys, length(layers))]
      |> Enum.zip()
      |> Enum.map_reduce(x, fn {layer, p, k}, acc ->
        {y, new_p} = run(layer, p, acc, mode, k)
        {new_p, y}
      end)

    if mode == :train, do: {y, new_params}, else: y
  end

  defp run({:layer, module, lopts}, p, x, mode, key) do
    y = module.apply(p, x, lopts ++ [mode: mode, key: key])
    # Stateful layers return {output, new_params} in training (see Mx.NN, "State").
    if mode == :train and stateful?(module), do: y, else: {y, p}
  end

  defp run({:activation, name, lopts}, p, x, _mode, _key), do: {activation(name, x, lopts), p}
  defp run({:fun, fun}, p, x, _mode, _key), do: {fun.(x), p}

  defp activation(name, x, []), do: Kernel.apply(Mx.NN.Activations, name, [x])

  defp activation(name, x, lopts) do
    if function_exported?(Mx.NN.Activations, name, 2),
      do: Kernel.apply(Mx.NN.Activations, name, [x, lopts]),
      else:
        raise(
          ArgumentError,
          "Mx.NN.Sequential: the activation #{name} takes no options, got #{inspect(lopts)}"
        )
  end

  defp stateful?(module), do: function_exported?(module, :stateful?, 0) and module.stateful?()

  @doc false
  def stateful?, do: true

  defp layer?(module),
    do:
      Code.ensure_loaded?(module) and function_exported?(module, :init, 2) and
        function_exported?(module, :apply, 3)

  defp layers!(opts) do
    layers =
      opts[:layers] ||
        raise ArgumentError, "Mx.NN.Sequential: layers: is required (a list of layer specs)"

    unless is_list(layers),
      do: raise(ArgumentError, "Mx.NN.Sequential: layers: must be a list, got #{inspect(layers)}")

    Enum.map(layers, fn
      name when is_atom(name) ->
        spec!({name, []})

      {name, lopts} when is_atom(name) and is_list(lopts) ->
        spec!({name, lopts})

      fun when is_function(fun, 1) ->
        {:fun, fun}

      other ->
        raise ArgumentError,
              "Mx.NN.Sequential: a layer spec is {module, opts}, an activation name or a 1-arity function, got #{inspect(other)}"
    end)
  end

  # Activation names first: Code.ensure_loaded?(:relu) would search the code path on every call.
  defp spec!({name, lopts}) do
    cond do
      name in Mx.NN.Activations.names() ->
        {:activation, name, lopts}

      layer?(name) ->
        {:layer, name, lopts}

      true ->
        raise ArgumentError,
              "Mx.NN.Sequential: #{inspect(name)} is neither a layer module nor an activation of Mx.NN.Activations"
    end
  end
end
