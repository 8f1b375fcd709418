defmodule Mx.NN.Linear do
  @moduledoc """
  `y = x Wᵀ + b`. Options: `input_dims:`, `output_dims:` (required by
  `init/2`), `bias:` (default true), `type:` (default `:f32`). Parameters
  `%{weight: {output_dims, input_dims}, bias: {output_dims}}`, drawn
  uniform in `±1/√input_dims` (MLX and PyTorch).

      iex> p = %{weight: Mx.tensor([[1.0, 2.0]]), bias: Mx.tensor([0.5])}
      iex> Mx.NN.Linear.apply(p, Mx.tensor([[1.0, 1.0]])) |> Mx.to_list()
      [[3.5]]
  """

  @keys [:input_dims, :output_dims, bias: true, type: :f32]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Linear.init")
    i = Mx.NN.required!(opts, :input_dims, "Mx.NN.Linear.init")
    o = Mx.NN.required!(opts, :output_dims, "Mx.NN.Linear.init")
    [kw, kb] = Mx.NN.split_keys(key, 2)
    scale = 1 / :math.sqrt(i)
    w = %{weight: Mx.NN.uniform_init(kw, {o, i}, scale, opts[:type])}

    if opts[:bias],
      do: Map.put(w, :bias, Mx.NN.uniform_init(kb, {o}, scale, opts[:type])),
      else: w
  end

  @doc "Applies the layer to `x` of shape `{..., input_dims}`."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Linear.apply")
    y = Mx.matmul(x, Mx.transpose(params.weight))
    if b = params[:bias], do: Mx.add(y, b), else: y
  end
end

defmodule Mx.NN.Bilinear do
  @moduledoc """
  `y_o = x₁ᵀ W_o x₂ + b_o`. Options: `input1_dims:`, `input2_dims:`,
  `output_dims:` (required by `init/2`), `bias:` (default true), `type:`.
  Parameters `%{weight: {output_dims, input1_dims, input2_dims}, bias:
  {output_dims}}`, uniform in `±1/√input1_dims` (MLX and PyTorch). The
  input is a tuple `{x1, x2}` of shapes `{..., input1_dims}` and
  `{..., input2_dims}`.

      iex> p = %{weight: Mx.tensor([[[1.0, 0.0], [0.0, 2.0]]]), bias: Mx.tensor([1.0])}
      iex> Mx.NN.Bilinear.apply(p, {Mx.tensor([[1.0, 1.0]]), Mx.tensor([[3.0, 4.0]])}) |> Mx.to_list()
      [[12.0]]
  """

  @keys [:input1_dims, :input2_dims, :output_dims, bias: true, type: :f32]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Bilinear.init")
    i1 = Mx.NN.required!(opts, :input1_dims, "Mx.NN.Bilinear.init")
    i2 = Mx.NN.required!(opts, :input2_dims, "Mx.NN.Bilinear.init")
    o = Mx.NN.required!(opts, :output_dims, "Mx.NN.Bilinear.init")
    [kw, kb] = Mx.NN.split_keys(key, 2)
    scale = 1 / :math.sqrt(i1)
    w = %{weight: Mx.NN.uniform_init(kw, {o, i1, i2}, scale, opts[:type])}

    if opts[:bias],
      do: Map.put(w, :bias, Mx.NN.uniform_init(kb, {o}, scale, opts[:type])),
      else: w
  end

  @doc "Applies the layer to `{x1, x2}`."
  @spec apply(map(), {Mx.Array.t(), Mx.Array.t()}, keyword()) :: Mx.Array.t()
  def apply(params, {x1, x2}, opts \\ []) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Bilinear.apply")
    {o, i1, i2} = params.weight.shape
    lead = x1.shape |> Tuple.delete_at(tuple_size(x1.shape) - 1)
    a = Mx.reshape(x1, {:auto, i1})
    b = Mx.reshape(x2, {:auto, 1, i2})
    # (x1 · W) as {n, o, i2}, then contracted with x2.
    w = params.weight |> Mx.transpose(axes: [1, 0, 2]) |> Mx.reshape({i1, o * i2})
    y = a |> Mx.matmul(w) |> Mx.reshape({:auto, o, i2}) |> Mx.multiply(b) |> Mx.sum(axes: [2])
    y = if bias = params[:bias], do: Mx.add(y, bias), else: y
    Mx.reshape(y, Tuple.append(lead, o))
  end
