"""PyTorch's MNIST example (pytorch/examples, mnist/main.py), as a user adapts it: the same Net, Adadelta and train
loop, the data read from an .npz copy of MNIST instead of torchvision.

One copy for everything that runs it: the mnist-net-* cases (the clean one, and each bug case changing one thing),
tests/plugins/test_mnist_example.py and benchmarks/pipelines/mnist_convnet.py. Data: ../shared/data/mnist.npz (or
$MNIST_NPZ); without the file it falls back to scikit-learn's 8x8 digits upscaled to 28x28.
"""

import os
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

MNIST = pathlib.Path(os.environ.get("MNIST_NPZ", pathlib.Path(__file__).resolve().parents[3] / "shared/data/mnist.npz"))
TRAIN_SAMPLES, TEST_SAMPLES = 10_000, 2_000


def load_mnist(train_samples=TRAIN_SAMPLES, test_samples=TEST_SAMPLES):
    if MNIST.is_file():
        d = np.load(MNIST)
        return ((d["x_train"][:train_samples], d["y_train"][:train_samples]),
                (d["x_test"][:test_samples], d["y_test"][:test_samples]))
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

    def scores(self, x):
        """The example's forward up to its last layer (a bug case returns these without the log_softmax)."""
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
        return self.fc2(x)

    def forward(self, x):
        output = F.log_softmax(self.scores(x), dim=1)
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


def loaders(train, test, num_workers=0):
    """main.py's train and test loaders (batch 64 shuffled, and 1000) over ``(images, labels)`` pairs."""
    return (DataLoader(MNISTDataset(*train), batch_size=64, shuffle=True, num_workers=num_workers),
            DataLoader(MNISTDataset(*test), batch_size=1000))
