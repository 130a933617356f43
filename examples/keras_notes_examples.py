"""The Keras examples of the source notes (shared/seeds/004), with only their imports changed to Ember.

The notes leave ``train_data``/``train_labels`` and ``input_dim`` undefined; here they are the bundled
digits, each 8×8 image scaled up to 28×28 = 784 pixels. Seed 0.
"""
import numpy as np

import ember
from ember.data import load_digits

ember.manual_seed(0)
_images, _labels = load_digits(as_numpy=True)
_big = np.kron(_images.reshape(-1, 8, 8), np.ones((3, 3), np.float32))
train_data = np.pad(_big, ((0, 0), (2, 2), (2, 2))).reshape(-1, 784)
train_labels = _labels
input_dim = 784

# ---- first example, verbatim but for the imports ----
import ember as tf                  # was: import tensorflow as tf  # noqa: E402
from ember import layers            # was: from tensorflow.keras import layers  # noqa: E402

# Construção de um modelo sequencial simples
model = tf.keras.Sequential([
    layers.Dense(64, activation='relu', input_shape=(784,)),
    layers.Dense(10, activation='softmax')
])

# Compilação do modelo
model.compile(optimizer='adam',
              loss='sparse_categorical_crossentropy',
              metrics=['accuracy'])

# Treinamento do modelo
history = model.fit(train_data, train_labels, epochs=10)
# ---- end ----
print("sparse model, final accuracy:", round(history.history["accuracy"][-1], 4))

# ---- second example, verbatim but for the imports ----
from ember.models import Sequential   # was: from keras.models import Sequential  # noqa: E402
from ember.layers import Dense        # was: from keras.layers import Dense  # noqa: E402

model = Sequential()
model.add(Dense(units=64, activation='relu', input_shape=(input_dim,)))
model.add(Dense(units=10, activation='softmax'))

model.compile(optimizer='adam',
              loss='categorical_crossentropy',
              metrics=['accuracy'])
# ---- end ----
one_hot = np.eye(10, dtype=np.float32)[train_labels]
history = model.fit(train_data, one_hot, epochs=5, batch_size=32, verbose=2)
loss, acc = model.evaluate(train_data, one_hot, verbose=0)
print(f"categorical model: loss {loss:.4f}, accuracy {acc:.4f}")
assert acc > 0.9
