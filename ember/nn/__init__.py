"""Neural-network building blocks with PyTorch's ``torch.nn`` API: Module, Parameter, layers, losses, init.

>>> import ember
>>> model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.ReLU(), ember.nn.Linear(8, 2))
>>> model(ember.randn(3, 4)).shape
ember.Size([3, 2])
"""
from . import functional, init, utils  # noqa: F401
from .module import Module  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import activation as _activation
from .modules import container as _container
from .modules import conv as _conv
from .modules import loss as _loss
from .modules import normalization as _normalization
from .modules import padding as _padding
from .modules import pooling as _pooling
from .modules import rnn as _rnn
from .modules import sparse as _sparse
from .modules import transformer as _transformer
from .parameter import Parameter  # noqa: F401

__all__ = (["Module", "Parameter", "Linear", "Identity", "Flatten", "Unflatten", "Dropout", "functional", "init"]
           + _activation.__all__ + _container.__all__ + _loss.__all__ + _conv.__all__ + _pooling.__all__
           + _normalization.__all__ + _padding.__all__ + _rnn.__all__ + _sparse.__all__ + _transformer.__all__)
