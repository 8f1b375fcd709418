defmodule Mx.Opts do
  @moduledoc """
  Keyword options, checked one way across Mx and Gen. Every public function
  that takes options calls `validate!/3` first, so a misspelt or unsupported
  key raises an `ArgumentError` naming the function, the key, the closest
  valid key when one is close, and every valid key, instead of being ignored.

  A function that passes its options on to another validates them against
  the union of both lists of keys. Name the options parameter `opts` (or
  type it `keyword()` in the spec): test/options_test.exs finds every public
  function that takes options that way and calls it with an unknown key.

      iex> Mx.Opts.validate!([axes: [0]], [:axes, :keep_axes], "Mx.sum")
      [axes: [0]]
      iex> Mx.Opts.validate!([burnin: 100], [:samples, :burn, :thin], "Gen.Inference.run")
      ** (ArgumentError) Gen.Inference.run: unknown option burnin: (did you mean burn:?); the valid options are samples:, burn:, thin:
  """

  @doc """
  Returns `opts` when it is a keyword list whose keys are all in `valid`;
  raises `ArgumentError` otherwise. `valid` lists atoms or `{key, default}`
  pairs; a default is added to the result when its key is absent (as
  `Keyword.validate!/2`). `where` names the function in the message.

      iex> Mx.Opts.validate!([ord: 2], [ord: nil, keep_axes: false], "Mx.Linalg.norm")
      [keep_axes: false, ord: 2]

      iex> Mx.Opts.validate!([axis: 0], [:axes, :keep_axes], "Mx.sum")
      ** (ArgumentError) Mx.sum: unknown option axis: (did you mean axes:?); the valid options are axes:, keep_axes:

      iex> Mx.Opts.validate!([chains: 4], [:warmup, :samples], "Gen.Inference.NUTS.sample")
      ** (ArgumentError) Gen.Inference.NUTS.sample: unknown option chains:; the valid options are warmup:, samples:

      iex> Mx.Opts.validate!(%{axes: [0]}, [:axes], "Mx.sum")
      ** (ArgumentError) Mx.sum: options must be a keyword list, got %{axes: [0]}
  """
  @spec validate!(term(), [atom() | {atom(), term()}], String.t()) :: keyword()
  def validate!(opts, valid, where) when is_list(opts), do: check!(opts, opts, valid, where)
  def validate!(opts, _valid, where), do: not_keyword!(opts, where)

  # Plain recursion: this runs on every call of every Mx op that takes options.
  defp check!([{k, _} | rest], opts, valid, where) when is_atom(k) do
    if :lists.member(k, valid) or :lists.keymember(k, 1, valid),
      do: check!(rest, opts, valid, where),
      else: raise(ArgumentError, unknown(where, k, Enum.map(valid, &key/1)))
  end

  defp check!([], opts, valid, _where), do: add_defaults(valid, opts)
  defp check!(_not_a_pair, opts, _valid, where), do: not_keyword!(opts, where)

  defp add_defaults([{k, default} | rest], opts) do
    if :lists.keymember(k, 1, opts),
      do: add_defaults(rest, opts),
      else: [{k, default} | add_defaults(rest, opts)]
  end

  defp add_defaults([_key | rest], opts), do: add_defaults(rest, opts)
  defp add_defaults([], opts), do: opts

  defp key({k, _default}), do: k
  defp key(k), do: k

  defp not_keyword!(opts, where),
    do: raise(ArgumentError, "#{where}: options must be a keyword list, got #{inspect(opts)}")

  defp unknown(where, key, keys) do
    hint = if best = closest(key, keys), do: " (did you mean #{best}:?)", else: ""

    valid =
      if keys == [],
        do: "it takes no options",
        else: "the valid options are " <> Enum.map_join(keys, ", ", &"#{&1}:")

    "#{where}: unknown option #{key}:#{hint}; #{valid}"
  end

  # The most similar valid key, if similar enough: a Jaro similarity of at least 0.8
  # (burnin: for burn:, axis: for axes:), or one name inside the other (num_warmup: for warmup:).
  defp closest(key, keys) do
    k = Atom.to_string(key)

    scored = for v <- keys, s = similarity(k, Atom.to_string(v)), s >= 0.8, do: {s, v}

    case Enum.max_by(scored, &elem(&1, 0), fn -> nil end) do
      nil -> nil
      {_, v} -> v
    end
  end

  defp similarity(a, b) do
    inside? =
      min(String.length(a), String.length(b)) >= 3 and
        (String.contains?(a, b) or String.contains?(b, a))

    if inside?, do: 1.0, else: String.jaro_distance(a, b)
  end
end
