"""Keras-style layers and models: lazy shapes, functional graphs, Sequential, summary, freezing, configs."""
import numpy as np
import pytest
import torch

import ember
from ember import layers


@pytest.fixture(autouse=True)
def _fresh_names():
    layers.clear_session()
    yield


def test_dense_matches_torch_linear_forward_and_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    d = layers.Dense(4, activation="tanh")
    d(ember.tensor(x))
    lin = torch.nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(d.kernel.detach().numpy().T))
        lin.bias.copy_(torch.tensor(rng.standard_normal(4).astype(np.float32)))
    with ember.no_grad():
        d.bias.copy_(ember.tensor(lin.bias.detach().numpy()))
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    eo, to = d(ex), torch.tanh(lin(tx))
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-6)
    eo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(d.kernel.grad.numpy(), lin.weight.grad.numpy().T, atol=1e-5)
    np.testing.assert_allclose(d.bias.grad.numpy(), lin.bias.grad.numpy(), atol=1e-5)


def test_dense_builds_lazily_or_from_input_shape_and_explains_bad_input():
    d = layers.Dense(2)
    assert not d.built and d.weights == []
    d(ember.ones(1, 7))
    assert d.built and tuple(d.kernel.shape) == (7, 2)
    assert layers.Dense(2, input_shape=(5,)).built
    with pytest.raises(ember.OpError, match=r"Dense 'dense': expected inputs with last dim 7, got shape \(3, 6\)"):
        d(ember.ones(3, 6))
    with pytest.raises(ValueError, match="units must be a positive integer"):
        layers.Dense(0)


