"""ONNX converters for optional values and for the ``ai.onnx.ml`` and ``ai.onnx.preview.training`` domains.

Ops of a non-default domain are registered under ``<domain>.<op type>`` (``ai.onnx.ml.Binarizer``); the
importer looks them up with that domain's op-set version. The training ops (Adam, Adagrad, Momentum)
are optimizer updates written as graph nodes; they compute with NumPy and carry no gradient.
"""
from __future__ import annotations

import numpy as np

from .ops_math import is_float, no_grad_path, wrap
from .registry import converter

ML, TRAINING = "ai.onnx.ml.", "ai.onnx.preview.training."


# ------------------------------------------------------------------ optional values (plain-tensor forms)
@converter("OptionalHasElement", since=15)
def _optional_has_element(ctx, inputs, attrs):
    return wrap(np.array(bool(inputs) and inputs[0] is not None))


@converter("OptionalGetElement", since=15)
def _optional_get_element(ctx, inputs, attrs):
    if not inputs or inputs[0] is None:
        raise ValueError("OptionalGetElement of an empty optional")
    return (inputs[0],)   # the value may be a sequence (a list): one output either way


# ------------------------------------------------------------------ ai.onnx.ml
@converter(ML + "Binarizer")
def _binarizer(ctx, inputs, attrs):
    x = inputs[0].data
    return wrap(x > attrs.get("threshold", 0.0), x.dtype)


@converter(ML + "ArrayFeatureExtractor")
def _array_feature_extractor(ctx, inputs, attrs):
    x, idx = inputs[0], inputs[1].data.reshape(-1).astype(np.int64)
    out = x[..., idx] if is_float(x) else wrap(np.take(x.data, idx, axis=-1))
    return out.reshape(1, -1) if x.data.ndim == 1 else out


@converter(ML + "LabelEncoder", since=2)
def _label_encoder(ctx, inputs, attrs):
    x = inputs[0].data
    keys = next(attrs[k] for k in ("keys_tensor", "keys_floats", "keys_int64s", "keys_strings") if k in attrs)
    for name, dtype, default in (("values_tensor", None, "default_tensor"), ("values_floats", np.float32,
                                 "default_float"), ("values_int64s", np.int64, "default_int64"),
                                 ("values_strings", object, "default_string")):
        if name in attrs:
            values = attrs[name]
            break
    else:
        raise ValueError("LabelEncoder has no values_* attribute")
    if name == "values_tensor":
        fallback = attrs.get("default_tensor")
        dtype = values.dtype
        fallback = fallback.reshape(-1)[0] if fallback is not None else ("_Unused" if dtype.kind == "O" else -1)
    else:
        fallback = attrs.get(default, _DEFAULTS[default])
    keys, values = np.asarray(keys).reshape(-1).tolist(), np.asarray(values).reshape(-1).tolist()
    table = {_key(k): v for k, v in zip(keys, values)}
    out = np.array([table.get(_key(v), fallback) for v in x.reshape(-1).tolist()], dtype=dtype)
    return wrap(out.reshape(x.shape))


_DEFAULTS = {"default_float": -0.0, "default_int64": -1, "default_string": "_Unused"}


def _key(v):
    """NaN keys match each other (as in ONNX's LabelEncoder)."""
    return "nan" if isinstance(v, float) and v != v else v


# ------------------------------------------------------------------ ai.onnx.preview.training
def _scalars(inputs):
    return float(inputs[0].data.reshape(-1)[0]), int(inputs[1].data.reshape(-1)[0])


def _groups(ctx, inputs, per):
    no_grad_path(ctx, *inputs)
    n = (len(inputs) - 2) // per
    return n, [[inputs[2 + j * n + i].data.astype(np.float64) for j in range(per)] for i in range(n)]


@converter(TRAINING + "Adagrad")
def _adagrad(ctx, inputs, attrs):
    r, t = _scalars(inputs)
    n, groups = _groups(ctx, inputs, 3)
    decay, eps, norm = attrs.get("decay_factor", 0.0), attrs.get("epsilon", 1e-6), attrs.get("norm_coefficient", 0.0)
    xs, hs = [], []
    for (x, g, h), src in zip(groups, inputs[2:2 + n]):
        g = norm * x + g
        h = h + g * g
        xs.append(wrap(x - r / (1 + t * decay) * g / (np.sqrt(h) + eps), src.data.dtype))
        hs.append(wrap(h, src.data.dtype))
    return tuple(xs + hs)


@converter(TRAINING + "Momentum")
def _momentum(ctx, inputs, attrs):
    r, t = _scalars(inputs)
    n, groups = _groups(ctx, inputs, 3)
    alpha, beta, norm = attrs["alpha"], attrs["beta"], attrs["norm_coefficient"]
    nesterov = attrs.get("mode", "standard") == "nesterov"
    xs, vs = [], []
    for (x, g, v), src in zip(groups, inputs[2:2 + n]):
        g = norm * x + g
        v = alpha * v + (beta if t > 0 else 1.0) * g
        xs.append(wrap(x - r * (g + alpha * v if nesterov else v), src.data.dtype))
        vs.append(wrap(v, src.data.dtype))
    return tuple(xs + vs)


@converter(TRAINING + "Adam")
def _adam(ctx, inputs, attrs):
    r, t = _scalars(inputs)
    n, groups = _groups(ctx, inputs, 4)
    alpha, beta = attrs.get("alpha", 0.9), attrs.get("beta", 0.999)
    eps, norm, post = attrs.get("epsilon", 1e-6), attrs.get("norm_coefficient", 0.0), \
        attrs.get("norm_coefficient_post", 0.0)
    xs, vs, hs = [], [], []
    for (x, g, v, h), src in zip(groups, inputs[2:2 + n]):
        g = norm * x + g
        v = alpha * v + (1 - alpha) * g
        h = beta * h + (1 - beta) * g * g
        rate = r * np.sqrt(1 - beta ** t) / (1 - alpha ** t) if t > 0 else r
        x = (1 - post) * (x - rate * v / (np.sqrt(h) + eps))
        dt = src.data.dtype if is_float(src) else np.float32
        xs.append(wrap(x, dt))
        vs.append(wrap(v, dt))
        hs.append(wrap(h, dt))
    return tuple(xs + vs + hs)
