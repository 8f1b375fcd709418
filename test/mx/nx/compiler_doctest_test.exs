if Code.ensure_loaded?(Mx.Nx.Compiler) do
  defmodule Mx.Nx.CompilerDoctestTest do
    # Nx.Defn's and Nx.Defn.Kernel's doctests, and Nx.LinAlg's (mostly defn functions), with
    # Mx.Nx.Compiler as the default defn compiler on Mx.Nx.Backend.
    use ExUnit.Case, async: true
    # Two of Nx.Defn.Kernel's doctests call its helpers unqualified.
    import Nx.Defn.Kernel, only: [keyword!: 2, assert_keys: 2]

    setup do
      Nx.default_backend(Mx.Nx.Backend)
      Nx.Defn.default_options(compiler: Mx.Nx.Compiler)
      :ok
    end

    doctest Mx.Nx.Compiler
    doctest Nx.Defn
    doctest Nx.Defn.Kernel
    require Mx.NxDoctests
    Mx.NxDoctests.doctests(Nx.LinAlg, Mx.NxDoctestExclusions.names())
  end
end
