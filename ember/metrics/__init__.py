"""Keras-style stateful metrics: ``update_state`` per batch, ``result()``, ``reset_state()`` per epoch.

>>> import ember
>>> m = ember.metrics.get('acc')
>>> m.update_state([[1], [2]], [[1], [3]]); m.update_state([[4]], [[4]])
>>> round(m.result().item(), 4)
0.6667
"""
from __future__ import annotations

from .accuracy import (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                       SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy, accuracy, binary_accuracy,
                       categorical_accuracy, sparse_categorical_accuracy, sparse_top_k_categorical_accuracy,
                       top_k_categorical_accuracy)
from .base import Mean, MeanMetricWrapper, Metric, Sum, _snake
from .confusion import AUC, F1Score, FBetaScore, Precision, Recall
from .regression import (MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredError, RootMeanSquaredError,
                         mean_absolute_error, mean_absolute_percentage_error, mean_squared_error)

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "Precision",
           "Recall", "AUC", "F1Score", "FBetaScore", "MeanAbsoluteError", "MeanSquaredError",
           "RootMeanSquaredError", "MeanAbsolutePercentageError", "accuracy", "binary_accuracy",
           "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "mean_absolute_error", "mean_squared_error",
           "mean_absolute_percentage_error", "get", "serialize", "deserialize", "resolve_accuracy"]

_CLASSES = [Mean, Sum, MeanMetricWrapper, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
            TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, Precision, Recall, AUC, F1Score, FBetaScore,
            MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError, MeanAbsolutePercentageError]
_FUNCTIONS = [accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
              top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, mean_absolute_error,
              mean_squared_error, mean_absolute_percentage_error]

# Keras 3: class names and their snake_case forms resolve to classes (instantiated by get), plus aliases.
_BY_NAME: dict = {c.__name__: c for c in _CLASSES}
_BY_NAME.update({_snake(c.__name__): c for c in _CLASSES})
_BY_NAME.update({"acc": Accuracy, "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
                 "MAE": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
                 "MAPE": MeanAbsolutePercentageError, "rmse": RootMeanSquaredError, "f1": F1Score,
                 "top_k_accuracy": TopKCategoricalAccuracy, "sparse_top_k_accuracy": SparseTopKCategoricalAccuracy})
_FUNCTION_BY_NAME = {f.__name__: f for f in _FUNCTIONS}


def _unknown(identifier) -> ValueError:
    known = ", ".join(sorted(set(_BY_NAME)))
    return ValueError(f"Unknown metric {identifier!r}. Known metrics: {known}")


def deserialize(config: dict) -> Metric:
    """Build a metric from ``{'class_name': ..., 'config': {...}}`` (the output of :func:`serialize`)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"deserialize: expected a dict with 'class_name' and 'config', got {config!r}")
    name = config["class_name"]
    if name == "function":
        return get(config.get("config"), instantiate=False)
    cls = _BY_NAME.get(name)
    if cls is None:
        raise _unknown(name)
    return cls.from_config(dict(config.get("config") or {}))


def serialize_function(fn) -> dict:
    """A metric function as ``{'class_name': 'function', 'config': name}``; only Ember's own functions load back."""
    name = getattr(fn, "__name__", None)
    if _FUNCTION_BY_NAME.get(name) is not fn:
        raise ValueError(f"serialize: the function {fn!r} is not one of ember.metrics' functions "
                         f"({', '.join(sorted(_FUNCTION_BY_NAME))}) and cannot be serialized by name")
    return {"class_name": "function", "config": name}


def serialize(metric) -> dict:
    """The JSON-able dict form ``{'class_name': ..., 'config': {...}}`` of a metric or metric function.

    >>> import ember
    >>> ember.metrics.serialize(ember.metrics.BinaryAccuracy(threshold=0.7))
    {'class_name': 'BinaryAccuracy', 'config': {'name': 'binary_accuracy', 'dtype': 'float32', 'threshold': 0.7}}
    """
    if isinstance(metric, Metric):
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    if callable(metric):
        return serialize_function(metric)
    raise ValueError(f"serialize: expected a Metric or a metric function, got {metric!r}")


