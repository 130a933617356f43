"""ember.callbacks: Keras 3 hooks and semantics, driven by simulated hook calls on a small model."""
import csv
import json
import math
import os
import warnings

import numpy as np
import pytest

import ember
from ember import callbacks
from ember.callbacks import (CSVLogger, EarlyStopping, History, LambdaCallback, LearningRateScheduler,
                             ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN)


def make_model(lr=0.1, optimizer="sgd"):
    """A real module with the attributes callbacks use: stop_training, optimizer, state_dict."""
    ember.manual_seed(0)
    model = ember.nn.Linear(3, 2)
    model.stop_training = False
    params = list(model.parameters())
    model.optimizer = ember.optim.SGD(params, lr=lr) if optimizer == "sgd" else ember.optim.Adam(params, lr=lr)
    return model


def run_epochs(cb, model, values, key="val_loss", weights_step=None):
    """Simulate fit: train_begin, then per epoch begin/end with logs {key: value}; stops like fit."""
    cb.set_model(model)
    cb.on_train_begin()
    ran = []
    for epoch, value in enumerate(values):
        cb.on_epoch_begin(epoch)
        if weights_step is not None:
            weights_step(epoch)
        cb.on_epoch_end(epoch, {"loss": 1.0, key: value})
        ran.append(epoch)
        if model.stop_training:
            break
    cb.on_train_end()
    return ran


# ------------------------------------------------------------ base, CallbackList, History
def test_callback_list_dispatches_every_hook_shares_logs_and_sets_history():
    calls = []

    class Recorder(callbacks.Callback):
        def __getattribute__(self, name):
            if name.startswith("on_") and name not in ("on_batch_begin", "on_batch_end"):
                return lambda *a, **k: calls.append((name, a, dict(k.get("logs") or {})))
            return super().__getattribute__(name)

    class Adder(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["extra"] = 7.0

    model = make_model()
    cbs = callbacks.CallbackList([Adder(), Recorder()], add_history=True, model=model, epochs=3, steps=2)
    assert model.history is cbs.callbacks[-1] and isinstance(model.history, History)
    assert all(cb.params == {"epochs": 3, "steps": 2} for cb in cbs)
    assert all(cb.model is model for cb in cbs)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_train_batch_begin(0)
    cbs.on_train_batch_end(0, {"loss": ember.tensor(0.5)})
    cbs.on_epoch_end(0, {"loss": ember.tensor(0.25)})
    for hook in ("on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end", "on_train_end"):
        getattr(cbs, hook)()
    for hook in ("on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"):
        getattr(cbs, hook)(1)
    names = [c[0] for c in calls]
    assert names == ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
                     "on_epoch_end", "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end",
                     "on_train_end", "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
                     "on_predict_batch_end"]
    assert calls[3][2] == {"loss": 0.5} and isinstance(calls[3][2]["loss"], float)   # tensors -> numbers
    assert calls[4][2] == {"loss": 0.25, "extra": 7.0}                                 # one shared logs dict
    assert model.history.history == {"loss": [0.25], "extra": [7.0]} and model.history.epoch == [0]


def test_callback_list_keeps_a_given_history_and_rejects_non_callbacks():
    h = History()
    cbs = callbacks.CallbackList([[h]], add_history=True)
    assert cbs.callbacks == [h]
    with pytest.raises(TypeError, match="LambdaCallback"):
        callbacks.CallbackList([lambda epoch, logs: None])


def test_legacy_batch_hooks_are_called_by_train_batch_hooks():
    seen = []

    class Old(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["loss"]))

    callbacks.CallbackList([Old()]).on_train_batch_end(4, {"loss": 2.0})
    assert seen == [(4, 2.0)]


def test_history_records_every_epoch_and_resets_epochs_on_train_begin():
    h = History()
    h.set_model(make_model())
    h.on_train_begin()
    for epoch, (loss, acc) in enumerate([(1.0, 0.5), (0.5, 0.75)], start=2):
        h.on_epoch_end(epoch, {"loss": loss, "accuracy": acc})
    assert h.epoch == [2, 3] and h.history == {"loss": [1.0, 0.5], "accuracy": [0.5, 0.75]}
    assert h.model.history is h


# ------------------------------------------------------------ EarlyStopping
def test_early_stopping_counts_patience_from_the_best_epoch():
    model = make_model()
    es = EarlyStopping(patience=2)
    ran = run_epochs(es, model, [1.0, 0.8, 0.9, 0.85, 0.7, 0.6])
    assert ran == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best == 0.8 and es.best_epoch == 1
    model = make_model()
    es = EarlyStopping(patience=0)
    assert run_epochs(es, model, [1.0, 0.9, 0.95, 0.1]) == [0, 1, 2]


