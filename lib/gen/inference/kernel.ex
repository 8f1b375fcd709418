defmodule Gen.Inference.Kernel do
  @moduledoc """
  Kernels as values, and their composition. A kernel is a function
  `fn trace, opts -> {new_trace, accepted?} end` taking `key:` in `opts`;
  it must leave the posterior invariant. Composites split their key between
  their parts, and report `accepted?` as true when any part accepted (the
  trace changed).

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> k = Gen.Inference.Kernel.repeat(Gen.Inference.Kernel.mh(Gen.select(:x)), 3)
      iex> {t2, acc} = k.(t, key: Mx.Random.key(1))
      iex> {is_boolean(acc), Gen.get_gen_fn(t2) == m}
      {true, true}
  """

  alias Gen.{Selection, Trace}

  @type t :: (Trace.t(), keyword() -> {Trace.t(), boolean()})

  @doc """
  The MH kernel with a selection (`Gen.Inference.mh/3`), or with a custom
  proposal `q` on `[trace | q_args]` (`Gen.Inference.mh/4`).

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> q = gen fn t -> trace(:x, Gen.Dist.normal(t[:x], 0.5)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> {_, acc} = Gen.Inference.Kernel.mh(q, []).(t, key: Mx.Random.key(2))
      iex> is_boolean(acc)
      true
  """
  @spec mh(Selection.t()) :: t()
  def mh(%Selection{} = sel), do: fn trace, opts -> Gen.Inference.mh(trace, sel, opts) end

  def mh(other),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.Kernel.mh/1 expects a Gen.Selection (Gen.select/1), got #{inspect(other)}"
      )

  @spec mh(Gen.gen_fn(), [term()]) :: t()
  def mh(q, q_args) when is_list(q_args),
    do: fn trace, opts -> Gen.Inference.mh(trace, q, q_args, opts) end

  @doc """
  The Gibbs kernel on the discrete choice at `address`
  (`Gen.Inference.gibbs/3`); `opts` (`values:`) are merged under the
  caller's (`key:`).

      iex> import Gen
      iex> m = gen fn -> trace(:z, Gen.Dist.categorical([0.2, 0.8])) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> {t2, true} = Gen.Inference.Kernel.gibbs(:z, values: 0..1).(t, key: Mx.Random.key(1))
      iex> Mx.to_number(t2[:z]) in [0, 1]
      true
  """
  @spec gibbs(Gen.Choicemap.path(), keyword()) :: t()
  def gibbs(address, opts \\ []) when is_list(opts) do
    Mx.Opts.validate!(opts, Gen.Inference.Gibbs.options(), "Gen.Inference.Kernel.gibbs")
    fn trace, call_opts -> Gen.Inference.gibbs(trace, address, Keyword.merge(opts, call_opts)) end
  end

  @doc """
  The elliptical slice kernel on the continuous choice at `address` with
  Gaussian prior `mean:`, `cov:` (`Gen.Inference.elliptical_slice/3`).

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(1.0, 0.5)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> {_t2, true} = Gen.Inference.Kernel.elliptical_slice(:x, mean: 1.0, cov: 0.25).(t, key: Mx.Random.key(1))
  """
  @spec elliptical_slice(Gen.Choicemap.path(), keyword()) :: t()
  def elliptical_slice(address, opts) when is_list(opts) do
    Mx.Opts.validate!(opts, Gen.Inference.EllipticalSlice.options(), "Gen.Inference.Kernel.elliptical_slice")
    fn trace, call_opts -> Gen.Inference.elliptical_slice(trace, address, Keyword.merge(opts, call_opts)) end
  end

  @doc """
  The involutive MCMC kernel (`Gen.Inference.involutive_mh/5`) with
  auxiliary proposal `q` on `[trace | q_args]` and `involution`; `opts`
  (`check:`) are merged under the caller's.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> q = gen fn _t -> trace(:d, Gen.Dist.normal(0.0, 1.0)) end
      iex> inv = fn m, a, _ -> {%{x: Mx.add(m[:x], a[:d])}, %{d: Mx.negate(a[:d])}} end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> {_t2, acc} = Gen.Inference.Kernel.involutive_mh(q, [], inv).(t, key: Mx.Random.key(1))
      iex> is_boolean(acc)
      true
  """
  @spec involutive_mh(Gen.gen_fn(), [term()], function(), keyword()) :: t()
  def involutive_mh(q, q_args, involution, opts \\ []) when is_list(q_args) and is_list(opts) do
    Mx.Opts.validate!(opts, Gen.Inference.Involutive.options(), "Gen.Inference.Kernel.involutive_mh")

    fn trace, call_opts ->
      Gen.Inference.involutive_mh(trace, q, q_args, involution, Keyword.merge(opts, call_opts))
    end
  end

  @doc """
  Applies `kernels` one after the other.

      iex> import Gen
      iex> m = gen fn -> {trace(:a, Gen.Dist.normal(0.0, 1.0)), trace(:b, Gen.Dist.normal(0.0, 1.0))} end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> k = Gen.Inference.Kernel.chain([Gen.Inference.Kernel.mh(Gen.select(:a)), Gen.Inference.Kernel.mh(Gen.select(:b))])
      iex> {_t, acc} = k.(t, key: Mx.Random.key(3))
      iex> is_boolean(acc)
      true
  """
  @spec chain([t()]) :: t()
  def chain(kernels) do
    kernels!(kernels, "chain/1")

    fn trace, opts ->
      keys = keys(opts, length(kernels))

      Enum.zip(kernels, keys)
      |> Enum.reduce({trace, false}, fn {k, key_opts}, {t, any?} ->
        {t2, acc} = call!(k, t, Keyword.merge(opts, key_opts))
        {t2, any? or acc}
      end)
    end
  end

  @doc """
  A systematic scan: `sweeps` passes over `kernels` in order
  (`repeat(chain(kernels), sweeps)`).

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> {_t, acc} = Gen.Inference.Kernel.cycle([Gen.Inference.Kernel.mh(Gen.select(:x))], 2).(t, key: Mx.Random.key(4))
      iex> is_boolean(acc)
      true
  """
  @spec cycle([t()], pos_integer()) :: t()
  def cycle(kernels, sweeps \\ 1), do: repeat(chain(kernels), sweeps)

  @doc """
  Applies one of `kernels`, chosen at random with probabilities
  proportional to `weights` (positive numbers). A mixture of invariant
  kernels with fixed weights is invariant.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> stay = fn t, _opts -> {t, false} end
      iex> {t2, acc} = Gen.Inference.Kernel.mix([stay, Gen.Inference.Kernel.mh(Gen.select(:x))], [1.0, 0.0]).(t, key: Mx.Random.key(5))
      iex> {t2 == t, acc}
      {true, false}
  """
  @spec mix([t()], [number()]) :: t()
  def mix(kernels, weights) do
    kernels!(kernels, "mix/2")

    unless is_list(weights) and length(weights) == length(kernels) and
             Enum.all?(weights, &(is_number(&1) and &1 >= 0)) and
             Enum.sum(weights) > 0 do
      raise ArgumentError,
            "Gen.Inference.Kernel.mix/2: weights must be #{length(kernels)} non-negative numbers, not all zero, one per kernel; got #{inspect(weights)}"
    end

    total = Enum.sum(weights)
    # Cumulative probabilities, so the choice is one uniform draw.
    cdf = weights |> Enum.scan(&(&1 + &2)) |> Enum.map(&(&1 / total))

    fn trace, opts ->
      [pick_opts, run_opts] = keys(opts, 2)
      k_pick = Keyword.get(pick_opts, :key) || Gen.next_key()
      u = k_pick |> Mx.Random.uniform(type: :f64) |> Mx.to_number()
      i = Enum.find_index(cdf, &(u < &1)) || length(kernels) - 1
      call!(Enum.at(kernels, i), trace, Keyword.merge(opts, run_opts))
    end
  end

  @doc """
  Applies `kernel` `n` times.

      iex> import Gen
      iex> m = gen fn -> trace(:x, Gen.Dist.normal(0.0, 1.0)) end
      iex> t = Gen.simulate(m, [], key: Mx.Random.key(0))
      iex> {_t, acc} = Gen.Inference.Kernel.repeat(Gen.Inference.Kernel.mh(Gen.select(:x)), 5).(t, key: Mx.Random.key(6))
      iex> acc
      true
  """
  @spec repeat(t(), pos_integer()) :: t()
  def repeat(kernel, n) when is_integer(n) and n >= 1 do
    kernels!([kernel], "repeat/2")

    fn trace, opts ->
      keys = keys(opts, n)

      Enum.reduce(keys, {trace, false}, fn key_opts, {t, any?} ->
        {t2, acc} = call!(kernel, t, Keyword.merge(opts, key_opts))
        {t2, any? or acc}
      end)
    end
  end

  def repeat(_kernel, n),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.Kernel.repeat/2: n must be a positive integer, got #{inspect(n)}"
      )

  @doc false
  # Runs a kernel and checks it kept the contract.
  @spec call!(t(), Trace.t(), keyword()) :: {Trace.t(), boolean()}
  def call!(kernel, trace, opts) do
    case kernel.(trace, opts) do
      {%Trace{}, acc} = out when is_boolean(acc) ->
        out

      other ->
        raise ArgumentError,
              "Gen.Inference: a kernel must return {new_trace, accepted?} with accepted? a boolean, got #{inspect(other)}"
    end
  end

  # Per-part key options: split the caller's key, or none (each part then draws Gen.next_key/0).
  defp keys(opts, n) do
    case Keyword.fetch(opts, :key) do
      {:ok, k} -> for i <- 0..(n - 1), do: [key: Mx.Random.fold_in(k, i)]
      :error -> List.duplicate([], n)
    end
  end

  defp kernels!(kernels, where) do
    unless is_list(kernels) and kernels != [] and Enum.all?(kernels, &is_function(&1, 2)) do
      raise ArgumentError,
            "Gen.Inference.Kernel.#{where}: expected kernels, functions fn trace, opts -> {trace, accepted?} end, got #{inspect(kernels)}"
    end
  end
end
