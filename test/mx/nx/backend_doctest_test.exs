if Code.ensure_loaded?(Mx.Nx.Backend) do
  defmodule Mx.Nx.BackendDoctestTest do
    use ExUnit.Case, async: true

    setup do
      Nx.default_backend(Mx.Nx.Backend)
      :ok
    end

    doctest Nx
    doctest Nx.LinAlg
  end
end
