defmodule Gen.Combinators do
  @moduledoc """
  Generative function combinators (Gen.jl's modeling library): each takes a
  generative function (the kernel) and returns a new generative function
  with the full GFI, so it can be run with `Gen.simulate/3` and friends or
  traced inside a `gen` body with `Gen.trace/3`.

    * `map/1` — `Gen.Combinators.Map`: the kernel on each element of its
      argument lists; choices under `0, 1, ...`; returns the list of
      return values.
    * `unfold/1` — `Gen.Combinators.Unfold`: `kernel(t, state, params...)`
      gives the next state, for `t = 0..n-1`; choices under `0..n-1`;
      returns the list of states.
    * `switch/1` — `Gen.Combinators.Switch`: `[index | args]` runs branch
      `index`; its choices at the top level.
    * `mask/1` — `Gen.Combinators.Mask`: `[flag | args]` runs the function
      only when `flag` is true.
    * `mix/2` — `Gen.Combinators.Mix`: a mixture; the index at
      `:component`, the component's choices under `:value`.
    * `scan/1` — `Gen.Combinators.Scan`: `kernel(carry, x, params...)`
      returns `{carry, y}`, run over the inputs `xs` like `jax.lax.scan`;
      choices under `0..n-1`; returns `{final_carry, ys}`.
    * `dimap/2`, `contramap/2`, `map_retval/2` — `Gen.Combinators.Dimap`:
      transform the arguments and/or the return value.
    * `recurse/2` — `Gen.Combinators.Recurse`: the fixed point of
      `fn self -> body end`, for recursive generative functions.
    * `vswitch/1` — `Gen.Combinators.VSwitch`: `[index | args]` runs every
      branch on `[N]` arrays and selects per element with `Mx.where`.

  Their traces are `Gen.Trace`s whose `subtraces` map the path `[i]` to the
  kernel's trace at element or step `i` (branch `k` for `vswitch`; the
  path `[]` to the one inner trace for switch, mask, dimap and recurse),
  as a dynamic function's trace maps its trace sites. Element `i` draws
  with `Mx.Random.fold_in(key, i)`. Update and regenerate are
  incremental: an element whose arguments are unchanged and that has
  nothing constrained or selected under it is kept without calling the
  kernel.
  """

  alias Gen.{Choicemap, Trace}
  alias Gen.GenerativeFunction, as: GF
  alias Gen.Handlers, as: H

  @doc """
  Gen.jl's `Map(kernel)`: a generative function of `k` lists of equal length
  `n` that calls `kernel` on the `i`-th element of each, for `i = 0..n-1`,
  with its choices under address `i`, and returns the list of return values.

      iex> import Gen
      iex> kernel = gen fn mu, sigma -> trace(:y, Gen.Dist.normal(mu, sigma)) end
      iex> m = Gen.Combinators.map(kernel)
      iex> {t, w} = Gen.generate(m, [[0.0, 1.0], [1.0, 2.0]], %{0 => %{y: 0.0}, 1 => %{y: 1.0}})
      iex> Mx.to_number(w) |> Float.round(10)
      -2.5310242470
      iex> Enum.map(Gen.get_retval(t), &Mx.to_number/1)
      [0.0, 1.0]
  """
  @spec map(Gen.GenerativeFunction.t()) :: Gen.Combinators.Map.t()
  def map(kernel), do: %Gen.Combinators.Map{kernel: kernel!(kernel, "map")}

  @doc """
  Gen.jl's `Unfold(kernel)`: a generative function of `(n, init_state,
  params...)` that runs `state_t = kernel(t, state_{t-1}, params...)` for
  `t = 0..n-1` starting from `init_state`, with step `t`'s choices under
  address `t`, and returns the list `[state_0, ..., state_{n-1}]`.

      iex> import Gen
      iex> step = gen fn _t, x, s -> trace(:x, Gen.Dist.normal(x, s)) end
      iex> u = Gen.Combinators.unfold(step)
      iex> {t, w} = Gen.generate(u, [2, 0.0, 1.0], %{0 => %{x: 1.0}, 1 => %{x: 1.0}})
      iex> Mx.to_number(w) |> Float.round(10)
      -2.3378770664
      iex> Enum.map(Gen.get_retval(t), &Mx.to_number/1)
      [1.0, 1.0]
  """
  @spec unfold(Gen.GenerativeFunction.t()) :: Gen.Combinators.Unfold.t()
  def unfold(kernel), do: %Gen.Combinators.Unfold{kernel: kernel!(kernel, "unfold")}

  @doc """
  Gen.jl's `Switch(branches...)`: a generative function of `[index |
  args]` that runs branch `index` (0-based integer or Mx integer scalar)
  on `args`, with the branch's choices at the top level; see
  `Gen.Combinators.Switch`.

      iex> import Gen
      iex> s = Gen.Combinators.switch([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(3.0, 1.0)])
      iex> {_t, w} = Gen.generate(s, [1], Gen.Choicemap.leaf(3.0))
      iex> Mx.to_number(w) |> Float.round(10)
      -0.9189385332
  """
  @spec switch([Gen.GenerativeFunction.t()]) :: Gen.Combinators.Switch.t()
  def switch([_ | _] = branches), do: %Gen.Combinators.Switch{branches: Enum.map(branches, &kernel!(&1, "switch"))}

  def switch(other), do: raise(ArgumentError, "Gen.Combinators.switch: expected a non-empty list of branches, got #{inspect(other)}")

  @doc """
  The vectorized Switch: a generative function of `[index | args]` that
  runs every branch on `args` (usually `[N]` arrays) and selects, per
  element, branch `index[e]`'s choices, score and return value with
  `Mx.where`; see `Gen.Combinators.VSwitch`.

      iex> vs = Gen.Combinators.vswitch([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(3.0, 1.0)])
      iex> {_t, w} = Gen.generate(vs, [Mx.tensor([0, 1])], Gen.Choicemap.leaf(Mx.tensor([0.0, 3.0], type: :f64)))
      iex> Mx.to_list(w) |> Enum.map(&Float.round(&1, 10))
      [-0.9189385332, -0.9189385332]
  """
  @spec vswitch([Gen.GenerativeFunction.t()]) :: Gen.Combinators.VSwitch.t()
  def vswitch([_ | _] = branches), do: %Gen.Combinators.VSwitch{branches: Enum.map(branches, &kernel!(&1, "vswitch"))}

  def vswitch(other), do: raise(ArgumentError, "Gen.Combinators.vswitch: expected a non-empty list of branches, got #{inspect(other)}")

  @doc """
  A generative function of `[flag | args]` that runs `gf` on `args` when
  `flag` is true and makes no choices (retval `nil`, score 0) when false;
  see `Gen.Combinators.Mask`.

      iex> import Gen
      iex> m = Gen.Combinators.mask(Gen.Dist.normal(0.0, 1.0))
      iex> {Gen.get_retval(Gen.simulate(m, [false])), Mx.to_number(Gen.get_score(Gen.simulate(m, [false])))}
      {nil, 0.0}
  """
  @spec mask(Gen.GenerativeFunction.t()) :: Gen.Combinators.Mask.t()
  def mask(gf), do: %Gen.Combinators.Mask{inner: kernel!(gf, "mask")}

  @doc """
  A first-class mixture of `components` with log-weights `log_weights`:
  either fixed (a list of numbers or an Mx vector, one per component,
  unnormalized), or a generative function run on the mixture's arguments
  that returns them (its choices under `:logits`). The index is the
  choice at `:component`, the component's choices lie under `:value`;
  see `Gen.Combinators.Mix`.

      iex> m = Gen.Combinators.mix([Gen.Dist.normal(0.0, 1.0), Gen.Dist.normal(5.0, 1.0)], [0.0, 0.0])
      iex> {w, v} = Gen.assess(m, [], %{component: 0, value: 0.0})
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(v)}
      {-1.6120857138, 0.0}
  """
  @spec mix([Gen.GenerativeFunction.t()], Mx.t() | [number()] | Gen.GenerativeFunction.t()) :: Gen.Combinators.Mix.t()
  def mix([_ | _] = components, log_weights) when is_list(log_weights) or is_struct(log_weights, Mx.Array) do
    lw = Gen.Handlers.f64(log_weights)

    if Mx.shape(lw) != {length(components)} do
      raise ArgumentError,
            "Gen.Combinators.mix: log_weights must be a vector with one entry per component (#{length(components)}), " <>
              "got shape #{inspect(Mx.shape(lw))}"
    end

    %Gen.Combinators.Mix{components: Enum.map(components, &kernel!(&1, "mix")), log_weights: lw}
  end

  def mix([_ | _] = components, logits_gf) do
    if Gen.GenerativeFunction.impl_for(logits_gf) in [nil, Gen.GenerativeFunction.Any] and Gen.Distribution.impl_for(logits_gf) == nil do
      raise ArgumentError,
            "Gen.Combinators.mix: the log-weights must be a list or an Mx vector (fixed) or a generative function " <>
              "returning them, got #{inspect(logits_gf)}"
    end

    %Gen.Combinators.Mix{components: Enum.map(components, &kernel!(&1, "mix")), logits: logits_gf}
  end

  def mix(other, _log_weights), do: raise(ArgumentError, "Gen.Combinators.mix: expected a non-empty list of components, got #{inspect(other)}")

  @doc """
  Scan (`jax.lax.scan`): a generative function of `[init_carry, xs |
  params]` that threads a carry through `kernel(carry, x, params...)`,
  which returns `{carry, y}`, over the inputs `xs` (a list, an Mx array
  along its first axis, or a number of steps `n` for the inputs
  `0..n-1`), with step `i`'s choices under address `i`; it
  returns `{final_carry, ys}`. See `Gen.Combinators.Scan`.

      iex> import Gen
      iex> walk = gen fn c, x -> z = trace(:z, Gen.Dist.normal(c, 1.0)); {z, Mx.add(z, x)} end
      iex> s = Gen.Combinators.scan(walk)
      iex> {w, {c, ys}} = Gen.assess(s, [0.0, [10.0, 20.0]], %{0 => %{z: 0.0}, 1 => %{z: 1.0}})
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(c), Enum.map(ys, &Mx.to_number/1)}
      {-2.3378770664, 1.0, [10.0, 21.0]}
  """
  @spec scan(Gen.GenerativeFunction.t()) :: Gen.Combinators.Scan.t()
  def scan(kernel), do: %Gen.Combinators.Scan{kernel: kernel!(kernel, "scan")}

  @doc """
  Dimap: `gf` with its arguments transformed by `pre:` (a function of the
  argument list returning `gf`'s argument list) and its return value by
  `post:` (a function of `gf`'s return value); either may be left out.
  Choices, score and weights are `gf`'s. See `Gen.Combinators.Dimap`.

      iex> d = Gen.Combinators.dimap(Gen.Dist.normal(0.0, 1.0), pre: fn [] -> [] end, post: &Mx.negate/1)
      iex> {w, r} = Gen.assess(d, [], Gen.Choicemap.leaf(2.0))
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(r)}
      {-2.9189385332, -2.0}
  """
  @spec dimap(Gen.GenerativeFunction.t(), keyword()) :: Gen.Combinators.Dimap.t()
  def dimap(gf, opts) when is_list(opts) do
    Mx.Opts.validate!(opts, [:pre, :post], "Gen.Combinators.dimap")
    pre = fun!(Keyword.get(opts, :pre), "dimap", "pre:")
    post = fun!(Keyword.get(opts, :post), "dimap", "post:")
    %Gen.Combinators.Dimap{inner: kernel!(gf, "dimap"), pre: pre, post: post}
  end

  def dimap(_gf, opts), do: raise(ArgumentError, "Gen.Combinators.dimap: options must be a keyword list (pre:, post:), got #{inspect(opts)}")

  @doc """
  Contramap: `gf` run on `pre.(args)`, where `pre` maps the argument list
  to `gf`'s argument list (`dimap(gf, pre: pre)`).

      iex> import Gen
      iex> inner = gen fn mu, sigma -> trace(:x, Gen.Dist.normal(mu, sigma)) end
      iex> c = Gen.Combinators.contramap(inner, fn [mu] -> [mu, 1.0] end)
      iex> {w, _} = Gen.assess(c, [1.0], %{x: 1.0})
      iex> Float.round(Mx.to_number(w), 10)
      -0.9189385332
  """
  @spec contramap(Gen.GenerativeFunction.t(), ([term()] -> [term()])) :: Gen.Combinators.Dimap.t()
  def contramap(gf, pre), do: %Gen.Combinators.Dimap{inner: kernel!(gf, "contramap"), pre: req_fun!(pre, "contramap", "pre"), post: nil}

  @doc """
  `gf` with its return value transformed by `post` (GenJAX's `map`; named
  `map_retval` since `map/1` is Gen.jl's Map combinator): `dimap(gf, post: post)`.

      iex> m = Gen.Combinators.map_retval(Gen.Dist.normal(0.0, 1.0), &Mx.multiply(&1, 10.0))
      iex> {_w, r} = Gen.assess(m, [], Gen.Choicemap.leaf(0.5))
      iex> Mx.to_number(r)
      5.0
  """
  @spec map_retval(Gen.GenerativeFunction.t(), (term() -> term())) :: Gen.Combinators.Dimap.t()
  def map_retval(gf, post), do: %Gen.Combinators.Dimap{inner: kernel!(gf, "map_retval"), pre: nil, post: req_fun!(post, "map_retval", "post")}

  @doc """
  The fixed point of `body_fun`, a function of the recursive generative
  function itself (`self`) returning its body, a generative function that
  may trace `self` to recurse; see `Gen.Combinators.Recurse`. Options:
  `max_depth:` (10,000), the deepest nesting of recursive calls allowed
  before raising.

  A geometric depth: stop with probability `p` at each level.

      iex> import Gen
      iex> depth = Gen.Combinators.recurse(fn self ->
      ...>   gen fn p -> if Mx.to_number(trace(:stop, Gen.Dist.bernoulli(p))), do: 0, else: 1 + trace(:next, self, [p]) end
      ...> end)
      iex> {w, d} = Gen.assess(depth, [0.5], %{stop: false, next: %{stop: false, next: %{stop: true}}})
      iex> {Float.round(Mx.to_number(w), 10), d}
      {-2.0794415417, 2}
  """
  @spec recurse((Gen.Combinators.Recurse.t() -> Gen.GenerativeFunction.t()), keyword()) :: Gen.Combinators.Recurse.t()
  def recurse(body_fun, opts \\ [])

  def recurse(body_fun, opts) when is_function(body_fun, 1) and is_list(opts) do
    Mx.Opts.validate!(opts, [:max_depth], "Gen.Combinators.recurse")
    case Keyword.get(opts, :max_depth, 10_000) do
      n when is_integer(n) and n > 0 -> %Gen.Combinators.Recurse{body: body_fun, max_depth: n}
      other -> raise ArgumentError, "Gen.Combinators.recurse: max_depth: must be a positive integer, got #{inspect(other)}"
    end
  end

  def recurse(other, _opts) do
    raise ArgumentError,
          "Gen.Combinators.recurse: expected a function fn self -> generative function end (of one argument), got #{inspect(other)}"
  end

  defp fun!(nil, _who, _what), do: nil
  defp fun!(f, who, what), do: req_fun!(f, who, what)

  defp req_fun!(f, _who, _what) when is_function(f, 1), do: f

  defp req_fun!(other, who, what) do
    raise ArgumentError, "Gen.Combinators.#{who}: #{what} must be a function of one argument, got #{inspect(other)}"
  end

  defp kernel!(kernel, name) do
    dist? = Gen.Distribution.impl_for(kernel) != nil

    if not dist? and Gen.GenerativeFunction.impl_for(kernel) == Gen.GenerativeFunction.Any do
      raise ArgumentError,
            "Gen.Combinators.#{name}: the kernel must be a generative function (gen/defgen, a distribution, " <>
              "or a type implementing Gen.GenerativeFunction), got #{inspect(kernel)}"
    end

    kernel
  end

  # ---- shared by the combinators --------------------------------------------------

  @doc false
  # Checks a DynamicFunction kernel's arity against the arguments it will get.
  def kernel_arity!(%Gen.DynamicFunction{arity: a} = k, n, who, what) when a != n do
    raise ArgumentError, "#{who}: the kernel #{inspect(k)} takes #{a} argument(s) but #{what} give #{n}"
  end

  def kernel_arity!(_kernel, _n, _who, _what), do: :ok

  @doc false
  # Constraints may only name elements 0..n-1 (Gen.jl raises on the others).
  def check_constraints!(%Choicemap{} = cm, n, gf, method) do
    if cm.value != nil do
      raise ArgumentError, "#{method}: a value at the root address [] constrains #{inspect(gf)}, whose choices lie under 0..#{n - 1}"
    end

    Enum.each(Map.keys(cm.subs), fn k ->
      if not (is_integer(k) and k >= 0 and k < n) do
        raise ArgumentError,
              "#{method}: the constraint at address #{inspect(k)} names no element of #{inspect(gf)}: " <>
                "its choices lie under the integer addresses 0..#{n - 1}"
      end
    end)
  end

  @doc false
  # Update to another branch (Switch) or component (Mix), as Gen.jl's switch update: the new
  # branch keeps the old branch's choices at the addresses it visits, takes `cm` over them and
  # draws the rest from its prior; weight = its generate weight on those (kept and constrained)
  # choices - the old score; the discard holds the old choices not kept (overwritten or unvisited).
  # That is the dynamic update of the new branch on the old trace, when the two branches can
  # share addresses (both distributions, or both gen functions); otherwise nothing is shared.
  def switch_update(new, %Trace{} = old, args, cm, key) do
    if shares_addresses?(old.gen_fn, new) do
      GF.update(new, old, args, Enum.map(args, fn _ -> :unknown_change end), cm, key)
    else
      {t, w} = GF.generate(new, args, cm, key)
      {t, Mx.subtract(w, old.score), :unknown_change, old.choices}
    end
  end

  @doc false
  # Regenerate to another branch: the old branch's unselected choices at addresses the new one
  # visits are kept and rescored (their change of log-density is the weight); selected, new
  # and removed choices count 0, the correct MH weight for a draw from the prior.
  def switch_regenerate(new, %Trace{} = old, args, sel, key) do
    if shares_addresses?(old.gen_fn, new) do
      GF.regenerate(new, old, args, Enum.map(args, fn _ -> :unknown_change end), sel, key)
    else
      {GF.simulate(new, args, key), H.zero(), :unknown_change}
    end
  end

  defp shares_addresses?(a, b) do
    dist? = &(Gen.Distribution.impl_for(&1) != nil)
    (dist?.(a) and dist?.(b)) or (is_struct(a, Gen.DynamicFunction) and is_struct(b, Gen.DynamicFunction))
  end

  @doc false
  # A trace from the subtraces %{[i] => trace}, i = 0..n-1; the retval is the list of their retvals.
  def to_trace(gf, args, subs, n) do
    subtraces = for i <- range(n), into: %{}, do: {[i], Map.fetch!(subs, i)}
    choices = Enum.reduce(subtraces, Choicemap.new(), fn {p, t}, cm -> Choicemap.put_submap(cm, p, t.choices) end)
    score = Enum.reduce(range(n), H.zero(), fn i, acc -> Mx.add(acc, subs[i].score) end)
    retval = for i <- range(n), do: subs[i].retval
    %Trace{gen_fn: gf, args: args, choices: choices, retval: retval, score: score, subtraces: subtraces}
  end

  @doc false
  def range(n), do: 0..(n - 1)//1

  @doc false
  def key(key, i), do: Mx.Random.fold_in(key, i)

  @doc false
  # An argument is unchanged if its argdiff says so or it is the same term.
  def changed?(diff, old, new), do: not (diff == :no_change or old === new)

  @doc false
  def diff(true), do: :unknown_change
  def diff(false), do: :no_change

  @doc false
  # The old subtraces past the new length: removed, their choices discarded.
  def removed(prev, n), do: for({[i], t} <- prev.subtraces, i >= n, do: {i, t})

  @doc false
  def retdiff(prev, subs, n) do
    if map_size(prev.subtraces) == n and Enum.all?(range(n), fn i -> subs[i].retval === prev.subtraces[[i]].retval end),
      do: :no_change,
      else: :unknown_change
  end
end