def test_early_stopping_min_delta_mode_and_reuse():
    model = make_model()
    es = EarlyStopping(min_delta=0.1, patience=1)           # 1.0 -> 0.95 is not an improvement of > 0.1
    assert run_epochs(es, model, [1.0, 0.95, 0.92, 0.5]) == [0, 1]
    model.stop_training = False
    assert run_epochs(es, model, [1.0, 0.8, 0.6, 0.4]) == [0, 1, 2, 3] and es.best == 0.4   # reset per fit
    acc = EarlyStopping(monitor="val_accuracy", patience=1)    # auto: accuracy goes up
    model = make_model()
    assert run_epochs(acc, model, [0.5, 0.7, 0.6, 0.65], key="val_accuracy") == [0, 1, 2]
    assert acc.direction == "max" and acc.best == 0.7 and acc.stopped_epoch == 2
    forced = EarlyStopping(monitor="val_loss", mode="max", patience=0)
    model = make_model()
    assert run_epochs(forced, model, [1.0, 2.0, 1.5]) == [0, 1, 2] and forced.best == 2.0


def test_early_stopping_baseline_and_start_from_epoch():
    model = make_model()
    # as Keras: improvements that miss the baseline don't reset the wait, so the first setback stops
    es = EarlyStopping(patience=2, baseline=0.5)
    assert run_epochs(es, model, [0.9, 0.8, 0.85, 0.7, 0.6]) == [0, 1, 2]
    model = make_model()
    es = EarlyStopping(patience=2)
    assert run_epochs(es, model, [0.9, 0.8, 0.85, 0.7, 0.6]) == [0, 1, 2, 3, 4]
    model = make_model()
    es = EarlyStopping(patience=2, baseline=0.5)
    assert run_epochs(es, model, [0.9, 0.4, 0.45, 0.3, 0.2]) == [0, 1, 2, 3, 4]
    model = make_model()
    es = EarlyStopping(patience=0, start_from_epoch=2)  # epochs 0-1 are warm-up
    assert run_epochs(es, model, [1.0, 2.0, 3.0, 3.5]) == [0, 1, 2, 3] and es.best_epoch == 2


def test_early_stopping_restore_best_weights_restores_the_arrays_of_the_best_epoch():
    model = make_model()
    snapshots = {}

    def step(epoch):   # "training": the weights change every epoch
        with ember.no_grad():
            model.weight.fill_(float(epoch))
        snapshots[epoch] = model.weight.detach().numpy().copy()

    es = EarlyStopping(patience=2, restore_best_weights=True)
    ran = run_epochs(es, model, [1.0, 0.5, 0.7, 0.8, 0.9], weights_step=step)
    assert ran == [0, 1, 2, 3] and es.best_epoch == 1
    np.testing.assert_array_equal(model.weight.detach().numpy(), snapshots[1])
    model = make_model()   # no early stop: the best epoch's weights still come back at train end
    es = EarlyStopping(patience=10, restore_best_weights=True)
    run_epochs(es, model, [1.0, 0.2, 0.7], weights_step=step)
    np.testing.assert_array_equal(model.weight.detach().numpy(), np.ones((2, 3)))


def test_early_stopping_warns_once_with_the_available_keys_and_refuses_unknown_directions():
    model = make_model()
    es = EarlyStopping(monitor="val_acc", patience=0)
    with pytest.warns(UserWarning, match="val_acc.*Available metrics are: loss,val_loss") as record:
        run_epochs(es, model, [1.0, 2.0, 3.0])
    assert len([w for w in record if "Early stopping" in str(w.message)]) == 1
    assert not model.stop_training
    with pytest.raises(ValueError, match="mode='max'"):
        run_epochs(EarlyStopping(monitor="val_widgets"), make_model(), [1.0], key="val_widgets")
    with pytest.warns(UserWarning, match="unknown"):
        assert EarlyStopping(mode="sideways").mode == "auto"


