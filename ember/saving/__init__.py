"""Saving and loading models without pickle: configs (JSON/YAML), weights (HDF5/safetensors), ``.ember`` archives.

Nothing in a file is executed: configs are plain data, layer classes resolve by name only among Ember's
own layers and those registered with :func:`register_serializable`, YAML is read with ``safe_load``.
"""
from .archive import load_model, save_model
from .config import deserialize_layer, model_from_config, model_from_json, model_from_yaml, serialize_layer
from .registry import get_registered_name, get_registered_object, register_serializable
from .weights import load_weights, save_weights
from .keras_weights import load_keras_weights, save_keras_weights
from .torch_weights import UnsafeWeightsError, load_torch_state_dict, load_torch_weights, save_torch_state_dict

__all__ = ["load_model", "save_model", "model_from_config", "model_from_json", "model_from_yaml",
           "serialize_layer", "deserialize_layer", "register_serializable", "get_registered_name",
           "get_registered_object", "save_weights", "load_weights",
           "load_keras_weights", "save_keras_weights", "UnsafeWeightsError", "load_torch_state_dict",
           "load_torch_weights", "save_torch_state_dict"]