def get(identifier, instantiate: bool = True):
    """Resolve a metric from a name ('accuracy', 'acc', 'mae', 'auc', 'Precision', ...), a config dict,
    a Metric class or instance, or a function (returned as is). ``None`` gives ``None``.

    Names resolve as in Keras 3: class names and their snake_case forms give a new instance
    (``'mse'`` -> ``MeanSquaredError()``). ``instantiate=False`` looks up functions by name instead.

    >>> import ember
    >>> ember.metrics.get('auc')
    <AUC name=auc>
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if not instantiate:
            if identifier not in _FUNCTION_BY_NAME:
                known = ", ".join(sorted(_FUNCTION_BY_NAME))
                raise ValueError(f"Unknown metric function {identifier!r}. Known: {known}")
            return _FUNCTION_BY_NAME[identifier]
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise _unknown(identifier)
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, Metric) or callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


_BINARY_LOSSES = {"binarycrossentropy", "bce", "binaryfocalcrossentropy", "binarycrossentropywithlogits",
                  "bceloss", "bcewithlogitsloss"}
_SPARSE_LOSSES = {"sparsecategoricalcrossentropy", "scce", "nllloss"}
_CATEGORICAL_LOSSES = {"categoricalcrossentropy", "cce", "categoricalfocalcrossentropy"}


def _loss_key(loss) -> str:
    """A loss identifier reduced to lower-case letters: BinaryCrossentropy() -> 'binarycrossentropy'."""
    if isinstance(loss, dict):
        loss = loss.get("class_name", "")
    elif not isinstance(loss, str):
        loss = getattr(loss, "__name__", None) or type(loss).__name__
    return "".join(ch for ch in str(loss).lower() if ch.isalpha())


def resolve_accuracy(loss_identifier, y_true_shape, y_pred_shape, name: str = "accuracy") -> Metric:
    """The accuracy metric that ``compile(metrics=['accuracy'])`` means for this loss and these shapes.

    The rule (Keras: tf.keras' loss check first, then Keras 3's shape check):

    1. a binary loss (``binary_crossentropy``/``bce``, binary focal, ``BCELoss``) -> ``BinaryAccuracy``;
    2. ``sparse_categorical_crossentropy`` -> ``SparseCategoricalAccuracy``;
    3. ``categorical_crossentropy`` (or categorical focal) -> ``CategoricalAccuracy``;
    4. any other loss, from the shapes: ``y_pred``'s last dim 1 (or ``y_pred`` 1-D) -> binary;
       ``y_true`` of lower rank than ``y_pred``, or ``y_true``'s last dim 1 with ``y_pred``'s > 1 -> sparse;
       otherwise categorical.

    Shapes may include the batch dimension or ``None`` entries; the metric is named ``name``.

    >>> import ember
    >>> ember.metrics.resolve_accuracy('sparse_categorical_crossentropy', (32,), (32, 10))
    <SparseCategoricalAccuracy name=accuracy>
    >>> ember.metrics.resolve_accuracy('mse', (32, 1), (32, 1))
    <BinaryAccuracy name=accuracy>
    """
    key = _loss_key(loss_identifier) if loss_identifier is not None else ""
    if key in _BINARY_LOSSES:
        return BinaryAccuracy(name=name)
    if key in _SPARSE_LOSSES:
        return SparseCategoricalAccuracy(name=name)
    if key in _CATEGORICAL_LOSSES:
        return CategoricalAccuracy(name=name)
    t_shape = tuple(y_true_shape) if y_true_shape is not None else None
    p_shape = tuple(y_pred_shape) if y_pred_shape is not None else None
    if not p_shape or p_shape[-1] == 1:
        return BinaryAccuracy(name=name)
    if t_shape is not None and (len(t_shape) < len(p_shape) or (t_shape and t_shape[-1] == 1 and p_shape[-1] != 1)):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)
