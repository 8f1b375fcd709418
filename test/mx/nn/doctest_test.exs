defmodule Mx.NN.DoctestTest do
  use ExUnit.Case, async: true

  for mod <- [
        Mx.NN,
        Mx.NN.Activations,
        Mx.NN.Losses,
        Mx.NN.Init,
        Mx.NN.Linear,
        Mx.NN.Bilinear,
        Mx.NN.Identity,
        Mx.NN.PReLU,
        Mx.NN.Embedding,
        Mx.NN.Sequential,
        Mx.NN.LayerNorm,
        Mx.NN.RMSNorm,
        Mx.NN.GroupNorm,
        Mx.NN.InstanceNorm,
        Mx.NN.BatchNorm,
        Mx.NN.Dropout,
        Mx.NN.Dropout2d,
        Mx.NN.Dropout3d,
        Mx.NN.RoPE,
        Mx.NN.SinusoidalPositionalEncoding,
        Mx.NN.ALiBi,
        Mx.NN.RNN,
        Mx.NN.GRU,
        Mx.NN.LSTM,
        Mx.NN.MultiHeadAttention,
        Mx.NN.TransformerEncoderLayer,
        Mx.NN.TransformerDecoderLayer
      ] do
    doctest mod
  end
end
