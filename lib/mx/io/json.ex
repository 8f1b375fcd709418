defmodule Mx.IO.JSON do
  @moduledoc false
  # A strict JSON (RFC 8259) decoder and a small encoder for safetensors headers: no hex
  # packages can be fetched and OTP 25 has no :json. Errors are {:error, reason}, never raises.

  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode(bin) when is_binary(bin) do
    case value(skip_ws(bin), 0) do
      {:ok, v, rest} ->
        case skip_ws(rest) do
          "" -> {:ok, v}
          other -> {:error, "unexpected #{preview(other)} after the JSON value"}
        end

      {:error, _} = e ->
        e
    end
  end

  # Nesting is bounded so a hostile header cannot exhaust the stack.
  @max_depth 64

  defp value(_bin, depth) when depth > @max_depth, do: {:error, "nesting deeper than #{@max_depth}"}
  defp value("{" <> rest, d), do: object(skip_ws(rest), %{}, d + 1)
  defp value("[" <> rest, d), do: array(skip_ws(rest), [], d + 1)
  defp value("\"" <> rest, _d), do: string(rest, [])
  defp value("true" <> rest, _d), do: {:ok, true, rest}
  defp value("false" <> rest, _d), do: {:ok, false, rest}
  defp value("null" <> rest, _d), do: {:ok, nil, rest}
  defp value(<<c, _::binary>> = bin, _d) when c == ?- or c in ?0..?9, do: number(bin)
  defp value("", _d), do: {:error, "the JSON ends early"}
  defp value(other, _d), do: {:error, "unexpected #{preview(other)}"}

  defp object("}" <> rest, acc, _d), do: {:ok, acc, rest}

  defp object("\"" <> rest, acc, d) do
    with {:ok, key, rest} <- string(rest, []),
         ":" <> rest <- skip_ws(rest),
         {:ok, v, rest} <- value(skip_ws(rest), d) do
      if Map.has_key?(acc, key) do
        {:error, "duplicate key #{inspect(key)}"}
      else
        acc = Map.put(acc, key, v)

        case skip_ws(rest) do
          "," <> rest -> object_next(skip_ws(rest), acc, d)
          "}" <> rest -> {:ok, acc, rest}
          other -> {:error, "expected , or } in an object, got #{preview(other)}"}
        end
      end
    else
      {:error, _} = e -> e
      other -> {:error, "expected : after an object key, got #{preview(other)}"}
    end
  end

  defp object(other, _acc, _d), do: {:error, "expected a key or } in an object, got #{preview(other)}"}

  defp object_next("\"" <> _ = bin, acc, d), do: object(bin, acc, d)
  defp object_next(other, _acc, _d), do: {:error, "expected a key after , in an object, got #{preview(other)}"}

  defp array("]" <> rest, acc, _d), do: {:ok, Enum.reverse(acc), rest}

  defp array(bin, acc, d) do
    with {:ok, v, rest} <- value(bin, d) do
      case skip_ws(rest) do
        "," <> rest -> array_next(skip_ws(rest), [v | acc], d)
        "]" <> rest -> {:ok, Enum.reverse([v | acc]), rest}
        other -> {:error, "expected , or ] in an array, got #{preview(other)}"}
      end
    end
  end

  defp array_next("]" <> _ = bin, _acc, _d), do: {:error, "trailing comma in an array at #{preview(bin)}"}
  defp array_next(bin, acc, d), do: array(bin, acc, d)

  defp string("\"" <> rest, acc), do: finish_string(acc, rest)
  defp string("\\" <> rest, acc), do: escape(rest, acc)
  defp string(<<c, _::binary>>, _acc) when c < 0x20, do: {:error, "a control character inside a string"}

  defp string(bin, acc) do
    case :binary.match(bin, ["\"", "\\"]) do
      {n, _} -> chunk(bin, n, acc)
      :nomatch -> {:error, "an unterminated string"}
    end
  end

  defp chunk(bin, n, acc) do
    <<part::binary-size(n), rest::binary>> = bin

    if String.valid?(part) and not String.match?(part, ~r/[\x00-\x1f]/),
      do: string(rest, [acc | part]),
      else: {:error, "a string that is not valid UTF-8 or holds a control character"}
  end

  defp finish_string(acc, rest), do: {:ok, IO.iodata_to_binary(acc), rest}

  @escapes %{?" => "\"", ?\\ => "\\", ?/ => "/", ?b => "\b", ?f => "\f", ?n => "\n", ?r => "\r", ?t => "\t"}

  defp escape("u" <> <<h::binary-size(4), rest::binary>>, acc) do
    with {:ok, cp} <- hex4(h) do
      cond do
        cp in 0xD800..0xDBFF ->
          case rest do
            "\\u" <> <<l::binary-size(4), rest2::binary>> ->
              with {:ok, lo} when lo in 0xDC00..0xDFFF <- hex4(l) do
                string(rest2, [acc | <<0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)::utf8>>])
              else
                _ -> {:error, "an unpaired surrogate \\u#{h}"}
              end

            _ ->
              {:error, "an unpaired surrogate \\u#{h}"}
          end

        cp in 0xDC00..0xDFFF ->
          {:error, "an unpaired surrogate \\u#{h}"}

        true ->
          string(rest, [acc | <<cp::utf8>>])
      end
    end
  end

  defp escape(<<c, rest::binary>>, acc) when is_map_key(@escapes, c), do: string(rest, [acc | @escapes[c]])
  defp escape(other, _acc), do: {:error, "a bad escape \\#{preview(other)}"}

  defp hex4(h) do
    case Integer.parse(h, 16) do
      {cp, ""} -> if String.match?(h, ~r/^[0-9a-fA-F]{4}$/), do: {:ok, cp}, else: {:error, "a bad \\u escape #{inspect(h)}"}
      _ -> {:error, "a bad \\u escape #{inspect(h)}"}
    end
  end

  @number ~r/^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/

  defp number(bin) do
    case Regex.run(@number, bin) do
      [text | groups] ->
        <<_::binary-size(byte_size(text)), rest::binary>> = bin

        if groups == [] do
          {:ok, String.to_integer(text), rest}
        else
          # Exponents past float range are refused rather than raising.
          case Float.parse(text) do
            {f, ""} -> {:ok, f, rest}
            _ -> {:error, "the number #{text} is out of range"}
          end
        end

      nil ->
        {:error, "a malformed number at #{preview(bin)}"}
    end
  rescue
    ArgumentError -> {:error, "the number at #{preview(bin)} is out of range"}
  end

  defp skip_ws(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: skip_ws(rest)
  defp skip_ws(bin), do: bin

  defp preview(""), do: "the end"
  defp preview(bin), do: inspect(binary_part(bin, 0, min(byte_size(bin), 12)))

  # ---- encoding: maps (keys in the given order when a list of pairs), lists, strings, integers

  @spec encode(term()) :: iodata()
  def encode({:object, pairs}) when is_list(pairs),
    do: ["{", pairs |> Enum.map(fn {k, v} -> [encode(k), ":", encode(v)] end) |> Enum.intersperse(","), "}"]

  def encode(m) when is_map(m), do: encode({:object, Enum.sort(m)})
  def encode(l) when is_list(l), do: ["[", l |> Enum.map(&encode/1) |> Enum.intersperse(","), "]"]
  def encode(i) when is_integer(i), do: Integer.to_string(i)
  def encode(s) when is_binary(s), do: [?", escape_string(s), ?"]

  defp escape_string(s) do
    for <<c::utf8 <- s>>, into: "" do
      case c do
        ?" -> "\\\""
        ?\\ -> "\\\\"
        ?\n -> "\\n"
        ?\r -> "\\r"
        ?\t -> "\\t"
        ?\b -> "\\b"
        ?\f -> "\\f"
        # As Python's json.dumps writes them, so headers match the reference writers'.
        c when c < 0x20 -> "\\u" <> String.pad_leading(Integer.to_string(c, 16) |> String.downcase(), 4, "0")
        c -> <<c::utf8>>
      end
    end
  end
end
