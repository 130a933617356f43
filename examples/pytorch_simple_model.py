"""The PyTorch example of the source notes (shared/seeds/004), with only its imports changed to Ember.

The notes leave ``train_data``/``train_labels`` undefined; here they are the bundled digits, each 8×8
image scaled up to 28×28 = 784 pixels. Seed 0. The loss printed before and after must fall.
"""
import numpy as np

import ember as torch            # the only change: the imports
import ember.nn as nn
import ember.optim as optim
from ember.data import load_digits

torch.manual_seed(0)
_images, _labels = load_digits()
_big = np.kron(_images.reshape(-1, 8, 8), np.ones((3, 3), np.float32))       # 24×24
train_data = torch.tensor(np.pad(_big, ((0, 0), (2, 2), (2, 2))).reshape(-1, 784))
train_labels = torch.tensor(_labels)


# ---- the notes' code, verbatim ----
# Definição do modelo
class SimpleModel(nn.Module):
    def __init__(self):
        super(SimpleModel, self).__init__()
        self.fc1 = nn.Linear(784, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.softmax(self.fc2(x), dim=1)
        return x

model = SimpleModel()

# Definição da função de perda e otimizador
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.001)

with torch.no_grad():
    loss_before = criterion(model(train_data), train_labels).item()

# Treinamento do modelo
for epoch in range(10):
    optimizer.zero_grad()
    output = model(train_data)
    loss = criterion(output, train_labels)
    loss.backward()
    optimizer.step()
# ---- end of the notes' code ----

print(f"loss before training {loss_before:.4f}, after 10 steps {loss.item():.4f}")
assert loss.item() < loss_before, "the loss should fall"
