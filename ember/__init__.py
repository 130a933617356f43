"""Ember: a deep-learning framework with PyTorch's low-level API and Keras' high-level API.

>>> import ember
>>> x = ember.tensor([1.0, 2.0], requires_grad=True)
>>> y = (x ** 2).sum()
>>> y.backward()
>>> x.grad
tensor([2., 4.])
"""
from . import autograd, backend, dtypes
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .autograd.node import OpError
from .backend import device
from .creation import *  # noqa: F401,F403
from .dtypes import (bfloat16, bool_, double, dtype, float16, float32, float64, get_default_dtype, half, int8, int16,
                     int32, int64, long, set_default_dtype, short, uint8)
from .ops import *  # noqa: F401,F403
from .serialization import load, save
from .tensor import Size, Tensor

# the packages built on the core: PyTorch style (nn, optim, data), Keras style (losses, metrics, ...)
from . import data, nn, optim  # noqa: E402  (after Tensor and the ops they build on)
from . import activations, callbacks, initializers, layers, losses, metrics, models, regularizers  # noqa: E402
from .models import Model, Sequential  # noqa: E402
from . import saving  # noqa: E402
from .saving import load_model, register_serializable  # noqa: E402
from . import keras  # noqa: E402  (tf.keras-style aliases)
from . import plot  # noqa: E402  (training curves and layer graphs, matplotlib)
from . import graph  # noqa: E402  (graph mode)
from .graph import jit, lazy, realize  # noqa: E402
from . import onnx  # noqa: E402  (export, import; needs the onnx extra when called)
from . import amp  # noqa: E402  (mixed precision)
from . import cuda  # noqa: E402  (ember.cuda.is_available(), memory statistics, seeds)
from .amp import autocast  # noqa: E402

bool = bool_   # noqa: A001  (ember.bool, as torch.bool)
float = float32  # noqa: A001
int = int32  # noqa: A001

__version__ = "0.1.0"


def manual_seed(seed: int):
    """Seed every random generator Ember uses, so that runs repeat exactly."""
    return backend.manual_seed(seed)


def is_tensor(obj):
    """True for an Ember tensor (``torch.is_tensor``)."""
    return isinstance(obj, Tensor)
