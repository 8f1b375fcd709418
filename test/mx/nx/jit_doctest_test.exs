if Code.ensure_loaded?(Mx.Nx.JitBackend) do
  defmodule Mx.Nx.JitDoctestTest do
    # Nx's own doctests again, every tensor op as `Nx.Defn.jit` of the same op with
    # Mx.Nx.Compiler (test/support/nx_jit_backend.ex): the compiler's conformance test.
    use ExUnit.Case, async: true
    require Mx.NxDoctests

    setup do
      Nx.default_backend(Mx.Nx.JitBackend)
      :ok
    end

    Mx.NxDoctests.doctests(Nx, Mx.NxDoctestExclusions.names())
    Mx.NxDoctests.doctests(Nx.LinAlg, Mx.NxDoctestExclusions.names())
  end
end
