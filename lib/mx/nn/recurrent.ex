defmodule Mx.NN.RNN do
  @moduledoc """
  An Elman recurrent layer over a sequence, batch first: for `x` of shape
  `{batch, length, input_dims}` (or `{length, input_dims}`),
  `hₜ = tanh(xₜ Wxhᵀ + hₜ₋₁ Whhᵀ + bias)` (`nonlinearity:`, default
  `&Mx.tanh/1`), returning every `hₜ`: `{batch, length, hidden_dims}`.
  Options: `input_dims:`, `hidden_dims:` (required by `init/2`), `bias:`
  (default true), `type:`, and for `apply/3` `hidden:` (the initial state,
  default zeros). Parameters (MLX's names) `%{Wxh: {hidden, input}, Whh:
  {hidden, hidden}, bias: {hidden}}`, uniform in `±1/√hidden_dims`.
  """

  @keys [:input_dims, :hidden_dims, :nonlinearity, :hidden, bias: true, type: :f32]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.RNN.init")
    Mx.NN.Recurrent.init(key, opts, 1, "Mx.NN.RNN.init", {:Wxh, :Whh, :bias})
  end

  @doc "All hidden states (see the module doc)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.RNN.apply")
    f = opts[:nonlinearity] || (&Mx.tanh/1)
    xs = Mx.NN.Recurrent.project(x, params[:Wxh], params[:bias])

    Mx.NN.Recurrent.scan(xs, opts[:hidden], params[:Whh], fn xt, h ->
      h = f.(if h, do: Mx.add(xt, Mx.matmul(h, Mx.transpose(params[:Whh]))), else: xt)
      {h, h}
    end)
  end
end

defmodule Mx.NN.GRU do
  @moduledoc """
  A gated recurrent unit over a sequence, batch first (MLX's `nn.GRU`,
  PyTorch's equations): with `x` projected as `xₜ Wxᵀ + b` into reset,
  update and candidate parts `(r, z, n)`,

      r = σ(x_r + h Wh_rᵀ),  z = σ(x_z + h Wh_zᵀ)
      n = tanh(x_n + r ⊙ (h Wh_nᵀ + bhn)),  h' = (1 - z) ⊙ n + z ⊙ h

  returning every `hₜ`: `{batch, length, hidden_dims}`. Options and
  `hidden:` as `Mx.NN.RNN`. Parameters `%{Wx: {3H, input}, Wh: {3H, H},
  b: {3H}, bhn: {H}}`, uniform in `±1/√H` (PyTorch's `b_ih + b_hh` for the
  r and z rows is `b`; its `b_hn` is `bhn`).
  """

  @keys [:input_dims, :hidden_dims, :hidden, bias: true, type: :f32]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.GRU.init")
    [k_gates, k_bhn] = Mx.NN.split_keys(key, 2)
    p = Mx.NN.Recurrent.init(k_gates, opts, 3, "Mx.NN.GRU.init", {:Wx, :Wh, :b})
    h = opts[:hidden_dims]

    if opts[:bias],
      do: Map.put(p, :bhn, Mx.NN.uniform_init(k_bhn, {h}, 1 / :math.sqrt(h), opts[:type])),
      else: p
  end

  @doc "All hidden states (see the module doc)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.GRU.apply")
    xs = Mx.NN.Recurrent.project(x, params[:Wx], params[:b])
    hd = elem(params[:Wh].shape, 1)
    wh_t = Mx.transpose(params[:Wh])
    part = fn a, i -> Mx.slice_axis(a, i * hd, hd, Mx.rank(a) - 1) end

    Mx.NN.Recurrent.scan(xs, opts[:hidden], params[:Wh], fn xt, h ->
      {xr, xz, xn} = {part.(xt, 0), part.(xt, 1), part.(xt, 2)}

      h_new =
        if h do
          hh = Mx.matmul(h, wh_t)
          r = Mx.sigmoid(Mx.add(xr, part.(hh, 0)))
          z = Mx.sigmoid(Mx.add(xz, part.(hh, 1)))
          hn = if b = params[:bhn], do: Mx.add(part.(hh, 2), b), else: part.(hh, 2)
          n = Mx.tanh(Mx.add(xn, Mx.multiply(r, hn)))
          Mx.add(Mx.multiply(Mx.subtract(1, z), n), Mx.multiply(z, h))
        else
          # h = 0: the recurrent terms vanish but bhn (inside r ⊙ ...) does not.
          r = Mx.sigmoid(xr)
          z = Mx.sigmoid(xz)
          n = if b = params[:bhn], do: Mx.tanh(Mx.add(xn, Mx.multiply(r, b))), else: Mx.tanh(xn)
          Mx.multiply(Mx.subtract(1, z), n)
        end

      {h_new, h_new}
    end)
  end
