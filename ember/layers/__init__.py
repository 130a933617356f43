"""Keras-style layers (``ember.layers``): lazy shapes, string activations/initializers, configs.

Each layer is also an ``ember.nn.Module``, so it works inside PyTorch-style models and loops.
"""
from .core import Activation, Dense, Dropout, Flatten, Lambda, Reshape, register_lambda
from .layer import Layer, clear_session, unique_name
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .symbolic import Input, InputLayer, KerasTensor, is_keras_tensor

__all__ = ["Layer", "Input", "InputLayer", "KerasTensor", "is_keras_tensor", "Dense", "Activation", "Dropout",
           "Flatten", "Reshape", "Lambda", "register_lambda", "Concatenate", "Add", "Subtract", "Multiply",
           "Average", "Maximum", "Minimum", "clear_session", "unique_name"]
