"""Keras-style callbacks: hooks that ``Model.fit``/``evaluate``/``predict`` call as they run.

``EarlyStopping``, ``ModelCheckpoint`` (with :func:`load_checkpoint` to resume), ``ReduceLROnPlateau``,
``LearningRateScheduler``, ``CSVLogger``, ``TerminateOnNaN``, ``LambdaCallback``, ``ProgbarLogger``,
``TensorBoard``, ``History`` and the base ``Callback``/``CallbackList`` with Keras 3's hook names.
"""
from .base import Callback, CallbackList, History
from .checkpoint import ModelCheckpoint, load_checkpoint
from .early_stopping import EarlyStopping
from .logging import CSVLogger, LambdaCallback, ProgbarLogger, TerminateOnNaN
from .lr import LearningRateScheduler, ReduceLROnPlateau
from .tensorboard import TensorBoard

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "load_checkpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback",
           "ProgbarLogger", "TensorBoard"]
