if Code.ensure_loaded?(Nx.Backend) do
  defmodule Mx.Nx.Backend do
    @moduledoc """
    An `Nx.Backend` on Mx: Nx code runs on the engine's lazy graph.

        iex> Nx.default_backend(Mx.Nx.Backend)
        iex> t = Nx.add(Nx.tensor([1.0, 2.0]), 1)
        iex> t.data.__struct__
        Mx.Nx.Backend
        iex> Nx.to_flat_list(t)
        [2.0, 3.0]

    `Mx.to_nx/1` and `Mx.from_nx/1` move arrays between the two APIs without
    copying data (a tensor of another backend is copied once, through its
    binary); `Nx.backend_transfer/2` and `Nx.backend_copy/2` go both ways.

    ## Laziness and Nx's eager contract

    Each callback converts its inputs, calls Mx ops and wraps the result: it
    returns at once with a lazy array, and values are computed when read
    (`Nx.to_binary/1`, `Nx.to_number/1`, inspecting the tensor, ...), so a
    chain of Nx calls runs as one Mx graph. Every shape, type and option
    error that Nx checks before calling the backend, and every one Mx checks
    when building an op, raises at the call, as with any backend. Errors that
    depend on the values (an index out of bounds in `take`/`gather`, a LAPACK
    failure such as a matrix that is not positive definite) raise `Mx.Error`
    when the result is read, naming the op. Tensor start indices of
    `slice`/`put_slice` stay in the graph (gathers clamped as Nx clamps).

    ## Types

    Nx types map one to one onto Mx dtypes: `{:s, 8..64}`, `{:u, 8..64}`,
    `{:f, 16}`, `{:bf, 16}`, `{:f, 32}`, `{:f, 64}`, `{:c, 64}`, `{:c, 128}`.
    Nx has no boolean type: comparisons and logical ops come back as `{:u, 8}`
    (Mx's `:bool` results are converted). Every callback gives its result the
    type Nx chose (the `out` template), converting inputs first where Nx's
    BinaryBackend computes in the output type.

    ## Host fallbacks and what is not supported yet

    `reduce/5`, `window_reduce/6` and `map/4` take an Elixir function, which
    the engine cannot run: they copy the tensor to `Nx.BinaryBackend`, run
    there, and copy the result back.

    For complex tensors, the functions Mx has no complex kernel for
    (`sin`, `cos`, `tan`, their inverses and hyperbolic forms, `expm1`,
    `log1p`, `sigmoid`, `rsqrt`, `pow`, `sign`) and complex linear algebra
    other than `lu` (and through it `determinant`) raise `Mx.Error` at the
    call, naming the op.

    Where Nx leaves integer results undefined, Mx defines them (see
    `Mx.left_shift/2`, `Mx.right_shift/2`, `Mx.quotient/2`): a shift count
    that is negative or at least the bit width shifts every bit out (XLA's
    rule), and `quotient` by 0 gives 0 (`Nx.BinaryBackend` raises).

    ## Linear algebra

    LAPACK computes the factorizations (`Mx.Linalg`). `qr` returns them in
    the sign convention of Nx's Householder QR (R's diagonal positive where
    a column is reflected), so results match Nx's; `lu` pivots as LAPACK's
    getrf (partial pivoting on the eliminated columns), where Nx pivots on
    the input's columns, so `p` can differ for singular matrices. The
    determinant of `f32` matrices is computed in `f64` and rounded once, as
    Nx computes it.

    `asinh`, `acosh` and `atanh` compute in `f64` and round once to the
    output type, as Nx's BinaryBackend does; Mx has no `cbrt` kernel yet:
    that callback composes Mx ops in `f64`.
    """

    @behaviour Nx.Backend
    import Kernel, except: [inspect: 2]

    @enforce_keys [:array]
    defstruct [:array]

    alias Nx.Tensor, as: T
    alias Mx.Array

    @type t :: %__MODULE__{array: Array.t()}

    # ---- conversion ------------------------------------------------------------------

    @doc """
    The Mx array behind an Nx tensor: the same array for a tensor of this
    backend, a copy through the binary for any other backend.

        iex> Mx.Nx.Backend.from_nx(Nx.tensor([1, 2], backend: Nx.BinaryBackend)) |> Mx.to_list()
        [1, 2]
    """
    @spec from_nx(T.t()) :: Array.t()
    def from_nx(%T{data: %__MODULE__{array: a}}), do: a

    def from_nx(%T{} = t) do
      Mx.from_binary(Nx.to_binary(t), mx_type(t.type), shape: t.shape)
    end

    @doc """
    An Nx tensor of this backend holding `array` (no copy). Mx's `:bool`
    arrays become `{:u, 8}` tensors, as Nx has no boolean type.

        iex> Mx.Nx.Backend.to_nx(Mx.tensor([1.5])) |> Nx.to_flat_list()
        [1.5]
    """
    @spec to_nx(Array.t()) :: T.t()
    def to_nx(%Array{type: :bool} = a), do: to_nx(Mx.as_type(a, :u8))

    def to_nx(%Array{shape: shape, type: type} = a) do
      %T{
        data: %__MODULE__{array: a},
        shape: shape,
        type: Mx.Type.to_nx(type),
        names: List.duplicate(nil, tuple_size(shape))
      }
    end

    defp mx_type(type), do: Mx.Type.normalize!(type)

    defp arr(%T{} = t), do: from_nx(t)
    defp arr(%T{} = t, type), do: t |> from_nx() |> cast(mx_type(type))

    defp cast(%Array{type: type} = a, type), do: a
    defp cast(%Array{} = a, type), do: Mx.as_type(a, type)

    # The result of a callback: `out`'s shape and type, holding `a`.
    defp wrap(%T{shape: shape, type: type} = out, %Array{} = a) do
      a = cast(a, mx_type(type))

      if a.shape != shape do
        raise ArgumentError,
              "Mx.Nx.Backend: internal shape mismatch, #{Mx.describe(a)} for an Nx output of shape " <>
                "#{Kernel.inspect(shape)} (a bug in Mx.Nx.Backend; please report it)"
      end

      %{out | data: %__MODULE__{array: a}}
    end

    defp unsupported!(callback, why) do
      raise ArgumentError,
            "Mx.Nx.Backend does not support Nx.Backend.#{callback} yet: #{why}. " <>
              "Transfer the tensor to another backend (Nx.backend_transfer/2) for this operation"
    end

    # ---- creation -----------------------------------------------------------------------

    @impl true
    def init(opts) do
      if opts != [] do
        raise ArgumentError, "Mx.Nx.Backend takes no backend options, got #{Kernel.inspect(opts)}"
      end

      opts
    end

    @impl true
    def constant(%T{shape: shape, type: type} = out, %Complex{re: re, im: im}, _opts) do
      part = Mx.Type.real_part(mx_type(type))
      wrap(out, Mx.complex(Mx.full(shape, re, type: part), Mx.full(shape, im, type: part)))
    end

    def constant(%T{shape: shape, type: type} = out, number, _opts) do
      wrap(out, Mx.full(shape, number, type: mx_type(type)))
    end

    @impl true
    def from_binary(%T{shape: shape, type: type} = out, binary, _opts) do
      wrap(out, Mx.from_binary(IO.iodata_to_binary(binary), mx_type(type), shape: shape))
    end

    @impl true
    def eye(%T{shape: shape, type: type} = out, _opts) do
      rank = tuple_size(shape)
      {n, m} = {elem(shape, rank - 2), elem(shape, rank - 1)}
      wrap(out, Mx.eye(n, m: m, type: mx_type(type)) |> Mx.broadcast(shape))
    end

    @impl true
    def iota(%T{shape: shape, type: type} = out, axis, _opts) do
      wrap(out, Mx.iota(shape, axis: axis, type: mx_type(type)))
    end

    # ---- memory and transfer ----------------------------------------------------------------

    @impl true
    def backend_deallocate(%T{data: %__MODULE__{array: a}}) do
      if Mx.NIF.state(a.ref) == :disposed, do: :already_deallocated, else: Mx.dispose(a)
    end

    # Arrays are immutable, so a copy within Mx can share the array.
    @impl true
    def backend_copy(%T{} = t, __MODULE__, _opts), do: t
    def backend_copy(%T{} = t, Nx.Tensor, _opts), do: t

    def backend_copy(%T{} = t, backend, opts),
      do: backend.from_binary(t, Mx.to_binary(arr(t)), opts)

    # The array is not disposed after a transfer: Mx arrays given out by `to_nx/1` may share it.
    @impl true
    def backend_transfer(%T{} = t, backend, opts), do: backend_copy(t, backend, opts)

    @impl true
    def to_batched(%T{shape: out_shape} = out, %T{shape: shape} = t, opts) do
      a = arr(t)
      {n, b} = {elem(shape, 0), elem(out_shape, 0)}
      full = div(n, b)
      left = rem(n, b)
      batches = for i <- 0..(full - 1)//1, do: wrap(out, Mx.slice_axis(a, i * b, b, 0))

      if left != 0 and opts[:leftover] == :repeat do
        last =
          Mx.concatenate([Mx.slice_axis(a, full * b, left, 0), Mx.slice_axis(a, 0, b - left, 0)])

        batches ++ [wrap(out, last)]
      else
        batches
      end
    end

    @impl true
    def to_binary(%T{} = t, limit) do
      bin = Mx.to_binary(arr(t))
      bytes = limit * Mx.Type.byte_size(mx_type(t.type))
      if byte_size(bin) <= bytes, do: bin, else: binary_part(bin, 0, bytes)
    end

    @impl true
    def inspect(%T{} = t, inspect_opts) do
      limit =
        if inspect_opts.limit == :infinity,
          do: Nx.size(t),
          else: min(inspect_opts.limit + 1, Nx.size(t))

      Nx.Backend.inspect(t, to_binary(t, limit), inspect_opts)
    end

    # ---- elementwise ---------------------------------------------------------------------------

    # Arithmetic computes in the output type, as Nx.BinaryBackend does.
    for op <- [:add, :subtract, :multiply, :pow, :remainder, :divide, :atan2, :min, :max] do
      @impl true
      def unquote(op)(%T{type: type} = out, l, r),
        do: wrap(out, Mx.unquote(op)(arr(l, type), arr(r, type)))
    end

    # Comparisons compute in the inputs' merged type and return {:u, 8}.
    for op <- [:equal, :not_equal, :greater, :less, :greater_equal, :less_equal] do
      @impl true
      def unquote(op)(out, l, r) do
        type = Nx.Type.merge(l.type, r.type)
        wrap(out, Mx.unquote(op)(arr(l, type), arr(r, type)))
      end
    end

    for op <- [:logical_and, :logical_or] do
      @impl true
      def unquote(op)(out, l, r), do: wrap(out, Mx.unquote(op)(arr(l), arr(r)))
    end

    @impl true
    def logical_xor(out, l, r), do: wrap(out, Mx.not_equal(truthy(arr(l)), truthy(arr(r))))

    @impl true
    def logical_not(out, t), do: wrap(out, Mx.logical_not(arr(t)))

    defp truthy(a), do: Mx.not_equal(a, 0)

    # Float functions compute in the output type (integers are converted first).
    @float_unary [:exp, :expm1, :log, :log1p, :sigmoid, :cos, :sin, :tan, :cosh, :sinh, :tanh] ++
                   [:acos, :asin, :atan, :sqrt, :rsqrt, :erf, :erfc, :erf_inv]
    for op <- @float_unary do
      @impl true
      def unquote(op)(%T{type: type} = out, t), do: wrap(out, Mx.unquote(op)(arr(t, type)))
    end

    for op <- [:negate, :sign, :ceil, :floor, :is_nan, :is_infinity, :real, :imag] do
      @impl true
      def unquote(op)(out, t), do: wrap(out, Mx.unquote(op)(arr(t)))
    end

    # Nx's BinaryBackend rounds through :erlang.round/1 (an integer), so -0.4 rounds to +0.0, not
    # C's -0.0: adding +0.0 drops a zero's sign.
    @impl true
    def round(out, t) do
      r = Mx.round(arr(t))
      wrap(out, if(Mx.Type.float?(r.type), do: Mx.add(r, 0.0), else: r))
    end

    @impl true
    def abs(out, t), do: wrap(out, Mx.abs(arr(t)))

    @impl true
    def conjugate(%T{type: type} = out, t), do: wrap(out, Mx.conjugate(arr(t, type)))

    @impl true
    def phase(out, t), do: wrap(out, Mx.angle(arr(t)))

    # asinh/acosh/atanh: Mx's rows (glibc) in f64, rounded once to the output type, as Nx's
    # BinaryBackend computes them (Erlang's :math in double); cbrt is still composed.
    for op <- [:asinh, :acosh, :atanh] do
      @impl true
      def unquote(op)(out, t), do: composed(out, t, unquote("#{op}/2"), &Mx.unquote(op)(&1))
    end

    @impl true
    def cbrt(out, t) do
      composed(out, t, "cbrt/2", fn x -> Mx.multiply(Mx.sign(x), Mx.pow(Mx.abs(x), 1 / 3)) end)
    end

    defp composed(%T{type: {:c, _}}, _t, name, _fun),
      do: unsupported!("#{name} of complex tensors", "Mx has no complex kernel for it")

    defp composed(out, t, _name, fun), do: wrap(out, fun.(arr(t, {:f, 64})))

    # Integer ops compute in the output type, as Nx.BinaryBackend does. Where Nx leaves the
    # result undefined, Mx's is documented: shift counts that are negative or >= the width shift
    # every bit out (XLA's rule), and quotient by 0 is 0 (BinaryBackend raises).
    for op <- [:bitwise_and, :bitwise_or, :bitwise_xor, :left_shift, :right_shift, :quotient] do
      @impl true
      def unquote(op)(%T{type: type} = out, l, r),
        do: wrap(out, Mx.unquote(op)(arr(l, type), arr(r, type)))
    end

    for op <- [:bitwise_not, :count_leading_zeros, :population_count] do
      @impl true
      def unquote(op)(%T{type: type} = out, t), do: wrap(out, Mx.unquote(op)(arr(t, type)))
    end

    @impl true
    def select(%T{shape: shape, type: type} = out, pred, on_true, on_false) do
      wrap(
        out,
        Mx.select(arr(pred), arr(on_true, type), arr(on_false, type)) |> Mx.broadcast(shape)
      )
    end

    @impl true
    def clip(%T{type: type} = out, t, min, max),
      do: wrap(out, Mx.clip(arr(t, type), arr(min, type), arr(max, type)))

    # ---- type and shape ---------------------------------------------------------------------------

    @impl true
    def as_type(%T{type: type} = out, t), do: wrap(out, Mx.as_type(arr(t), mx_type(type)))

    @impl true
    def bitcast(%T{type: type} = out, t), do: wrap(out, Mx.bitcast(arr(t), mx_type(type)))

    @impl true
    def reshape(%T{shape: shape} = out, t), do: wrap(out, Mx.reshape(arr(t), shape))

    @impl true
    def squeeze(%T{shape: shape} = out, t, _axes), do: wrap(out, Mx.reshape(arr(t), shape))

    # `axes` says which output axis each input axis becomes; the others are broadcast.
    @impl true
    def broadcast(out, %T{shape: in_shape} = t, shape, axes) do
      placed =
        for i <- 0..(tuple_size(shape) - 1)//1 do
          case Enum.find_index(axes, &(&1 == i)) do
            nil -> 1
            j -> elem(in_shape, j)
          end
        end

      wrap(out, arr(t) |> Mx.reshape(List.to_tuple(placed)) |> Mx.broadcast(shape))
    end

    @impl true
    def transpose(out, t, axes), do: wrap(out, Mx.transpose(arr(t), axes: axes))

    @impl true
    def pad(%T{type: type} = out, t, pad_value, config),
      do: wrap(out, Mx.pad(arr(t, type), arr(pad_value, type), config))

    @impl true
    def reverse(out, t, axes), do: wrap(out, Mx.reverse(arr(t), axes: axes))

    @impl true
    def concatenate(%T{type: type} = out, tensors, axis) do
      wrap(out, Mx.concatenate(Enum.map(tensors, &arr(&1, type)), axis: axis))
    end

    # ---- slicing and indexing ----------------------------------------------------------------------

    # Nx's lengths span the input; Mx.slice counts output elements (out's shape). Tensor starts
    # stay in the graph: each axis takes the positions start + stride * i, start clamped as Nx does.
    @impl true
    def slice(%T{shape: out_shape} = out, %T{shape: shape} = t, starts, lengths, strides) do
      if Enum.all?(starts, &is_integer/1) do
        starts = Enum.zip_with([starts, Tuple.to_list(shape), lengths], &clamp/1)
        wrap(out, Mx.slice(arr(t), starts, Tuple.to_list(out_shape), strides: strides))
      else
        steps =
          Enum.zip([starts, Tuple.to_list(shape), lengths, strides, Tuple.to_list(out_shape)])

        taken =
          steps
          |> Enum.with_index()
          |> Enum.reduce(arr(t), fn {{s, d, l, k, n}, axis}, a ->
            Mx.take(a, Mx.add(start(s, d, l), Mx.multiply(Mx.iota({n}), k)), axis: axis)
          end)

        wrap(out, taken)
      end
    end

    # A select between the input and the slice placed over it: padded into place for integer
    # starts; for tensor starts, gathered into place and masked along each axis in the graph.
    @impl true
    def put_slice(%T{shape: shape, type: type} = out, t, starts, %T{shape: slice_shape} = slice) do
      dims = Enum.zip([starts, Tuple.to_list(shape), Tuple.to_list(slice_shape)])

      {placed, mask} =
        if Enum.all?(starts, &is_integer/1) do
          config = Enum.map(dims, fn {_, d, l} = dim -> {clamp(dim), d - clamp(dim) - l, 0} end)
          zero = Mx.tensor(0, type: mx_type(type))

          {Mx.pad(arr(slice, type), zero, config),
           Mx.pad(Mx.ones(slice_shape, type: :bool), false, config)}
        else
          dims
          |> Enum.with_index()
          |> Enum.reduce({arr(slice, type), Mx.tensor(true)}, fn {{s, d, l}, axis}, {g, m} ->
            {s, p} = {start(s, d, l), Mx.iota({d})}
            inside = Mx.logical_and(Mx.greater_equal(p, s), Mx.less(p, Mx.add(s, l)))

            along =
              shape
              |> Tuple.to_list()
              |> Enum.with_index(fn di, i -> if i == axis, do: di, else: 1 end)

            g = Mx.take(g, Mx.clip(Mx.subtract(p, s), 0, l - 1), axis: axis)
            {g, Mx.logical_and(m, Mx.reshape(inside, List.to_tuple(along)))}
          end)
        end

      wrap(out, Mx.select(mask, placed, arr(t, type)))
    end

    # Nx clamps a start so that the slice fits: to 0..(d - l).
    defp clamp({s, d, l}), do: s |> Kernel.max(0) |> Kernel.min(d - l)
    defp clamp([s, d, l]), do: clamp({s, d, l})

    defp start(s, d, l) when is_integer(s), do: Mx.tensor(clamp({s, d, l}))
    defp start(%T{} = s, d, l), do: Mx.clip(arr(s, {:s, 64}), 0, d - l)

    @impl true
    def take(out, t, indices, axis), do: wrap(out, Mx.take(arr(t), index(indices), axis: axis))

    @impl true
    def take_along_axis(out, t, indices, axis),
      do: wrap(out, Mx.take_along_axis(arr(t), index(indices), axis: axis))

    # Gather over `axes`: move them to the front, where Mx.gather indexes.
    @impl true
    def gather(%T{shape: shape} = out, t, %T{shape: ishape} = indices, opts) do
      a = front(arr(t), opts[:axes])
      k = elem(ishape, tuple_size(ishape) - 1)
      rows = indices |> index() |> Mx.reshape({div(Nx.size(ishape), max(k, 1)), k})
      wrap(out, a |> Mx.gather(rows) |> Mx.reshape(shape))
    end

    @impl true
    def indexed_add(out, t, indices, updates, opts),
      do: indexed(&Mx.indexed_add/3, out, t, indices, updates, opts)

    @impl true
    def indexed_put(out, t, indices, updates, opts),
      do: indexed(&Mx.indexed_put/3, out, t, indices, updates, opts)

    defp indexed(fun, %T{type: type} = out, t, %T{shape: ishape} = indices, updates, opts) do
      rank = tuple_size(t.shape)
      axes = opts[:axes] || Enum.to_list(0..(rank - 1)//1)
      perm = axes ++ (Enum.to_list(0..(rank - 1)//1) -- axes)
      a = Mx.transpose(arr(t, type), axes: perm)
      k = elem(ishape, tuple_size(ishape) - 1)
      n = div(Nx.size(ishape), max(k, 1))
      rest = a.shape |> Tuple.to_list() |> Enum.drop(k)
      rows = indices |> index() |> Mx.reshape({n, k})
      upd = updates |> arr(type) |> Mx.reshape(List.to_tuple([n | rest]))
      wrap(out, fun.(a, rows, upd) |> Mx.transpose(axes: inverse(perm)))
    end

    defp front(a, nil), do: a

    defp front(a, axes) do
      rank = tuple_size(a.shape)
      Mx.transpose(a, axes: axes ++ (Enum.to_list(0..(rank - 1)//1) -- axes))
    end

    defp inverse(perm), do: perm |> Enum.with_index() |> Enum.sort() |> Enum.map(&elem(&1, 1))

    defp index(%T{} = t), do: arr(t, {:s, 64})

    # ---- reductions, scans, sorting -----------------------------------------------------------------

    for op <- [:sum, :product, :reduce_max, :reduce_min, :all, :any] do
      @impl true
      def unquote(op)(%T{shape: shape} = out, t, opts) do
        wrap(out, Mx.unquote(op)(arr(t), axes: opts[:axes]) |> Mx.reshape(shape))
      end
    end

    for op <- [:argmax, :argmin] do
      @impl true
      def unquote(op)(%T{shape: shape} = out, t, opts) do
        {a, axis} =
          case opts[:axis] do
            nil -> {Mx.reshape(arr(t), {Nx.size(t)}), 0}
            axis -> {arr(t), axis}
          end

        idx =
          case opts[:tie_break] || :low do
            :low ->
              Mx.unquote(op)(a, axis: axis)

            # The last of equal values: the first one counted from the end.
            :high ->
              n = elem(a.shape, axis)
              Mx.subtract(n - 1, Mx.unquote(op)(Mx.reverse(a, axes: [axis]), axis: axis))
          end

        wrap(out, Mx.reshape(idx, shape))
      end
    end

    for op <- [:cumulative_sum, :cumulative_product, :cumulative_max, :cumulative_min] do
      @impl true
      def unquote(op)(%T{type: type} = out, t, opts) do
        wrap(
          out,
          Mx.unquote(op)(arr(t, type), axis: opts[:axis], reverse: opts[:reverse] || false)
        )
      end
    end

    @impl true
    def sort(out, t, opts),
      do: wrap(out, Mx.sort(arr(t), axis: opts[:axis], direction: opts[:direction]))

    @impl true
    def argsort(out, t, opts),
      do: wrap(out, Mx.argsort(arr(t), axis: opts[:axis], direction: opts[:direction]))

    # Functions written in Elixir run on the host (see the moduledoc).
    @impl true
    def reduce(out, t, acc, opts, fun), do: on_host(out, :reduce, [t, acc, opts, fun])

    @impl true
    def window_reduce(out, t, acc, shape, opts, fun),
      do: on_host(out, :window_reduce, [t, acc, shape, opts, fun])

    @impl true
    def map(out, t, opts, fun), do: on_host(out, :map, [t, opts, fun])

    defp on_host(out, callback, args) do
      args =
        Enum.map(args, fn a ->
          if is_struct(a, T), do: Nx.backend_copy(a, Nx.BinaryBackend), else: a
        end)

      # Tensors the function builds must live on the host too.
      host =
        Nx.with_default_backend(Nx.BinaryBackend, fn ->
          apply(Nx.BinaryBackend, callback, [%{out | data: nil} | args])
        end)

      wrap(out, from_nx(host))
    end

    # ---- dot ---------------------------------------------------------------------------------------

    # A general dot: batch axes first, free axes, then contracting axes, as one batched matmul.
    @impl true
    def dot(%T{shape: shape, type: type} = out, l, l_contract, l_batch, r, r_contract, r_batch) do
      l_free = Nx.axes(l) -- (l_contract ++ l_batch)
      r_free = Nx.axes(r) -- (r_contract ++ r_batch)
      dims = fn t, axes -> Enum.reduce(axes, 1, &(elem(t.shape, &1) * &2)) end
      {b, m, k, n} = {dims.(l, l_batch), dims.(l, l_free), dims.(l, l_contract), dims.(r, r_free)}

      a = dot_operand(arr(l, type), Nx.axes(l), l_batch, l_free, l_contract, {b, m, k})
      c = dot_operand(arr(r, type), Nx.axes(r), r_batch, r_contract, r_free, {b, k, n})
      wrap(out, Mx.matmul(a, c) |> Mx.reshape(shape))
    end

    # x as {b, rows, cols} from its axes batch ++ rows ++ cols. Stored as batch ++ cols ++ rows
    # (a weight {out, in} contracted on in), it is reshaped and its last two axes swapped, which
    # the matmul reads with a transpose flag instead of a copy.
    defp dot_operand(x, axes, batch, rows, cols, {b, r, c}) do
      if batch ++ cols ++ rows == axes and batch ++ rows ++ cols != axes,
        do: x |> Mx.reshape({b, c, r}) |> Mx.transpose(axes: [0, 2, 1]),
        else: x |> Mx.transpose(axes: batch ++ rows ++ cols) |> Mx.reshape({b, r, c})
    end

    # ---- linear algebra ----------------------------------------------------------------------------

    @impl true
    def cholesky(%T{type: type} = out, t), do: wrap(out, Mx.Linalg.cholesky(arr(t, type)))

    @impl true
    def solve(%T{type: type} = out, a, b),
      do: wrap(out, Mx.Linalg.solve(arr(a, type), arr(b, type)))

    @impl true
    def triangular_solve(%T{type: type} = out, a, b, opts) do
      transform =
        case opts[:transform_a] do
          :none ->
            :none

          :transpose ->
            :transpose

          other ->
            unsupported!(
              "triangular_solve/4 with transform_a: #{Kernel.inspect(other)}",
              "Mx solves real systems only"
            )
        end

      # Narrow floats solve in f64 and round once (correctly rounded, as Nx prints them).
      work = if type in [{:f, 32}, {:f, 16}, {:bf, 16}], do: {:f, 64}, else: type

      x =
        Mx.Linalg.triangular_solve(arr(a, work), arr(b, work),
          lower: opts[:lower],
          left_side: opts[:left_side],
          transform_a: transform
        )

      wrap(out, Mx.as_type(x, mx_type(type)))
    end

    @impl true
    def eigh({w_out, v_out}, t, _opts) do
      {w, v} = Mx.Linalg.eigh(arr(t, w_out.type))
      {wrap(w_out, w), wrap(v_out, v)}
    end

    @impl true
    def svd({u_out, s_out, vt_out}, t, opts) do
      {u, s, vt} =
        Mx.Linalg.svd(arr(t, s_out.type), full_matrices: opts[:full_matrices?] != false)

      {wrap(u_out, u), wrap(s_out, s), wrap(vt_out, vt)}
    end

    @impl true
    def lu({p_out, l_out, u_out}, t, _opts) do
      {p, l, u} = Mx.Linalg.lu(arr(t, l_out.type))
      {wrap(p_out, p), wrap(l_out, l), wrap(u_out, u)}
    end

    # top_k: Mx.topk slices the argsort's indices before gathering (Nx's default gathers all).
    @impl true
    def top_k({v_out, i_out}, t, opts) do
      {v, i} = Mx.topk(arr(t), opts[:k], axis: -1)
      {wrap(v_out, v), wrap(i_out, i)}
    end

    # qr: LAPACK's factors in the sign convention of Nx's Householder QR (Nx.LinAlg.QR), so the
    # results match Nx's: its reflector maps a column to +‖x‖ (R's diagonal positive) where
    # LAPACK's maps it to -sign(x_i)‖x‖; a column already zero below the diagonal is not
    # reflected by either, nor is the last column of a square or wide matrix, whose sign
    # then makes det(D) = 1 for (Q D, D R). As Nx, |values| <= eps: become 0. Complex: Nx's.
    @impl true
    def optional(:qr, [%T{type: {:c, _}} = t, opts], fun), do: fun.(t, opts)

    def optional(:qr, [t, opts], _fun) do
      a = arr(t, Nx.Type.to_floating(t.type))
      {q, r} = Mx.Linalg.qr(a, mode: opts[:mode])
      {q, r} = nx_qr_signs(a, q, r)
      zero_small = fn x -> Mx.select(Mx.less_equal(Mx.abs(x), opts[:eps]), 0.0, x) end
      {to_nx(zero_small.(q)), to_nx(zero_small.(r))}
    end

    # det: f32 (and smaller) matrices factor in f64 and round once, as Nx computes: 48.0, not
    # 47.999996. Nx's closed forms for 2×2 and 3×3 (exact for integer entries).
    def optional(:determinant, [%T{shape: shape, type: type} = t], fun) do
      if elem(shape, tuple_size(shape) - 1) in [2, 3] or match?({:c, _}, type),
        do: fun.(t),
        else:
          to_nx(Mx.Linalg.det(arr(t, {:f, 64})) |> Mx.as_type(mx_type(Nx.Type.to_floating(type))))
    end

    def optional(_name, args, fun), do: apply(fun, args)

    defp nx_qr_signs(a, q, r) do
      rank = tuple_size(a.shape)
      {m, n} = {elem(a.shape, rank - 2), elem(a.shape, rank - 1)}
      k = Kernel.min(m, n)

      first_k = fn x ->
        Mx.slice(x, List.duplicate(0, rank - 1), Tuple.to_list(x.shape) |> List.replace_at(-1, k))
      end

      # Neither algorithm reflects the leading columns that are already zero below the diagonal.
      below = Mx.greater(Mx.iota({m, 1}), Mx.iota({1, n}))

      zero_below =
        Mx.all(Mx.logical_or(Mx.logical_not(below), Mx.equal(a, 0)), axes: [-2]) |> first_k.()

      kept = zero_below |> Mx.as_type(:u8) |> Mx.cumulative_min(axis: -1) |> Mx.not_equal(0)
      sign = r |> Mx.Linalg.diagonal() |> Mx.sign() |> then(&Mx.select(Mx.equal(&1, 0), 1.0, &1))
      d = Mx.select(kept, 1.0, sign)

      d =
        if m > n do
          d
        else
          # the last column is never reflected: its sign makes det(D) = 1
          lead =
            Mx.slice(
              d,
              List.duplicate(0, rank - 1),
              Tuple.to_list(d.shape) |> List.replace_at(-1, k - 1)
            )

          Mx.concatenate(
            [lead, Mx.product(lead, axes: [-1], keep_axes: true) |> Mx.as_type(d.type)],
            axis: -1
          )
        end

      # columns of q and rows of r beyond k (complete mode) keep their signs
      pad = fn x, len ->
        Mx.pad(x, 1.0, List.duplicate({0, 0, 0}, rank - 2) ++ [{0, len - k, 0}])
      end

      {Mx.multiply(q, Mx.new_axis(pad.(d, elem(q.shape, rank - 1)), -2)),
       Mx.multiply(r, Mx.new_axis(pad.(d, elem(r.shape, rank - 2)), -1))}
    end

    # ---- FFT ---------------------------------------------------------------------------------------

    @impl true
    def fft(out, t, opts), do: fft_op(&Mx.FFT.fft/2, out, t, opts)

    @impl true
    def ifft(out, t, opts), do: fft_op(&Mx.FFT.ifft/2, out, t, opts)

    # Nx zeroes parts whose magnitude is at most `eps:`.
    defp fft_op(fun, %T{type: type} = out, t, opts) do
      z = fun.(arr(t, type), axis: opts[:axis], n: opts[:length])
      eps = opts[:eps]
      small = fn x -> Mx.select(Mx.less_equal(Mx.abs(x), eps), 0.0, x) end
      wrap(out, Mx.complex(small.(Mx.real(z)), small.(Mx.imag(z))))
    end
  

    # ---- convolution and window reductions (Mx.Conv) -------------------------------------------------

    # Nx hands over explicit per-axis lists and normalized permutations; Mx.Conv takes the same.
    @impl true
    def conv(%T{type: type} = out, t, kernel, opts) do
      keys = [:strides, :padding, :input_dilation, :kernel_dilation, :feature_group_size, :batch_group_size,
              :input_permutation, :kernel_permutation, :output_permutation]

      wrap(out, Mx.conv(arr(t, type), arr(kernel, type), Keyword.take(opts, keys)))
    end

    for op <- [:window_sum, :window_product, :window_max, :window_min] do
      @impl true
      def unquote(op)(%T{type: type} = out, t, window_dimensions, opts) do
        opts = Keyword.take(opts, [:strides, :padding, :window_dilations])
        wrap(out, apply(Mx, unquote(op), [arr(t, type), window_dimensions, opts]))
      end
    end

    for op <- [:window_scatter_max, :window_scatter_min] do
      @impl true
      def unquote(op)(%T{type: type} = out, t, source, init_value, window_dimensions, opts) do
        opts = Keyword.take(opts, [:strides, :padding])
        args = [arr(t, type), arr(source, type), arr(init_value, type), window_dimensions, opts]
        wrap(out, apply(Mx, unquote(op), args))
      end
    end
  end
end
