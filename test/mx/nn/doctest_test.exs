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
        Mx.NN.TransformerDecoderLayer,
        Mx.NN.Conv1d,
        Mx.NN.Conv2d,
        Mx.NN.Conv3d,
        Mx.NN.ConvTranspose1d,
        Mx.NN.ConvTranspose2d,
        Mx.NN.ConvTranspose3d,
        Mx.NN.MaxPool1d,
        Mx.NN.MaxPool2d,
        Mx.NN.MaxPool3d,
        Mx.NN.AvgPool1d,
        Mx.NN.AvgPool2d,
        Mx.NN.AvgPool3d,
        Mx.NN.Upsample
      ] do
    doctest mod
  end
end
