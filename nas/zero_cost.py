"""Zero-cost proxies of any torch segmentation network.

A zero-cost proxy scores a network at initialisation from one batch (or none), in about
the time of a few training steps, in the hope that the score ranks networks like their
trained accuracy. Every function here takes the same arguments, ``(model, images, labels)``:

- ``model``: an ``nn.Module`` mapping images (N, 3, H, W) to logits (N, C, h, w), at any
  stride: logits smaller than the labels are resized bilinearly to them for the loss (as
  segmentation training does); a tuple/list output counts by its first element, a dict by
  ``"out"``;
- ``images``: a float batch (N, 3, H, W), normalised as for training;
- ``labels``: int64 class ids (N, H, W), ``ignore_index`` where a pixel has no class;
  only the loss-based proxies use them (the others accept None);

and returns one float; higher means "predicted more accurate" for every proxy. The model
is never modified: each proxy works on a deep copy (batch-norm statistics, modes and
weights of the caller's model stay as they were). Runs on the model's device and dtype.

The proxies, as defined by their papers and by the common benchmark implementation of
Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021):

- ``naswot``: Mellor et al., "Neural Architecture Search without Training" (ICML 2021).
  log-determinant of the kernel of binary activation codes (1 where the input of a
  ReLU-like unit is positive), K = C C^T + (1 - C)(1 - C)^T: the number of units on which
  two images agree. Batch norms in training mode.
- ``synflow``: Tanaka et al., "Pruning neural networks without any data by iteratively
  conserving synaptic flow" (NeurIPS 2020); as a NAS proxy in Abdelfattah et al. With every
  parameter replaced by its absolute value, float64, batch norms in inference mode and an
  all-ones input of one image of the batch's size: sum over parameters of
  |theta * d(sum of outputs)/d theta|, reported as log10 (the raw value spans hundreds of
  orders of magnitude). Data-free: only the images' shape is used.
- ``snip``: Lee et al., "SNIP: Single-shot Network Pruning based on Connection
  Sensitivity" (ICLR 2019): sum over conv/linear weights of |w * dL/dw| for the
  cross-entropy loss L of the batch.
- ``grad_norm``: Abdelfattah et al. (ICLR 2021): sum over conv/linear layers of the
  Euclidean norm of dL/dw.
- ``fisher``: Theis et al., "Faster gaze prediction with dense networks and Fisher
  pruning" (2018), as used by Turner et al., "BlockSwap" (ICLR 2020): for every channel of
  every conv/linear output activation a, 0.5 * mean over images of (sum over positions of
  a * dL/da)^2, summed.
- ``jacov``: Mellor et al., "Neural Architecture Search without Training" (arXiv
  2006.04647v1, 2020): the correlation matrix R of the per-image input Jacobians of the
  summed output; score -sum_i [log(v_i + k) + 1 / (v_i + k)] over R's eigenvalues v_i,
  k = 1e-5 (maximal, 0 up to the constant, when the Jacobians are uncorrelated).
- ``zen``: Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition"
  (ICCV 2021): with conv/linear weights redrawn from N(0, 1) and Gaussian inputs x,
  log E ||f(x) - f(x + 0.01 e)||_1 + sum over batch norms of log sqrt(mean batch variance
  of its input), batch norms in training mode. Zen-NAS takes f before global pooling of a
  classifier; for a segmentation network f is its output (the logits). Data-free: only the
  images' shape is used, the Gaussian draws are seeded.
- ``zico``: Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
  Gradients" (ICLR 2023): the batch is split into ``splits`` parts, each gives a gradient;
  for each conv/linear layer log of sum over weights of mean |g| / std(g) across the parts
  (weights whose gradient does not vary are left out), summed over layers.

:data:`ZERO_COST_PROXIES` maps the names to the functions; :func:`compute_proxies` runs
several, sharing one forward pass between naswot and jacov and one backward pass between
snip, grad_norm and fisher (same values, fewer passes), and times each pass.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DEFAULT_IGNORE_INDEX", "RELU_LIKE", "ZERO_COST_PROXIES", "compute_proxies", "fisher", "grad_norm", "jacov", "naswot",
           "segmentation_loss", "snip", "synflow", "zen", "zico"]

DEFAULT_IGNORE_INDEX = 255
#: the units whose input sign makes NASWOT's binary code
RELU_LIKE: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardswish, nn.GELU, nn.SiLU)
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _logits(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["out"]
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"the model returned {type(output).__name__}; expected a tensor, a tuple/list or a dict with 'out'")


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = DEFAULT_IGNORE_INDEX) -> torch.Tensor:
    """Pixel-wise cross-entropy, the logits resized bilinearly to the labels' size if needed.

    Raises:
        ValueError: labels that are not (N, H, W) of the logits' batch size.
    """
    if labels.dim() != 3 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be (N, H, W) with N = {logits.shape[0]}, got {tuple(labels.shape)}")
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=ignore_index)


def _need_labels(name: str, labels: torch.Tensor | None) -> torch.Tensor:
    if labels is None:
        raise ValueError(f"{name} needs labels (N, H, W); only naswot, synflow, jacov and zen run without")
    return labels


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _WEIGHTED)]


def _activation_pass(model: nn.Module, images: torch.Tensor, activations: Sequence[type[nn.Module]],
                     want: Sequence[str]) -> dict[str, float]:
    """NASWOT and/or jacov from one training-mode forward pass of a copy of ``model`` (the
    same forward serves both; the input gradient is only taken when jacov is wanted)."""
    model = copy.deepcopy(model).train()  # batch statistics, as at the start of training
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)

    def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        nonlocal kernel
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel = kernel + codes @ codes.T + (1 - codes) @ (1 - codes).T

    hooks = []
    if "naswot" in want:
        hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, tuple(activations))]
    results = {}
    try:
        if "jacov" in want:
            x = images.detach().clone().requires_grad_(True)
            _logits(model(x)).sum().backward()
            results["jacov"] = _jacobian_score(x.grad.detach().reshape(n, -1))
        else:
            with torch.no_grad():
                model(images)
    finally:
        for hook in hooks:
            hook.remove()
    if "naswot" in want:
        sign, logdet = torch.linalg.slogdet(kernel)
        results["naswot"] = float(logdet) if sign > 0 else float("-inf")
    return results


def _jacobian_score(jacobians: torch.Tensor) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobians.double().cpu().numpy())
    if not np.all(np.isfinite(corr)):
        return float("nan")
    eigenvalues = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(eigenvalues + k) + 1.0 / (eigenvalues + k)))


def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
           activations: Sequence[type[nn.Module]] = RELU_LIKE) -> float:
    """NASWOT score (Mellor et al., ICML 2021): log|K| of the binary activation-code kernel.

    Args:
        activations: module types whose input signs form the code (every call of such a
            module counts, a module used twice counts twice).

    Returns:
        the log-determinant (natural log); -inf when K is singular (two images with
        identical codes everywhere).
    """
    return _activation_pass(model, images, activations, ("naswot",))["naswot"]


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """log10 SynFlow score (Tanaka et al., NeurIPS 2020; Abdelfattah et al., ICLR 2021).

    Only ``images.shape[1:]`` is used (the input is all ones, one image). Returns -inf when
    every path is zero, +inf when the float64 sum overflows.
    """
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for param in model.parameters():
            param.abs_()
    model.zero_grad(set_to_none=True)
    _logits(model(torch.ones(1, *images.shape[1:], dtype=torch.float64, device=images.device))).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    if total > 0:
        return math.log10(total) if math.isfinite(total) else float("inf")
    return float("-inf")


def _gradient_pass(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> dict[str, float]:
    """SNIP, grad_norm and fisher from one backward pass of the batch's loss through a
    training-mode copy of ``model`` (the fisher hooks read activations and their gradients,
    they change no gradient, so each value is the same as from a pass of its own)."""
    model = copy.deepcopy(model).train()
    model.zero_grad(set_to_none=True)
    layers = _weighted_layers(model)
    fisher_total = 0.0

    def on_output(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not output.requires_grad:
            return
        activation = output.detach()

        def on_grad(grad: torch.Tensor) -> None:
            nonlocal fisher_total
            per_image = activation * grad
            if per_image.dim() > 2:  # sum over positions: one number per image and channel
                per_image = per_image.sum(dim=tuple(range(2, per_image.dim())))
            fisher_total += float(per_image.pow(2).mean(0).mul(0.5).sum())

        output.register_hook(on_grad)

    hooks = [m.register_forward_hook(on_output) for m in layers]
    try:
        segmentation_loss(_logits(model(images)), labels, ignore_index).backward()
    finally:
        for hook in hooks:
            hook.remove()
    with_grad = [m for m in layers if m.weight.grad is not None]
    return {"snip": float(sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in with_grad)),
            "grad_norm": float(sum(float(m.weight.grad.norm()) for m in with_grad)),
            "fisher": fisher_total}


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
         ignore_index: int = DEFAULT_IGNORE_INDEX) -> float:
    """SNIP connection sensitivity (Lee et al., ICLR 2019): sum |w * dL/dw| over conv/linear weights."""
    return _gradient_pass(model, images, _need_labels("snip", labels), ignore_index)["snip"]


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
              ignore_index: int = DEFAULT_IGNORE_INDEX) -> float:
    """Gradient norm (Abdelfattah et al., ICLR 2021): sum over conv/linear layers of ||dL/dw||_2."""
    return _gradient_pass(model, images, _need_labels("grad_norm", labels), ignore_index)["grad_norm"]


def fisher(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
           ignore_index: int = DEFAULT_IGNORE_INDEX) -> float:
    """Fisher information of the channels (Theis et al. 2018; Turner et al., ICLR 2020),
    summed over the output channels of every conv/linear layer."""
    return _gradient_pass(model, images, _need_labels("fisher", labels), ignore_index)["fisher"]


def jacov(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """Jacobian covariance (Mellor et al., arXiv 2006.04647v1): how uncorrelated the
    per-image input Jacobians of the summed output are (batch norms in training mode).
    Returns NaN when a Jacobian is constant (zero variance).

    Raises:
        ValueError: a batch of fewer than two images.
    """
    if images.shape[0] < 2:
        raise ValueError("jacov needs a batch of at least two images")
    return _activation_pass(model, images, RELU_LIKE, ("jacov",))["jacov"]


def zen(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
        alpha: float = 0.01, seed: int = 0) -> float:
    """Zen-score (Lin et al., ICCV 2021) of the model's output; see the module docstring.

    Only ``images.shape`` is used; ``seed`` fixes the weights' and inputs' Gaussian draws.
    """
    model = copy.deepcopy(model).train()
    generator = torch.Generator(device=images.device).manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _WEIGHTED):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator, device=images.device,
                                           dtype=m.weight.dtype))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()
    x = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    log_scales: list[float] = []

    def on_input(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        dims = [d for d in range(inputs[0].dim()) if d != 1]
        variance = inputs[0].detach().double().var(dim=dims, unbiased=False)
        log_scales.append(0.5 * math.log(float(variance.mean())))

    hooks = [m.register_forward_pre_hook(on_input) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        with torch.no_grad():
            out = _logits(model(x)).double()
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        mixed = _logits(model(x + alpha * noise)).double()
    difference = float((out - mixed).abs().flatten(1).sum(1).mean())
    if difference <= 0:
        return float("-inf")
    return math.log(difference) + sum(log_scales)


def zico(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *, splits: int = 2,
         ignore_index: int = DEFAULT_IGNORE_INDEX) -> float:
    """ZiCo (Li et al., ICLR 2023): inverse coefficient of variation of the weight gradients
    across ``splits`` parts of the batch, log-summed per conv/linear layer.

    Raises:
        ValueError: fewer images than ``splits`` or ``splits`` < 2.
    """
    labels = _need_labels("zico", labels)
    if splits < 2 or images.shape[0] < splits:
        raise ValueError(f"zico needs splits >= 2 and at least that many images, got {splits} and {images.shape[0]}")
    model = copy.deepcopy(model).train()
    layers = _weighted_layers(model)
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for part_images, part_labels in zip(images.tensor_split(splits), labels.tensor_split(splits)):
        model.zero_grad(set_to_none=True)
        segmentation_loss(_logits(model(part_images)), part_labels, ignore_index).backward()
        for store, layer in zip(grads, layers):
            if layer.weight.grad is not None:
                store.append(layer.weight.grad.detach().flatten().double().clone())
    score = 0.0
    for store in grads:
        if len(store) < splits:
            continue
        g = torch.stack(store)
        std = (g - g.mean(dim=0)).square().mean(dim=0).sqrt()  # population std; Tensor.std is slow on CPU here
        varying = std > 0
        ratio = float((g.abs().mean(dim=0)[varying] / std[varying]).sum())
        if ratio > 0:
            score += math.log(ratio)
    return score


#: every proxy by name, in a fixed order
ZERO_COST_PROXIES: dict[str, Callable[..., float]] = {
    "naswot": naswot, "synflow": synflow, "snip": snip, "grad_norm": grad_norm, "fisher": fisher,
    "jacov": jacov, "zen": zen, "zico": zico,
}

#: proxies that share one pass through the network in :func:`compute_proxies`
_SHARED_PASSES = (("naswot", "jacov"), ("synflow",), ("snip", "grad_norm", "fisher"), ("zen",), ("zico",))


def compute_proxies(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
                    names: Iterable[str] | None = None, *, seed: int = 0,
                    ignore_index: int = DEFAULT_IGNORE_INDEX) -> tuple[dict[str, float], dict[str, float]]:
    """Several proxies of one model (all by default), sharing passes where they can.

    naswot and jacov share one forward pass; snip, grad_norm and fisher one backward pass;
    the values are those of the single functions (a test checks it). The torch seed is set
    to ``seed`` before each pass, so a value does not depend on which ran before.

    Returns:
        ``(values, seconds)``: ``values[name]`` the score; ``seconds[pass]`` the wall-clock
        seconds of each pass, keyed by its proxies joined with ``+`` (``"naswot+jacov"``).

    Raises:
        ValueError: an unknown name (the message lists the known ones), or labels missing
            for a proxy that needs them.
    """
    names = list(ZERO_COST_PROXIES) if names is None else list(names)
    unknown = [n for n in names if n not in ZERO_COST_PROXIES]
    if unknown:
        raise ValueError(f"unknown zero-cost proxies {unknown}; choose from {list(ZERO_COST_PROXIES)}")
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for group in _SHARED_PASSES:
        wanted = tuple(n for n in group if n in names)
        if not wanted:
            continue
        torch.manual_seed(seed)
        start = time.perf_counter()
        if group == ("naswot", "jacov"):
            if "jacov" in wanted and images.shape[0] < 2:
                raise ValueError("jacov needs a batch of at least two images")
            values.update(_activation_pass(model, images, RELU_LIKE, wanted))
        elif group == ("snip", "grad_norm", "fisher"):
            passed = _gradient_pass(model, images, _need_labels("+".join(wanted), labels), ignore_index)
            values.update({n: passed[n] for n in wanted})
        elif group == ("zen",):
            values["zen"] = zen(model, images, labels, seed=seed)
        elif group == ("zico",):
            values["zico"] = zico(model, images, labels, ignore_index=ignore_index)
        else:
            values[group[0]] = ZERO_COST_PROXIES[group[0]](model, images, labels)
        seconds["+".join(wanted)] = time.perf_counter() - start
    return {n: values[n] for n in names}, seconds
