if Code.ensure_loaded?(Mx.Nx.Backend) do
  defmodule Mx.Nx.BackendDoctestTest do
    # Nx's own doctests (Nx 0.7.3: 946 in Nx, 112 in Nx.LinAlg) on Mx.Nx.Backend: the backend's
    # conformance test. The few it does not pass are listed one by one, with their reasons, in
    # test/support/nx_doctest_exclusions.ex.
    use ExUnit.Case, async: true
    require Mx.NxDoctests

    setup do
      Nx.default_backend(Mx.Nx.Backend)
      :ok
    end

    Mx.NxDoctests.doctests(Nx, Mx.NxDoctestExclusions.names())
    Mx.NxDoctests.doctests(Nx.LinAlg, Mx.NxDoctestExclusions.names())

    test "fewer than 50 of Nx's 1058 doctests are excluded, each by name" do
      all = Enum.map(ExUnit.DocTest.__doctests__(Nx, []) ++ ExUnit.DocTest.__doctests__(Nx.LinAlg, []), &elem(&1, 0))
      assert length(all) == 1058
      excluded = Mx.NxDoctestExclusions.names()
      assert excluded -- all == [], "every exclusion names an existing doctest"
      assert length(excluded) < 50
    end
  end
end
