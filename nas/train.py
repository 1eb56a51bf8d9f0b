"""Brief training and evaluation: a fixed short recipe, mIoU from a confusion matrix.

Deterministic for a seed: the batch of step ``s`` and its augmentation come from a
generator seeded with (seed, s), so a run resumed from its checkpoint follows exactly the
curve of an uninterrupted one. CPU by default; ``device="cuda"`` (or "auto") uses a GPU.

Mixed precision (``amp=True``) is a CUDA-only option: bfloat16 autocast where the GPU has
it, else float16 with a gradient scaler; it is refused on a CPU (never switched on quietly).

Several processes (``torchrun --nproc-per-node N``, an initialised ``torch.distributed``
group): the model is wrapped in DistributedDataParallel and each process takes its share
of the same global batch. Every process draws the whole batch (the generator is shared, so
the augmentation of sample j depends on the samples before it) and keeps its slice; the
loss is the pixel sum of the slice over the pixel count of the whole batch (one
all-reduce), so the averaged gradient is the single-process gradient. BatchNorm: on CUDA
the layers become SyncBatchNorm (statistics of the whole batch, as in one process);
torch's SyncBatchNorm refuses CPU tensors, so on CPU (gloo) each process normalises with
the statistics of its own slice and the curve differs slightly from a single process's
(``tests/nas/test_ddp.py`` states the tolerance).
"""

from __future__ import annotations

import contextlib
import math
import re
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

__all__ = ["Recipe", "augment", "confusion_matrix", "miou", "evaluate", "train", "TrainError", "resolve_device",
           "amp_dtype"]


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


def resolve_device(name: str) -> str:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> the torch
    device to train on.

    Raises:
        TrainError: an unknown name, or CUDA asked for where there is none (or not that many).
    """
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if not re.fullmatch(r"cuda(:\d+)?", name):
        raise TrainError(f"device {name!r}: choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise TrainError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    index = int(name.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise TrainError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return name


_device = resolve_device  # the name nas.validate used first


def amp_dtype(device: str) -> torch.dtype:
    """The autocast type of mixed precision on ``device``: bfloat16 where the GPU has it,
    else float16.

    Raises:
        TrainError: ``device`` is not a CUDA device (mixed precision is never used on a CPU).
    """
    if not device.startswith("cuda"):
        raise TrainError(f"mixed precision (--amp) needs a CUDA device, not {device}; on a CPU training runs in fp32: "
                         "drop --amp, or train with --device cuda")
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _distributed() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def train(model: nn.Module, dataset: Any, recipe: Recipe, checkpoint: str | Path | None = None,
          device: str = "cpu", progress: Callable[..., None] | None = None, *, amp: bool = False) -> list[dict[str, float]]:
    """Train ``model`` on ``dataset`` with ``recipe``; resume from ``checkpoint`` if it exists.

    ``progress``, if given, is called after each step with ``(step, steps, loss=...)`` (by
    the first process only, when several train together). ``amp``: mixed precision (CUDA
    only, see :func:`amp_dtype`). In a ``torch.distributed`` group of N processes, each
    trains on its ``batch_size / N`` share of every batch (see the module docstring); the
    first process writes the checkpoint and every process reads it to resume.

    Returns:
        The loss history, one entry per step: ``{"step", "loss", "lr"}`` (the loss of the
        whole batch, the same in every process).

    Raises:
        TrainError: the checkpoint belongs to another recipe; ``amp`` on a CPU; a batch
            that does not split evenly over the processes.
    """
    device = _device(device)
    dtype = amp_dtype(device) if amp else None
    rank, world = _distributed()
    if recipe.batch_size % world:
        raise TrainError(f"batch size {recipe.batch_size} does not split over {world} processes; "
                         f"use a multiple of {world}")
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
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        if device.startswith("cuda"):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = DistributedDataParallel(model, device_ids=[torch.device(device).index or 0] if device.startswith("cuda")
                                      else None)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    share = recipe.batch_size // world
    model.train()
    for step in range(start, recipe.steps):
        generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        indices = torch.randint(0, len(dataset), (recipe.batch_size,), generator=generator).tolist()
        pairs = [augment(*dataset[i], recipe, generator) for i in indices][rank * share:(rank + 1) * share]
        images = torch.stack([im for im, _ in pairs]).to(device)
        labels = torch.stack([lb for _, lb in pairs]).to(device)
        lr = recipe.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type="cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext():
            logits = net(images)
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        if world == 1:
            loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
            shown = float(loss.detach())
        else:
            pixel_sum = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
            totals = torch.stack([pixel_sum.detach(), (labels != IGNORE_INDEX).sum().to(pixel_sum.dtype)])
            torch.distributed.all_reduce(totals)
            # DDP averages gradients over the processes: scale by world / global count
            loss = pixel_sum * world / totals[1].clamp(min=1)
            shown = float(totals[0] / totals[1].clamp(min=1))
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        history.append({"step": step, "loss": shown, "lr": lr})
        if progress and rank == 0:
            progress(step + 1, recipe.steps, loss=f"{history[-1]['loss']:.3f}")
        if rank == 0 and path is not None and ((step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.steps):
            _save(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                         "history": history, "recipe": recipe.to_dict()})
    if world > 1:
        torch.distributed.barrier()  # the last checkpoint is written before any process goes on
    return history


def _save(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
