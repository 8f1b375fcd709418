defmodule Gen.Dist.Binomial do
  @moduledoc """
  Binomial distribution: successes in `n` Bernoulli(`p`) trials, on
  `0..n` (Gen.jl's `binom(n, p)`). Log-mass `log C(n, k) + k log p + (n - k) log(1 - p)`
  with the binomial coefficient from `Mx.lgamma/1`; `-Inf` off the integers `0..n`.

  With log-odds (`Gen.Dist.binomial(n, logits: eta)`, Stan's `binomial_logit`)
  `log p = -log(1 + e^-eta)` and `log(1 - p) = -log(1 + e^eta)` come from
  `Mx.logaddexp/2` (`Gen.Dist.Bernoulli.log_probs/1`), so the tails keep their
  value and their gradient `k - n·p`.

  `n` must be an integer >= 0 and `p` lie in [0, 1] (`logits` any real);
  invalid parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise.

  Draws are `:s64`, by inverting the CDF `P(K <= k) = I_{1-p}(n - k, k + 1)`
  (`Mx.betainc/3`) with a bisection over `0..n`: `ceil(log2(n + 1))` batched
  steps, so the graph is small however large `n` is.

      iex> d = Gen.Dist.binomial(4, 0.5)
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2, 5])) |> Mx.to_list()
      [-2.772588722239781, -0.980829253011726, :neg_infinity]
  """

  defstruct [:n, :p, :logits]
  @type t :: %__MODULE__{n: Mx.t(), p: Mx.t() | nil, logits: Mx.t() | nil}

  @doc "A binomial distribution with `n >= 0` integer trials and success probability `p` in [0, 1] (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(n, p) do
    %__MODULE__{
      n: Gen.Dist.param!(n, "binomial", "n", :count),
      p: Gen.Dist.param!(p, "binomial", "p", :probability)
    }
  end

  @doc "A binomial distribution with `n >= 0` integer trials and log-odds `logits` (any real)."
  @spec with_logits(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def with_logits(n, logits) do
    %__MODULE__{
      n: Gen.Dist.param!(n, "binomial", "n", :count),
      logits: Gen.Dist.param!(logits, "binomial", "logits")
    }
  end

  defimpl Gen.Distribution do
    def sample(d, key), do: draw(d, key, nil)
    def sample_n(d, key, n), do: draw(d, key, n)

    defp draw(%{n: n} = d, key, draws) do
      {_, batch} = Gen.Dist.batch("binomial", [n, d.p || d.logits])
      shape = if draws, do: Tuple.insert_at(batch, 0, draws), else: batch
      n = n |> Mx.as_type(:f64) |> Mx.broadcast(shape)
      # q = 1 - p, from the log-odds as σ(-eta) so that it keeps its precision near 0.
      q =
        if d.p,
          do: Mx.subtract(1.0, Mx.as_type(d.p, :f64)),
          else: Mx.sigmoid(Mx.negate(Mx.as_type(d.logits, :f64)))

      q = Mx.broadcast(q, shape)
      u = Mx.Random.uniform(key, shape: shape, type: :f64)
      # Invariant: CDF(lo) < u <= CDF(hi), with CDF(-1) = 0 and CDF(n) = 1; the answer is hi.
      steps =
        n
        |> Mx.reduce_max()
        |> Mx.to_number()
        |> Kernel.+(1)
        |> :math.log2()
        |> Float.ceil()
        |> trunc()

      {_lo, hi} =
        Enum.reduce(1..steps//1, {Mx.full(shape, -1.0, type: :f64), n}, fn _, {lo, hi} ->
          mid = Mx.floor(Mx.divide(Mx.add(lo, hi), 2.0))
          open = Mx.greater(Mx.subtract(hi, lo), 1.0)

          # Where the interval is closed, mid may be -1: evaluate at 0 instead (the result is unused).
          m = Mx.clip(mid, 0.0, Mx.max(Mx.subtract(n, 1.0), 0.0))
          cdf = Mx.betainc(Mx.max(Mx.subtract(n, m), 1.0), Mx.add(m, 1.0), q)
          up = Mx.logical_and(open, Mx.greater_equal(cdf, u))
          down = Mx.logical_and(open, Mx.logical_not(up))
          {Mx.select(down, mid, lo), Mx.select(up, mid, hi)}
        end)

      Mx.as_type(hi, :s64)
    end

    def logpdf(%{n: n} = d, value) do
      x = value |> Gen.Dist.value!("binomial") |> Mx.as_type(Mx.type(Mx.add(n, d.p || d.logits)))

      inside =
        Mx.logical_and(
          Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less_equal(x, n)),
          Mx.equal(Mx.floor(x), x)
        )

      k = Mx.select(inside, x, 0.0)
      nk = Mx.subtract(n, k)

      {successes, failures, invalid} =
        case d do
          %{p: nil, logits: eta} ->
            {log_p, log_q} = Gen.Dist.Bernoulli.log_probs(eta)
            {times(k, log_p), times(nk, log_q), nil}

          %{p: p} ->
            {Mx.xlogy(k, p), Mx.xlog1py(nk, Mx.negate(p)), Gen.Dist.invalid(p, :probability)}
        end

      lp =
        Mx.lgamma(Mx.add(n, 1.0))
        |> Mx.subtract(Mx.add(Mx.lgamma(Mx.add(k, 1.0)), Mx.lgamma(Mx.add(nk, 1.0))))
        |> Mx.add(successes)
        |> Mx.add(failures)

      bad_n = Gen.Dist.invalid(n, :count)
      invalid = if invalid, do: Mx.logical_or(bad_n, invalid), else: bad_n
      Gen.Dist.restrict(lp, inside: inside, invalid: invalid)
    end

    # c · log_v with 0 · (-Inf) = 0 (an infinite logit makes one outcome impossible).
    defp times(c, log_v), do: Mx.select(Mx.greater(c, 0.0), Mx.multiply(c, log_v), 0.0)

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