# ------------------------------------------------------------ ModelCheckpoint
def test_checkpoint_formats_file_names_and_saves_every_epoch(tmp_path):
    model = make_model()
    cb = ModelCheckpoint(str(tmp_path / "sub" / "w-{epoch:02d}-{val_loss:.2f}.safetensors"),
                         save_weights_only=True)
    run_epochs(cb, model, [0.5, 0.25])
    files = sorted(f for f in os.listdir(tmp_path / "sub") if f.endswith(".safetensors"))
    assert files == ["w-01-0.50.safetensors", "w-02-0.25.safetensors"]       # missing folder was made
    loaded = ember.load(str(tmp_path / "sub" / files[1]))
    np.testing.assert_array_equal(loaded["weight"].numpy(), model.weight.detach().numpy())
    assert not [f for f in os.listdir(tmp_path / "sub") if f.startswith(".tmp")]   # atomic, no leftovers


def test_checkpoint_save_best_only_writes_only_on_improvement(tmp_path):
    model = make_model()
    path = str(tmp_path / "best.safetensors")
    cb = ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    cb.set_model(model)
    written = []
    for epoch, loss in enumerate([1.0, 0.5, 0.7, 0.4, 0.9]):
        with ember.no_grad():
            model.weight.fill_(float(epoch))
        before = os.stat(path).st_mtime_ns if os.path.exists(path) else None
        os.utime(path, ns=(0, 0)) if before else None
        cb.on_epoch_end(epoch, {"val_loss": loss})
        if os.path.exists(path) and os.stat(path).st_mtime_ns != 0:
            written.append(epoch)
    assert written == [0, 1, 3] and cb.best == 0.4
    assert ember.load(path)["weight"].numpy()[0, 0] == 3.0
    assert json.load(open(path + ".json"))["epoch"] == 4
    names = str(tmp_path / "acc-{epoch}.safetensors")
    cb = ModelCheckpoint(names, monitor="val_accuracy", save_best_only=True, save_weights_only=True,
                         initial_value_threshold=0.6)
    run_epochs(cb, model, [0.5, 0.7, 0.65, 0.8], key="val_accuracy")
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("acc") and f.endswith("s")) == \
        ["acc-2.safetensors", "acc-4.safetensors"]
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        cb = ModelCheckpoint(str(tmp_path / "x.safetensors"), save_best_only=True)
        cb.set_model(model)
        cb.on_epoch_end(0, {"loss": 1.0})
    assert not os.path.exists(tmp_path / "x.safetensors")


def test_checkpoint_resumes_weights_epoch_and_optimizer_state(tmp_path):
    model = make_model(lr=0.01, optimizer="adam")
    x = ember.randn(4, 3)
    for _ in range(2):
        model.optimizer.zero_grad()
        model(x).pow(2).sum().backward()
        model.optimizer.step()
    path = str(tmp_path / "ckpt.safetensors")
    cb = ModelCheckpoint(path)
    cb.set_model(model)
    cb.on_epoch_end(4, {"loss": 0.3, "val_loss": 0.4})
    info = json.load(open(path + ".json"))
    assert info["epoch"] == 5 and info["logs"] == {"loss": 0.3, "val_loss": 0.4}
    assert info["optimizer"]["class"] == "Adam" and info["optimizer"]["param_groups"][0]["lr"] == 0.01
    fresh = make_model(lr=0.5, optimizer="adam")
    with ember.no_grad():
        fresh.weight.fill_(0.0)
    resumed = callbacks.load_checkpoint(fresh, path)
    assert resumed["epoch"] == 5
    np.testing.assert_array_equal(fresh.weight.detach().numpy(), model.weight.detach().numpy())
    assert fresh.optimizer.param_groups[0]["lr"] == 0.01
    for a, b in zip(model.optimizer.state_dict()["state"].values(), fresh.optimizer.state_dict()["state"].values()):
        assert a["step"] == b["step"] == 2
        np.testing.assert_array_equal(a["exp_avg"].numpy(), b["exp_avg"].numpy())
    for m in (model, fresh):      # the same next step from both
        m.optimizer.zero_grad()
        m(x).pow(2).sum().backward()
        m.optimizer.step()
    np.testing.assert_allclose(fresh.weight.detach().numpy(), model.weight.detach().numpy())


def test_checkpoint_save_freq_in_batches_and_h5_through_save_weights(tmp_path):
    saved = []

    class FakeModel:
        stop_training = False

        def save_weights(self, path):
            saved.append(os.path.basename(path))

    cb = ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.weights.h5"), save_weights_only=True, save_freq=3)
    cb.set_model(FakeModel())
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        for batch in range(4):
            cb.on_train_batch_end(batch, {"loss": 1.0})
        cb.on_epoch_end(epoch, {"loss": 1.0})
    assert saved == ["e1-b3.weights.h5", "e2-b2.weights.h5"]
    cb = ModelCheckpoint(str(tmp_path / "m.ember"))
    cb.set_model(FakeModel())
    with pytest.raises(ValueError, match="model.save"):
        cb.on_epoch_end(0, {"val_loss": 1.0})


