"""Brief training and evaluation: a fixed short recipe, mIoU from a confusion matrix.

Deterministic for a seed: the batch of step ``s`` and its augmentation come from a
generator seeded with (seed, s), so a run resumed from its checkpoint follows exactly the
curve of an uninterrupted one. CPU by default; ``device="cuda"`` (or "auto") uses a GPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_space.errors import EvitNasError
from search_space.records import atomic_path

from .data import IGNORE_INDEX

__all__ = ["Recipe", "augment", "confusion_matrix", "miou", "evaluate", "train", "TrainError"]


class TrainError(EvitNasError, ValueError):
    """A training request that cannot run (say, a checkpoint of another recipe)."""


@dataclass(frozen=True)
class Recipe:
    """The short training recipe (AdamW, warm-up then cosine or poly decay, cross-entropy
    with the ignore index, random scale / crop / horizontal flip)."""

    steps: int = 400
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    schedule: str = "cosine"
    crop: tuple[int, int] = (128, 256)
    scale_range: tuple[float, float] = (0.75, 1.5)
    flip: bool = True
    seed: int = 0
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        if any(c <= 0 or c % 32 for c in self.crop):
            raise TrainError(f"Recipe.crop {self.crop}: height and width must be positive multiples of 32")
        if self.steps < 1 or self.batch_size < 1:
            raise TrainError("Recipe.steps and Recipe.batch_size must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (tuples as lists): what a checkpoint records of its recipe."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based)."""
        warm = max(1, int(self.warmup * self.steps))
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = (step - warm) / max(1, self.steps - warm)
        if self.schedule == "poly":
            return self.lr * (1 - progress) ** 0.9
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * progress))
        raise TrainError(f"unknown schedule {self.schedule!r}; choose cosine or poly")


def augment(image: torch.Tensor, label: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale (bilinear image, nearest label), pad (label: ignore), crop, flip."""
    low, high = recipe.scale_range
    scale = low + (high - low) * float(torch.rand((), generator=generator))
    h, w = label.shape
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    label = F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
    ch, cw = recipe.crop
    pad_h, pad_w = max(0, ch - size[0]), max(0, cw - size[1])
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
        label = F.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    top = int(torch.randint(0, image.shape[1] - ch + 1, (), generator=generator))
    left = int(torch.randint(0, image.shape[2] - cw + 1, (), generator=generator))
    image, label = image[:, top:top + ch, left:left + cw], label[top:top + ch, left:left + cw]
    if recipe.flip and bool(torch.rand((), generator=generator) < 0.5):
        image, label = image.flip(-1), label.flip(-1)
    return image, label


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts, rows = truth, columns = prediction; ignored
    pixels (label outside 0..num_classes-1) are left out."""
    keep = (label >= 0) & (label < num_classes)
    index = label[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(matrix: torch.Tensor) -> tuple[float, list[float]]:
    """Mean IoU over the classes present (in truth or prediction), and IoU per class
    (NaN for a class that appears nowhere), in %."""
    matrix = matrix.double()
    tp = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan"))) * 100
    present = iou[~torch.isnan(iou)]
    return (float(present.mean()) if len(present) else float("nan")), [float(v) for v in iou]


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, num_classes: int, device: str = "cpu") -> dict[str, Any]:
    """mIoU, per-class IoU and pixel accuracy over ``dataset``, one image at a time (sizes
    may differ). An image is padded to a multiple of 32 for the network, and the logits are
    resized to the padded size and cropped back to the label."""
    model.eval()
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for index in range(len(dataset)):
        image, label = dataset[index]
        h, w = label.shape
        pad_h, pad_w = -h % 32, -w % 32
        batch = F.pad(image[None], (0, pad_w, 0, pad_h)).to(device)
        logits = F.interpolate(model(batch).float(), size=(h + pad_h, w + pad_w), mode="bilinear", align_corners=False)
        matrix += confusion_matrix(logits[0, :, :h, :w].argmax(0).cpu(), label, num_classes)
    mean, per_class = miou(matrix)
    total = int(matrix.sum())
    return {"miou": mean, "per_class_iou": per_class, "pixel_accuracy": float(matrix.diag().sum()) / total * 100 if total else float("nan")}


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def train(model: nn.Module, dataset: Any, recipe: Recipe, checkpoint: str | Path | None = None,
          device: str = "cpu", progress: Callable[..., None] | None = None) -> list[dict[str, float]]:
    """Train ``model`` on ``dataset`` with ``recipe``; resume from ``checkpoint`` if it exists.

    ``progress``, if given, is called after each step with ``(step, steps, loss=...)``.

    Returns:
        The loss history, one entry per step: ``{"step", "loss", "lr"}``.

    Raises:
        TrainError: the checkpoint belongs to another recipe.
    """
    device = _device(device)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    history: list[dict[str, float]] = []
    start = 0
    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.is_file():
        state = torch.load(path, map_location=device, weights_only=True)
        if state.get("recipe") != recipe.to_dict():
            raise TrainError(f"{path} was made with another recipe; delete it or use another checkpoint path")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), list(state["history"])
    model.train()
    for step in range(start, recipe.steps):
        generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        indices = torch.randint(0, len(dataset), (recipe.batch_size,), generator=generator).tolist()
        pairs = [augment(*dataset[i], recipe, generator) for i in indices]
        images = torch.stack([im for im, _ in pairs]).to(device)
        labels = torch.stack([lb for _, lb in pairs]).to(device)
        lr = recipe.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = F.interpolate(model(images), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step, "loss": float(loss.detach()), "lr": lr})
        if progress:
            progress(step + 1, recipe.steps, loss=f"{history[-1]['loss']:.3f}")
        if path is not None and ((step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.steps):
            _save(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                         "history": history, "recipe": recipe.to_dict()})
    return history


def _save(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
