if Code.ensure_loaded?(Nx.Defn) do
  defmodule Mx.NxMLP do
    @moduledoc false
    # A two-layer perceptron in defn (tanh hidden layer, squared loss, one gradient step of
    # rate 0.1), shared by the compiler's test and bench/nx.exs.
    import Nx.Defn

    defn predict({w1, b1, w2, b2}, x) do
      Nx.dot(Nx.tanh(Nx.dot(x, w1) + b1), w2) + b2
    end

    defn loss(params, x, y) do
      Nx.mean((predict(params, x) - y) ** 2)
    end

    defn step({w1, b1, w2, b2} = params, x, y) do
      {g1, gb1, g2, gb2} = grad(params, &loss(&1, x, y))
      {w1 - 0.1 * g1, b1 - 0.1 * gb1, w2 - 0.1 * g2, b2 - 0.1 * gb2}
    end
  end
end
