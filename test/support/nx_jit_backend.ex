if Code.ensure_loaded?(Mx.Nx.Compiler) do
  defmodule Mx.Nx.JitBackend do
    @moduledoc false
    # A test backend that runs every tensor-computing callback as `Nx.Defn.jit` of the same
    # callback on Nx.Defn.Expr with Mx.Nx.Compiler (EXLA.Backend's shape), so Nx's own
    # doctests check the compiler path. Tensors hold Mx.Nx.Backend data in `inner`.
    @behaviour Nx.Backend
    defstruct [:inner]

    alias Nx.Tensor, as: T

    # Callbacks with no tensor input, on the host side of a tensor, or taking an Elixir function
    # (optional's default implementation: its ops come back here one by one).
    @direct [
      init: 1,
      constant: 3,
      from_binary: 3,
      eye: 2,
      iota: 3,
      to_binary: 2,
      inspect: 2,
      backend_copy: 3,
      backend_transfer: 3,
      backend_deallocate: 1,
      to_batched: 3,
      reduce: 5,
      window_reduce: 6,
      map: 4,
      optional: 3
    ]

    Code.ensure_compiled!(Nx.Defn.Expr)
    Code.ensure_compiled!(Mx.Nx.Backend)
    # Optional callbacks Mx.Nx.Backend leaves out stay out, so Nx reaches them through optional/3.
    optional = Nx.Backend.behaviour_info(:optional_callbacks)

    for {name, arity} <- Nx.Backend.behaviour_info(:callbacks),
        {name, arity} not in optional or function_exported?(Mx.Nx.Backend, name, arity) do
      args = Macro.generate_arguments(arity, __MODULE__)

      # Nx.Defn.Expr lacks a few optional callbacks (solve): Nx calls them only through optional/3.
      if {name, arity} in @direct or not function_exported?(Nx.Defn.Expr, name, arity) do
        @impl true
        def unquote(name)(unquote_splicing(args)),
          do: direct(unquote(name), unquote(args))
      else
        @impl true
        def unquote(name)(unquote_splicing(args)),
          do: jit(unquote(name), unquote(args))
      end
    end

    defp direct(:init, [opts]), do: Mx.Nx.Backend.init(opts)
    defp direct(:backend_copy, [t, __MODULE__, _opts]), do: t
    defp direct(:backend_transfer, [t, __MODULE__, _opts]), do: t
    # Where Mx.Nx.Backend falls back to Nx's default implementation, it runs on this backend.
    defp direct(:optional, [name, args, fun]) do
      default = fn unwrapped -> apply(fun, wrap(unwrapped)) |> unwrap() end

      fallback =
        case length(args) do
          1 -> fn a -> default.([a]) end
          2 -> fn a, b -> default.([a, b]) end
          3 -> fn a, b, c -> default.([a, b, c]) end
          4 -> fn a, b, c, d -> default.([a, b, c, d]) end
        end

      Mx.Nx.Backend.optional(name, unwrap(args), fallback) |> wrap()
    end

    defp direct(name, args) do
      backend = fn
        __MODULE__ -> Mx.Nx.Backend
        other -> other
      end

      args = Enum.map(args, fn a -> if is_atom(a), do: backend.(a), else: unwrap(a) end)
      apply(Mx.Nx.Backend, name, args) |> wrap()
    end

    # The callback's tensor arguments (top level, or in a top-level list; not `out`, the result's
    # template) become the jitted function's parameters; the rest is part of the expression.
    # The closure holds only templates, so equal calls make equal functions (cache hits).
    defp jit(name, [out | args] = all) do
      tensors = Enum.flat_map(args, &tensors/1)

      if tensors == [] do
        direct(name, all)
      else
        skeleton = Enum.map(args, &skeleton/1)
        out = template(out)

        fun = fn params ->
          {args, []} = Enum.map_reduce(skeleton, Tuple.to_list(params), &fill/2)
          apply(Nx.Defn.Expr, name, [out | args])
        end

        Nx.Defn.jit_apply(fun, [List.to_tuple(Enum.map(tensors, &unwrap/1))], compiler: Mx.Nx.Compiler)
        |> wrap()
      end
    end

    defp template(%T{} = t), do: %{t | data: nil}
    defp template(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.map(&template/1) |> List.to_tuple()

    defp tensors(%T{} = t), do: [t]
    defp tensors(list) when is_list(list), do: Enum.filter(list, &match?(%T{}, &1))
    defp tensors(_), do: []

    defp skeleton(%T{}), do: :param
    defp skeleton(list) when is_list(list), do: Enum.map(list, &if(match?(%T{}, &1), do: :param, else: &1))
    defp skeleton(other), do: other

    defp fill(:param, [p | rest]), do: {p, rest}
    defp fill(list, params) when is_list(list), do: Enum.map_reduce(list, params, &fill/2)
    defp fill(other, params), do: {other, params}

    defp unwrap(%T{data: %__MODULE__{inner: inner}} = t), do: %{t | data: inner}
    defp unwrap(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.map(&unwrap/1) |> List.to_tuple()
    defp unwrap(list) when is_list(list), do: Enum.map(list, &unwrap/1)
    defp unwrap(other), do: other

    defp wrap(%T{data: %Mx.Nx.Backend{} = inner} = t), do: %{t | data: %__MODULE__{inner: inner}}
    defp wrap(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.map(&wrap/1) |> List.to_tuple()
    defp wrap(list) when is_list(list), do: Enum.map(list, &wrap/1)
    defp wrap(other), do: other
  end
end
