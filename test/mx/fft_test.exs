defmodule Mx.FFTReferenceTest do
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  # numpy's np.fft on the same inputs (test/reference/generate_complex.py): lengths
  # 1..1024 with primes (Bluestein) and non-powers of two, f32/f64, the three norms,
  # cropping/padding, batched axes, fft2/fftn. Tolerance: ReferenceCase.fft_atol/2.
  for c <- ReferenceCase.load!(["fft"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end
end

defmodule Mx.FFTTest do
  use ExUnit.Case, async: true
  import Bitwise
  import Mx.GradCheck, only: [random_f64: 2, random_f64: 4]
  alias Mx.FFT

  defp cx(re, im), do: Mx.complex(re, im)
  defp rand_c(shape, seed), do: cx(random_f64(shape, seed), random_f64(shape, seed + 1000))

  # max |a - b| over the parts of two complex (or real) arrays
  defp max_diff(a, b) do
    d = Mx.abs(Mx.subtract(a, b))
    Mx.reduce_max(d) |> Mx.to_number()
  end

  defp norm(a), do: a |> Mx.abs() |> Mx.square() |> Mx.sum() |> Mx.sqrt() |> Mx.to_number()

  describe "round trips and identities (f64: errors ~ a few eps log2 n)" do
    test "ifft(fft(x)) = x and irfft(rfft(x), n) = x for many lengths" do
      for n <- [1, 2, 3, 7, 16, 31, 60, 97, 243, 1000, 4099] do
        x = rand_c({n}, n)
        # 8 eps (3 log2 n + 6) per transform, two transforms, relative to ||x||
        tol = 2 * 8 * :math.pow(2, -52) * (3 * max(:math.log2(n), 1) + 6) * norm(x)
        assert max_diff(FFT.ifft(FFT.fft(x)), x) <= tol, "c2c round trip n=#{n}"
        r = random_f64({n}, n + 1)
        assert max_diff(FFT.irfft(FFT.rfft(r), n: n), r) <= tol * 2, "real round trip n=#{n}"
      end
    end

    test "Parseval: ||fft(x)|| = sqrt(n) ||x||; ortho is unitary" do
      x = rand_c({3, 500}, 5)
      n = 500
      assert_in_delta norm(FFT.fft(x)), :math.sqrt(n) * norm(x), 1.0e-10 * norm(x) * :math.sqrt(n)
      assert_in_delta norm(FFT.fft(x, norm: "ortho")), norm(x), 1.0e-10 * norm(x)
      assert max_diff(FFT.fft(x, norm: :forward), Mx.divide(FFT.fft(x), n)) <= 1.0e-14 * norm(x)
    end

    test "rfft is the first n/2 + 1 bins of fft; irfft ignores the imaginary parts of DC and Nyquist" do
      r = random_f64({4, 12}, 9)
      full = FFT.fft(r)
      assert max_diff(FFT.rfft(r), full[[.., 0..6]]) <= 1.0e-13
      y = rand_c({7}, 3)
      y2 = Mx.add(y, Mx.multiply(cx(Mx.zeros({7}, type: :f64), Mx.tensor([5.0, 0, 0, 0, 0, 0, -2.0], type: :f64)), 1.0))
      assert max_diff(FFT.irfft(y), FFT.irfft(y2)) <= 1.0e-14
    end

    test "a shifted impulse transforms to a pure phase" do
      n = 7
      x = Mx.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], type: :f64)
      want = for k <- 0..(n - 1), do: {:math.cos(-2 * :math.pi() * 2 * k / n), :math.sin(-2 * :math.pi() * 2 * k / n)}
      got = FFT.fft(x) |> Mx.to_list()
      for {{gr, gi}, {wr, wi}} <- Enum.zip(got, want), do: assert_in_delta(gr, wr, 1.0e-15) && assert_in_delta(gi, wi, 1.0e-15)
    end

    test "fft2 and fftn are 1-d transforms in turn, in any order" do
      x = rand_c({3, 4, 5}, 11)
      assert max_diff(FFT.fftn(x), FFT.fft(FFT.fft(FFT.fft(x, axis: 0), axis: 1), axis: 2)) <= 1.0e-13
      assert max_diff(FFT.fft2(x), FFT.fftn(x, axes: [1, 2])) == 0.0
      assert max_diff(FFT.ifftn(FFT.fftn(x)), x) <= 1.0e-14
      assert Mx.shape(FFT.fft2(x, s: [2, 8])) == {3, 2, 8}
      assert Mx.shape(FFT.fftn(x, s: [6])) == {3, 4, 6}
    end
  end

  describe "types and shapes" do
    test "dtypes: real to complex, complex stays, irfft back to real" do
      assert FFT.fft(Mx.tensor([1.0, 2.0])).type == :c64
      assert FFT.fft(Mx.tensor([1.0, 2.0], type: :f64)).type == :c128
      assert FFT.fft(Mx.tensor([1, 2])).type == :c64
      assert FFT.fft(Mx.tensor([1.0, 2.0], type: :bf16)).type == :c64
      assert FFT.rfft(Mx.tensor([1.0, 2.0, 3.0], type: :f64)).type == :c128
      assert FFT.rfft(Mx.tensor([1, 2, 3])).type == :c64
      assert FFT.irfft(FFT.rfft(Mx.tensor([1.0, 2.0]))).type == :f32
      assert FFT.irfft(Mx.tensor([1.0, 2.0], type: :f64)).type == :f64
    end

    test "n crops or zero-pads; irfft's default length is 2 (m - 1)" do
      x = Mx.tensor([1.0, 2.0, 3.0, 4.0], type: :f64)
      assert FFT.fft(x, n: 2) |> Mx.to_list() == [{3.0, 0.0}, {-1.0, 0.0}]
      assert Mx.shape(FFT.fft(x, n: 9)) == {9}
      assert max_diff(FFT.fft(x, n: 6), FFT.fft(Mx.concatenate([x, Mx.zeros({2}, type: :f64)]))) == 0.0
      assert Mx.shape(FFT.rfft(x, n: 7)) == {4}
      assert Mx.shape(FFT.irfft(Mx.zeros({5, 3}, type: :c64), axis: 0)) == {8, 3}
      assert Mx.shape(FFT.irfft(Mx.zeros({5}, type: :c64), n: 3)) == {3}
    end

    test "empty batches transform to empty results" do
      assert Mx.shape(FFT.fft(Mx.zeros({0, 4}))) == {0, 4}
      assert FFT.rfft(Mx.zeros({2, 0, 6}), axis: 2) |> Mx.shape() == {2, 0, 4}
    end

    test "large batched transforms split across threads and match the per-row ones" do
      x = rand_c({64, 256}, 21)
      t = FFT.fft(x, axis: 0)
      col = FFT.fft(Mx.transpose(x)[7])
      assert max_diff(Mx.transpose(t)[7], col) <= 1.0e-12
    end

    test "vmap over a batch of inputs" do
      xs = random_f64({3, 8}, 31)
      vm = Mx.vmap(fn x -> Mx.real(FFT.fft(x)) end).(xs)
      assert max_diff(vm, Mx.real(FFT.fft(xs))) == 0.0
    end
  end

  describe "errors" do
    test "bad lengths, axes, norms and dtypes" do
      assert_raise ArgumentError, ~r/\[fft\] n must be nil or a positive integer/, fn -> FFT.fft(Mx.ones({4}), n: 0) end
      assert_raise Mx.Error, ~r/\[fft\] the transform length must be >= 1, got 0/, fn -> FFT.fft(Mx.ones({0})) end
      assert_raise Mx.Error, ~r/\[irfft\] the transform length must be >= 1, got 0/, fn -> FFT.irfft(Mx.ones({1})) end
      assert_raise Mx.Error, ~r/\[fft\] axis 3 is out of range/, fn -> FFT.fft(Mx.ones({2, 2}), axis: 3) end
      assert_raise Mx.Error, ~r/\[ifft\] needs an array of rank >= 1/, fn -> FFT.ifft(Mx.tensor(1.0)) end
      assert_raise Mx.Error, ~r/\[rfft\] takes real input, got c64\[2\]; use fft/, fn -> FFT.rfft(Mx.complex(Mx.ones({2}), 0.0)) end
      assert_raise ArgumentError, ~r/norm must be "backward", "ortho" or "forward"/, fn -> FFT.fft(Mx.ones({2}), norm: "none") end
      assert_raise Mx.Error, ~r/\[fft\] transform length 2199023255553 exceeds/, fn -> FFT.fft(Mx.ones({2}), n: (1 <<< 41) + 1) end
      assert_raise ArgumentError, ~r/s: needs one length per axis/, fn -> FFT.fftn(Mx.ones({2, 2}), axes: [0, 1], s: [2]) end
      assert_raise ArgumentError, ~r/\[fft\] op must be/, fn -> Mx.NIF.fft(:dct, Mx.ones({2}).ref, 0, nil, :backward) end
    end

    test "a transform too large for memory fails at eval with Mx.Error, not a crash" do
      before = Mx.Memory.report().memory_limit
      Mx.Memory.set_memory_limit(1 <<< 24)

      try do
        assert_raise Mx.Error, ~r/\[(fft|pad)\]/, fn -> FFT.fft(Mx.ones({2}), n: 1 <<< 28) |> Mx.eval() end
      after
        Mx.Memory.set_memory_limit(before)
      end
    end
  end

  describe "gradients" do
    # Parseval: sum |fft(x)|^2 = n sum |x|^2, so its gradient in x is 2 n x (real x).
    test "of sum |fft(x)|^2 for real x is 2 n x" do
      x = random_f64({2, 6}, 41)
      g = Mx.grad(fn x -> Mx.sum(Mx.square(Mx.abs(FFT.fft(x)))) end).(x)
      assert max_diff(g, Mx.multiply(x, 12.0)) <= 1.0e-12
    end

    test "of sum |rfft(x)|^2 weighs the doubled bins (odd and even n)" do
      for n <- [5, 6] do
        x = random_f64({n}, 43 + n)
        # sum_{k<=n/2} |X_k|^2 = (n sum x^2 + |X_0|^2 + [n even] |X_{n/2}|^2) / 2
        f = fn x -> Mx.sum(Mx.square(Mx.abs(FFT.rfft(x)))) end
        g = Mx.grad(f).(x)
        numeric = for i <- 0..(n - 1) do
          e = Mx.tensor(for(j <- 0..(n - 1), do: if(j == i, do: 1.0e-6, else: 0.0)), type: :f64)
          (Mx.to_number(f.(Mx.add(x, e))) - Mx.to_number(f.(Mx.subtract(x, e)))) / 2.0e-6
        end
        for {a, b} <- Enum.zip(Mx.to_list(g), numeric), do: assert_in_delta(a, b, 1.0e-6)
      end
    end

    test "flow through fft2/ifft2 and through crops and pads" do
      x = random_f64({3, 4}, 51, 0.5, 2.0)
      f = fn x -> Mx.sum(Mx.real(FFT.ifft2(Mx.multiply(FFT.fft2(x, s: [4, 6]), FFT.fft2(x, s: [4, 6]))))) end
      Mx.GradCheck.check_grads!(f, [x])
    end
  end
end
