defmodule Mx.OptimTest do
  # Not async: the flat-memory test reads the engine's global memory report.
  use ExUnit.Case, async: false
  alias Mx.Optim

  doctest Mx.Optim

  # test/reference/generate_optim.py: torch 1.13 (SGD ... Adamax, schedules, clip_grad_norm) and
  # NumPy from the papers/MLX's formulas (Lion, Adafactor, Muon).
  @ref "../reference/optim/optim.exs" |> Path.expand(__DIR__) |> Code.eval_file() |> elem(0)

  defp decode(tree), do: Map.new(tree, fn {k, a} -> {k, Mx.ReferenceCase.decode(a)} end)
  defp u(:f32), do: :math.pow(2, -24)
  defp u(:f64), do: :math.pow(2, -53)

  # Each step adds a few tens of roundings of size u to terms of size ≤ max(1, |θ|); five steps
  # stay under 256u. Muon's Newton–Schulz polynomial has slope ≤ a = 3.4445 on [0, 1], so
  # its five iterations can amplify a rounding 3.4445⁵ ≈ 490-fold over 4-term dot products: 4096u.
  defp tolerance(:muon, type), do: 4096 * u(type)
  defp tolerance(_fun, type), do: 256 * u(type)

  defp assert_close(got, want, tol, what) do
    Enum.zip(Mx.to_flat_list(got), Mx.to_flat_list(want))
    |> Enum.each(fn {g, w} ->
      assert abs(g - w) <= tol * max(1.0, abs(w)),
             "#{what}: got #{g}, reference #{w} (tolerance #{tol})"
    end)
  end

  defp optimizer(run) do
    opts =
      case run.schedule do
        nil -> run.opts
        {sched, args} -> Keyword.put(run.opts, :learning_rate, apply(Optim, sched, args))
      end

    apply(Optim, run.fun, [opts])
  end

  describe "five steps against torch 1.13 / NumPy" do
    for run <- @ref.runs do
      @run run
      test @run.name do
        run = @run
        opt = optimizer(run)
        p0 = decode(run.params)

        Enum.zip(run.grads, run.expected)
        |> Enum.with_index(1)
        |> Enum.reduce({p0, Optim.init(opt, p0)}, fn {{g, want}, i}, {p, st} ->
          {p, st} = Optim.update(opt, decode(g), st, p)
          Mx.eval({p, st})
          assert Mx.to_number(st.step) == i

          for {k, w} <- decode(want) do
            assert Mx.type(p[k]) == run.type
            assert_close(p[k], w, tolerance(run.fun, run.type), "#{run.name}, step #{i}, #{k}")
          end

          {p, st}
        end)
      end
    end
  end

  describe "schedules against torch.optim.lr_scheduler" do
    # torch updates rates recursively, one multiplication (a few operations for LinearLR) per
    # step, each rounding by ≤ u: after n steps the two differ by ≤ 8(n + 1)u relatively.
    for s <- @ref.schedules do
      @s s
      test "#{@s.fun}#{inspect(@s.args)}" do
        f = apply(Optim, @s.fun, @s.args)
        # CosineAnnealingLR is periodic past T_max; cosine_decay stays at its end value.
        n = if @s.fun == :cosine_decay, do: Enum.at(@s.args, 1), else: length(@s.values) - 1

        for {want, i} <- Enum.with_index(@s.values), i <= n do
          got = Mx.to_number(f.(i))

          assert abs(got - want) <= 8 * (i + 1) * u(:f64) * abs(want),
                 "step #{i}: #{got} vs #{want}"

          # The same value from an array step, as inside a compiled update.
          assert Mx.to_number(f.(Mx.tensor(i, type: :s32))) == got
        end
      end
    end

    test "join_schedules: linear warmup into cosine decay (SequentialLR)" do
      j = @ref.joined

      f =
        Optim.join_schedules(
          [apply(Optim, :linear_schedule, j.warmup), apply(Optim, :cosine_decay, j.cosine)],
          [j.boundary]
        )

      for {want, i} <- Enum.with_index(j.values), i <= j.boundary + Enum.at(j.cosine, 1) do
        got = Mx.to_number(f.(i))

        assert abs(got - want) <= 8 * (i + 1) * u(:f64) * max(abs(want), 1.0e-3),
               "step #{i}: #{got} vs #{want}"
      end
    end
  end

  describe "clip_grad_norm against torch.nn.utils.clip_grad_norm_" do
    for c <- @ref.clip do
      @c c
      test "max_norm #{@c.max_norm} #{@c.type}" do
        {clipped, norm} = Optim.clip_grad_norm(decode(@c.grads), @c.max_norm)
        # a sum of 28 squares: relative error ≤ γ(28) ≈ 28u, halved by the square root
        assert abs(Mx.to_number(norm) - @c.norm) <= 32 * u(@c.type) * @c.norm
        for {k, w} <- decode(@c.clipped), do: assert_close(clipped[k], w, 64 * u(@c.type), "#{k}")
      end
    end
  end

  # ---- a training step ----------------------------------------------------------------------

  # Least squares for a 2-layer MLP on fixed data.
  defp data do
    key = Mx.Random.key(3)
    {k1, k2} = Mx.Random.split(key) |> then(&{Mx.take(&1, 0), Mx.take(&1, 1)})
    x = Mx.Random.normal(k1, shape: {32, 3})
    y = Mx.sum(Mx.sin(x), axes: [1], keep_axes: true)
    {x, y, k2}
  end

  defp mlp(key) do
    [a, b] = for i <- 0..1, do: Mx.take(Mx.Random.split(key), i)

    %{
      l1: %{w: Mx.multiply(Mx.Random.normal(a, shape: {3, 8}), 0.5), b: Mx.zeros({8})},
      l2: %{w: Mx.multiply(Mx.Random.normal(b, shape: {8, 1}), 0.5), b: Mx.zeros({1})}
    }
  end

  defp loss(p, x, y) do
    h = Mx.tanh(Mx.add(Mx.matmul(x, p.l1.w), p.l1.b))
    Mx.mean(Mx.square(Mx.subtract(Mx.add(Mx.matmul(h, p.l2.w), p.l2.b), y)))
  end

  defp step_fun(opt) do
    vg = Mx.value_and_grad(&loss/3, 0)

    fn p, st, x, y ->
      {l, g} = vg.(p, x, y)
      {g, _norm} = Optim.clip_grad_norm(g, 10.0)
      {p, st} = Optim.update(opt, g, st, p)
      {p, st, l}
    end
  end

  defp train(step, p, st, x, y, n) do
    Enum.reduce(1..n, {p, st, []}, fn _, {p, st, ls} ->
      {p, st, l} = step.(p, st, x, y)
      Mx.eval({p, st, l})
      {p, st, [Mx.to_number(l) | ls]}
    end)
  end

  test "a compiled training step follows the uncompiled trajectory, tracing once" do
    {x, y, k} = data()
    p0 = mlp(k)

    sched =
      Optim.join_schedules([Optim.linear_schedule(0.0, 0.05, 5), Optim.cosine_decay(0.05, 50)], [
        5
      ])

    opt = Optim.adamw(learning_rate: sched)
    plain = step_fun(opt)
    compiled = Mx.compile(plain, jit: false)

    {pa, _, la} = train(plain, p0, Optim.init(opt, p0), x, y, 40)
    {pb, sb, lb} = train(compiled, p0, Optim.init(opt, p0), x, y, 40)

    assert Mx.to_number(sb.step) == 40

    assert %{compiles: 1, misses: 1, hits: 39} =
             Map.take(Mx.compile_stats(compiled), [:compiles, :misses, :hits])

    # Same ops in the same order; fusion may reassociate nothing here but sums: f32 to 1e-5.
    Enum.zip(la, lb)
    |> Enum.each(fn {a, b} -> assert_in_delta a, b, 1.0e-5 * max(1.0, abs(a)) end)

    Enum.zip(Mx.Tree.leaves(pa), Mx.Tree.leaves(pb))
    |> Enum.each(fn {a, b} -> assert_close(b, a, 1.0e-4, "params") end)

    # and it trains: the loss falls to under a third of its start
    assert hd(la) < List.last(la) / 3
  end

  @tag :slow
  @tag timeout: 600_000
  test "memory stays flat over 10^4 training steps, compiled and not" do
    {x, y, k} = data()
    p0 = mlp(k)

    for {opt, compile?} <- [
          {Optim.adam(learning_rate: 0.01), true},
          {Optim.muon(learning_rate: 0.01), false}
        ] do
      step = if compile?, do: Mx.compile(step_fun(opt), jit: false), else: step_fun(opt)
      {p, st, _} = train(step, p0, Optim.init(opt, p0), x, y, 100)
      base = Mx.MemoryCheck.settled(Mx.Memory.report())

      {p, st} =
        Enum.reduce(1..10_000, {p, st}, fn _, {p, st} ->
          {p, st, l} = step.(p, st, x, y)
          Mx.eval({p, st, l})
          {p, st}
        end)

      after_loop = Mx.MemoryCheck.settled(base)
      assert Mx.to_number(st.step) == 10_100

      assert after_loop.live_arrays <= base.live_arrays,
             "#{inspect(opt.name)}: live arrays #{base.live_arrays} -> #{after_loop.live_arrays}"

      assert after_loop.active_bytes <= base.active_bytes,
             "#{inspect(opt.name)}: bytes #{base.active_bytes} -> #{after_loop.active_bytes}"

      assert Mx.to_number(loss(p, x, y)) < 0.05
    end
  end

  # ---- state ------------------------------------------------------------------------------------

  defp run_steps(opt, p, st, gs),
    do: Enum.reduce(gs, {p, st}, fn g, {p, st} -> Mx.eval(Optim.update(opt, g, st, p)) end)

  defp grads(n) do
    for i <- 1..n do
      %{
        layers: [
          %{
            w: Mx.multiply(Mx.tensor([[1.0, -2.0], [0.5, 3.0]], type: :f64), i * 0.7),
            b: Mx.tensor([0.1 * i, -0.2], type: :f64)
          }
        ],
        scale: {Mx.tensor(i * 1.0 - 2.5, type: :f64)}
      }
    end
  end

  defp params do
    %{
      layers: [
        %{
          w: Mx.tensor([[0.5, -0.5], [1.0, 2.0]], type: :f64),
          b: Mx.tensor([0.0, 1.0], type: :f64)
        }
      ],
      scale: {Mx.tensor(1.0, type: :f64)}
    }
  end

  test "state saved to safetensors and loaded resumes the same trajectory, bit for bit" do
    matrices = fn _path, p -> Mx.rank(p) == 2 end

    multi =
      Optim.multi([{matrices, Optim.muon(learning_rate: 0.02)}], Optim.adafactor(beta1: 0.9))

    dir = System.tmp_dir!()

    for opt <- [
          Optim.adam(learning_rate: 0.1, amsgrad: true),
          Optim.sgd(learning_rate: 0.1, momentum: 0.9),
          multi
        ] do
      [g1, g2, g3, g4, g5, g6] = grads(6)
      p0 = params()
      {p3, st3} = run_steps(opt, p0, Optim.init(opt, p0), [g1, g2, g3])
      {want, want_st} = run_steps(opt, p3, st3, [g4, g5, g6])

      path =
        Path.join(
          dir,
          "mx_optim_state_#{opt.name}_#{System.unique_integer([:positive])}.safetensors"
        )

      :ok = Mx.IO.save_safetensors(path, Optim.state_to_map(st3))
      loaded = Optim.state_from_map(Mx.IO.load_safetensors(path), Optim.init(opt, p0))
      File.rm!(path)
      {got, got_st} = run_steps(opt, p3, loaded, [g4, g5, g6])

      bits = fn tree ->
        tree |> Mx.Tree.flatten() |> Enum.map(fn {path, a} -> {path, Mx.to_binary(a)} end)
      end

      assert bits.(got) == bits.(want), "#{opt.name}"
      assert bits.(got_st) == bits.(want_st)
    end
  end

  test "multi: each leaf steps with the optimizer its path picks" do
    by_path = fn path, _p -> match?([:layers, _, :w], path) end
    adam = Optim.adam(learning_rate: 0.1)
    sgd = Optim.sgd(learning_rate: 0.2, momentum: 0.5)
    opt = Optim.multi([{by_path, adam}], sgd)
    p0 = params()
    gs = grads(3)
    {p, st} = run_steps(opt, p0, Optim.init(opt, p0), gs)
    {pa, _} = run_steps(adam, p0, Optim.init(adam, p0), gs)
    {ps, _} = run_steps(sgd, p0, Optim.init(sgd, p0), gs)

    assert Mx.to_binary(hd(p.layers).w) == Mx.to_binary(hd(pa.layers).w)
    assert Mx.to_binary(hd(p.layers).b) == Mx.to_binary(hd(ps.layers).b)
    assert Mx.to_binary(elem(p.scale, 0)) == Mx.to_binary(elem(ps.scale, 0))
    # adam's state holds only the matrix; sgd's the rest
    [sa, ss] = st.states
    assert [[:layers, 0, :w]] == sa.m |> Mx.Tree.flatten() |> Enum.map(&elem(&1, 0))
    assert [[:layers, 0, :b], [:scale, 0]] == ss.v |> Mx.Tree.flatten() |> Enum.map(&elem(&1, 0))
  end

  test "a schedule gets the count of updates done (0 first), as in MLX and Optax" do
    opt = Optim.sgd(learning_rate: fn count -> Mx.add(Mx.as_type(count, :f64), 1.0) end)
    p = Mx.tensor(0.0, type: :f64)
    g = Mx.tensor(-1.0, type: :f64)
    {p1, s1} = Optim.update(opt, g, Optim.init(opt, p), p)
    {p2, _} = Optim.update(opt, g, s1, p1)
    # rates 1 then 2
    assert {Mx.to_number(p1), Mx.to_number(p2)} == {1.0, 3.0}
  end

  test "adam without bias correction is MLX's Adam: θ - η m/(√v + ε)" do
    opt = Optim.adam(learning_rate: 0.1, bias_correction: false, eps: 0.0)
    p = Mx.tensor([0.0], type: :f64)
    {p1, s1} = Optim.update(opt, Mx.tensor([2.0], type: :f64), Optim.init(opt, p), p)
    {p2, _} = Optim.update(opt, Mx.tensor([-1.0], type: :f64), s1, p1)
    {m1, v1} = {0.1 * 2.0, 0.001 * 4.0}
    x1 = -0.1 * m1 / :math.sqrt(v1)
    {m2, v2} = {0.9 * m1 + 0.1 * -1.0, 0.999 * v1 + 0.001 * 1.0}
    assert_in_delta hd(Mx.to_list(p1)), x1, 4 * u(:f64)
    assert_in_delta hd(Mx.to_list(p2)), x1 - 0.1 * m2 / :math.sqrt(v2), 16 * u(:f64)
  end

  test "non-array terms ride along; f32 parameters stay f32 under f64 gradients" do
    opt = Optim.adam(learning_rate: 0.1)
    p = %{w: Mx.tensor([1.0]), act: :relu}

    {p1, _} =
      Optim.update(opt, %{w: Mx.tensor([1.0], type: :f64), act: :relu}, Optim.init(opt, p), p)

    assert p1.act == :relu and Mx.type(p1.w) == :f32
  end

  # ---- errors ---------------------------------------------------------------------------------

  test "options are validated with messages that say how to fix them" do
    assert_raise ArgumentError, ~r/Mx.Optim.adam: unknown option lr:.*learning_rate:/, fn ->
      Optim.adam(lr: 0.1)
    end

    assert_raise ArgumentError, ~r/Mx.Optim.sgd: learning_rate: is required/, fn ->
      Optim.sgd([])
    end

    for f <- [:sgd, :rmsprop, :adagrad, :adadelta, :adam, :adamw, :adamax, :lion, :muon] do
      assert_raise ArgumentError,
                   ~r/Mx.Optim.#{f}: learning_rate: must be a non-negative number or a schedule .*got -0.1/,
                   fn ->
                     apply(Optim, f, [[learning_rate: -0.1]])
                   end
    end

    assert_raise ArgumentError, ~r/beta1: must be a number in \[0, 1\)/, fn ->
      Optim.adam(beta1: 1.0)
    end

    assert_raise ArgumentError, ~r/momentum: must be a non-negative number/, fn ->
      Optim.sgd(learning_rate: 0.1, momentum: -1)
    end

    assert_raise ArgumentError, ~r/amsgrad: must be true or false/, fn ->
      Optim.adam(amsgrad: 1)
    end

    assert_raise ArgumentError, ~r/nesterov: true needs momentum/, fn ->
      Optim.sgd(learning_rate: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true)
    end

    assert_raise ArgumentError, ~r/pass relative_step: false/, fn ->
      Optim.adafactor(learning_rate: 0.1)
    end

    assert_raise ArgumentError, ~r/eps: must be a pair/, fn -> Optim.adafactor(eps: 1.0e-30) end

    assert_raise ArgumentError, ~r/decay_rate: must be a negative number/, fn ->
      Optim.adafactor(decay_rate: 0.5)
    end

    assert_raise ArgumentError, ~r/ns_steps: must be a positive integer/, fn ->
      Optim.muon(learning_rate: 0.1, ns_steps: 0)
    end

    assert_raise ArgumentError, ~r/each rule must be/, fn ->
      Optim.multi([Optim.adam()], Optim.adam())
    end

    assert_raise ArgumentError, ~r/decay_steps must be a positive integer/, fn ->
      Optim.cosine_decay(0.1, 0)
    end

    assert_raise ArgumentError, ~r/n - 1 boundaries/, fn ->
      Optim.join_schedules([Optim.cosine_decay(0.1, 5)], [3])
    end

    assert_raise ArgumentError, ~r/max_norm must be a positive number/, fn ->
      Optim.clip_grad_norm(%{a: Mx.tensor(1.0)}, 0)
    end
  end

  test "parameters, gradients, schedules and saved states are checked" do
    opt = Optim.adam()

    assert_raise ArgumentError,
                 ~r/Mx.Optim.init \(adam\): parameters must be floating-point.*wrap numbers/,
                 fn -> Optim.init(opt, %{x: 1.0}) end

    assert_raise ArgumentError, ~r/floating-point/, fn ->
      Optim.init(opt, %{x: Mx.tensor([1, 2])})
    end

    p = %{x: Mx.tensor([1.0])}

    assert_raise ArgumentError,
                 ~r/do not have the container shape of the parameters .*differ at path \[\]/,
                 fn ->
                   Optim.update(opt, %{y: Mx.tensor([1.0])}, Optim.init(opt, p), p)
                 end

    bad = Optim.sgd(learning_rate: fn _ -> "fast" end)

    assert_raise ArgumentError, ~r/schedule returned "fast"/, fn ->
      Optim.update(bad, p, Optim.init(bad, p), p)
    end

    template = Optim.init(opt, p)
    map = Optim.state_to_map(template)

    assert_raise ArgumentError, ~r/not in this optimizer's state/, fn ->
      Optim.state_from_map(Map.put(map, "z", Mx.tensor(1.0)), template)
    end

    assert_raise ArgumentError, ~r/"m.x" is f64\[1\], the template's is f32\[1\]/, fn ->
      Optim.state_from_map(Map.put(map, "m.x", Mx.tensor([0.0], type: :f64)), template)
    end

    assert_raise ArgumentError, ~r/stand for more than one array/, fn ->
      Optim.state_to_map(
        Optim.init(opt, %{"a.b" => Mx.tensor(1.0), "a" => %{"b" => Mx.tensor(2.0)}})
      )
    end
  end
end
