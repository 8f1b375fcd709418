defmodule Mx.JitTest do
  # Mx.compile's generated-C tier (c_src/jit.c): native replays equal the interpreter within
  # rounding on every reference case and on log-density gradients; the per-user disk cache
  # refuses unsafe directories and rebuilds corrupt or foreign files; MX_JIT=0 and a missing
  # compiler leave the interpreter, with no error.
  #
  # Tolerance: both tiers evaluate the same C expressions (prim/elementwise.h) in the same
  # order for elementwise work, so those agree bit for bit (but for a division by a
  # loop-invariant divisor, a multiplication by its reciprocal when that is normal: within
  # 2 ulps, test_jit.c checks it on edge cases); reductions and matmul accumulate
  # sequentially in generated code (a split loop's full sums in fixed parts, then the
  # partials in order) and pairwise (16 lanes) in the kernels, and two orders of
  # an n-term sum differ by at most 2(n - 1) eps sum|x_i|. The reference cases reduce at most a
  # few hundred terms of magnitude ~1, so |native - interpreter| <= 1e3 eps (max(1, |x|))
  # (f64: 2.2e-13, f32: 1.2e-4) bounds it, passed on through the gradients' few later ops.
  # Integers and bools must be equal; NaN where the other is NaN.
  use ExUnit.Case, async: false
  import Bitwise
  alias Mx.{OpCases, ReferenceCase}

  @moduletag timeout: 1_200_000

  # Objects go to a private cache of this test run, not the user's ~/.cache/genmx.
  setup_all do
    Mx.PrivateJitCache.setup("jit_test_cache")
  end

  defp eps(:f64), do: 2.220446049250313e-16
  defp eps(:f32), do: 1.1920929e-7
  defp eps(:f16), do: 9.765625e-4
  defp eps(:bf16), do: 7.8125e-3
  defp eps(:c64), do: eps(:f32)
  defp eps(:c128), do: eps(:f64)
  defp eps(_), do: 0.0

  defp close?(a, b, tol) when is_number(a) and is_number(b),
    do: a == b or abs(a - b) <= tol * max(1.0, abs(b))

  defp close?(:nan, :nan, _), do: true
  defp close?(x, x, _), do: true
  defp close?({ar, ai}, {br, bi}, tol), do: close?(ar, br, tol) and close?(ai, bi, tol)
  defp close?(_, _, _), do: false

  defp near!(what, native, interp) do
    n = ReferenceCase.leaves(native)
    i = ReferenceCase.leaves(interp)
    assert length(n) == length(i), "#{what}: output count"

    for {x, y} <- Enum.zip(n, i) do
      assert {x.shape, x.type} == {y.shape, y.type},
             "#{what}: #{Mx.describe(x)} vs #{Mx.describe(y)}"

      tol = 1000 * eps(x.type)
      xs = x |> Mx.to_flat_list()
      ys = y |> Mx.to_flat_list()

      for {a, b} <- Enum.zip(xs, ys) do
        assert close?(a, b, tol),
               "#{what}: native #{inspect(a)}, interpreter #{inspect(b)} (tol #{tol})"
      end
    end
  end

  defp native!(compiled, args) do
    info = Mx.Compile.await_native(compiled, args, 300_000)
    assert info.tier == :native, "tier #{inspect(info.tier)}"
    info
  end

  # Many cases per tape: one C compile per batch instead of per case.
  defp batch_check(name, cases) do
    for {chunk, b} <- cases |> Enum.chunk_every(150) |> Enum.with_index(), reduce: MapSet.new() do
      acc ->
        fs = Enum.map(chunk, fn {_, f, _} -> f end)
        ins = Enum.map(chunk, fn {_, _, i} -> i end)
        run = fn all -> Enum.zip_with(fs, all, fn f, i -> f.(i) end) end
        compiled = Mx.compile(run, jit: true, cache_size: 1)
        interp = compiled.(ins)
        native!(compiled, [ins])
        native = compiled.(ins)

        for {{case_name, _, _}, n, i} <- Enum.zip([chunk, native, interp]),
            do: near!("#{name} batch #{b}: #{case_name}", n, i)

        MapSet.union(acc, MapSet.new(Mx.Compile.tape_info(compiled, [ins]).ops))
    end
  end

  @tag :slow
  test "native equals the interpreter on every reference case (batched into tapes)" do
    cases =
      for file <- ReferenceCase.files(), c <- ReferenceCase.load!(file) do
        {f, ins} = ReferenceCase.as_function(file, c)
        {c.name, f, ins}
      end

    ops = batch_check("reference", cases)
    assert MapSet.size(ops) > 60, "few primitives ran: #{inspect(MapSet.to_list(ops))}"
  end

  test "native value_and_grad equals the interpreter for every differentiable primitive's cases" do
    cases =
      for {op, cs} <- OpCases.cases(), {desc, f, inputs} <- cs do
        vg = Mx.value_and_grad(fn args -> Mx.sum(apply(f, args)) end)
        {"#{op} #{desc}", vg, inputs}
      end

    batch_check("value_and_grad", cases)
  end

  # The simple model and eight schools (non-centered) of bench/nuts/models.exs, evaluated as
  # the NUTS sampler does (Gen.assess on the choices, the log transform's Jacobian), and the
  # same densities written directly in Mx ops.
  Code.require_file("../../bench/nuts/models.exs", __DIR__)

  defp gfi_density(m, key) do
    cm = m |> Bench.NutsModels.init_trace(key) |> Gen.get_choices()

    fn params ->
      c =
        Enum.reduce(params, cm, fn {addr, x}, c ->
          v = if Map.get(m.transforms, addr) == :log, do: Mx.exp(x), else: x
          Gen.Choicemap.put(c, [addr], v)
        end)

      {w, _} = Gen.assess(m.gf, m.args, c)

      Enum.reduce(params, w, fn {addr, x}, acc ->
        if Map.get(m.transforms, addr) == :log, do: Mx.add(acc, Mx.sum(x)), else: acc
      end)
    end
  end

  defp f64(x), do: Mx.tensor(x, type: :f64)

  test "value_and_grad of log densities: simple, eight schools nc (Gen.assess and direct), native equals interpreter" do
    ys = [1.2, 0.4, 2.5, -0.3, 1.9, 0.8, 1.1, 2.2, 0.1, 1.6]
    school_y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
    school_s = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
    simple = Bench.NutsModels.simple(%{"y" => ys})
    eight = Bench.NutsModels.eight_schools(%{"y" => school_y, "sigma" => school_s}, :non_centered)
    y8 = f64(school_y)
    s8 = f64(school_s)

    eight_direct = fn %{mu: mu, tau: lt, theta_tilde: tt} ->
      tau = Mx.exp(lt)
      theta = Mx.add(mu, Mx.multiply(tau, tt))
      z = Mx.divide(Mx.subtract(y8, theta), s8)

      Mx.sum(Mx.multiply(Mx.square(z), -0.5))
      |> Mx.add(Mx.multiply(Mx.sum(Mx.square(tt)), -0.5))
      |> Mx.add(Mx.multiply(Mx.square(Mx.divide(mu, 5.0)), -0.5))
      |> Mx.add(Mx.multiply(Mx.square(Mx.divide(tau, 5.0)), -0.5))
      |> Mx.add(lt)
    end

    params = fn
      :simple, i ->
        %{mu: f64(0.3 * i - 0.5), sigma: f64(-0.2 + 0.1 * i)}

      :eight, i ->
        %{
          mu: f64(1.0 + i),
          tau: f64(0.1 * i),
          theta_tilde: f64(Enum.map(1..8, &:math.sin(&1 + i)))
        }
    end

    cases = [
      {"simple (Gen.assess)", gfi_density(simple, Mx.Random.key(7)), &params.(:simple, &1)},
      {"eight schools nc (Gen.assess)", gfi_density(eight, Mx.Random.key(7)),
       &params.(:eight, &1)},
      {"simple (direct)",
       Bench.NutsModels.simple_densities(simple, %{"simple" => %{"y" => ys}}).direct,
       fn i ->
         p = params.(:simple, i)
         [p.mu, p.sigma]
       end},
      {"eight schools nc (direct)", eight_direct, &params.(:eight, &1)}
    ]

    for {name, f, args} <- cases do
      vg = Mx.value_and_grad(f)
      compiled = Mx.compile(vg, jit: true)
      interp = compiled.(args.(1))
      near!("#{name} at 1 (first call: interpreter)", interp, vg.(args.(1)))
      native!(compiled, [args.(1)])
      for i <- 1..6, do: near!("#{name} at #{i}", compiled.(args.(i)), vg.(args.(i)))
    end
  end

  test "the generated source: one loop per array shape over forward and backward, scalars without loops" do
    ys = Mx.tensor(Enum.map(1..50, &(:math.sin(&1) + 1.0)), type: :f64)

    lp = fn [mu, ls] ->
      sig = Mx.exp(ls)
      z = Mx.divide(Mx.subtract(ys, mu), sig)
      Mx.subtract(Mx.multiply(Mx.sum(Mx.multiply(z, z)), -0.5), Mx.multiply(ls, 50.0))
    end

    args = [Mx.tensor(0.5, type: :f64), Mx.tensor(0.2, type: :f64)]
    tape = Mx.Compile.tape!(Mx.compile(Mx.value_and_grad(lp), jit: false), [args])
    src = Mx.NIF.tape_jit_source(tape)
    loops = Regex.scan(~r/for \(int64_t i0 = 0; i0 < 50; i0\+\+\)/, src)
    assert length(loops) == 1, "one fused loop over the 50 observations:\n#{src}"
    assert src =~ "STEP_SUM(r, x)" and src =~ "DIV_BY_INVARIANT(a, b, r)"
    refute src =~ "call(ctx,", "every instruction has a rule"
  end

  # Groups without a reduction that the pool would split (c_src/jit.c: at least two chunks of
  # mx_grain) become a chunk function run by mx_parallel_for; elementwise only, so the tiers
  # agree bit for bit.
  test "long elementwise chains and broadcasts run split across the pool, equal to the interpreter bit for bit" do
    chain = fn x ->
      x
      |> Mx.multiply(1.0001)
      |> Mx.add(0.5)
      |> Mx.multiply(x)
      |> Mx.subtract(0.25)
      |> Mx.abs()
      |> Mx.min(4.0)
      |> Mx.multiply(0.5)
      |> Mx.add(x)
    end

    bcast = fn [x, y, z, s] ->
      a = Mx.multiply(x, y)
      e = Mx.lgamma(Mx.add(Mx.exp(a), s))
      w = Mx.subtract(e, z)
      [Mx.select(Mx.greater(w, z), w, Mx.square(a)), Mx.reduce_max(w, axes: [0]), a]
    end

    unif = fn seed, shape, type ->
      Mx.Random.uniform(Mx.Random.key(seed), -1.0, 1.0, shape: shape, type: type)
    end

    cases = [
      {"8-op chain, odd f32 length", chain, unif.(1, {1_048_579}, :f32)},
      {"3-axis broadcast", bcast,
       [
         unif.(2, {37, 41, 53}, :f64),
         unif.(3, {41, 1}, :f64),
         unif.(4, {37, 1, 53}, :f64),
         Mx.tensor(1.5, type: :f64)
       ]},
      {"broadcast with an axis of 1", bcast,
       [
         unif.(5, {301, 1, 257}, :f64),
         unif.(6, {1, 1}, :f64),
         unif.(7, {301, 1, 257}, :f64),
         Mx.tensor(1.5, type: :f64)
       ]}
    ]

    for {name, f, arg} <- cases do
      interp = Mx.compile(f, jit: false)
      native = Mx.compile(f, jit: true)
      want = interp.(arg)
      native.(arg)
      native!(native, [arg])
      src = Mx.NIF.tape_jit_source(Mx.Compile.tape!(interp, [arg]))
      assert src =~ "mx_parallel_for(", "#{name}: a split loop:\n#{src}"

      for {n, i} <- Enum.zip(List.wrap(native.(arg)), List.wrap(want)) do
        assert Mx.to_binary(n) == Mx.to_binary(i), "#{name}: native differs from the interpreter"
      end
    end
  end

  test "a loop ending in full reductions splits into fixed parts: elementwise results, max and min equal to the interpreter, the sum within both tiers' bounds, the same bits each run" do
    # N below the reductions' kernel threshold (131072): the sum and max fuse into the loop. The
    # native sum adds P fixed ranges serially, then the partials (first-order bound (N/P + P) eps
    # sum|e|); the kernel's pairwise sum over 16 lanes of 256-element leaves, 32 + log2 N.
    n = 100_003

    f = fn x ->
      y = Mx.multiply(x, 0.5)
      e = Mx.exp(y)
      [Mx.sum(e), Mx.reduce_max(e), Mx.reduce_min(y), e]
    end

    x = Mx.Random.uniform(Mx.Random.key(11), -6.0, 6.0, shape: {n}, type: :f64)
    interp = Mx.compile(f, jit: false)
    native = Mx.compile(f, jit: true)
    [s_i, max_i, min_i, e_i] = interp.(x)
    native.(x)
    native!(native, [x])
    src = Mx.NIF.tape_jit_source(Mx.Compile.tape!(native, [x]))

    [_, p] =
      Regex.run(~r/mx_parallel_for\((\d+), 1, mxjit_g/, src) ||
        flunk("no split reduction:\n#{src}")

    p = String.to_integer(p)
    assert p >= 2 and not (src =~ "call(ctx,")
    [s_n, max_n, min_n, e_n] = native.(x)
    [s_again | _] = native.(x)
    assert Mx.to_binary(e_n) == Mx.to_binary(e_i)

    assert Mx.to_number(max_n) == Mx.to_number(max_i) and
             Mx.to_number(min_n) == Mx.to_number(min_i)

    assert Mx.to_binary(s_again) == Mx.to_binary(s_n)
    abs_sum = e_i |> Mx.sum() |> Mx.to_number()
    bound = (n / p + p + 32 + :math.ceil(:math.log2(n))) * eps(:f64) / 2 * abs_sum
    assert abs(Mx.to_number(s_n) - Mx.to_number(s_i)) <= bound
  end

  # ---- the disk cache -------------------------------------------------------------------

  defp with_env(vars, fun) do
    old = for {k, _} <- vars, do: {k, System.get_env(k)}

    try do
      for {k, v} <- vars, do: if(v, do: System.put_env(k, v), else: System.delete_env(k))
      fun.()
    after
      for {k, v} <- old, do: if(v, do: System.put_env(k, v), else: System.delete_env(k))
    end
  end

  defp tmp_dir do
    dir = Path.join(System.tmp_dir!(), "jit_test-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end

  # A fresh function each time (its own tape), computing x * k + 1 for a k that keys the source.
  defp poly(k), do: Mx.compile(fn x -> Mx.add(Mx.multiply(x, k), 1.0) end, jit: true)

  defp native_with(k, x) do
    f = poly(k)
    first = f.(x)
    info = Mx.Compile.await_native(f, [x], 300_000)
    {info, f.(x), first}
  end

  defp mode(path), do: File.stat!(path).mode &&& 0o777

  test "the cache directory: created 0700; cached objects are reused; group/world-writable or foreign directories are refused" do
    base = tmp_dir()
    x = Mx.tensor([1.0, 2.0], type: :f64)

    with_env([{"XDG_CACHE_HOME", base}], fn ->
      {info, out, first} = native_with(3.5, x)
      assert info.tier == :native and not info.cache_hit and info.jit_note == ""
      assert info.compile_wall_us > 0 and info.compile_cpu_us > 0
      assert Mx.to_list(out) == [4.5, 8.0] and Mx.to_list(first) == [4.5, 8.0]
      dir = Path.join(base, "genmx")
      assert mode(dir) == 0o700
      files = File.ls!(dir)
      assert Enum.count(files, &String.ends_with?(&1, ".so")) == 1
      assert Enum.count(files, &String.ends_with?(&1, ".sha256")) == 1
      for f <- files, do: assert((mode(Path.join(dir, f)) &&& 0o077) == 0, "#{f} is private")

      # the same tape again: loaded from the cache, no compiler run
      {info2, out2, _} = native_with(3.5, x)
      assert info2.tier == :native and info2.cache_hit and info2.compile_cpu_us == 0
      assert Mx.to_list(out2) == [4.5, 8.0]

      # writable by others: refused, the tier still comes (built in a private temporary directory)
      File.chmod!(dir, 0o777)
      {info3, out3, _} = native_with(3.5, x)
      assert info3.tier == :native and not info3.cache_hit
      assert info3.jit_note =~ "refused: group or world writable"
      assert Mx.to_list(out3) == [4.5, 8.0]
      File.chmod!(dir, 0o700)

      # owned by another user: refused (the tests run as root, who can chown)
      if System.cmd("id", ["-u"]) |> elem(0) |> String.trim() == "0" do
        {_, 0} = System.cmd("chown", ["nobody", dir])
        {info4, _, _} = native_with(3.5, x)
        assert info4.tier == :native and info4.jit_note =~ "refused: owned by another user"
        {_, 0} = System.cmd("chown", ["root", dir])
      end
    end)
  end

  test "a truncated, altered or foreign cached object is rebuilt, never loaded" do
    base = tmp_dir()
    x = Mx.tensor([1.0, 2.0], type: :f64)

    with_env([{"XDG_CACHE_HOME", base}], fn ->
      {info, _, _} = native_with(-2.0, x)
      assert info.tier == :native
      dir = Path.join(base, "genmx")
      [so] = dir |> File.ls!() |> Enum.filter(&String.ends_with?(&1, ".so"))
      so = Path.join(dir, so)
      good = File.read!(so)
      assert {:ok, _} = File.read(String.replace_suffix(so, ".so", ".sha256"))

      damage = [
        {"truncated", fn -> File.write!(so, binary_part(good, 0, div(byte_size(good), 2))) end},
        {"one byte changed",
         fn ->
           <<head::binary-size(100), b, rest::binary>> = good
           File.write!(so, <<head::binary, Bitwise.bxor(b, 1), rest::binary>>)
         end},
        {"another tape's object with a matching digest",
         fn ->
           # a valid object of another source, with its own (correct) digest, under this key
           {_, _, _} = native_with(7.0, x)

           other =
             dir
             |> File.ls!()
             |> Enum.filter(&String.ends_with?(&1, ".so"))
             |> Enum.map(&Path.join(dir, &1))
             |> Enum.reject(&(&1 == so))
             |> hd()

           File.cp!(other, so)

           File.cp!(
             String.replace_suffix(other, ".so", ".sha256"),
             String.replace_suffix(so, ".so", ".sha256")
           )
         end},
        {"group-writable", fn -> File.chmod!(so, 0o660) end}
      ]

      for {what, spoil} <- damage do
        spoil.()
        {info, out, _} = native_with(-2.0, x)
        assert info.tier == :native and not info.cache_hit, "#{what}: rebuilt, not loaded"
        assert Mx.to_list(out) == [-1.0, -3.0], "#{what}: correct results"
        assert (mode(so) &&& 0o077) == 0
        {again, _, _} = native_with(-2.0, x)

        assert again.tier == :native and again.cache_hit,
               "#{what}: the rebuilt object replaced it"
      end
    end)
  end

  test "MX_JIT=0, jit: false and a missing compiler give the interpreter, no error" do
    x = Mx.tensor([1.0, 2.0], type: :f64)

    with_env([{"MX_JIT", "0"}], fn ->
      f = poly(1.5)
      assert Mx.to_list(f.(x)) == [2.5, 4.0]
      assert %{tier: :interpreter, jit_note: ""} = Mx.Compile.await_native(f, [x], 1000)
    end)

    with_env([{"CC", "/nonexistent/cc"}], fn ->
      f = poly(2.5)
      assert Mx.to_list(f.(x)) == [3.5, 6.0]
      info = Mx.Compile.await_native(f, [x], 1000)
      assert info.tier == :interpreter and info.jit_note =~ "no C compiler (/nonexistent/cc)"
      assert Mx.to_list(f.(x)) == [3.5, 6.0]
    end)

    g = Mx.compile(fn x -> Mx.exp(x) end, jit: false)
    g.(x)
    assert Mx.Compile.await_native(g, [x], 1000).tier == :interpreter

    base = tmp_dir()
    broken = Path.join(base, "broken-cc")
    File.write!(broken, "#!/bin/sh\necho this compiler is broken >&2\nexit 1\n")
    File.chmod!(broken, 0o700)

    with_env([{"CC", broken}, {"XDG_CACHE_HOME", base}], fn ->
      f = poly(4.5)
      assert Mx.to_list(f.(x)) == [5.5, 10.0]
      assert {:failed, why} = Mx.Compile.await_native(f, [x], 60_000).tier
      assert why =~ "this compiler is broken"
      assert Mx.to_list(f.(x)) == [5.5, 10.0]
    end)
  end

  test "CC may carry arguments, as make's CC does: the first word is the compiler, the rest its flags" do
    x = Mx.tensor([1.0, 2.0], type: :f64)
    base = tmp_dir()
    seen = Path.join(base, "args")
    wrapper = Path.join(base, "cc-wrapper")
    File.write!(wrapper, "#!/bin/sh\necho \"$@\" >> #{seen}\nexec cc \"$@\"\n")
    File.chmod!(wrapper, 0o700)

    with_env([{"CC", "  #{wrapper}   -DGENMX_CC_ARG=1 "}, {"XDG_CACHE_HOME", base}], fn ->
      f = poly(6.5)
      assert Mx.to_list(f.(x)) == [7.5, 14.0]
      assert %{tier: :native} = Mx.Compile.await_native(f, [x], 60_000)
      assert File.read!(seen) =~ ~r/^-DGENMX_CC_ARG=1 .*-shared/m
      assert Mx.to_list(f.(x)) == [7.5, 14.0]
    end)
  end

  test "options and errors: jit must be a boolean; await_native needs a cached signature" do
    assert_raise ArgumentError, ~r/jit must be a boolean/, fn ->
      Mx.compile(&Mx.exp/1, jit: :yes)
    end

    f = Mx.compile(&Mx.exp/1, jit: true)

    assert_raise ArgumentError, ~r/no tape is cached for this signature/, fn ->
      Mx.Compile.await_native(f, [Mx.tensor([1.0])], 10)
    end
  end
end
