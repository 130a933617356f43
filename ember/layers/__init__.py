"""Keras-style layers (``ember.layers``): lazy shapes, string activations/initializers, configs.

Each layer is also an ``ember.nn.Module``, so it works inside PyTorch-style models and loops.
"""
from . import attention as _attention
from . import convolutional as _convolutional
from . import embedding as _embedding
from . import normalization as _normalization
from . import pooling as _pooling
from . import recurrent as _recurrent
from . import reshaping as _reshaping
from . import wrappers as _wrappers
from .attention import *  # noqa: F401,F403
from .convolutional import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .core import Activation, Dense, Dropout, Flatten, Lambda, Reshape, register_lambda
from .layer import Layer, clear_session, unique_name
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .normalization import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .reshaping import *  # noqa: F401,F403
from .wrappers import *  # noqa: F401,F403
from .symbolic import Input, InputLayer, KerasTensor, is_keras_tensor

__all__ = ["Layer", "Input", "InputLayer", "KerasTensor", "is_keras_tensor", "Dense", "Activation", "Dropout",
           "Flatten", "Reshape", "Lambda", "register_lambda", "Concatenate", "Add", "Subtract", "Multiply",
           "Average", "Maximum", "Minimum", "clear_session", "unique_name"]
__all__ += (_attention.__all__ + _convolutional.__all__ + _normalization.__all__ + _pooling.__all__
            + _recurrent.__all__ + _reshaping.__all__ + _embedding.__all__ + _wrappers.__all__)
