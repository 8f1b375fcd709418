defmodule Mx.ConvGrad do
  @moduledoc false
  # conv's gradients as reference-case functions (test/reference/conv_grad.exs): the cotangents of
  # x and w of sum(conv(x, w, opts) * g), through Mx.vjp (the conv_input_grad and conv_kernel_grad primitives).

  def conv_input_grad(x, w, g, opts \\ []), do: vjp(x, w, g, opts) |> elem(0)
  def conv_kernel_grad(x, w, g, opts \\ []), do: vjp(x, w, g, opts) |> elem(1)

  defp vjp(x, w, g, opts) do
    {_y, [gx, gw]} = Mx.vjp(fn x, w -> Mx.conv(x, w, opts) end, [x, w], g)
    {gx, gw}
  end
end
