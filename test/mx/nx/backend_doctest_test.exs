if Code.ensure_loaded?(Mx.Nx.Backend) do
  defmodule Mx.Nx.BackendDoctestTest do
    # Nx's own doctests (Nx 0.7.3: 946 in Nx, 112 in Nx.LinAlg) on Mx.Nx.Backend: the backend's
    # conformance test. ExUnit excludes whole functions, so each entry drops all of that
    # function's doctests; the list and its reasons are in test/support/nx_doctest_exclusions.ex.
    use ExUnit.Case, async: true

    setup do
      Nx.default_backend(Mx.Nx.Backend)
      :ok
    end

    doctest Nx, except: Mx.NxDoctestExclusions.nx()
    doctest Nx.LinAlg, except: Mx.NxDoctestExclusions.linalg()
  end
end