end

defmodule Mx.NN.LSTM do
  @moduledoc """
  A long short-term memory layer over a sequence, batch first (MLX's
  `nn.LSTM`, PyTorch's gate order input, forget, cell, output):

      (i, f, g, o) = xₜ Wxᵀ + h Whᵀ + bias
      c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g),  h' = σ(o) ⊙ tanh(c')

  Returns `{hidden, cell}`, every step's states, each `{batch, length,
  hidden_dims}`. Options as `Mx.NN.RNN`, with `hidden:` and `cell:` the
  initial states (default zeros). Parameters `%{Wx: {4H, input}, Wh: {4H, H},
  bias: {4H}}`, uniform in `±1/√H` (PyTorch's `b_ih + b_hh` is `bias`).
  """

  @keys [:input_dims, :hidden_dims, :hidden, :cell, bias: true, type: :f32]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.LSTM.init")
    Mx.NN.Recurrent.init(key, opts, 4, "Mx.NN.LSTM.init", {:Wx, :Wh, :bias})
  end

  @doc "`{hidden, cell}` at every step (see the module doc)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: {Mx.Array.t(), Mx.Array.t()}
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.LSTM.apply")
    xs = Mx.NN.Recurrent.project(x, params[:Wx], params[:bias])
    hd = elem(params[:Wh].shape, 1)
    wh_t = Mx.transpose(params[:Wh])
    part = fn a, i -> Mx.slice_axis(a, i * hd, hd, Mx.rank(a) - 1) end

    {hs, cs} =
      Mx.NN.Recurrent.scan(xs, {opts[:hidden], opts[:cell]}, params[:Wh], fn xt, {h, c} ->
        g = if h, do: Mx.add(xt, Mx.matmul(h, wh_t)), else: xt

        {i, f, gg, o} =
          {Mx.sigmoid(part.(g, 0)), Mx.sigmoid(part.(g, 1)), Mx.tanh(part.(g, 2)),
           Mx.sigmoid(part.(g, 3))}

        c = if c, do: Mx.add(Mx.multiply(f, c), Mx.multiply(i, gg)), else: Mx.multiply(i, gg)
        h = Mx.multiply(o, Mx.tanh(c))
        {{h, c}, {h, c}}
      end)

    {hs, cs}
  end
end

defmodule Mx.NN.Recurrent do
  @moduledoc false
  # Shared by RNN, GRU and LSTM.

  def init(key, opts, gates, where, {wx, wh, b}) do
    i = Mx.NN.required!(opts, :input_dims, where)
    h = Mx.NN.required!(opts, :hidden_dims, where)
    [k1, k2, k3] = Mx.NN.split_keys(key, 3)
    scale = 1 / :math.sqrt(h)

    p = %{
      wx => Mx.NN.uniform_init(k1, {gates * h, i}, scale, opts[:type]),
      wh => Mx.NN.uniform_init(k2, {gates * h, h}, scale, opts[:type])
    }

    if opts[:bias],
      do: Map.put(p, b, Mx.NN.uniform_init(k3, {gates * h}, scale, opts[:type])),
      else: p
  end

  # The input projection of every step at once: {..., length, gates·H}.
  def project(x, w, b) do
    if Mx.rank(x) not in [2, 3],
      do:
        raise(
          ArgumentError,
          "recurrent layers take {batch, length, features} or {length, features}, got #{Mx.describe(x)}"
        )

    y = Mx.matmul(x, Mx.transpose(w))
    if b, do: Mx.add(y, b), else: y
  end

  # Runs step.(x_t, state) -> {out, state} over the length axis (rank - 2); a nil state is zero.
  # Outputs (arrays or tuples of arrays) are stacked along that axis.
  def scan(xs, state, _wh, step) do
    axis = Mx.rank(xs) - 2
    len = elem(xs.shape, axis)

    {outs, _} =
      Enum.map_reduce(0..(len - 1)//1, state, fn t, st ->
        xt = xs |> Mx.slice_axis(t, 1, axis) |> Mx.squeeze(axes: [axis])
        step.(xt, st)
      end)

    case outs do
      [{_, _} | _] ->
        outs
        |> Enum.unzip()
        |> then(fn {a, b} -> {Mx.stack(a, axis: axis), Mx.stack(b, axis: axis)} end)

      _ ->
        Mx.stack(outs, axis: axis)
    end
  end
end
