defmodule Mx.SpecialTest do
  use ExUnit.Case, async: true
  import Mx.GradCheck

  # Reference cases from mpmath (test/reference/special.exs, written by
  # test/reference/generate_special.py): one test per case, named by function,
  # dtype and size; the tolerance rule is in test/support/reference_case.ex.
  for c <- Mx.ReferenceCase.load!(["special"]) do
    @c c
    test c.name, do: Mx.ReferenceCase.check!(@c)
  end

  defp f64(list), do: Mx.tensor(list, type: :f64)

  describe "composites differentiate (finite differences, f64)" do
    test "betaln in each of its three regimes" do
      check_grads!(&Mx.betaln/2, [f64([0.7, 2.5, 4.0]), f64([1.3, 0.4, 6.0])])
      check_grads!(&Mx.betaln/2, [f64([0.7, 3.0]), f64([25.0, 400.0])])
      check_grads!(&Mx.betaln/2, [f64([12.0, 300.0]), f64([25.0, 40.0])])
    end

    test "log1mexp on both sides of log 2, and for negative x" do
      check_grads!(&Mx.log1mexp/1, [f64([0.01, 0.5, 0.9, 3.0, -2.0])])
    end

    test "xlogy and xlog1py away from x = 0" do
      check_grads!(&Mx.xlogy/2, [f64([0.5, -2.0, 3.0]), f64([0.3, 2.0, 7.0])])
      check_grads!(&Mx.xlog1py/2, [f64([0.5, -2.0, 3.0]), f64([-0.3, 2.0, 7.0])])
    end

    test "xlogy at x = 0 has finite gradients (0 for x, 0 for y)" do
      {gx, gy} =
        Mx.grad(fn x, y -> Mx.sum(Mx.xlogy(x, y)) end, [0, 1]).(f64([0.0, 0.0]), f64([0.0, 2.0]))
        |> List.to_tuple()

      assert Mx.to_list(gx) == [0.0, 0.0]
      assert Mx.to_list(gy) == [0.0, 0.0]
    end

    test "log_ndtr's gradient stays finite where Phi underflows" do
      g = Mx.grad(fn x -> Mx.sum(Mx.log_ndtr(x)) end).(f64([-1.0e5, -40.0]))
      # d/dx log Phi(x) = phi/Phi = -x - 1/x + 2/x^3 - 10/x^5 + 74/x^7 + O(x^-9) as x -> -inf
      mills = fn x -> -x - 1 / x + 2 / x ** 3 - 10 / x ** 5 + 74 / x ** 7 end

      for {got, x} <- Enum.zip(Mx.to_list(g), [-1.0e5, -40.0]),
          do: assert_in_delta(got, mills.(x), 1.0e-12 * -x)
    end
  end

  describe "igamma, igammac and betainc differentiate in x only" do
    test "asking for the gradient in a shape parameter raises, naming the op and the fix" do
      a = f64([2.0])
      x = f64([1.5])

      assert_raise Mx.Error,
                   ~r/^\[igamma\] has no gradient with respect to its shape parameter a.*stop_gradient/,
                   fn ->
                     Mx.grad(fn a -> Mx.sum(Mx.igamma(a, x)) end).(a)
                   end

      assert_raise Mx.Error,
                   ~r/^\[igammac\] has no gradient with respect to its shape parameter a/,
                   fn ->
                     Mx.grad(fn a, x -> Mx.sum(Mx.igammac(a, x)) end, [0, 1]).(a, x)
                   end

      assert_raise Mx.Error,
                   ~r/^\[betainc\] has no gradient with respect to its shape parameters a and b/,
                   fn ->
                     Mx.grad(fn b -> Mx.sum(Mx.betainc(2.0, b, f64([0.3]))) end).(f64([3.0]))
                   end
    end

    test "a traced shape parameter that needs no gradient is fine (stop_gradient, vmap of grad)" do
      g =
        Mx.grad(fn a, x -> Mx.sum(Mx.igamma(Mx.stop_gradient(a), x)) end, [0, 1]).(
          f64([2.0]),
          f64([1.5])
        )

      assert [[0.0], [d]] = Enum.map(g, &Mx.to_list/1)
      # dP/dx = x^(a-1) e^-x / Gamma(a)
      assert_in_delta d, 1.5 * :math.exp(-1.5), 1.0e-15

      # vmap's placeholders are traced; differentiating in x alone must not trip over a.
      per_example = fn a, x -> Mx.grad(fn x -> Mx.sum(Mx.betainc(a, 2.0, x)) end).(x) end
      out = Mx.vmap(per_example).(f64([[1.0], [3.0]]), f64([[0.5], [0.5]])) |> Mx.to_list()
      # dI/dx = x^(a-1) (1-x) / B(a, 2): 2 (1-x) at a = 1, 12 x^2 (1-x) at a = 3
      assert [[g1], [g3]] = out
      assert_in_delta g1, 1.0, 1.0e-14
      assert_in_delta g3, 1.5, 1.0e-14
    end
  end

  describe "types and errors" do
    test "integers compute in f32; f16 and bf16 keep their type; f64 stays f64" do
      assert Mx.type(Mx.igamma(Mx.tensor([1, 2]), Mx.tensor([1, 2]))) == :f32
      assert Mx.type(Mx.betainc(1, 2, Mx.tensor([0.5], type: :f16))) == :f16
      assert Mx.type(Mx.ndtri(Mx.tensor([0.5], type: :bf16))) == :bf16
      assert Mx.type(Mx.betaln(Mx.tensor([1.0], type: :f16), 2.0)) == :f16
      assert Mx.type(Mx.xlogy(1, Mx.tensor([2.0], type: :f64))) == :f64
      [v] = Mx.betainc(2, 3, Mx.tensor([0.5], type: :bf16)) |> Mx.to_list()
      assert_in_delta v, 0.6875, 2.0e-3
    end

    test "betainc over a large broadcast output (split across threads) matches materialized inputs" do
      a = Mx.add(Mx.multiply(Mx.iota({300, 1}, type: :f64), 0.1), 0.05)
      b = Mx.add(Mx.multiply(Mx.iota({1, 250}, type: :f64), 0.3), 0.5)
      x = Mx.tensor([[0.37]], type: :f64)
      shape = {300, 250}
      direct = Mx.betainc(a, b, x) |> Mx.to_binary()

      materialized =
        Mx.betainc(Mx.broadcast(a, shape), Mx.broadcast(b, shape), Mx.broadcast(x, shape))
        |> Mx.to_binary()

      assert direct == materialized
      # and element [i, j] is the scalar function at (a_i, b_j)
      {ai, bj} = {Mx.to_number(a[[123, 0]]), Mx.to_number(b[[0, 77]])}

      one =
        Mx.betainc(
          Mx.tensor(ai, type: :f64),
          Mx.tensor(bj, type: :f64),
          Mx.tensor(0.37, type: :f64)
        )

      assert Mx.betainc(a, b, x)[[123, 77]] |> Mx.to_number() == Mx.to_number(one)
    end

    test "betainc's shapes must broadcast" do
      assert_raise Mx.Error, ~r/^\[betainc\] shapes .* cannot be broadcast/, fn ->
        Mx.betainc(Mx.tensor([1.0, 2.0]), 1.0, Mx.tensor([0.1, 0.2, 0.3]))
      end
    end

    test "complex input is refused by name" do
      z = Mx.complex(Mx.tensor([1.0]), Mx.tensor([0.0]))

      assert_raise ArgumentError, ~r/^\[betainc\] is defined for real inputs only/, fn ->
        Mx.betainc(z, 1.0, 0.5)
      end

      assert_raise ArgumentError, ~r/^\[betaln\] is defined for real inputs only/, fn ->
        Mx.betaln(z, 1.0)
      end
    end

    test "polygamma supports n = 0 and 1" do
      assert Mx.polygamma(0, Mx.tensor([1.0], type: :f64)) |> Mx.to_list() == [
               -0.5772156649015329
             ]

      assert_raise ArgumentError, ~r/^\[polygamma\] supports n = 0 \(digamma\) and n = 1/, fn ->
        Mx.polygamma(2, 1.0)
      end
    end

    test "non-numbers are refused" do
      assert_raise ArgumentError, ~r/^\[xlogy\] expects arrays or numbers/, fn ->
        Mx.xlogy("1", 1.0)
      end
    end
  end

  describe "identities" do
    test "P + Q = 1, each computed directly where it is the smaller" do
      a = f64(for k <- 0..40, do: 1.0e-3 * :math.pow(1.6, k))

      for r <- [0.1, 0.9, 1.0, 1.1, 3.0] do
        s =
          Mx.add(Mx.igamma(a, Mx.multiply(a, r)), Mx.igammac(a, Mx.multiply(a, r)))
          |> Mx.to_list()

        # each side is within a few ulp of its value (<= 1): their sum within 4 ulp of 1
        for v <- s, do: assert(abs(v - 1) <= 4 * 2.220446049250313e-16)
      end
    end

    test "betainc with b = 1 is x^a; the Beta(a, b) CDF at the median of Beta(a, a) is 1/2" do
      a = f64([0.3, 1.0, 2.5, 40.0, 1.0e4])
      x = f64([0.1, 0.5, 0.77, 0.999, 0.9999])
      got = Mx.betainc(a, 1.0, x) |> Mx.to_list()
      want = Mx.pow(x, a) |> Mx.to_list()
      for {g, w} <- Enum.zip(got, want), do: assert(abs(g - w) <= 1.0e-13 * w)
      for v <- Mx.betainc(a, a, 0.5) |> Mx.to_list(), do: assert(abs(v - 0.5) <= 1.0e-15)
    end
  end
end
