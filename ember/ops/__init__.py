"""Ember's ops, one family per module; each op's forward and gradient are defined together.

Importing this package binds the ops as Tensor methods and operators (``x.exp()``, ``x + y``).
"""
from __future__ import annotations

from ..tensor import Tensor
from . import (activation, attention, conv, elementwise, embedding, index, linalg, normalization,  # noqa: F401
               pool, random, reduce, resize, rnn, shape, softmax, unary, where)
from ._util import TENSOR_METHODS
from .activation import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .index import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .resize import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .unary import *  # noqa: F401,F403
from .where import *  # noqa: F401,F403

for _name, _fn in TENSOR_METHODS.items():
    setattr(Tensor, _name, _fn)
