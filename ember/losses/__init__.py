"""Keras-style losses (``keras.losses`` names, arguments and defaults): classes, functions, ``get``/``serialize``.

A class instance reduces over the batch (``reduction='sum_over_batch_size'`` by default, with
``sample_weight``); a function returns the per-sample losses. Strings resolve as in Keras.

>>> import ember
>>> ember.losses.get("mse")([[1.0, 2.0]], [[1.0, 4.0]])
tensor([2.])
>>> ember.losses.serialize(ember.losses.Huber(delta=2.0))["config"]["delta"]
2.0
"""
from __future__ import annotations

import inspect

from .classes import *  # noqa: F401,F403
from .classes import __all__ as _classes_all
from .functions import *  # noqa: F401,F403
from .functions import __all__ as _functions_all
from .loss import Loss, LossFunctionWrapper, reduce_weighted_values, squeeze_or_expand_to_same_rank

__all__ = ["Loss", "LossFunctionWrapper", "reduce_weighted_values", "squeeze_or_expand_to_same_rank", "get",
           "serialize", "deserialize"] + _classes_all + _functions_all

_MODULE = "ember.losses"
ALL_OBJECTS_DICT: dict = {name: globals()[name] for name in ["Loss", "LossFunctionWrapper"] + _classes_all}
ALL_OBJECTS_DICT.update({name: globals()[name] for name in _functions_all})
ALL_OBJECTS_DICT.update({
    "bce": binary_crossentropy, "BCE": binary_crossentropy,  # noqa: F405
    "kld": kl_divergence, "KLD": kl_divergence, "kullback_leibler_divergence": kl_divergence,  # noqa: F405
    "mae": mean_absolute_error, "MAE": mean_absolute_error,  # noqa: F405
    "mse": mean_squared_error, "MSE": mean_squared_error,  # noqa: F405
    "mape": mean_absolute_percentage_error, "MAPE": mean_absolute_percentage_error,  # noqa: F405
    "msle": mean_squared_logarithmic_error, "MSLE": mean_squared_logarithmic_error,  # noqa: F405
    "logcosh": log_cosh, "huber_loss": huber,  # noqa: F405
})


def _function_name(obj) -> str | None:
    """The name a loss function is registered under (its own name), or None for an unknown callable."""
    name = getattr(obj, "__name__", None)
    return name if name in ALL_OBJECTS_DICT and ALL_OBJECTS_DICT[name] is obj else None


def serialize(loss) -> dict:
    """The JSON-able dict form of a loss instance or a built-in loss function (Keras' layout).

    >>> import ember
    >>> ember.losses.serialize(ember.losses.mean_squared_error)["config"]
    'mean_squared_error'
    """
    if isinstance(loss, Loss):
        return {"module": _MODULE, "class_name": type(loss).__name__, "config": loss.get_config(),
                "registered_name": None}
    name = _function_name(loss)
    if name is None:
        raise ValueError(f"serialize: cannot serialize {loss!r}: expected an ember.losses.Loss instance or one of "
                         f"the built-in loss functions ({', '.join(_functions_all)})")
    return {"module": _MODULE, "class_name": "function", "config": name, "registered_name": name}


def _unknown(identifier) -> ValueError:
    return ValueError(f"Could not interpret loss identifier: {identifier!r}. Known losses: "
                      f"{', '.join(sorted(ALL_OBJECTS_DICT))}")


def deserialize(config, custom_objects: dict | None = None):
    """A loss from :func:`serialize`'s dict (or a name); ``custom_objects`` adds user classes and functions."""
    table = {**ALL_OBJECTS_DICT, **(custom_objects or {})}
    if isinstance(config, str):
        if config not in table:
            raise _unknown(config)
        return table[config]
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"deserialize: expected a dict with 'class_name' and 'config', got {config!r}")
    class_name, inner = config["class_name"], config.get("config", {})
    if class_name == "function":
        return deserialize(inner if isinstance(inner, str) else config.get("registered_name"), custom_objects)
    cls = table.get(class_name)
    if not (inspect.isclass(cls) and issubclass(cls, Loss)):
        raise _unknown(class_name)
    return cls.from_config(inner or {})


def get(identifier):
    """Resolve a loss: None, a name ('mse', 'categorical_crossentropy', 'Huber', ...), a dict, a class or a callable.

    Names of functions give the per-sample function (as Keras); class names and classes give an instance.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        obj = deserialize(identifier)
    else:
        obj = identifier
    if inspect.isclass(obj):
        obj = obj()
    if callable(obj):
        return obj
    raise _unknown(identifier)
