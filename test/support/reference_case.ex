defmodule Mx.ReferenceCase do
  @moduledoc """
  Reference cases computed by numpy/scipy (test/reference/*.exs, written by
  test/reference/generate.py) and the rules for comparing Mx's results to them.

  A case is a map `%{name:, fun:, args:, opts:, expected:, aux:}`: `fun` is
  called as `apply(Mx, fun, args ++ [opts])`, arrays are
  `{:array, type, shape, base16 of the little-endian bytes}` and `aux` holds
  what a float tolerance needs (sums of |x| and the like). Test modules
  generate one ExUnit test per case:

      for c <- Mx.ReferenceCase.load!(["unary"]) do
        @c c
        test c.name, do: Mx.ReferenceCase.check!(@c)
      end

  ## Tolerances

  Integer and bool results, and every op that only moves bits, must match
  bit for bit. Float results must have NaN exactly where the reference has
  it and the same infinities; finite values may differ by the bound of
  their op family (see `tolerance/1`), in ulps (units in the last place;
  +0 and -0 count as equal) or as an absolute error from the classic
  rounding-error analysis, with u = 2^-24 (f32) or 2^-53 (f64) and
  γ(n) = n·u / (1 - n·u).
  """

  import ExUnit.Assertions
  import Bitwise

  @dir Path.expand("../reference", __DIR__)

  @doc "The names of all reference files (test/reference/*.exs)."
  # Gen's distribution references (dist_*.exs) have their own format and tests in test/gen.
  def files do
    @dir |> Path.join("*.exs") |> Path.wildcard() |> Enum.map(&Path.basename(&1, ".exs"))
    |> Enum.reject(&String.starts_with?(&1, "dist_")) |> Enum.sort()
  end

  @doc "The cases of the named reference files, in order."
  def load!(names) when is_list(names), do: Enum.flat_map(names, &load!/1)

  def load!(name) do
    {cases, _} = Code.eval_file(Path.join(@dir, name <> ".exs"))
    cases
  end

  @doc "Runs a case through the public Mx API and compares the result with the reference."
  def check!(%{fun: fun, args: args, opts: opts, expected: expected} = c) do
    inputs = Enum.map(args, &decode/1)
    # A case may name another module (module: Mx.FFT); Mx by default.
    result = apply(Map.get(c, :module, Mx), fun, if(opts == [], do: inputs, else: inputs ++ [opts]))
    compare!(c, result, expected, inputs, tolerance(c))
  end

  @doc """
  A case as a function of its array arguments (lists of arrays stay lists), with those
  arguments: `{fun, inputs}`. The linalg file runs on Mx.Linalg; other files name a module or use Mx.
  """
  def as_function(file, c) do
    module = Map.get(c, :module, if(file == "linalg", do: Mx.Linalg, else: Mx))
    # an array option (an attention mask) is a constant of the function
    opts = if c.opts == [], do: [], else: [Enum.map(c.opts, fn {k, v} -> {k, decode(v)} end)]
    args = Enum.map(c.args, &decode/1)

    arrays? = fn a ->
      match?(%Mx.Array{}, a) or
        (is_list(a) and a != [] and Enum.all?(a, &match?(%Mx.Array{}, &1)))
    end

    f = fn ins ->
      {full, []} =
        Enum.map_reduce(args, ins, fn a, rest ->
          if arrays?.(a), do: {hd(rest), tl(rest)}, else: {a, rest}
        end)

      apply(module, c.fun, full ++ opts)
    end

    {f, Enum.filter(args, arrays?)}
  end

  @doc "The arrays in a result (tuples, lists and maps walked; maps in key order)."
  def leaves(%Mx.Array{} = a), do: [a]
  def leaves(t) when is_tuple(t), do: t |> Tuple.to_list() |> Enum.flat_map(&leaves/1)
  def leaves(l) when is_list(l), do: Enum.flat_map(l, &leaves/1)

  def leaves(m) when is_map(m) and not is_struct(m),
    do: m |> Enum.sort() |> Enum.flat_map(fn {_, v} -> leaves(v) end)

  def leaves(_), do: []

  @doc "An `{:array, type, shape, hex}` term as an Mx array (lists are decoded elementwise)."
  def decode({:array, type, shape, hex}), do: Mx.from_binary(Base.decode16!(hex), type, shape: shape)
  def decode(list) when is_list(list), do: Enum.map(list, &decode/1)
  def decode(other), do: other

  # ---- tolerances -------------------------------------------------------------------

  # These copy elements (or build exact integers); they must not change a bit,
  # not even the sign of a zero or a NaN's payload.
  @moving [
    :reshape,
    :transpose,
    :broadcast,
    :concatenate,
    :stack,
    :slice,
    :pad,
    :reverse,
    :squeeze,
    :new_axis,
    :take,
    :take_along_axis,
    :gather,
    :indexed_put,
    :sort,
    :argsort,
    :select,
    :full,
    :iota,
    :eye,
    :stop_gradient,
    :real,
    :imag,
    :conjugate,
    :complex,
    :bitcast
  ]

  # Correctly rounded in IEEE arithmetic (+ - * /, sqrt, fmod, floor, max,
  # conversions are exact or rounded once), exactly as numpy computes them in
  # the same dtype: 0 ulp. indexed_add's cases add multiples of 1/8 whose
  # sums are exact in any order; max/min reductions and scans pick an input.
  @exact [
    :negate,
    :abs,
    :sign,
    :square,
    :floor,
    :ceil,
    :round,
    :sqrt,
    :reciprocal,
    :add,
    :subtract,
    :multiply,
    :divide,
    :max,
    :min,
    :remainder,
    :clip,
    :reduce_max,
    :reduce_min,
    :cumulative_max,
    :cumulative_min,
    :as_type,
    :indexed_add
  ]

  # glibc's libm (which the kernels call) documents at most 1 ulp of error
  # for these (libm-test-ulps, x86_64) and the reference is the exact value
  # rounded (≤ 1/2 ulp), so they are at most 2 ulp apart. rsqrt is 1/sqrt(x):
  # two correct roundings, ≤ 1 ulp from the exact value, so 2 as well.
  @libm_1 [:exp, :expm1, :log, :log1p, :sin, :cos, :tan, :asin, :acos, :atan, :erf, :pow, :atan2, :rsqrt, :angle]
  # glibc documents up to 2 ulp for the hyperbolic functions: 3 apart.
  @libm_2 [:sinh, :cosh, :tanh]

  @doc """
  The comparison rule of a case: `:bits` (identical binaries) or
  `{:float, ulps, atol}` where each finite element passes if it is within
  `ulps` ulps of the reference or within its absolute bound in `atol` (a list,
  one per element, or nil).
  """
  def tolerance(%{fun: fun, expected: {:array, type, _, _}} = c) do
    cond do
      type in [:c64, :c128] and fun not in @moving -> complex_tolerance(fun, type, c)
      type not in [:f16, :bf16, :f32, :f64] or fun in @moving -> :bits
      # |z| of complex z is hypot(re, im): glibc's is within 1 ulp, so 2 from the rounded exact value.
      fun == :abs and complex_args?(c) -> {:float, 2, nil}
      fun == :irfft -> {:float, fft_ulps(type), fft_atol(c, type)}
      fun in @exact -> {:float, 0, nil}
      # Storage types compute in f32 and round back: the f32 result is within a
      # few f32 ulps of the exact value, 2^13 (f16) or 2^16 (bf16) times finer,
      # so rounding it can land at most one neighbour away from the rounded truth.
      type in [:f16, :bf16] and fun not in [:sum, :mean, :product, :logsumexp] -> {:float, 1, nil}
      true -> float_tolerance(fun, type, c)
    end
  end

  defp float_tolerance(fun, _type, _c) when fun in @libm_1, do: {:float, 2, nil}
  defp float_tolerance(fun, _type, _c) when fun in @libm_2, do: {:float, 3, nil}

  # 1/(1 + e^-|x|) (times e^-|x| for x < 0): exp's ≤ 1 ulp plus three
  # correctly rounded operations, ≤ 2.5 ulp from the exact value; 4 apart.
  defp float_tolerance(:sigmoid, _type, _c), do: {:float, 4, nil}

  # erf_inv, lgamma and digamma are computed in double and rounded for f32:
  # within 1 f32 ulp of the rounded exact value. In f64, lgamma is glibc's
  # lgamma_r (documented ≤ 4 ulp), erf_inv Halley-refines on glibc's erf/erfc
  # (≤ 1 ulp each; the step's error is that ulp over erf', a few ulp of x),
  # digamma sums a series and a recurrence (a few ulp). Near the zeros of
  # lgamma and digamma at negative x (and digamma on (0, 1)) the reflection
  # formula and the recurrence subtract terms much larger than the result,
  # so the bound is in ulps of those terms (aux.scale: their magnitudes).
  defp float_tolerance(fun, type, c) when fun in [:erf_inv, :lgamma, :digamma] do
    ulps = if type == :f32, do: 1, else: %{erf_inv: 4, lgamma: 5, digamma: 4}[fun]
    {:float, ulps, scaled(c, ulps, type)}
  end

  # max + log1p(e^-|a-b|): rounding a - b perturbs the exponent by u·|a-b|,
  # which moves the result by at most u·|a-b|·e^-|a-b| ≤ u/e; with log1p's and
  # exp's ulp and the final addition, 3 ulps of max(|result|, |a|, |b|).
  defp float_tolerance(:logaddexp, type, c), do: {:float, 3, scaled(c, 3, type)}

  # Any summation order of n terms errs by at most γ(n-1)·Σ|x| (pairwise
  # or blocked orders do better; this bound holds for all of them); the
  # reference is the exact sum rounded once more (≤ u·|Σx| ≤ u·Σ|x|): γ(n)·Σ|x|.
  defp float_tolerance(:sum, type, %{aux: %{abs_sum: s, n: n}}) do
    {:float, 0, Enum.map(floats(s), &(gamma(n, type) * &1))}
  end

  # The sum's bound plus one rounding of the division by n, over n.
  defp float_tolerance(:mean, type, %{aux: %{abs_sum: s, n: n}}) do
    {:float, 0, Enum.map(floats(s), &(gamma(n + 1, type) * &1 / Kernel.max(n, 1)))}
  end

  # A product of n factors in any order has relative error ≤ γ(n-1) (no
  # cancellation); with the reference's rounding, γ(n)·|result|.
  defp float_tolerance(fun, type, %{aux: %{n: n}} = c) when fun in [:product, :cumulative_product] do
    {:float, 0, Enum.map(expected_floats(c), &(gamma(n, type) * abs(&1)))}
  end

  # m = max(x), log(Σ e^(x-m)) + m. Rounding x - m changes each e^(x-m) by a
  # relative u·|x-m| ≤ u·spread, exp adds 2u (1 ulp), the positive sum
  # γ(n-1), so the sum is off by a relative u·spread + 2u + γ(n-1); log turns
  # that into an absolute error and adds 2u·|log s| ≤ 2u·(|r| + |m|); the
  # final + m and the reference's rounding add u·|r| each.
  defp float_tolerance(:logsumexp, type, %{aux: %{n: n, spread: spread, max_abs: max_abs}} = c) do
    u = unit(type)

    atol =
      [floats(spread), floats(max_abs), expected_floats(c)]
      |> Enum.zip_with(fn [sp, m, r] -> gamma(n + 2, type) + u * (sp + 4 * abs(r) + 2 * m) end)

    {:float, 0, atol}
  end

  # A running sum's k-th output adds k terms in order: γ(k-1)·Σ|x| over the
  # prefix (aux.abs_scan), plus the reference's rounding: γ(n)·prefix.
  defp float_tolerance(:cumulative_sum, type, %{aux: %{abs_scan: s, n: n}}) do
    {:float, 0, Enum.map(floats(s), &(gamma(n, type) * &1))}
  end

  # Each output is a length-k dot product: any order (BLAS blocks and uses
  # FMA) errs by ≤ γ(k)·Σ|a||b| (aux.abs_product), plus the reference's rounding.
  defp float_tolerance(:matmul, type, %{aux: %{abs_product: p, k: k}}) do
    {:float, 0, Enum.map(floats(p), &(gamma(k + 1, type) * &1))}
  end

  # start + i·step (linspace: step = (stop - start)/div) in double, rounded
  # once to the dtype, as the reference does; 1 ulp leaves room for an FMA
  # contraction of the double multiply-add.
  defp float_tolerance(fun, _type, _c) when fun in [:arange, :linspace], do: {:float, 1, nil}

  # Special functions (c_src/prim/special.c against mpmath, test/reference/generate_special.py):
  # the issue's bar, 1e-12 relative in f64 and 1e-5 in f32 (computed in double and rounded
  # once); the measured worst cases are ~3e-14 and half an f32 ulp. A result near underflow
  # is e^t with t known only to an ulp of t, so the bound grows with max(1, |log r|); where
  # the terms a result is formed from cancel (betaln near its zeros: aux.scale) it is relative
  # to their magnitude; subnormal results get the bar times the smallest normal.
  @special [:trigamma, :polygamma, :erfc, :log_ndtr, :ndtri, :igamma, :igammac, :betainc, :betaln, :log1mexp,
            :xlogy, :xlog1py]
  defp float_tolerance(fun, type, c) when fun in @special do
    {rel, tiny} = if type == :f64, do: {1.0e-12, 2.2250738585072014e-308}, else: {1.0e-5, 1.1754943508222875e-38}
    expected = expected_floats(c)
    scales = if Map.has_key?(c.aux, :scale), do: floats(c.aux.scale), else: Enum.map(expected, fn _ -> 0.0 end)

    atol =
      Enum.zip_with(expected, scales, fn r, s ->
        log_r = if r == 0, do: 0.0, else: abs(:math.log(abs(r)))
        rel * Kernel.max(Kernel.max(abs(r) * Kernel.max(1.0, log_r), s), tiny)
      end)

    {:float, 0, atol}
  end

  # glibc documents at most 2 ulp for asinh, acosh, atanh and log10 and 1 for log2
  # (libm-test-ulps, x86_64, float and double); with the reference's rounding, 3 and 2 apart.
  defp float_tolerance(fun, _type, _c) when fun in [:asinh, :acosh, :atanh, :log10], do: {:float, 3, nil}
  defp float_tolerance(:log2, _type, _c), do: {:float, 2, nil}
  # Convolution (test/reference/generate_conv.py): each output is a dot product of k terms,
  # as matmul's (im2col + gemm, any order, FMA or not): γ(k + 1)·Σ|x||w| per output.
  defp float_tolerance(:conv, type, c), do: float_tolerance(:matmul, type, c)
  # Its gradients (test/reference/generate_conv_grad.py): x's element sums k = (O / groups)·taps terms
  # (gemm, then col2im's adds), w's k = N·positions (gemm blocks accumulated): the same bound.
  defp float_tolerance(fun, type, c) when fun in [:conv_input_grad, :conv_kernel_grad], do: float_tolerance(:matmul, type, c)
  # A window's sum or product is the reduction's over its n elements: the same bounds.
  defp float_tolerance(:window_sum, type, c), do: float_tolerance(:sum, type, c)
  defp float_tolerance(:window_product, type, c), do: float_tolerance(:product, type, c)
  # Max and min pick an element; the scatters add small-integer sources (exact in any order).
  defp float_tolerance(fun, _type, _c) when fun in [:window_max, :window_min, :window_scatter_max, :window_scatter_min],
    do: {:float, 0, nil}

  defp float_tolerance(fun, type, c) do
    raise ArgumentError,
          "no float tolerance for #{fun} (#{type}) in case #{inspect(c.name)}; add one with its justification"
  end

  # ---- complex results --------------------------------------------------------------
  # {:complex, ulps, atol}: each finite part (re, im) of an element passes if it is
  # within `ulps` ulps of the reference's part or within that element's absolute
  # bound ({re_bound, im_bound}); non-finite parts must match exactly.

  defp complex_args?(%{args: args}), do: Enum.any?(args, &match?({:array, t, _, _} when t in [:c64, :c128], &1))

  # Each part is one IEEE operation (or a conversion), rounded once like the reference.
  # (indexed_add's cases add multiples of 1/8, exact in any order.)
  defp complex_tolerance(fun, _type, _c) when fun in [:add, :subtract, :negate, :as_type, :indexed_add], do: :bits

  # Textbook multiplication: Higham (ASNA 2nd ed., §3.6) bounds it normwise by
  # √2·γ(2)·|a||b| = √2·γ(2)·|ab|; the reference's rounding adds √2·u|ab|: 5u|w|.
  defp complex_tolerance(fun, type, c) when fun in [:multiply, :square] do
    {:complex, 0, normwise(c, type, 5)}
  end

  # Smith's division: with |c| >= |d| the denominator c + d(d/c) has no cancellation
  # (relative error ≤ 3u), each part's numerator errs by ≤ 3u(|a| + |b||d/c|) ≤ 3√2u|a, b|,
  # and |c + d(d/c)| ≥ |c, d|: ≤ (3√2 + 4)u|z| per part, ≤ 12u|z| normwise; the
  # reference's rounding adds √2u|z|: 14u|w|.
  defp complex_tolerance(fun, type, c) when fun in [:divide, :reciprocal] do
    {:complex, 0, normwise(c, type, 14)}
  end

  # glibc's cexp, clog and csqrt are within 3 ulps per part (libm-test-ulps, x86_64,
  # float and double); with the reference's rounding, 4. A part far below |w| (a
  # zero of cos y, log|z| at |z| ≈ 1) is held to 4u|w| instead.
  defp complex_tolerance(fun, type, c) when fun in [:exp, :log, :sqrt], do: {:complex, 4, normwise(c, type, 4)}

  # Each part is a real sum of n terms: γ(n)·Σ|part| as for real sums (aux.abs_re, abs_im).
  defp complex_tolerance(:sum, type, %{aux: %{abs_re: re, abs_im: im, n: n}}) do
    {:complex, 0, Enum.zip_with(floats(re), floats(im), &{gamma(n, type) * &1, gamma(n, type) * &2})}
  end

  # The sum's bound, then division by n + 0i (Smith: 1/n and a product, 2 roundings), over n.
  defp complex_tolerance(:mean, type, %{aux: %{abs_re: re, abs_im: im, n: n}}) do
    g = gamma(n + 2, type) / Kernel.max(n, 1)
    {:complex, 0, Enum.zip_with(floats(re), floats(im), &{g * &1, g * &2})}
  end

  # n - 1 textbook multiplications, each ≤ √2·γ(2) normwise and relative to the
  # product's modulus (|Π z| = Π|z|): ≤ 3(n - 1)u|w|, plus the reference's rounding.
  defp complex_tolerance(:product, type, %{aux: %{n: n}} = c) do
    {:complex, 0, normwise(c, type, 3 * Kernel.max(n - 1, 0) + 2)}
  end

  # Each output part is a sum of 2k real products (cgemm/zgemm, any order, FMA or
  # not): γ(2k + 1)·Σ|terms| (aux.abs_re, abs_im), plus the reference's rounding.
  defp complex_tolerance(:matmul, type, %{aux: %{abs_re: re, abs_im: im, k: k}}) do
    g = gamma(2 * k + 2, type)
    {:complex, 0, Enum.zip_with(floats(re), floats(im), &{g * &1, g * &2})}
  end

  defp complex_tolerance(fun, type, c) when fun in [:fft, :ifft, :rfft, :fft2, :ifft2, :fftn, :ifftn] do
    {:complex, fft_ulps(type), Enum.map(fft_atol(c, type), &{&1, &1})}
  end

  defp complex_tolerance(fun, type, c) do
    raise ArgumentError,
          "no complex tolerance for #{fun} (#{type}) in case #{inspect(c.name)}; add one with its justification"
  end

  # k·u·|w| for both parts of each element.
  defp normwise(c, type, k) do
    u = unit(type)
    Enum.map(expected_complex(c), fn {re, im} -> b = k * u * modulus(re, im); {b, b} end)
  end

  # |re + i im| without overflow for parts near the float range.
  defp modulus(re, im) do
    {hi, lo} = {Kernel.max(abs(re), abs(im)), Kernel.min(abs(re), abs(im))}
    if hi == 0, do: 0.0, else: hi * :math.sqrt(1 + lo / hi * (lo / hi))
  end

  defp expected_complex(%{expected: {:array, type, _, hex}}) do
    hex |> Base.decode16!() |> elements(type) |> Enum.map(fn {re, im} -> {finite_or_zero(re), finite_or_zero(im)} end)
  end

  # FFTs compute in double: ||ŷ - y||₂ ≤ 8·ε·(3·log2 n + 6)·||y||₂ per transform
  # (ε = 2^-52) covers both the mixed-radix bound ε·log2 n·η (Higham, ASNA 2nd ed.,
  # Thm 24.2: η ≈ 3.4ε with accurate twiddles) and Bluestein's three transforms of
  # length < 4n, for our result and numpy's alike (as in c_src/test/test_fft.c).
  # Transforms along several axes add their bounds (the maps are scaled unitary).
  # An element differs by at most the norm of the error, so the bound scales
  # aux.norm, the 2-norm of the transform the element belongs to. f32/c64 results
  # are those double values rounded once, on both sides: also 1 ulp apart. With
  # several axes, every pass but the last rounds to the dtype (normwise < 2u of
  # its output), which the later scaled-unitary passes carry along: 2u per pass.
  defp fft_atol(%{aux: %{norm: norm, lengths: lengths}}, type) do
    eps = :math.pow(2, -52)
    factor = Enum.reduce(lengths, 0, fn n, acc -> acc + 3 * Kernel.max(:math.log2(Kernel.max(n, 1)), 1) + 6 end)
    rel = 8 * eps * factor + 2 * unit(type) * (length(lengths) - 1)
    Enum.map(floats(norm), &(rel * &1))
  end

  defp fft_ulps(type) when type in [:f64, :c128], do: 0
  defp fft_ulps(_type), do: 1

  # k ulps of max(|reference|, aux.scale) as an absolute bound per element.
  defp scaled(%{aux: %{scale: scale}} = c, k, type) do
    Enum.zip_with(floats(scale), expected_floats(c), fn s, r -> k * ulp(Kernel.max(abs(r), s), type) end)
  end

  defp scaled(_c, _k, _type), do: nil

  defp unit(:f32), do: :math.pow(2, -24)
  defp unit(:f64), do: :math.pow(2, -53)
  defp unit(t) when t in [:f16, :bf16], do: unit(:f32)
  defp unit(:c64), do: unit(:f32)
  defp unit(:c128), do: unit(:f64)

  defp gamma(n, type) do
    nu = Kernel.max(n, 0) * unit(type)
    nu / (1 - nu)
  end

  # The spacing of the floats of `type` around |x|.
  defp ulp(x, type) do
    {mant, min_exp} = if type == :f64, do: {52, -1022}, else: {23, -126}
    e = if x == 0, do: min_exp, else: Kernel.max(floor_log2(x), min_exp)
    :math.pow(2, e - mant)
  end

  defp floor_log2(x) do
    <<_::1, e::11, _::52>> = <<x::float-64>>
    if e == 0, do: -1023, else: e - 1023
  end

  defp floats({:array, _, _, hex}), do: hex |> Base.decode16!() |> elements(:f64) |> Enum.map(&finite_or_zero/1)

  defp expected_floats(%{expected: {:array, type, _, hex}}) do
    hex |> Base.decode16!() |> elements(type) |> Enum.map(&finite_or_zero/1)
  end

  defp finite_or_zero({:finite, _ord, v}), do: v
  defp finite_or_zero(_), do: 0.0

  # ---- comparison -----------------------------------------------------------------------

  defp compare!(c, result, {:array, type, shape, hex}, inputs, tol) do
    assert {Mx.type(result), Mx.shape(result)} == {type, shape},
           "#{c.name}: result is #{Mx.describe(result)}, expected #{describe(type, shape)}"

    got = Mx.to_binary(result)
    want = Base.decode16!(hex)
    assert byte_size(got) == byte_size(want)

    bad =
      case tol do
        :bits ->
          if got == want, do: [], else: mismatches(elements(got, type), elements(want, type), fn g, w -> g == w end)

        {:complex, ulps, atol} ->
          part = fn g, w, a -> close?(g, w, ulps, a) end

          Enum.zip([elements(got, type), elements(want, type), atol])
          |> Enum.with_index()
          |> Enum.reject(fn {{{gr, gi}, {wr, wi}, {ar, ai}}, _i} -> part.(gr, wr, ar) and part.(gi, wi, ai) end)
          |> Enum.map(fn {{g, w, a}, i} -> {i, g, w, a} end)

        {:float, ulps, atol} ->
          atol = atol || Stream.cycle([0.0])

          Enum.zip([elements(got, type), elements(want, type), atol])
          |> Enum.with_index()
          |> Enum.reject(fn {{g, w, a}, _i} -> close?(g, w, ulps, a) end)
          |> Enum.map(fn {{g, w, a}, i} -> {i, g, w, a} end)
      end

    if bad != [] do
      flunk(report(c, type, shape, inputs, bad, tol))
    end

    :ok
  end

  defp mismatches(got, want, same?) do
    Enum.zip(got, want)
    |> Enum.with_index()
    |> Enum.reject(fn {{g, w}, _i} -> same?.(g, w) end)
    |> Enum.map(fn {{g, w}, i} -> {i, g, w, nil} end)
  end

  defp close?({:nan, _, _}, {:nan, _, _}, _ulps, _atol), do: true
  defp close?({:finite, og, g}, {:finite, ow, w}, ulps, atol), do: abs(og - ow) <= ulps or abs(g - w) <= atol
  defp close?({kind, o, _}, {kind, o, _}, _ulps, _atol), do: true
  defp close?(_g, _w, _ulps, _atol), do: false

  defp report(c, type, shape, inputs, bad, tol) do
    lines =
      bad
      |> Enum.take(8)
      |> Enum.map(fn {i, g, w, a} ->
        at = shape |> Tuple.to_list() |> unravel(i) |> inspect(charlists: :as_lists)
        ins = inputs_at(inputs, shape, i)
        "  at #{at}#{ins}: got #{show(g)}, expected #{show(w)}#{distance(g, w, a)}"
      end)

    """
    #{c.name}: #{length(bad)} of #{tuple_product(shape)} elements differ (#{describe(type, shape)}, rule #{show_tol(tol)})
    #{Enum.join(lines, "\n")}
    """
  end

  # The inputs' elements at the same position, where an input has the output's shape.
  defp inputs_at(inputs, shape, i) do
    vals =
      for %Mx.Array{} = a <- inputs,
          Mx.shape(a) == shape,
          do: a |> Mx.to_binary() |> elements(Mx.type(a)) |> Enum.at(i) |> show()

    if vals == [], do: "", else: " (inputs #{Enum.join(vals, ", ")})"
  end

  defp distance({:finite, og, g}, {:finite, ow, w}, a) do
    " (#{abs(og - ow)} ulp, |diff| #{abs(g - w)}#{if is_number(a) and a > 0, do: ", allowed #{a}", else: ""})"
  end

  defp distance({gr, gi}, {wr, wi}, {ar, ai}) when is_tuple(gr) do
    " (parts:#{distance(gr, wr, ar)}#{distance(gi, wi, ai)})"
  end

  defp distance(_, _, _), do: ""

  defp show({re, im}) when is_tuple(re), do: "(#{show(re)}, #{show(im)})"
  defp show({:finite, _, v}), do: inspect(v)
  defp show({kind, _, _}), do: inspect(kind)
  defp show(v), do: inspect(v)

  defp show_tol(:bits), do: "bit-exact"
  defp show_tol({:float, u, nil}), do: "≤ #{u} ulp"
  defp show_tol({:float, u, _}), do: "≤ #{u} ulp or the per-element error bound"
  defp show_tol({:complex, u, _}), do: "each part ≤ #{u} ulp or the per-element error bound"

  defp unravel([], _i), do: []

  defp unravel(dims, i) do
    {idx, _} =
      dims
      |> Enum.reverse()
      |> Enum.reduce({[], i}, fn d, {acc, r} -> {[rem(r, Kernel.max(d, 1)) | acc], div(r, Kernel.max(d, 1))} end)

    idx
  end

  defp tuple_product(shape), do: shape |> Tuple.to_list() |> Enum.reduce(1, &*/2)
  defp describe(type, shape), do: "#{type}" <> Enum.map_join(Tuple.to_list(shape), &"[#{&1}]")

  # ---- elements ---------------------------------------------------------------------------

  # {mantissa bits, exponent bits} of the float types.
  @float_layout %{f16: {10, 5}, bf16: {7, 8}, f32: {23, 8}, f64: {52, 11}}

  @doc """
  The elements of a little-endian binary: integers and booleans as numbers,
  floats as `{class, ordered, value}` where class is `:finite`, `:nan`,
  `:infinity` or `:neg_infinity` and `ordered` is an integer that counts ulps
  (consecutive floats differ by 1; +0 and -0 are both 0).
  """
  def elements(bin, type) when is_map_key(@float_layout, type) do
    {mant, exp} = @float_layout[type]
    width = mant + exp + 1
    for <<bits::size(width)-little <- bin>>, do: float_element(bits, mant, exp, width)
  end

  def elements(bin, :bool), do: for(<<x::8 <- bin>>, do: x)

  # Complex: {re, im} pairs of float elements.
  def elements(bin, type) when type in [:c64, :c128] do
    part = if type == :c64, do: :f32, else: :f64
    bin |> elements(part) |> Enum.chunk_every(2) |> Enum.map(fn [re, im] -> {re, im} end)
  end

  def elements(bin, type) do
    {kind, bits} = Mx.Type.to_nx(type)

    case kind do
      :s -> for <<x::signed-size(bits)-little <- bin>>, do: x
      :u -> for <<x::unsigned-size(bits)-little <- bin>>, do: x
    end
  end

  defp float_element(bits, mant, exp, width) do
    sign = bits >>> (width - 1)
    mag = bits &&& (1 <<< (width - 1)) - 1
    inf = ((1 <<< exp) - 1) <<< mant
    ordered = if sign == 1, do: -mag, else: mag

    cond do
      mag > inf -> {:nan, ordered, nil}
      mag == inf -> {if(sign == 1, do: :neg_infinity, else: :infinity), ordered, nil}
      true -> {:finite, ordered, float_value(sign, mag, mant, exp)}
    end
  end

  # The value of a finite float from its magnitude bits (exact in f64 for every type here).
  defp float_value(sign, mag, mant, exp) do
    e = mag >>> mant
    m = mag &&& (1 <<< mant) - 1
    bias = (1 <<< (exp - 1)) - 1
    v = if e == 0, do: m * :math.pow(2, 1 - bias - mant), else: (m + (1 <<< mant)) * :math.pow(2, e - bias - mant)
    if sign == 1, do: -v, else: v
  end
end
