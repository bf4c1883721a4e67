"""A tiny, self-contained plugin for the core's tests (loaded with ``-p toy_plugin``).

It stands apart from the built-in plugins so the core is tested on its own: a
dataset of blobs, a two-layer network, an encoder, a decoder, a loss and a metric.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kitpose import hookimpl
from kitpose.augmentation import Augmentation
from kitpose.metric import Metric, PerSample


class Blobs:
    """Images of K bright blobs at random sub-pixel positions."""

    provides = ("head_size",)
    joint_names = ("a", "b", "c")
    flip_pairs = ((0, 2),)
    skeleton = ((0, 1), (1, 2))

    def __init__(self, size: int = 32, image_size: int = 16, joints: int = 3, seed: int = 0,
                 split: str = "train") -> None:
        self.size, self.image_size, self.joints = size, image_size, joints
        self.seed = seed + {"train": 0, "val": 1000, "test": 2000}[split]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        s = self.image_size
        kp = rng.uniform(2, s - 3, size=(self.joints, 2)).astype(np.float32)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        d2 = (xx[None] - kp[:, 0, None, None]) ** 2 + (yy[None] - kp[:, 1, None, None]) ** 2
        image = np.exp(-d2 / 2.0).transpose(1, 2, 0).astype(np.float32)
        return {"image": image, "keypoints": kp, "visible": np.ones(self.joints, np.float32),
                "head_size": np.float32(s / 2)}


class TinyNet(nn.Module):
    """Two convolutions from image to heatmaps at stride 1 (``norm``: BatchNorm between them)."""

    outputs = ("heatmaps",)

    def __init__(self, in_channels: int = 3, joints: int = 3, width: int = 8, norm: bool = False) -> None:
        super().__init__()
        middle = [nn.BatchNorm2d(width)] if norm else []
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), *middle, nn.ReLU(),
                                  nn.Conv2d(width, joints, 3, padding=1))

    def forward(self, image: torch.Tensor) -> dict:
        return {"heatmaps": self.body(image)}


class Targets:
    """Gaussian targets at stride 1."""

    outputs = ("heatmaps", "weights")
    flow_methods = ("to_image", "to_heatmap")

    def __init__(self, size: int = 16, sigma: float = 1.0) -> None:
        self.size, self.sigma = size, sigma

    def __call__(self, keypoints: torch.Tensor, visible: torch.Tensor) -> dict:
        grid = torch.arange(self.size, dtype=keypoints.dtype, device=keypoints.device)
        dx = (grid[None, None, None, :] - keypoints[..., 0, None, None]) ** 2
        dy = (grid[None, None, :, None] - keypoints[..., 1, None, None]) ** 2
        return {"heatmaps": torch.exp(-(dx + dy) / (2 * self.sigma**2)), "weights": visible}

    def to_image(self, xy: torch.Tensor) -> torch.Tensor:
        return xy

    def to_heatmap(self, xy: torch.Tensor) -> torch.Tensor:
        return xy

    def flip_back(self, heatmaps: torch.Tensor, flip_pairs) -> torch.Tensor:
        out = heatmaps.flip(-1).clone()
        for a, b in flip_pairs:
            out[:, [a, b]] = out[:, [b, a]]
        return out


class Peak:
    """Arg-max decoder."""

    outputs = ("keypoints", "scores")

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self, heatmaps: torch.Tensor) -> dict:
        b, k, h, w = heatmaps.shape
        scores, index = heatmaps.flatten(2).max(-1)
        xy = torch.stack([index % w, index // w], -1).to(heatmaps.dtype) + self.offset
        return {"keypoints": xy, "scores": scores}


class Shift(Augmentation):
    """A test-time augmentation outside the core: the image and copies rolled by ``pixels``
    along x; each copy's maps are rolled back and all are averaged."""

    outputs = ("heatmaps",)

    def __init__(self, pixels: tuple = (1,)) -> None:
        self.pixels = tuple(int(p) for p in pixels)

    def views(self, batch: dict) -> list:
        return [{}] + [{"image": batch["image"].roll(p, dims=-1)} for p in self.pixels]

    def merge(self, heatmaps: list) -> dict:
        plain, *rolled = heatmaps
        back = [maps.roll(-p, dims=-1) for maps, p in zip(rolled, self.pixels)]
        return {"heatmaps": torch.stack([plain, *back]).mean(0)}