def test_checkpoint_explains_bad_paths_and_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.safetensors or \.h5"):
        ModelCheckpoint(str(tmp_path / "w.pt"), save_weights_only=True)
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint(str(tmp_path / "w.safetensors"), save_freq="sometimes")
    model = make_model()
    cb = ModelCheckpoint(str(tmp_path / "w-{val_acc}.safetensors"))
    cb.set_model(model)
    with pytest.raises(KeyError, match="Failed to format.*val_acc"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    (tmp_path / "d.safetensors").mkdir()
    cb = ModelCheckpoint(str(tmp_path / "d.safetensors"))
    cb.set_model(model)
    with pytest.raises(IsADirectoryError, match="existing directory"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    (tmp_path / "file").write_text("x")
    cb = ModelCheckpoint(str(tmp_path / "file" / "w.safetensors"))
    cb.set_model(model)
    with pytest.raises(OSError, match="cannot create the folder"):
        cb.on_epoch_end(0, {"val_loss": 1.0})


# ------------------------------------------------------------ learning rate
def test_reduce_lr_on_plateau_patience_cooldown_min_lr_and_every_group():
    w1, w2 = ember.zeros(1, requires_grad=True), ember.zeros(1, requires_grad=True)
    model = make_model()
    model.optimizer = ember.optim.SGD([{"params": [w1], "lr": 1.0}, {"params": [w2], "lr": 0.5}], lr=1.0)
    cb = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.2)
    cb.set_model(model)
    cb.on_train_begin()
    lrs, logged = [], []
    for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"val_loss": loss}
        cb.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
        lrs.append([g["lr"] for g in model.optimizer.param_groups])
    # reduce at epoch 1; cooldown (as Keras, the epoch that ends it counts again): reduce at 3, 5; >= min_lr
    assert lrs == [[1.0, 0.5], [0.5, 0.25], [0.5, 0.25], [0.25, 0.2], [0.25, 0.2], [0.2, 0.2], [0.2, 0.2]]
    assert logged == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]     # the rate during the epoch
    model.optimizer = ember.optim.SGD([w1], lr=1.0)
    cb = ReduceLROnPlateau(factor=0.1, patience=2, min_delta=0.1)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.95, 0.85]):   # 0.95 is within min_delta; 0.85 improves
        cb.on_epoch_end(epoch, {"val_loss": loss})
    assert model.optimizer.param_groups[0]["lr"] == 1.0 and cb.best == 0.85


def test_reduce_lr_on_plateau_errors_and_missing_metric():
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.5)
    cb = ReduceLROnPlateau()

    class NoOpt:
        optimizer = None

    cb.set_model(NoOpt())
    with pytest.raises(ValueError, match="compile"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    cb.set_model(make_model())
    with pytest.warns(UserWarning, match="Available metrics are: loss"):
        cb.on_epoch_end(0, {"loss": 1.0})


def test_learning_rate_scheduler_sets_each_epoch_and_logs():
    model = make_model(lr=0.1)
    cb = LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5)
    cb.set_model(model)
    seen = []
    for epoch in range(5):
        cb.on_epoch_begin(epoch)
        logs = {}
        cb.on_epoch_end(epoch, logs)
        seen.append(logs["learning_rate"])
    np.testing.assert_allclose(seen, [0.1, 0.1, 0.05, 0.025, 0.0125])
    cb = LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))   # the one-argument form
    cb.set_model(model)
    cb.on_epoch_begin(3)
    assert math.isclose(model.optimizer.param_groups[0]["lr"], 0.04)
    cb = LearningRateScheduler(lambda epoch, lr: "fast")
    cb.set_model(model)
    with pytest.raises(ValueError, match="should be a float"):
        cb.on_epoch_begin(0)
    with pytest.raises(TypeError, match="schedule must be a function"):
        LearningRateScheduler(0.1)


