"""Every Keras-style layer through the same checks (Keras' ``run_layer_test``).

For each case: the layer is built by its first input; ``compute_output_shape`` agrees with
the real output; the config is JSON-able and rebuilds an equal config; a functional model around
the layer survives ``.ember`` save/load with identical predictions; ``get_weights``/``set_weights``
move the weights to a fresh copy that then computes the same outputs.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import ember
from ember import layers

# (layer factory, input shape without batch, input kind)
CASES = {
    "Conv1D": (lambda: layers.Conv1D(4, 3, padding="same"), (9, 3), "float"),
    "Conv2D": (lambda: layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"), (7, 8, 3), "float"),
    "Conv2D-channels_first": (lambda: layers.Conv2D(2, (3, 2), data_format="channels_first"), (3, 6, 5), "float"),
    "Conv2DTranspose": (lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same"), (4, 5, 2), "float"),
    "DepthwiseConv2D": (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 3), "float"),
    "SeparableConv2D": (lambda: layers.SeparableConv2D(4, 3, padding="same"), (6, 6, 3), "float"),
    "MaxPooling1D": (lambda: layers.MaxPooling1D(2), (9, 3), "float"),
    "MaxPooling2D": (lambda: layers.MaxPooling2D(2, padding="same"), (7, 7, 3), "float"),
    "AveragePooling2D": (lambda: layers.AveragePooling2D(3, strides=2), (8, 8, 2), "float"),
    "GlobalAveragePooling2D": (lambda: layers.GlobalAveragePooling2D(), (5, 5, 3), "float"),
    "GlobalMaxPooling1D": (lambda: layers.GlobalMaxPooling1D(keepdims=True), (7, 3), "float"),
    "UpSampling2D": (lambda: layers.UpSampling2D(2, interpolation="bilinear"), (3, 4, 2), "float"),
    "ZeroPadding2D": (lambda: layers.ZeroPadding2D(((1, 2), (0, 1))), (3, 4, 2), "float"),
    "Cropping2D": (lambda: layers.Cropping2D(((1, 0), (1, 2))), (5, 6, 2), "float"),
    "RepeatVector": (lambda: layers.RepeatVector(3), (4,), "float"),
    "Permute": (lambda: layers.Permute((2, 1)), (3, 5), "float"),
    "BatchNormalization": (lambda: layers.BatchNormalization(), (6, 6, 3), "float"),
    "LayerNormalization": (lambda: layers.LayerNormalization(), (5, 4), "float"),
    "GroupNormalization": (lambda: layers.GroupNormalization(groups=2), (5, 4), "float"),
    "Embedding": (lambda: layers.Embedding(10, 4), (6,), "int"),
    "SimpleRNN": (lambda: layers.SimpleRNN(3), (5, 4), "float"),
    "LSTM": (lambda: layers.LSTM(3, return_sequences=True), (5, 4), "float"),
    "GRU": (lambda: layers.GRU(3), (5, 4), "float"),
    "Bidirectional": (lambda: layers.Bidirectional(layers.LSTM(3, return_sequences=True)), (5, 4), "float"),
    "TimeDistributed": (lambda: layers.TimeDistributed(layers.Dense(2)), (5, 4), "float"),
    "MultiHeadAttention": (lambda: layers.MultiHeadAttention(num_heads=2, key_dim=3), (5, 4), "self-attention"),
}


def _data(shape, kind, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "int":
        return rng.integers(0, 10, size=(batch,) + shape).astype(np.int64)
    return rng.standard_normal((batch,) + shape).astype(np.float32)


def _apply(layer, x, kind):
    return layer(x, x) if kind == "self-attention" else layer(x)


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_builds_lazily_and_predicts_its_shape(case):
    factory, shape, kind = CASES[case]
    layer = factory()
    x = _data(shape, kind)
    y = _apply(layer, ember.tensor(x), kind)
    assert layer.built
    if kind != "self-attention":
        assert tuple(layer.compute_output_shape((None,) + shape))[1:] == tuple(y.shape)[1:]


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_config_round_trip(case):
    factory, shape, kind = CASES[case]
    layer = factory()
    config = layer.get_config()
    json.dumps(config)                                   # plain data only
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_in_a_saved_model_and_weight_transfer(case, tmp_path):
    factory, shape, kind = CASES[case]
    inp = layers.Input(shape=shape, dtype="int64" if kind == "int" else "float32")
    out = _apply(factory(), inp, kind)
    model = ember.Model(inp, out)
    x = _data(shape, kind, batch=3, seed=1)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "m.ember")
    model.save(path)
    loaded = ember.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)

    twin = ember.Model.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(twin.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