class Mse(nn.Module):
    """Weighted heatmap MSE (``nan_at_call`` makes call N return NaN, for tests)."""

    outputs = ("loss", "mse")

    def __init__(self, nan_at_call: int = 0) -> None:
        super().__init__()
        self.nan_at_call = nan_at_call
        self.calls = 0

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> dict:
        self.calls += 1
        per_joint = ((pred - target) ** 2).mean((-1, -2)) * weights
        loss = per_joint.mean()
        if self.nan_at_call and self.calls == self.nan_at_call:
            loss = loss * float("nan")
        return {"loss": loss, "mse": loss.detach()}


class Distance(Metric):
    """Mean distance and PCK at a fraction of the head size."""

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold

    def update(self, pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor,
               head_size: torch.Tensor) -> None:
        d = (pred - target).norm(dim=-1)
        self.accumulate(distance=d, visible=visible, correct=(d <= self.threshold * head_size[:, None]).float())

    def output_names(self) -> tuple:
        return ("N", "EPE", f"PCK@{self.threshold}")

    def compute(self) -> dict:
        v = self.gathered("visible")
        return {"N": float(v.shape[0]), "EPE": float((self.gathered("distance") * v).sum() / v.sum()),
                f"PCK@{self.threshold}": float((self.gathered("correct") * v).sum() / v.sum())}

    def per_sample(self) -> dict:
        counted = self.gathered("visible") > 0
        return {"EPE": PerSample(self.gathered("distance"), counted),
                f"PCK@{self.threshold}": PerSample(self.gathered("correct"), counted)}


class Boom:
    """A monitor that always fails."""

    def on_start(self, run):
        raise RuntimeError("boom")

    def on_step(self, step, epoch, scalars):
        raise RuntimeError("boom")


class Stopper:
    """A monitor that interrupts (like Ctrl-C) or kills (SIGKILL) its process at a step."""

    def __init__(self, at_step: int, how: str = "interrupt") -> None:
        self.at_step, self.how = at_step, how

    def on_step(self, step, epoch, scalars):
        if step == self.at_step:
            if self.how == "kill":
                import os
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
            raise KeyboardInterrupt


class Lines:
    """Person boxes and predictions as text lines: ``FILE X Y W H SCORE`` in, ``FILE SCORE X Y ...`` out."""

    file_name = "people.txt"
    description = "one line per person"

    def read_boxes(self, path, files, *, min_score=0.0):
        boxes = [[] for _ in files]
        names = [f.name for f in files]
        for line in open(path, encoding="utf-8"):
            name, *numbers = line.split()
            box = np.asarray(numbers, dtype=np.float32)
            if name in names and box[4] >= min_score:
                boxes[names.index(name)].append(box)
        return boxes

    def records(self, people, files):
        return [" ".join([f.name, f"{p.score:.3f}", *(f"{v:.2f}" for v in p.keypoints.reshape(-1))])
                for f, found in zip(files, people) for p in found]

    def dump(self, records):
        return "\n".join(records) + "\n"


class Halfway:
    """A format that only reads boxes: predict refuses it before any work."""

    def read_boxes(self, path, files, *, min_score=0.0):
        return [[] for _ in files]


@hookimpl
def kitpose_register(registry):
    registry.monitor("toy_stopper", Stopper)
    registry.dataset("toy_blobs", Blobs)
    registry.backbone("toy_net", TinyNet)
    registry.encoder("toy_targets", Targets)
    registry.decoder("toy_peak", Peak)
    registry.loss("toy_mse", Mse)
    registry.augmentation("toy_shift", Shift)
    registry.metric("toy_distance", Distance)
    registry.monitor("toy_boom", Boom)
    registry.format("toy_lines", Lines)
    registry.format("toy_halfway", Halfway)
