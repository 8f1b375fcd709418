defmodule Bench.JSON do
  @moduledoc false
  # A minimal JSON reader for the benchmark data (objects, arrays, numbers, strings, true/false/null);
  # no hex packages are available and Elixir 1.14 has no JSON module.

  def decode!(s) do
    {v, rest} = value(skip(s))
    "" = skip(rest)
    v
  end

  defp skip(<<c, rest::binary>>) when c in ~c" \t\r\n", do: skip(rest)
  defp skip(s), do: s

  defp value("{" <> rest), do: object(skip(rest), %{})
  defp value("[" <> rest), do: array(skip(rest), [])
  defp value("\"" <> rest), do: string(rest, [])
  defp value("true" <> rest), do: {true, rest}
  defp value("false" <> rest), do: {false, rest}
  defp value("null" <> rest), do: {nil, rest}
  defp value(s), do: number(s)

  defp object("}" <> rest, acc), do: {acc, rest}

  defp object("\"" <> rest, acc) do
    {k, rest} = string(rest, [])
    ":" <> rest = skip(rest)
    {v, rest} = value(skip(rest))

    case skip(rest) do
      "," <> rest -> object(skip(rest), Map.put(acc, k, v))
      "}" <> rest -> {Map.put(acc, k, v), rest}
    end
  end

  defp array("]" <> rest, acc), do: {Enum.reverse(acc), rest}

  defp array(s, acc) do
    {v, rest} = value(s)

    case skip(rest) do
      "," <> rest -> array(skip(rest), [v | acc])
      "]" <> rest -> {Enum.reverse([v | acc]), rest}
    end
  end

  defp string("\"" <> rest, acc), do: {acc |> Enum.reverse() |> IO.iodata_to_binary(), rest}
  defp string("\\" <> <<c, rest::binary>>, acc), do: string(rest, [escape(c) | acc])
  defp string(<<c::utf8, rest::binary>>, acc), do: string(rest, [<<c::utf8>> | acc])

  defp escape(?n), do: "\n"
  defp escape(?t), do: "\t"
  defp escape(c), do: <<c>>

  defp number(s) do
    {tok, rest} = take_number(s, [])

    v =
      if String.contains?(tok, [".", "e", "E"]) do
        {f, ""} = Float.parse(tok)
        f
      else
        String.to_integer(tok)
      end

    {v, rest}
  end

  defp take_number(<<c, rest::binary>>, acc) when c in ~c"+-0123456789.eE",
    do: take_number(rest, [c | acc])

  defp take_number(rest, acc), do: {acc |> Enum.reverse() |> List.to_string(), rest}
end
