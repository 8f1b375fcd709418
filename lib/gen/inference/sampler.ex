defmodule Gen.Inference.Sampler do
  @moduledoc false
  # The Elixir side of the C samplers (c_src/sampler.c): NUTS, static HMC and MALA with
  # Stan's warmup run whole in C on an engine thread. The log density comes from a
  # compiled tape replayed in C, or from an Elixir function the run asks for each
  # gradient: both go through the same C trajectory code (one algorithm), and with the
  # same key and density they give the same draws.

  import Bitwise
  alias Mx.NIF

  @where "Gen.Inference.Sampler.run"

  @typedoc "Per-iteration statistics, with the keys of `Gen.Inference.NUTS`'s."
  @type stats :: %{
          accept_stat: float(),
          divergent: boolean(),
          energy: float(),
          n_leapfrog: pos_integer(),
          nan_energy: boolean(),
          step_size: float(),
          tree_depth: non_neg_integer()
        }

  @doc """
  Runs a sampler with warmup on `target` and returns the draws.

  `target` is a map `%{dim: d, q0: [float], tape: tape | nil, logp_grad: fun | nil}`:
  the dimension, the starting point (d floats, unconstrained), and either a tape from
  `Mx.Compile.tape!/2` mapping an `f64[d]` vector to `{f64[] log density, f64[d]
  gradient}` (as `Mx.compile(Mx.value_and_grad(f))` does), or `logp_grad`, a function
  of `q` (a binary of d native f64) returning a binary of d + 1 native f64: the log
  density (which may be -inf or NaN), then the gradient. An `Mx.Error` raised by
  `logp_grad` rejects the point (a divergence), as `Gen.Inference.Common.at_proposal/1`
  does; memory-limit errors and any other exception cancel the run and are re-raised.
  With a tape, `logp_grad` is asked only at points where the tape's log density or
  gradient is NaN (so the caller can tell a NaN input from a parameter out of range);
  without it such a point stays NaN.

  Options (validated; unknown ones raise):

    * `algorithm:` `:nuts` (default), `:hmc` (`n_leapfrog:` steps, Metropolis
      accept) or `:mala` (one leapfrog step from a fresh momentum with the
      Metropolis correction: the proposal `q + (ε²/2) M⁻¹∇ + ε M^(-1/2) z`, Gen.jl's
      `tau = ε²/2` with a unit metric);
    * `warmup:` (1000), `samples:` (1000; 0 runs the warmup alone), `key:` (an `Mx.Random` key; `Gen.next_key/0`
      when absent), `target_accept:` (0.8), `max_depth:` (10), `step_size:` (1.0, the
      start of Stan's heuristic and μ = log(10·ε₀)), `n_leapfrog:` (10, HMC);
    * `metric:` `:diag` (default) or `:dense`; `inv_metric:` the starting inverse
      metric (d positive floats, or for `:dense` a list of d rows of d floats, symmetric
      positive definite; unit by default); `adapt_metric:` (true: learned in Stan's
      windows during warmup, Welford (co)variances regularized as Stan does);
    * `counter:` a `:counters` reference the run adds its iterations to (for a
      progress bar), or nil;
    * `callback:` a function called after every iteration with
      `%{iteration: i, warmup?: boolean, stats: stats}`.

  A short run on a tape with nothing to report (no warmup, no callback or counter: one
  HMC or MALA transition) runs in the calling process's NIF call when its gradients are
  cheap (the dirty-scheduler threshold of `Mx.eval/1`), with the same result.

  Returns `%{draws: [[float]], stats: [stats], warmup_stats: [stats], step_size:
  float, inv_metric: [float] | [[float]], last: [float]}`, draws on the unconstrained
  scale, one list per draw, and `last` the chain's point after its last iteration (the
  last draw, or where the warmup ended).

      iex> f = Mx.compile(Mx.value_and_grad(fn q -> Mx.multiply(-0.5, Mx.sum(Mx.multiply(q, q))) end))
      iex> q0 = [0.5, -0.5]
      iex> tape = Mx.Compile.tape!(f, [Mx.tensor(q0, type: :f64)])
      iex> r = Gen.Inference.Sampler.run(%{dim: 2, q0: q0, tape: tape, logp_grad: nil}, warmup: 50, samples: 20, key: Mx.Random.key(0))
      iex> {length(r.draws), length(hd(r.draws)), length(r.warmup_stats), Map.keys(hd(r.stats))}
      {20, 2, 50, [:accept_stat, :divergent, :energy, :n_leapfrog, :nan_energy, :step_size, :tree_depth]}
  """
  @spec run(map(), keyword()) :: %{
          draws: [[float()]],
          stats: [stats()],
          warmup_stats: [stats()],
          step_size: float(),
          inv_metric: [float()] | [[float()]],
          last: [float()]
        }
  def run(target, opts \\ []) do
    opts =
      Mx.Opts.validate!(
        opts,
        [
          algorithm: :nuts,
          warmup: 1000,
          samples: 1000,
          key: nil,
          target_accept: 0.8,
          max_depth: 10,
          step_size: 1.0,
          adapt_metric: true,
          metric: :diag,
          inv_metric: nil,
          n_leapfrog: 10,
          callback: nil,
          counter: nil
        ],
        @where
      )

    {d, q0, tape, logp_grad} = target!(target)
    warmup = int!(opts, :warmup, 0)
    callback = opts[:callback]

    unless callback == nil or is_function(callback, 1) do
      raise ArgumentError,
            "#{@where}: callback: must be a function of one argument (a map of the iteration's stats) or nil, got #{inspect(callback)}"
    end

    config = %{
      algorithm: one_of!(opts, :algorithm, [:nuts, :hmc, :mala]),
      d: d,
      q0: pack(q0),
      key: key!(opts[:key] || Gen.next_key()),
      warmup: warmup,
      samples: int!(opts, :samples, 0),
      target_accept: target_accept!(opts[:target_accept]),
      max_depth: int!(opts, :max_depth, 1),
      step_size: Gen.Inference.Common.positive!(opts, :step_size, 1.0, @where),
      adapt_metric: bool!(opts, :adapt_metric),
      metric: one_of!(opts, :metric, [:diag, :dense]),
      inv_metric: inv_metric!(opts[:inv_metric], opts[:metric], d),
      n_leapfrog: int!(opts, :n_leapfrog, 1),
      # every iteration for a callback, every 100 for a progress counter, else never (each
      # message wakes a scheduler, which then spins a while)
      report_every:
        cond do
          callback -> 0
          opts[:counter] -> 100
          true -> warmup + opts[:samples] + 1
        end
    }

    # A short run with nothing to report (one HMC or MALA transition on a tape) runs in the NIF
    # call when it is cheap enough; anything else on an engine thread.
    inline =
      if tape != nil and warmup == 0 and callback == nil and opts[:counter] == nil,
        do: NIF.sampler_run_inline(config, tape),
        else: :threaded

    {draws, stats, step_size, inv, last} =
      case inline do
        :threaded -> threaded(config, tape, logp_grad, callback, opts[:counter])
        {:error, message} -> raise Mx.Error, message: "#{@where}: #{message}"
        result -> result
      end

    stats = decode_stats(stats)

    %{
      draws: draws |> floats() |> Enum.chunk_every(d),
      warmup_stats: Enum.take(stats, warmup),
      stats: Enum.drop(stats, warmup),
      step_size: step_size,
      inv_metric:
        if(config.metric == :dense, do: inv |> floats() |> Enum.chunk_every(d), else: floats(inv)),
      last: floats(last)
    }
  end

  # The run on an engine thread; this process answers its gradient requests and reports.
  defp threaded(config, tape, logp_grad, callback, counter) do
    {handle, ref} = NIF.sampler_start(config, tape, self())

    try do
      loop(
        %{
          handle: handle,
          ref: ref,
          logp_grad: logp_grad,
          callback: callback,
          warmup: config.warmup,
          d: config.d,
          counter: counter
        },
        0
      )
    catch
      kind, reason ->
        NIF.sampler_cancel(handle)
        flush(ref)
        :erlang.raise(kind, reason, __STACKTRACE__)
    end

    NIF.sampler_result(handle)
  end

  # Answers gradient requests and reports iterations (to the callback, and to the progress
  # counter: `done` iterations so far) until the run is done.
  defp loop(%{ref: ref} = run, done) do
    receive do
      {:mx_sampler, ^ref, :grad, q} ->
        NIF.sampler_reply(run.handle, evaluate(run.logp_grad, q, run.d))
        loop(run, done)

      {:mx_sampler, ^ref, :iteration, i, st} ->
        run.callback.(%{iteration: i, warmup?: i < run.warmup, stats: stats_map(st)})
        loop(run, count(run.counter, done, i + 1))

      {:mx_sampler, ^ref, :progress, n} ->
        loop(run, count(run.counter, done, n))

      {:mx_sampler, ^ref, :done, :ok} ->
        :ok

      {:mx_sampler, ^ref, :done, {:error, message}} ->
        raise Mx.Error, message: "#{@where}: #{message}"
    end
  end

  defp count(nil, _done, n), do: n

  defp count(counter, done, n) do
    :counters.add(counter, 1, n - done)
    n
  end

  # A tape target without logp_grad asked about a NaN point: it stays NaN (a NaN energy).
  defp evaluate(nil, _q, d), do: :binary.copy(<<0x7FF8000000000000::64-native>>, d + 1)

  defp evaluate(logp_grad, q, d) do
    case Gen.Inference.Common.at_proposal(fn -> logp_grad.(q) end) do
      {:ok, bin} when is_binary(bin) and byte_size(bin) == 8 * (d + 1) ->
        bin

      {:ok, other} ->
        raise ArgumentError,
              "#{@where}: logp_grad must return a binary of #{d + 1} native f64 (the log density, then the gradient), got #{inspect(other, limit: 5)}"

      :rejected ->
        {:error, "logp_grad raised Mx.Error: the point is rejected"}
    end
  end

  # Messages of a cancelled run still in the mailbox (none is sent after sampler_cancel).
  defp flush(ref) do
    receive do
      {:mx_sampler, ^ref, _, _} -> flush(ref)
      {:mx_sampler, ^ref, _, _, _} -> flush(ref)
    after
      0 -> :ok
    end
  end

  defp stats_map({a, div, e, n, nan, eps, depth}),
    do: %{
      accept_stat: a,
      divergent: div,
      energy: e,
      n_leapfrog: n,
      nan_energy: nan,
      step_size: eps,
      tree_depth: depth
    }

  # One pass over the seven per-field binaries, one map per iteration (the maps share their keys).
  defp decode_stats(s) do
    stats(
      s.accept_stat,
      s.divergent,
      s.energy,
      s.n_leapfrog,
      s.nan_energy,
      s.step_size,
      s.tree_depth,
      []
    )
  end

  defp stats(
         <<a::binary-8, ar::binary>>,
         <<dv, dr::binary>>,
         <<e::binary-8, er::binary>>,
         <<n::signed-32-native, nr::binary>>,
         <<nan, nanr::binary>>,
         <<eps::binary-8, epsr::binary>>,
         <<depth::signed-32-native, depthr::binary>>,
         acc
       ) do
    st = %{
      accept_stat: f64(a),
      divergent: dv == 1,
      energy: f64(e),
      n_leapfrog: n,
      nan_energy: nan == 1,
      step_size: f64(eps),
      tree_depth: depth
    }

    stats(ar, dr, er, nr, nanr, epsr, depthr, [st | acc])
  end

  defp stats(<<>>, <<>>, <<>>, <<>>, <<>>, <<>>, <<>>, acc), do: Enum.reverse(acc)

  defp floats(bin), do: for(<<x::binary-size(8) <- bin>>, do: f64(x))

  # Binary matching refuses non-finite floats: read them as Mx.to_number names them.
  defp f64(<<x::float-64-native>>), do: x

  defp f64(<<u::unsigned-64-native>>) do
    cond do
      (u &&& 0x000F_FFFF_FFFF_FFFF) != 0 -> :nan
      u >>> 63 == 1 -> :neg_infinity
      true -> :infinity
    end
  end

  defp pack(xs), do: for(x <- xs, into: <<>>, do: <<x * 1.0::float-64-native>>)

  # ---- validation ----------------------------------------------------------------------

  defp target!(%{dim: d, q0: q0} = t) when is_integer(d) and d >= 1 and is_list(q0) do
    unless length(q0) == d and Enum.all?(q0, &is_number/1) do
      raise ArgumentError,
            "#{@where}: the target's q0 must be a list of #{d} numbers, got #{inspect(q0, limit: 10)}"
    end

    tape = Map.get(t, :tape)
    logp_grad = Map.get(t, :logp_grad)

    cond do
      tape != nil and not is_reference(tape) ->
        raise ArgumentError,
              "#{@where}: the target's tape must come from Mx.Compile.tape!/2 or be nil, got #{inspect(tape)}"

      tape == nil and not is_function(logp_grad, 1) ->
        raise ArgumentError,
              "#{@where}: the target needs a tape or a logp_grad function of one argument (q as a binary of #{d} f64), got #{inspect(logp_grad)}"

      true ->
        {d, q0, tape, logp_grad}
    end
  end

  defp target!(other) do
    raise ArgumentError,
          "#{@where}: the target must be a map %{dim: d, q0: [float], tape: tape | nil, logp_grad: fun | nil}, got #{inspect(other, limit: 5)}"
  end

  defp int!(opts, name, min), do: Gen.Inference.Common.count!(opts, name, opts[name], min, @where)

  defp one_of!(opts, name, allowed) do
    v = opts[name]

    unless v in allowed do
      raise ArgumentError,
            "#{@where}: #{name}: must be one of #{inspect(allowed)}, got #{inspect(v)}"
    end

    v
  end

  defp bool!(opts, name) do
    v = opts[name]

    unless is_boolean(v),
      do: raise(ArgumentError, "#{@where}: #{name}: must be true or false, got #{inspect(v)}")

    v
  end

  defp target_accept!(x) when is_number(x) and x > 0 and x < 1, do: x * 1.0

  defp target_accept!(x),
    do: raise(ArgumentError, "#{@where}: target_accept: must lie in (0, 1), got #{inspect(x)}")

  defp key!(%Mx.Array{type: :u32, shape: {2}} = key), do: Mx.to_flat_list(key)

  defp key!(other) do
    raise ArgumentError,
          "#{@where}: key: must be an Mx.Random key (a u32 array of shape {2}), got #{inspect(other, limit: 5)}"
  end

  defp inv_metric!(nil, _metric, _d), do: nil

  defp inv_metric!(xs, :diag, d) when is_list(xs) do
    unless length(xs) == d and Enum.all?(xs, &(is_number(&1) and &1 > 0)) do
      raise ArgumentError,
            "#{@where}: inv_metric: must be a list of #{d} positive numbers for metric: :diag, got #{inspect(xs, limit: 10)}"
    end

    pack(xs)
  end

  defp inv_metric!(rows, :dense, d) when is_list(rows) do
    unless length(rows) == d and
             Enum.all?(
               rows,
               &(is_list(&1) and length(&1) == d and Enum.all?(&1, fn x -> is_number(x) end))
             ) do
      raise ArgumentError,
            "#{@where}: inv_metric: must be #{d} rows of #{d} numbers (a symmetric positive definite matrix) for metric: :dense, got #{inspect(rows, limit: 10)}"
    end

    rows |> List.flatten() |> pack()
  end

  defp inv_metric!(other, metric, d) do
    raise ArgumentError,
          "#{@where}: inv_metric: must be nil or #{if metric == :dense, do: "#{d} rows of #{d} numbers", else: "a list of #{d} positive numbers"}, got #{inspect(other, limit: 5)}"
  end
end
