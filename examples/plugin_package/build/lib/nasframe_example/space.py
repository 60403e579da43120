"""A chain of convolutions, each choosing its kernel size: the smallest complete weight-sharing space."""

from collections.abc import Sequence

import torch
from torch import nn

from nasframe.spaces import Architecture, CategoricalSearchSpace

KERNELS = ("k1", "k3", "k5")


class KernelChainNetwork(nn.Module):
    """``layers[i]`` is one conv block, or (supernet) a ModuleDict with one block per kernel."""

    def __init__(self, layers: list[nn.Module], width: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.layers = nn.ModuleList(layers)
        self.classifier = nn.Linear(width, num_classes)
        self.feature_dim = width

    def forward_features(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        x = self.stem(x)
        for i, layer in enumerate(self.layers):
            x = x + (layer(x) if arch is None else layer[arch.choices[i]](x))
        return x.mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, arch))


def conv_block(kernel: str, width: int) -> nn.Module:
    size = int(kernel[1:])
    return nn.Sequential(nn.Conv2d(width, width, size, padding=size // 2), nn.BatchNorm2d(width, track_running_stats=False), nn.ReLU())


class KernelChainSpace(CategoricalSearchSpace):
    """``depth`` residual conv blocks; each picks a kernel size from ``KERNELS``."""

    name = "kernel_chain"

    def __init__(self, depth: int = 3, width: int = 16, in_channels: int = 1, num_classes: int = 10, image_size: int = 8) -> None:
        self.depth, self.width, self.in_channels, self.num_classes = depth, width, in_channels, num_classes
        self.input_shape = (in_channels, image_size, image_size)

    def position_choices(self) -> list[Sequence[str]]:
        return [KERNELS] * self.depth

    def _network(self, layers: list[nn.Module]) -> KernelChainNetwork:
        return KernelChainNetwork(layers, self.width, self.in_channels, self.num_classes)

    def build(self, architecture: Architecture) -> KernelChainNetwork:
        return self._network([conv_block(k, self.width) for k in self.validate(architecture).choices])

    def supernet(self) -> KernelChainNetwork:
        return self._network([nn.ModuleDict({k: conv_block(k, self.width) for k in KERNELS}) for _ in range(self.depth)])

    def extract(self, supernet: nn.Module, architecture: Architecture) -> KernelChainNetwork:
        network = self.build(architecture)
        network.stem.load_state_dict(supernet.stem.state_dict())
        network.classifier.load_state_dict(supernet.classifier.state_dict())
        for i, kernel in enumerate(architecture.choices):
            network.layers[i].load_state_dict(supernet.layers[i][kernel].state_dict())
        return network