def test_automatic_names_and_clear_session():
    assert [layers.Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    layers.clear_session()
    assert layers.Dense(1).name == "dense"


def test_functional_multi_input_multi_output_shared_layer_and_nested_model():
    a, b = layers.Input((4,), name="a"), layers.Input((4,), name="b")
    shared = layers.Dense(3, activation="relu", name="shared")
    ha, hb = shared(a), shared(b)                        # one layer, one set of weights, used twice
    merged = layers.Concatenate()([ha, hb])
    inner_in = layers.Input((6,))
    inner = ember.Model(inner_in, layers.Dense(2, name="inner_out")(inner_in), name="inner")
    out1 = inner(merged)                                 # a model used as a layer
    out2 = layers.Add()([ha, hb])
    model = ember.Model([a, b], [out1, out2])
    xa, xb = ember.randn(5, 4), ember.randn(5, 4)
    y1, y2 = model([xa, xb])
    assert y1.shape == (5, 2) and y2.shape == (5, 3)
    ra, rb = shared(xa), shared(xb)
    np.testing.assert_allclose(y2.detach().numpy(), (ra + rb).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(y1.detach().numpy(), inner(ember.cat([ra, rb], dim=1)).detach().numpy(), rtol=1e-6)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["shared.kernel", "shared.bias", "inner.inner_out.kernel", "inner.inner_out.bias"]
    assert [la.name for la in model.layers] == ["shared", "concatenate", "inner", "add"]
    assert model.get_layer("inner") is inner


def test_functional_graph_errors():
    a, b = layers.Input((2,)), layers.Input((2,))
    out = layers.Add()([a, b])
    with pytest.raises(ValueError, match="graph disconnected"):
        ember.Model(a, out)
    x = layers.Input((2,))
    y = layers.Dense(1, name="same")(layers.Dense(1, name="same")(x))
    with pytest.raises(ValueError, match="two different layers are named 'same'"):
        ember.Model(x, y)
    with pytest.raises(ValueError, match="expected 2 input"):
        ember.Model([a, b], out)(ember.ones(1, 2))


def test_sequential_from_list_add_pop_and_summary():
    model = ember.Sequential([layers.Input(shape=(784,)), layers.Dense(64, activation="relu"), layers.Dropout(0.2)])
    model.add(layers.Dense(10, activation="softmax"))
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "dense (Dense)" in text and "(None, 64)" in text and "(None, 10)" in text
    assert "Total params: 50,890" in text and "Trainable params: 50,890" in text
    assert model(ember.ones(3, 784)).shape == (3, 10)
    popped = model.pop()
    assert popped.name == "dense_1" and model(ember.ones(2, 784)).shape == (2, 64)
    lazy = ember.Sequential([layers.Dense(3), ember.nn.ReLU(), layers.Dense(1)])    # an nn.Module inside
    assert not lazy.built
    assert lazy(ember.ones(2, 5)).shape == (2, 1) and lazy.built


def test_trainable_false_freezes_and_summary_counts_it():
    model = ember.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    model.layers[0].trainable = False
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    lines = []
    model.summary(print_fn=lines.append)
    assert " Non-trainable params: 16" in lines
    model(ember.ones(2, 3)).sum().backward()
    assert model.layers[0].kernel.grad is None and model.layers[1].kernel.grad is not None
    model.trainable = True
    assert all(p.requires_grad for p in model.parameters())


def test_dropout_follows_the_training_mode():
    model = ember.Sequential([layers.Input((1000,)), layers.Dropout(0.5)])
    x = ember.ones(2, 1000)
    assert (model(x).numpy() == 1).all()                  # Keras default: inference
    model.train()
    y = model(x).detach().numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.3 < (y == 0).mean() < 0.7
    assert (model(x, training=False).numpy() == 1).all()
    model.eval()
    assert (model(x).numpy() == 1).all()


def test_regularizers_add_losses_with_gradients():
    d = layers.Dense(3, kernel_regularizer="l2", input_shape=(2,))
    (penalty,) = d.losses
    np.testing.assert_allclose(penalty.item(), 0.01 * (d.kernel.detach().numpy() ** 2).sum(), rtol=1e-6)
    penalty.backward()
    np.testing.assert_allclose(d.kernel.grad.numpy(), 0.02 * d.kernel.detach().numpy(), rtol=1e-6)


def test_subclassed_model_trains_in_a_handwritten_loop():
    class MLP(ember.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(16, activation="relu")
            self.out = layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(x))

    ember.manual_seed(0)
    x = ember.randn(64, 3)
    y = (x * ember.tensor([1.0, -2.0, 0.5])).sum(1, keepdim=True)
    model = MLP()
    model(x)
    opt = ember.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    assert [la.name for la in model.layers] == ["dense", "dense_1"]


@pytest.mark.parametrize("make", [
    lambda: layers.Dense(3, activation="relu", use_bias=False, kernel_initializer="he_normal",
                         kernel_regularizer="l2", name="d"),
    lambda: layers.Activation("softmax"),
    lambda: layers.Dropout(0.3),
    lambda: layers.Flatten(),
    lambda: layers.Reshape((2, -1)),
    lambda: layers.Concatenate(axis=1),
    lambda: layers.Add(),
])
def test_config_round_trip(make):
    import json
    layer = make()
    cfg = json.loads(json.dumps(layer.get_config()))
    again = type(layer).from_config(cfg)
    assert again.get_config() == layer.get_config()


def test_lambda_saves_only_registered_functions():
    lam = layers.Lambda(lambda t: t * 2)
    assert lam(ember.ones(2)).tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="not registered"):
        lam.get_config()

    def double(t):
        return t * 2
    layers.register_lambda("double", double)
    cfg = layers.Lambda(double).get_config()
    assert cfg["function"] == "double"
    assert layers.Lambda.from_config(cfg)(ember.ones(1)).item() == 2.0
    with pytest.raises(ValueError, match="is not registered"):
        layers.Lambda.from_config({**cfg, "function": "os.system"})


def test_merge_layers_check_their_inputs():
    with pytest.raises(ember.OpError, match="same shape"):
        layers.Add()([ember.ones(2, 3), ember.ones(2, 4)])
    with pytest.raises(ember.OpError, match="list of at least 2 inputs"):
        layers.Multiply()(ember.ones(2, 3))
    np.testing.assert_allclose(layers.Average()([ember.ones(2), ember.full((2,), 3.0)]).numpy(), [2, 2])


def test_any_nn_module_is_a_layer_of_a_functional_model():
    from ember import nn
    inp = layers.Input((5,))
    lin = nn.Linear(5, 16)
    h = nn.Dropout(0.5)(nn.ReLU()(lin(inp)))
    out = layers.Dense(2)(h)
    model = ember.Model(inp, out)
    assert [la.name for la in model.layers] == ["linear", "re_lu", "dropout", "dense"]
    assert [n for n, _ in model.named_parameters()][:2] == ["linear.weight", "linear.bias"]
    x = ember.randn(3, 5)
    expected = model.layers[3](ember.relu(lin(x)))
    np.testing.assert_allclose(model(x).detach().numpy(), expected.detach().numpy(), rtol=1e-6)
    model.train()
    assert lin.training and model.layers[2].training
    lines = []
    model.summary(print_fn=lines.append)
    assert any("linear (Linear)" in ln and "(None, 16)" in ln and "96" in ln for ln in lines)


def test_get_set_weights_round_trip_and_errors():
    src = ember.Sequential([ember.layers.Input(shape=(3,)), ember.layers.Dense(4), ember.layers.Dense(2)])
    dst = ember.Sequential([ember.layers.Input(shape=(3,)), ember.layers.Dense(4), ember.layers.Dense(2)])
    weights = src.get_weights()
    assert [w.shape for w in weights] == [(3, 4), (4,), (4, 2), (2,)]
    dst.set_weights(weights)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(src.predict(x, verbose=0), dst.predict(x, verbose=0))
    weights[0][...] = 0                      # get_weights returns copies
    assert np.any(src.layers[0].kernel.detach().numpy() != 0)
    with pytest.raises(ValueError, match="expected 4 arrays"):
        dst.set_weights(weights[:2])
    with pytest.raises(ValueError, match=r"shape \(4, 3\) for a weight of shape \(3, 4\)"):
        dst.set_weights([weights[0].T] + weights[1:])


def test_unknown_length_inputs_take_shapes_from_compute_output_shape():
    inp = layers.Input(shape=(None, 3))
    h = layers.Conv1D(4, 5, name=None)(inp)                  # a kernel wider than any stand-in probe
    assert tuple(h.shape) == (None, None, 4)
    out = layers.Dense(2)(layers.GlobalMaxPooling1D()(h))
    model = ember.Model(inp, out)
    assert model.predict(np.zeros((2, 9, 3), np.float32), verbose=0).shape == (2, 2)


def test_default_layer_names_follow_keras():
    ember.layers.clear_session()
    assert [layers.Conv2D(1, 1).name, layers.MaxPooling2D().name, layers.BatchNormalization().name] == [
        "conv2d", "max_pooling2d", "batch_normalization"]
