"""PyTorch's MNIST example (pytorch/examples, mnist/main.py), as a user adapts it: the same Net, Adadelta and train
loop, the data read from an .npz copy of MNIST instead of torchvision.

Clean. Data: the first 10,000 training digits and the first 2,000 test digits of ../shared/data/mnist.npz (or
$MNIST_NPZ); without the file it falls back to scikit-learn's 8x8 digits upscaled to 28x28.
"""

import os
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

MNIST = pathlib.Path(os.environ.get("MNIST_NPZ", pathlib.Path(__file__).resolve().parents[4] / "shared/data/mnist.npz"))
TRAIN_SAMPLES, TEST_SAMPLES = 10_000, 2_000


def load_mnist():
    if MNIST.is_file():
        d = np.load(MNIST)
        return (d["x_train"][:TRAIN_SAMPLES], d["y_train"][:TRAIN_SAMPLES]), (d["x_test"][:TEST_SAMPLES], d["y_test"][:TEST_SAMPLES])
    from sklearn.datasets import load_digits  # offline fallback: 8x8 digits upscaled to 28x28

    digits = load_digits()
    x = np.kron(digits.images, np.ones((3, 3)))
    x = np.pad(x, ((0, 0), (2, 2), (2, 2))) * (255 / 16)
    x, y = x.astype(np.uint8), digits.target
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


class MNISTDataset(Dataset):
    """Like torchvision's MNIST with transforms.ToTensor() and transforms.Normalize((0.1307,), (0.3081,))."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = torch.from_numpy(self.images[index]).float().div(255).unsqueeze(0)
        image = (image - 0.1307) / 0.3081
        return image, int(self.labels[index])


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train_step(model, batch, loss_fn, optimizer):
    """The body of main.py's train() loop, one batch."""
    data, target = batch
    model.train()
    optimizer.zero_grad()
    output = model(data)
    loss = F.nll_loss(output, target)
    loss.backward()
    optimizer.step()
    return loss


(_x_train, _y_train), (_x_test, _y_test) = load_mnist()
train_loader = DataLoader(MNISTDataset(_x_train, _y_train), batch_size=64, shuffle=True)
test_loader = DataLoader(MNISTDataset(_x_test, _y_test), batch_size=1000)
