defmodule Gen.Inference.EllipticalSlice do
  @moduledoc """
  Elliptical slice sampling (Murray, Adams & MacKay 2010; Gen.jl's
  `elliptical_slice`) of one continuous choice `x` whose prior is Gaussian,
  N(`mean:`, `cov:`), on the GFI alone.

  The rest of the log joint is the likelihood: for a candidate x' the
  weight of `Gen.update/3` is log p(x', rest) − log p(x, rest), and
  subtracting the change in the Gaussian prior term leaves
  log L(x') − log L(x). The kernel draws ν ~ N(0, cov), a slice level
  log u (u ~ U(0, 1)) and an angle θ on the ellipse
  x(θ) = mean + (x − mean)·cos θ + ν·sin θ, and shrinks the angle bracket
  towards θ = 0 (the current point) until log L(x(θ)) − log L(x) > log u.
  Every step ends on a new point of the slice, so it is always accepted.

  `cov:` is a number (one variance for every element of the choice), a
  list or array of variances broadcasting to the choice's shape (a diagonal
  covariance), or a `{d, d}` covariance matrix for a `{d}` choice, used
  through its Cholesky factor. `mean:` is a number, list or array
  broadcasting to the choice's shape. The prior must be the one the model
  gives the choice; the kernel cannot see the model's distribution, and a
  wrong prior leaves the wrong posterior invariant.

  Use it through `Gen.Inference.elliptical_slice/3` or
  `Gen.Inference.Kernel.elliptical_slice/2`.
  """

  alias Gen.{Choicemap, Trace}

  @options [:mean, :cov, :key]

  @doc false
  # The options, also checked by the kernel constructor in Gen.Inference.Kernel.
  @spec options() :: [atom()]
  def options, do: @options

  # Each shrink halves the bracket on average: after this many, θ is 0 to machine precision.
  @max_shrinks 200

  @doc false
  @spec elliptical_slice(Trace.t(), Choicemap.path(), keyword()) :: {Trace.t(), boolean()}
  def elliptical_slice(%Trace{} = trace, address, opts) when is_list(opts) do
    Mx.Opts.validate!(opts, @options, "Gen.Inference.elliptical_slice")
    path = Choicemap.path!(address)
    x = current!(trace, path)
    type = Mx.type(x)
    mean = mean!(opts, x)
    prior = prior!(opts, x)
    key = Keyword.get(opts, :key) || Gen.next_key()
    [k_nu, k_u, k_theta, k_shrink] = for i <- 0..3, do: Mx.Random.fold_in(key, i)

    nu = draw(prior, k_nu, x)
    f = Mx.subtract(x, mean)
    log_u = k_u |> Mx.Random.uniform(type: :f64) |> Mx.to_number() |> safe_log()
    theta = 2 * :math.pi() * (k_theta |> Mx.Random.uniform(type: :f64) |> Mx.to_number())
    half_quad = Mx.multiply(quad(prior, f), 0.5)
    Mx.eval([nu, f, half_quad])

    ctx = %{trace: trace, path: path, f: f, nu: nu, mean: mean, prior: prior, type: type, half_quad: half_quad}
    shrink(ctx, theta, theta - 2 * :math.pi(), theta, log_u, k_shrink, 0)
  end

  def elliptical_slice(trace, _address, opts) do
    raise ArgumentError,
          "Gen.Inference.elliptical_slice: expected a Gen.Trace and a keyword list of options, got #{inspect(trace)} and #{inspect(opts)}"
  end

  # A NaN likelihood at the current point itself would shrink forever: give up and stay.
  defp shrink(ctx, _theta, _lo, _hi, _log_u, _key, i) when i >= @max_shrinks, do: {ctx.trace, false}

  defp shrink(ctx, theta, lo, hi, log_u, key, i) do
    new_f = Mx.add(Mx.multiply(ctx.f, :math.cos(theta)), Mx.multiply(ctx.nu, :math.sin(theta)))
    x_new = ctx.mean |> Mx.add(new_f) |> Mx.as_type(ctx.type)
    {new, w, _, _} = Gen.update(ctx.trace, Choicemap.new([{ctx.path, x_new}]))
    # log L(x') − log L(x) = weight − (log N(x'; m, C) − log N(x; m, C)); the normalizers cancel.
    d_loglik = Mx.add(w, Mx.subtract(Mx.multiply(quad(ctx.prior, new_f), 0.5), ctx.half_quad))

    case Mx.to_number(d_loglik) do
      l when (is_float(l) and l > log_u) or l == :infinity ->
        {Gen.Inference.force(new), true}

      _ ->
        {lo, hi} = if theta < 0, do: {theta, hi}, else: {lo, theta}
        u = key |> Mx.Random.fold_in(i) |> Mx.Random.uniform(type: :f64) |> Mx.to_number()
        shrink(ctx, lo + u * (hi - lo), lo, hi, log_u, key, i + 1)
    end
  end

  # (x − m)ᵀ C⁻¹ (x − m) as an f64 scalar.
  defp quad({:scalar, v}, d), do: d |> Mx.as_type(:f64) |> Mx.square() |> Mx.sum() |> Mx.divide(v)

  defp quad({:diag, v}, d),
    do: d |> Mx.as_type(:f64) |> Mx.square() |> Mx.divide(v) |> Mx.sum()

  defp quad({:chol, l}, d),
    do: l |> Mx.Linalg.triangular_solve(Mx.as_type(d, :f64)) |> Mx.square() |> Mx.sum()

  defp draw(prior, key, x) do
    eps = Mx.Random.normal(key, shape: Mx.shape(x), type: :f64)

    case prior do
      {:scalar, v} -> Mx.multiply(eps, :math.sqrt(v))
      {:diag, v} -> Mx.multiply(eps, Mx.sqrt(v))
      {:chol, l} -> Mx.matmul(l, eps)
    end
  end

  defp current!(trace, path) do
    case Choicemap.fetch(Gen.get_choices(trace), path) do
      {:ok, %Mx.Array{} = v} ->
        unless Mx.Type.float?(Mx.type(v)) do
          raise ArgumentError,
                "Gen.Inference.elliptical_slice: the choice at #{Choicemap.format_path(path)} is #{Mx.describe(v)}, " <>
                  "not floating point; elliptical slice moves a continuous choice with a Gaussian prior"
        end

        v

      _ ->
        raise ArgumentError,
              "Gen.Inference.elliptical_slice: the trace has no choice at #{Choicemap.format_path(path)}; give the address of a continuous choice"
    end
  end

  defp mean!(opts, x) do
    m =
      case Keyword.fetch(opts, :mean) do
        {:ok, m} when is_number(m) or is_list(m) or is_struct(m, Mx.Array) ->
          Mx.tensor(m, type: :f64)

        other ->
          raise ArgumentError,
                "Gen.Inference.elliptical_slice: mean: (the prior mean) must be a number, list or Mx array, got #{inspect(other)}"
      end

    broadcasts!(m, x, "mean:")
    m
  end

  defp prior!(opts, x) do
    case Keyword.fetch(opts, :cov) do
      {:ok, v} when is_number(v) and v > 0 ->
        {:scalar, v * 1.0}

      {:ok, c} when is_list(c) or is_struct(c, Mx.Array) ->
        c = Mx.tensor(c, type: :f64)
        matrix_or_diag!(c, x)

      other ->
        raise ArgumentError,
              "Gen.Inference.elliptical_slice: cov: (the prior covariance) must be a positive number, a list or array " <>
                "of variances, or a {d, d} covariance matrix; got #{inspect(other)}"
    end
  end

  defp matrix_or_diag!(c, x) do
    case {Mx.shape(c), Mx.shape(x)} do
      {{d, d}, {d}} ->
        l = Mx.Linalg.cholesky(c)
        Mx.eval(l)
        {:chol, l}

      {{_, _}, shape} when tuple_size(shape) != 2 ->
        raise ArgumentError,
              "Gen.Inference.elliptical_slice: cov: a #{Mx.describe(c)} covariance matrix needs a {d} choice with the same d, " <>
                "the choice is #{Mx.describe(x)}; give a {d, d} matrix or variances"

      _ ->
        broadcasts!(c, x, "cov:")

        unless c |> Mx.greater(0.0) |> Mx.all() |> Mx.to_number() do
          raise ArgumentError, "Gen.Inference.elliptical_slice: cov: variances must be positive, got #{inspect(Mx.to_list(c))}"
        end

        {:diag, c}
    end
  end

  defp broadcasts!(a, x, name) do
    if Mx.broadcast_shape(Mx.shape(a), Mx.shape(x)) != Mx.shape(x) do
      raise ArgumentError,
            "Gen.Inference.elliptical_slice: #{name} has shape #{inspect(Mx.shape(a))}, which does not broadcast to " <>
              "the choice's shape #{inspect(Mx.shape(x))}"
    end
  end

  defp safe_log(u) when u > 0.0, do: :math.log(u)
  defp safe_log(_), do: -1.0e308
end
