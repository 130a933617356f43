"""Keras-style training: compile/fit/evaluate/predict, the *_on_batch methods, data inputs and fit == a plain loop."""
import time

import numpy as np
import pytest

import ember
from ember import layers


@pytest.fixture(autouse=True)
def _fresh_names():
    layers.clear_session()
    yield


def _digits(shuffled=True):
    X, y = ember.data.load_digits(as_numpy=True)
    if shuffled:   # the file is ordered in blocks of writers: mix them before a validation_split
        p = np.random.default_rng(0).permutation(len(X))
        X, y = X[p], y[p]
    return X, y


def _mlp(hidden=32, out=10, activation="softmax"):
    return ember.Sequential([layers.Input((64,)), layers.Dense(hidden, activation="relu"),
                             layers.Dense(out, activation=activation)])


def _weights(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def test_digits_mlp_reaches_95_percent_validation_accuracy_quickly():
    ember.manual_seed(0)
    X, y = _digits()
    model = _mlp(128)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(X, y, epochs=10, validation_split=0.2, verbose=0)
    assert time.perf_counter() - start < 5.0
    assert history.epoch == list(range(10))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["val_accuracy"][-1] >= 0.95
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert isinstance(model.metrics[1], ember.metrics.SparseCategoricalAccuracy)
    assert model.metrics_names == ["loss", "accuracy"]
    assert model.history is history


def test_manual_seed_repeats_a_shuffled_run_exactly():
    X, y = _digits()
    runs = []
    for _ in range(2):
        ember.manual_seed(3)
        model = _mlp()
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["acc"])
        h = model.fit(X[:400], y[:400], epochs=3, batch_size=50, validation_split=0.25, verbose=0)
        runs.append((h.history, _weights(model)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    assert "acc" in runs[0][0] and "val_acc" in runs[0][0]


def test_fit_gives_the_same_weights_as_a_hand_written_loop():
    X, y = _digits()
    X, y = X[:300], y[:300]
    ember.manual_seed(1)
    model = _mlp()
    start = _weights(model)
    model.compile(optimizer={"class_name": "SGD", "config": {"learning_rate": 0.1}},
                  loss="sparse_categorical_crossentropy")
    model.fit(X, y, batch_size=64, epochs=2, shuffle=False, verbose=0)

    ember.manual_seed(1)
    twin = _mlp()
    for a, b in zip(start, _weights(twin)):
        np.testing.assert_array_equal(a, b)
    opt = ember.optim.SGD(twin.parameters(), lr=0.1)
    loss_fn = ember.losses.SparseCategoricalCrossentropy()
    twin.train()
    for _ in range(2):
        for i in range(0, len(X), 64):
            xb, yb = ember.tensor(X[i:i + 64]), ember.tensor(y[i:i + 64])
            opt.zero_grad()
            loss = loss_fn(yb, twin(xb))
            loss.backward()
            opt.step()
    for a, b in zip(_weights(model), _weights(twin)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert type(model.optimizer) is ember.optim.SGD and model.optimizer.param_groups[0]["lr"] == 0.1
    assert not model.training           # fit leaves the model in the mode it found it in


def _two_in_two_out():
    a, b = layers.Input((3,), name="a"), layers.Input((2,), name="b")
    h = layers.Dense(8, activation="relu", name="hidden")(layers.Concatenate()([a, b]))
    cls = layers.Dense(3, activation="softmax", name="cls")(h)
    reg = layers.Dense(1, name="reg")(h)
    return ember.Model([a, b], [cls, reg])


def test_multi_input_multi_output_with_dict_losses_and_loss_weights():
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((96, 3)).astype("float32"), rng.standard_normal((96, 2)).astype("float32")
    yc, yr = (xa[:, 0] > 0).astype("int64") + (xb[:, 0] > 0), xa.sum(1, keepdims=True)
    model = _two_in_two_out()
    model.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    h = model.fit({"a": xa, "b": xb}, {"cls": yc, "reg": yr}, batch_size=32, epochs=3,
                  validation_data=([xa, xb], [yc, yr]), verbose=0)
    expected = {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"}
    assert set(h.history) == expected | {f"val_{k}" for k in expected}
    logs = model.evaluate([xa, xb], [yc, yr], batch_size=40, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["cls_loss"] + 0.5 * logs["reg_loss"], rel=1e-5)
    with ember.no_grad():
        pc, pr = model([ember.tensor(xa), ember.tensor(xb)])
    assert logs["reg_loss"] == pytest.approx(float(((pr.numpy() - yr) ** 2).mean()), rel=1e-5)
    assert logs["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-5)
    out = model.predict({"a": xa, "b": xb}, batch_size=50, verbose=0)
    assert isinstance(out, list) and out[0].shape == (96, 3) and out[1].shape == (96, 1)
    np.testing.assert_allclose(out[1], pr.numpy(), atol=1e-6)
    values = model.evaluate([xa, xb], [yc, yr], verbose=0)
    assert values[0] == pytest.approx(logs["loss"]) and len(values) == 5


def _per_sample_ce(model, x, y):
    with ember.no_grad():
        return ember.losses.sparse_categorical_crossentropy(ember.tensor(y), model(ember.tensor(x))).numpy()


def test_sample_weight_and_class_weight_scale_the_loss_as_keras_does():
    ember.manual_seed(0)
    X, y = _digits()
    x, t = X[:8], y[:8]
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    per = _per_sample_ce(model, x, t)
    sw = np.linspace(0.0, 2.0, 8).astype("float32")
    got = model.test_on_batch(x, t, sample_weight=sw)
    assert got == pytest.approx(float((per * sw).sum() / 8), rel=1e-5)   # sum_over_batch_size: divide by N
    model.reset_metrics()
    cw = {k: float(k + 1) for k in range(10)}
    got = model.train_on_batch(x, t, class_weight=cw)                    # the loss before the step
    assert got == pytest.approx(float((per * (t + 1)).sum() / 8), rel=1e-5)
    with pytest.raises(ValueError, match="class_weight.*sample_weight"):
        model.fit(x, t, class_weight=cw, sample_weight=sw, verbose=0)
    with pytest.raises(ValueError, match=r"class\(es\) \[9\]"):
        model.fit(X[:50], y[:50], class_weight={k: 1.0 for k in range(9)}, verbose=0)


def test_train_on_batch_returns_the_loss_and_accumulates_until_reset():
    ember.manual_seed(0)
    X, y = _digits()
    model = _mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first_loss = float(_per_sample_ce(model, X[:32], y[:32]).mean())
    loss, acc = model.train_on_batch(X[:32], y[:32])
    assert loss == pytest.approx(first_loss, rel=1e-5) and 0.0 <= acc <= 1.0
    second = float(_per_sample_ce(model, X[32:64], y[32:64]).mean())
    logs = model.train_on_batch(X[32:64], y[32:64], return_dict=True)
    assert logs["loss"] == pytest.approx((first_loss + second) / 2, rel=1e-5)   # Keras 3: running mean
    model.reset_metrics()
    third = float(_per_sample_ce(model, X[:32], y[:32]).mean())
    assert model.test_on_batch(X[:32], y[:32])[0] == pytest.approx(third, rel=1e-5)
    np.testing.assert_allclose(model.predict_on_batch(X[:5]), model.predict(X[:5], verbose=0), atol=1e-6)


def test_evaluate_and_predict_match_the_model_under_no_grad():
    ember.manual_seed(0)
    X, y = _digits()
    model = ember.Sequential([layers.Input((64,)), layers.Dense(16, activation="relu"), layers.Dropout(0.5),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X[:200], y[:200], epochs=1, verbose=0)
    pred = model.predict(X[:100], batch_size=33, verbose=0)
    assert isinstance(pred, np.ndarray) and pred.shape == (100, 10)
    with ember.no_grad():
        direct = model(ember.tensor(X[:100])).numpy()
    np.testing.assert_allclose(pred, direct, atol=1e-6)        # eval mode: dropout off
    loss, acc = model.evaluate(X[:100], y[:100], batch_size=30, verbose=0)
    per = -np.log(np.clip(direct[np.arange(100), y[:100]], 1e-7, 1 - 1e-7))
    assert loss == pytest.approx(float(per.mean()), rel=1e-5)
    assert acc == pytest.approx(float((direct.argmax(1) == y[:100]).mean()))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(X[:10], y[:10], verbose=0), float)


def test_dataset_dataloader_and_generator_inputs():
    X, y = _digits()
    X, y = X[:256], y[:256]
    results = {}
    for kind in ("arrays", "dataset", "loader", "generator"):
        ember.manual_seed(5)
        model = _mlp()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        ds = ember.data.TensorDataset(ember.tensor(X), ember.tensor(y))
        if kind == "arrays":
            h = model.fit(X, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        elif kind == "dataset":
            h = model.fit(ds, batch_size=32, epochs=2, shuffle=False, verbose=0)
        elif kind == "loader":
            h = model.fit(ember.data.DataLoader(ds, batch_size=32), epochs=2, verbose=0,
                          validation_data=ember.data.DataLoader(ds, batch_size=100))
            assert "val_accuracy" in h.history
        else:
            def batches():
                while True:
                    for i in range(0, 256, 32):
                        yield X[i:i + 32], y[i:i + 32]
            h = model.fit(batches(), steps_per_epoch=8, epochs=2, verbose=0)
        assert h.epoch == [0, 1]
        results[kind] = (h.history["loss"], _weights(model))
    for kind in ("dataset", "loader", "generator"):
        np.testing.assert_allclose(results[kind][0], results["arrays"][0], rtol=1e-6)
        for a, b in zip(results[kind][1], results["arrays"][1]):
            np.testing.assert_allclose(a, b, atol=1e-6)
    sw = np.ones(32, "float32")
    three = [(X[i:i + 32], y[i:i + 32], sw) for i in range(0, 256, 32)]
    loss, acc = model.evaluate(iter(three), verbose=0)
    assert loss == pytest.approx(model.evaluate(X, y, verbose=0)[0], rel=1e-5)


def test_regularization_losses_are_added_to_the_loss():
    ember.manual_seed(0)
    X, y = _digits()
    model = ember.Sequential([layers.Input((64,)), layers.Dense(10, activation="softmax",
                                                                 kernel_regularizer=ember.regularizers.L2(0.1))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    data_loss = float(_per_sample_ce(model, X[:20], y[:20]).mean())
    penalty = 0.1 * float((model.layers[0].kernel.detach().numpy() ** 2).sum())
    assert model.test_on_batch(X[:20], y[:20]) == pytest.approx(data_loss + penalty, rel=1e-5)


def test_compile_optimizer_choices_and_keras_defaults():
    model = _mlp()
    for name, cls, lr in [("adam", ember.optim.Adam, 1e-3), ("sgd", ember.optim.SGD, 0.01),
                          ("rmsprop", ember.optim.RMSprop, 1e-3), ("adamw", ember.optim.AdamW, 1e-3),
                          ("adagrad", ember.optim.Adagrad, 1e-3)]:
        model.compile(optimizer=name, loss="mse")
        assert type(model.optimizer) is cls and model.optimizer.param_groups[0]["lr"] == lr
        assert model.compiled and model.loss == "mse"
    opt = ember.optim.SGD(model.parameters(), lr=0.5)
    model.compile(optimizer=opt, loss="mse")
    assert model.optimizer is opt
    with pytest.raises(ValueError, match="unknown optimizer 'adamax2'"):
        model.compile(optimizer="adamax2")
    lazy = ember.Sequential([layers.Dense(4), layers.Dense(1)])     # no weights yet: optimizer made on fit
    lazy.compile(optimizer="adam", loss="mse")
    assert lazy.optimizer is None
    lazy.fit(np.ones((8, 3), "float32"), np.ones((8, 1), "float32"), verbose=0)
    assert isinstance(lazy.optimizer, ember.optim.Adam) and len(lazy.optimizer.param_groups[0]["params"]) == 4


def test_clear_errors():
    model = _mlp()
    X, y = _digits()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(X, y)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"'x' sizes: 100 'y' sizes: 90"):
        model.fit(X[:100], y[:90], verbose=0)
    with pytest.raises(ValueError, match=r"output 'dense_1'.*shape \(16, 3\).*shape \(16, 10\)"):
        model.fit(X[:16], np.zeros((16, 3), "float32"), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(iter([(X[:4], y[:4])]), validation_split=0.5, verbose=0)


def test_callbacks_see_keras_hooks_and_can_stop_training(capsys):
    ember.manual_seed(0)
    X, y = _digits()
    calls = []

    class Spy(ember.callbacks.Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, sorted(logs)))

        def on_train_batch_end(self, batch, logs=None):
            calls.append(("batch", batch))
            if batch == 2 and len([c for c in calls if c[0] == "epoch_end"]) == 1:
                self.model.stop_training = True

    model = _mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(X[:320], y[:320], epochs=5, batch_size=32, callbacks=[Spy()], initial_epoch=1,
                  validation_data=(X[320:400], y[320:400]), verbose=1)
    assert calls[0] == "train_begin"
    assert calls.count(("batch", 0)) == 2 and ("batch", 3) not in calls[12:]
    assert h.epoch == [1, 2]
    assert calls[11] == ("epoch_end", 1, ["accuracy", "loss", "val_accuracy", "val_loss"])
    captured = capsys.readouterr()
    assert "Epoch 2/5" in captured.out + captured.err


def test_subclassed_model_and_nn_module_train_with_fit():
    class TwoLayer(ember.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(16, activation="relu")
            self.out = layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.out(self.hidden(x))

    ember.manual_seed(0)
    X, y = _digits()
    for model in (TwoLayer(), ember.Sequential([ember.nn.Linear(64, 16), ember.nn.ReLU(), ember.nn.Linear(16, 10)])):
        loss = "sparse_categorical_crossentropy" if isinstance(model, TwoLayer) else \
            ember.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        h = model.fit(X[:500], y[:500], epochs=3, verbose=0)
        assert h.history["loss"][-1] < h.history["loss"][0]
        assert model.predict(X[:7], verbose=0).shape == (7, 10)


def test_nn_modules_and_an_nn_loss_train_inside_sequential_fit():
    import ember.nn as nn
    from ember import layers
    ember.manual_seed(0)
    X = np.random.default_rng(0).standard_normal((256, 5)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    linear = nn.Linear(5, 16)
    before = linear.weight.detach().numpy().copy()
    model = ember.Sequential([linear, nn.ReLU(), layers.Dense(2)])
    model.compile(optimizer="adam", loss=nn.CrossEntropyLoss(), metrics=["accuracy"])
    hist = model.fit(X, y, epochs=30, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.9
    assert not np.allclose(linear.weight.detach().numpy(), before)
    with pytest.raises(ValueError, match="sample_weight/class_weight need a Keras-style loss"):
        model.fit(X, y, epochs=1, verbose=0, sample_weight=np.ones(256, np.float32))
