"""Clean: PyTorch's VAE example (pytorch/examples, vae/main.py) as a user adapts it: the same VAE (784-400-20,
forward returning (reconstruction, mu, logvar)) and loss_function (summed BCE plus the KL term), Adam at 1e-3, batch
128, on 10,000 + 2,000 real MNIST digits whose targets are the flattened images themselves."""

import pathlib
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from mnistkit import load_mnist  # noqa: E402


class Digits(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = torch.from_numpy(self.images[index]).float().div(255).unsqueeze(0)  # transforms.ToTensor()
        return image, image.view(-1)


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(out, x):
    recon_x, mu, logvar = out
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


(_x_train, _), (_x_test, _) = load_mnist()
train_loader = DataLoader(Digits(_x_train), batch_size=128, shuffle=True)
test_loader = DataLoader(Digits(_x_test), batch_size=128)
