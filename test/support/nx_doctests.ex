if Code.ensure_loaded?(Nx) do
  defmodule Mx.NxDoctests do
    @moduledoc false
    # Nx's doctests one by one: ExUnit's `doctest/2` can only exclude whole functions, so a
    # function with one doctest Mx cannot pass would drop all of its others.

    @doc "Defines a test per doctest of `module` whose name (\"Nx.qr/2 (3)\") is not in `except`."
    defmacro doctests(module, except) do
      quote bind_quoted: [module: module, except: except] do
        file = ExUnit.DocTest.__file__(module)

        for {name, test} <- ExUnit.DocTest.__doctests__(module, []), name not in except do
          @file file
          doc = ExUnit.Case.register_test(__ENV__, :doctest, name, [])
          def unquote(doc)(_), do: unquote(test)
        end
      end
    end
  end
end