# ------------------------------------------------------------ logging
def test_csv_logger_writes_header_rows_and_appends(tmp_path):
    path = tmp_path / "logs" / "train.csv"
    cb = CSVLogger(str(path))
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5, "accuracy": 0.75})
    assert path.read_text().splitlines() == ["epoch,accuracy,loss,val_accuracy,val_loss", "0,0.75,0.5,NA,NA"]
    cb.on_epoch_end(1, {"loss": 0.25, "accuracy": 0.875, "val_loss": 0.5, "val_accuracy": 0.5})
    cb.on_train_end()
    rows = list(csv.DictReader(open(path)))
    assert rows[1] == {"epoch": "1", "accuracy": "0.875", "loss": "0.25", "val_accuracy": "0.5", "val_loss": "0.5"}
    cb = CSVLogger(str(path), separator=";", append=True)
    cb.on_train_begin()
    cb.on_epoch_end(2, {"loss": 0.125, "val_loss": 0.25})
    cb.on_train_end()
    assert path.read_text().splitlines()[-1] == "2;0.125;0.25" and len(path.read_text().splitlines()) == 4


def test_terminate_on_nan_stops_on_nan_or_inf_only(capsys):
    for loss, stops in [(0.5, False), (float("nan"), True), (float("inf"), True)]:
        model = make_model()
        cbs = callbacks.CallbackList([TerminateOnNaN()], model=model)
        cbs.on_train_batch_end(2, {"loss": ember.tensor(loss)})
        assert model.stop_training is stops
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out


def test_lambda_callback_calls_given_functions_and_checks_names():
    seen = []
    cb = LambdaCallback(on_train_begin=lambda logs: seen.append("begin"),
                        on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["loss"])),
                        on_test_end=lambda logs: seen.append("test"))
    cbs = callbacks.CallbackList([cb], model=make_model())
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_epoch_end(0, {"loss": 1.0})
    cbs.on_test_end()
    cbs.on_train_end()
    assert seen == ["begin", (0, 1.0), "test"]
    with pytest.raises(TypeError, match="unknown hook name"):
        LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="must be a function"):
        LambdaCallback(on_epoch_end=3)


def test_progbar_logger_verbose_2_prints_a_line_per_epoch(capsys):
    cbs = callbacks.CallbackList([], add_progbar=True, model=make_model(), verbose=2, epochs=2, steps=4)
    cbs.on_train_begin()
    for epoch in range(2):
        cbs.on_epoch_begin(epoch)
        cbs.on_epoch_end(epoch, {"loss": 0.5})
    cbs.on_train_end()
    assert capsys.readouterr().out.splitlines() == ["Epoch 1/2", "4/4 - loss: 0.5000", "Epoch 2/2",
                                                    "4/4 - loss: 0.5000"]


def test_fit_runs_with_callbacks_end_to_end(tmp_path):
    model = ember.Sequential([ember.layers.Dense(1)])
    if not hasattr(model, "fit"):
        pytest.skip("Model.fit is not available")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    model.compile(optimizer="sgd", loss="mse")
    es = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    ckpt = ModelCheckpoint(str(tmp_path / "best.safetensors"), save_best_only=True, save_weights_only=True)
    log = CSVLogger(str(tmp_path / "log.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(x, y, epochs=4, batch_size=8, validation_data=(x, y), verbose=0,
                            callbacks=[es, ckpt, log, ReduceLROnPlateau(patience=5), TerminateOnNaN()])
    assert history is model.history and history.epoch == [0, 1, 2, 3]
    assert sorted(history.history) == ["learning_rate", "loss", "val_loss"]
    assert len(open(tmp_path / "log.csv").read().splitlines()) == 5
    best = ember.load(str(tmp_path / "best.safetensors"))
    assert set(best) == set(model.state_dict())


def test_early_stopping_restores_the_best_epoch_in_a_real_fit():
    """After fit, the model evaluates at the best epoch's validation loss (the restore really happened)."""
    import numpy as np

    import ember
    from ember import layers
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 8)).astype(np.float32)
    y = (x[:, :1] + 0.5 * rng.standard_normal((120, 1))).astype(np.float32)     # noisy: it overfits
    xv = rng.standard_normal((40, 8)).astype(np.float32)
    yv = (xv[:, :1] + 0.5 * rng.standard_normal((40, 1))).astype(np.float32)
    model = ember.Sequential([layers.Input((8,)), layers.Dense(64, activation="relu"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    stop = ember.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    hist = model.fit(x, y, epochs=200, batch_size=16, validation_data=(xv, yv), callbacks=[stop], verbose=0)
    assert len(hist.history["val_loss"]) < 200                       # it did stop early
    best = min(hist.history["val_loss"])
    assert hist.history["val_loss"][-1] > best                       # the last epoch was worse...
    assert abs(model.evaluate(xv, yv, verbose=0) - best) < 1e-5      # ...but the model is at the best one
