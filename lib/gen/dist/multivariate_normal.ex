defmodule Gen.Dist.MultivariateNormal do
  @moduledoc """
  Multivariate normal with mean `mean` (`{..., d}`, leading axes a batch)
  and covariance `cov` (`{d, d}`, symmetric positive definite). With
  `cov = L Lᵀ` (Cholesky) and `z = L⁻¹ (x - mean)` (a triangular solve),
  the log-density is `-(d log 2π + |z|²)/2 - Σ log L_ii`. Draws are
  `mean + L z` for standard normal `z` (`Mx.Random.multivariate_normal/4`),
  so they are reparameterized (alias `Gen.Dist.mvnormal/2`, Gen.jl's name).

  Invalid parameters follow `Gen.Dist`'s rule: a `cov` that is not symmetric
  positive definite raises `ArgumentError` when constant (a list, or an evaluated array
  outside a model's body); any other one (a Gaussian-process kernel computed from other choices)
  makes its Cholesky factor raise `Mx.Error` when evaluated, which MH, HMC,
  MALA and NUTS take as a rejected move, as Stan does.

      iex> d = Gen.Dist.multivariate_normal([0.0, 0.0], [[1.0, 0.0], [0.0, 4.0]])
      iex> Gen.Dist.logpdf(d, [1.0, 2.0]) |> Mx.to_number()
      -3.5310242469692907
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 5) |> Mx.describe()
      "f64[5][2]"
  """

  defstruct [:mean, :cov]
  @type t :: %__MODULE__{mean: Mx.t(), cov: Mx.t()}

  @doc "A multivariate normal with mean `mean` (`{..., d}`) and covariance `cov` (`{d, d}`)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(mean, cov_given) do
    mean = Gen.Dist.param!(mean, "multivariate_normal", "mean")
    cov = Gen.Dist.param!(cov_given, "multivariate_normal", "cov")

    case {Mx.shape(mean), Mx.shape(cov)} do
      {ms, {d, d}} when tuple_size(ms) >= 1 and elem(ms, tuple_size(ms) - 1) == d ->
        if Gen.Dist.known?([cov_given]) do
          spd = Gen.Dist.Wishart.spd?(cov)

          Gen.Dist.known!(
            Mx.logical_not(spd),
            cov,
            "multivariate_normal",
            "cov must be symmetric positive definite"
          )
        end

        %__MODULE__{mean: mean, cov: cov}

      _ ->
        raise ArgumentError,
              "Gen.Dist.multivariate_normal: expects mean {..., d} and cov {d, d}, got #{Mx.describe(mean)} and #{Mx.describe(cov)}"
    end
  end

  defimpl Gen.Distribution do
    @log_2pi :math.log(2 * :math.pi())

    def sample(%{mean: m, cov: c}, key),
      do: Mx.Random.multivariate_normal(key, m, c, type: type(m, c))

    def sample_n(%{mean: m, cov: c}, key, n) do
      batch = Tuple.delete_at(Mx.shape(m), Mx.rank(m) - 1)

      Mx.Random.multivariate_normal(key, m, c,
        shape: Tuple.insert_at(batch, 0, n),
        type: type(m, c)
      )
    end

    defp type(m, c), do: Mx.Type.merge(Mx.type(m), Mx.type(c))

    def logpdf(%{mean: m, cov: c}, value) do
      t = type(m, c)
      {d, d} = Mx.shape(c)
      l = c |> Mx.as_type(t) |> Mx.Linalg.cholesky()
      diff = value |> Gen.Dist.value!("multivariate_normal") |> Mx.as_type(t) |> Mx.subtract(m)
      batch = Tuple.delete_at(Mx.shape(diff), Mx.rank(diff) - 1)
      # All the vectors as the columns of one {d, N} right-hand side.
      cols = diff |> Mx.reshape({div(Mx.size(diff), d), d}) |> Mx.transpose()
      z = Mx.Linalg.triangular_solve(l, cols)
      maha = z |> Mx.square() |> Mx.sum(axes: [0]) |> Mx.reshape(batch)
      half_logdet = l |> Mx.Linalg.diagonal() |> Mx.log() |> Mx.sum()
      maha |> Mx.add(d * @log_2pi) |> Mx.multiply(-0.5) |> Mx.subtract(half_logdet)
    end

    def reparameterized?(_), do: true

    def support(_d), do: :real
  end
end
