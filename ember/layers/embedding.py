"""Keras-style ``Embedding`` layer."""
from __future__ import annotations

from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..tensor import Tensor
from .layer import Layer

__all__ = ["Embedding"]


class Embedding(Layer):
    """Turn integer indices into dense vectors of size ``output_dim`` (Keras' ``Embedding``).

    ``embeddings`` is (input_dim, output_dim), initialised U(-0.05, 0.05) by default. Input: integer
    indices of any shape (floats holding integers are cast); output: ``input.shape + (output_dim,)``.
    With ``mask_zero=True`` index 0 is padding: the output carries a mask (``indices != 0``) that the
    recurrent layers after it use (``input_dim`` must then count the padding index too). Memory: the
    output; the gradient is a dense (input_dim, output_dim) table filled by a scatter-add.

    >>> import ember
    >>> layer = ember.layers.Embedding(10, 3, mask_zero=True)
    >>> out = layer(ember.tensor([[4, 2, 0]]))
    >>> tuple(out.shape), out._keras_mask.tolist()
    ((1, 3, 3), [[True, True, False]])
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero: bool = False, weights=None,
                 lora_rank=None, input_length=None, **kwargs):
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive integer, got {v!r}")
        if embeddings_constraint is not None or lora_rank is not None:
            raise NotImplementedError("Embedding: embeddings_constraint and lora_rank are not supported in Ember yet")
        self.input_dim, self.output_dim, self.mask_zero = input_dim, output_dim, bool(mask_zero)
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.embeddings_regularizer = _regularizers.get(embeddings_regularizer) if embeddings_regularizer else None
        self.build(None)
        self.__dict__["built"] = True
        if weights is not None:
            w = weights[0] if isinstance(weights, (list, tuple)) else weights
            self.set_weights([w])

    def build(self, input_shape):
        if "embeddings" not in self._parameters:
            self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                              "embeddings", regularizer=self.embeddings_regularizer)

    def set_weights(self, weights) -> None:
        """Replace the table with ``weights[0]`` (input_dim, output_dim)."""
        w = weights[0]
        arr = w.data if isinstance(w, Tensor) else w
        if tuple(arr.shape) != (self.input_dim, self.output_dim):
            raise ValueError(f"Embedding {self.name!r}: weights of shape {tuple(arr.shape)}, expected "
                             f"{(self.input_dim, self.output_dim)}")
        self.embeddings.data[...] = self.embeddings.xp.asarray(arr)

    def call(self, inputs):
        from ..ops.embedding import embedding
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        if x.data.dtype.kind == "f":
            x = x.long()
        out = embedding(x, self.embeddings)
        if self.mask_zero:
            out._keras_mask = Tensor(x.data != 0)
        return out

    def compute_mask(self, inputs, mask=None):
        """``inputs != 0`` when ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        return Tensor(x.data != 0)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": _initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": _regularizers.serialize(self.embeddings_regularizer)
                if self.embeddings_regularizer else None,
                "mask_zero": self.mask_zero}

    def extra_repr(self):
        return f"name={self.name!r}, input_dim={self.input_dim}, output_dim={self.output_dim}"
