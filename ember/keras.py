"""Keras' namespace on Ember, so ``import ember as tf`` makes ``tf.keras.Sequential`` work.

Everything here is an alias of Ember's own packages (``ember.layers``, ``ember.models``, ...).
"""
from . import activations, callbacks, initializers, layers, losses, metrics, models, regularizers
from .models import Model, Sequential

__all__ = ["activations", "callbacks", "initializers", "layers", "losses", "metrics", "models", "regularizers",
           "Model", "Sequential", "Input"]

Input = layers.Input