end

defmodule Mx.NN.Identity do
  @moduledoc """
  Returns its input; no parameters.

      iex> Mx.NN.Identity.apply(Mx.NN.Identity.init(Mx.Random.key(0), []), Mx.tensor([1.0])) |> Mx.to_list()
      [1.0]
  """

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    Mx.NN.layer_opts!(opts, [], "Mx.NN.Identity.init")
    %{}
  end

  @doc "The input, unchanged."
  @spec apply(map(), term(), keyword()) :: term()
  def apply(_params, x, opts \\ []) do
    Mx.NN.layer_opts!(opts, [], "Mx.NN.Identity.apply")
    x
  end
end

defmodule Mx.NN.PReLU do
  @moduledoc """
  Parametric ReLU with a learned slope per channel (the last axis) or one
  shared slope. Options: `num_parameters:` (default 1), `init:` (default
  0.25), `type:`. Parameters `%{weight: {num_parameters}}`.

      iex> p = Mx.NN.PReLU.init(Mx.Random.key(0), [])
      iex> Mx.NN.PReLU.apply(p, Mx.tensor([-4.0, 1.0])) |> Mx.to_list()
      [-1.0, 1.0]
  """

  @keys [num_parameters: 1, init: 0.25, type: :f32]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.PReLU.init")
    %{weight: Mx.full({opts[:num_parameters]}, opts[:init], type: opts[:type])}
  end

  @doc "Applies `Mx.NN.Activations.prelu/2` with the learned slope."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.PReLU.apply")
    Mx.NN.Activations.prelu(x, alpha: params.weight)
  end
end

defmodule Mx.NN.Embedding do
  @moduledoc """
  A lookup table: row `i` of the weight for index `i`. Options:
  `num_embeddings:`, `dims:` (required by `init/2`), `type:`. Parameters
  `%{weight: {num_embeddings, dims}}`, normal with std `1/√dims` (MLX).

      iex> p = %{weight: Mx.tensor([[0.0, 1.0], [2.0, 3.0]])}
      iex> Mx.NN.Embedding.apply(p, Mx.tensor([1, 1, 0])) |> Mx.to_list()
      [[2.0, 3.0], [2.0, 3.0], [0.0, 1.0]]
  """

  @keys [:num_embeddings, :dims, type: :f32]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Embedding.init")
    n = Mx.NN.required!(opts, :num_embeddings, "Mx.NN.Embedding.init")
    d = Mx.NN.required!(opts, :dims, "Mx.NN.Embedding.init")
    %{weight: Mx.Random.normal(key, 0.0, 1 / :math.sqrt(d), shape: {n, d}, type: opts[:type])}
  end

  @doc "The rows for integer indices of any shape: shape `{..., dims}`."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, indices, opts \\ []) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Embedding.apply")
    Mx.take(params.weight, indices, axis: 0)
  end

  @doc """
  The embedding used as a linear output layer (weight tying): `x Wᵀ`.

      iex> Mx.NN.Embedding.as_linear(%{weight: Mx.tensor([[1.0, 0.0], [0.0, 2.0]])}, Mx.tensor([[3.0, 4.0]])) |> Mx.to_list()
      [[3.0, 8.0]]
  """
  @spec as_linear(map(), Mx.Array.t()) :: Mx.Array.t()
  def as_linear(params, x), do: Mx.matmul(x, Mx.transpose(params.weight))
end
