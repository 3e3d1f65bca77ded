"""Data-efficient GAN training: differentiable augmentation (DiffAugment) and ADA's adaptive probability.

Both papers augment *every* image the discriminator sees, real and fake, in the D step and in the G step, with
operations that are differentiable w.r.t. the image so that the generator's gradient flows through them:

- DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): ``color``
  (brightness, saturation, contrast), ``translation`` (1/8 of the size, zero padding) and ``cutout`` (a square of
  half the size), applied to every sample (``p = 1``). Reference: mit-han-lab/data-efficient-gans
  ``DiffAugment_pytorch.py`` (commit 0b63395).
- ADA (Karras et al. 2020, "Training GANs with Limited Data"): each operation is applied to each sample
  independently with probability ``p``, and ``p`` follows the overfitting heuristic ``r_t = E[sign(D(x_real))]``
  (:class:`AdaptiveAugmentProbability`). Reference: NVlabs/stylegan2-ada-pytorch ``training/augment.py`` and
  ``training/training_loop.py`` (commit d72cc7d). The operations here are DiffAugment's, not ADA's 18-op pipeline.

The random parameters are drawn once (:func:`sample_params`, optionally from a ``torch.Generator``) into an
:class:`AugmentParams` and applied to any number of tensors of the same shape (:func:`apply_params`), so an image and
its gradient-penalty/R1 input can be augmented identically, while real and fake batches get independent draws.
For fixed parameters the whole augmentation is an affine map of the image (each op is), so augmenting an
interpolate ``α·a + (1-α)·b`` equals interpolating the augmented ``a`` and ``b``.

Everything runs batched on the input's device (no per-image Python loop, no host read-back), keeps the input's dtype
(bf16 under autocast stays bf16), and works for any channel count and image size. Pure torch: no Lightning, no
torch.distributed, no global state (the global RNG is used only when no generator is given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError

#: the policy names a config may list, in the order DiffAugment defines them (DiffAugment_pytorch.py:72-76), and the
#: elementary operations each one runs; every elementary operation gets its own per-sample coin flip (ADA style).
POLICIES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """Parses a config string such as ``"color,translation,cutout"`` into a tuple of policy names.

    The order given is the order applied. ``None``, ``""`` and an empty sequence mean augmentation off (``()``).
    An already parsed tuple passes through unchanged, so callers may parse once at init and pass the tuple on.

    Raises:
        ConfigError: one line naming the bad entry and the valid names (unknown, empty or repeated entry).
    """
    if policy is None:
        return ()
    if isinstance(policy, str):
        if not policy.strip():
            return ()
        names = [name.strip() for name in policy.split(",")]
    else:
        names = [str(name).strip() for name in policy]
    valid = ", ".join(POLICIES)
    for name in names:
        if name not in POLICIES:
            what = "an empty entry" if not name else f"unknown augmentation {name!r}"
            raise ConfigError(f"augment policy {policy!r} has {what}: use a comma-separated list of {valid} "
                              f"(e.g. 'color,translation,cutout'), or an empty string / null for none")
    if len(set(names)) != len(names):
        raise ConfigError(f"augment policy {policy!r} repeats an augmentation: list each of {valid} at most once")
    return tuple(names)


def _check_p(p: float | Tensor) -> None:
    if isinstance(p, Tensor):  # a device tensor is not read back (that would sync); the caller owns its range
        return
    if not 0.0 <= float(p) <= 1.0:
        raise ConfigError(f"augmentation probability p must be in [0, 1], got {p}")


@dataclass(frozen=True)
class AugmentParams:
    """Random parameters of one augmentation draw for a batch, applicable to several tensors of one shape.

    Each value is the raw draw, whether or not the operation is applied to that sample; ``applied`` holds the
    per-sample coin flips (``True`` = transform this sample). Fields of operations outside the policy are None.
    All tensors live on the device of the tensor the parameters were drawn for; values are fp32 (int64 for pixel
    offsets) and are cast to the dtype of each tensor they are applied to.

    Attributes:
        policy: the policy names, in the order applied.
        size: ``(H, W)`` of the images the parameters were drawn for.
        brightness: (N,) additive offset in [-0.5, 0.5)  (DiffAugment_pytorch.py:23).
        saturation: (N,) factor in [0, 2) on the deviation from the per-pixel channel mean (:29).
        contrast: (N,) factor in [0.5, 1.5) on the deviation from the per-image mean (:35).
        translation: (N, 2) integer shift ``(dy, dx)`` in [-round(H/8), round(H/8)] × [-round(W/8), round(W/8)]:
            ``out[..., i, j] = x[..., i - dy, j - dx]`` (content moves down/right), zero where that leaves the image.
        cutout: (N, 2) top-left corner ``(top, left)`` of the zeroed square of side ``round(H/2)`` × ``round(W/2)``;
            it may start above/left of the image or end past it, and is clipped (as in DiffAugment_pytorch.py:57-65).
        cutout_size: ``(h, w)`` side lengths of the cutout square, ``(0, 0)`` when cutout is not in the policy.
        applied: elementary op name -> (N,) bool.
    """

    policy: tuple[str, ...]
    size: tuple[int, int]
    brightness: Tensor | None = None
    saturation: Tensor | None = None
    contrast: Tensor | None = None
    translation: Tensor | None = None
    cutout: Tensor | None = None
    cutout_size: tuple[int, int] = (0, 0)
    applied: dict[str, Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        flags = next(iter(self.applied.values()), None)
        return 0 if flags is None else flags.shape[0]

    def apply(self, x: Tensor) -> Tensor:
        """Same as :func:`apply_params` ``(x, self)``: handy for ``critic = lambda x: D(params.apply(x))``."""
        return apply_params(x, self)


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """(N,) fp32 U[0, 1), from ``generator`` on its own device (then moved) or from the global RNG on ``device``."""
    if generator is None:
        return torch.rand(n, device=device)
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _randint(low: int, high: int, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> Tensor:
    """int64 uniform in [low, high), like :func:`_uniform`."""
    if generator is None:
        return torch.randint(low, high, shape, device=device)
    return torch.randint(low, high, shape, generator=generator, device=generator.device).to(device)


def sample_params(like: Tensor, policy: str | Sequence[str] | None, p: float | Tensor = 1.0,
                  generator: torch.Generator | None = None, *, translation_ratio: float = 0.125,
                  cutout_ratio: float = 0.5) -> AugmentParams:
    """Draws one set of augmentation parameters for a batch shaped like ``like`` (N, C, H, W).

    The draws happen in policy order, for each elementary op first its value(s) then its per-sample coin flip
    ``U[0, 1) < p`` (stylegan2-ada training/augment.py:313-314), so the stream of random numbers consumed does not
    depend on ``p``: with ``p = 1`` every sample is transformed (DiffAugment), with ``p = 0`` none is.

    Args:
        like: a tensor (N, C, H, W) giving the batch size, image size and device; its values are not read.
        policy: policy names or config string (see :func:`parse_policy`).
        p: per-sample, per-op probability of applying each transform, a float in [0, 1] or a 0-dim tensor on
            ``like``'s device (e.g. ADA's p kept on the device; not range-checked, to avoid a sync).
        generator: optional ``torch.Generator`` for reproducible draws; drawing happens on its device and the values
            are moved to ``like``'s device (use a generator on that device to avoid the copy).
        translation_ratio: largest shift as a fraction of the size (1/8, DiffAugment_pytorch.py:39).
        cutout_ratio: cutout side as a fraction of the size (1/2, DiffAugment_pytorch.py:55).

    Returns:
        The parameters, to apply with :func:`apply_params` / :meth:`AugmentParams.apply`.

    Raises:
        ConfigError: unknown policy or ``p`` outside [0, 1].
        ValueError: ``like`` is not a 4-D batch.
    """
    names = parse_policy(policy)
    _check_p(p)
    if like.ndim != 4:
        raise ValueError(f"augmentation needs an image batch (N, C, H, W), got a tensor of shape {tuple(like.shape)}")
    n, (h, w), device = like.shape[0], like.shape[-2:], like.device
    values: dict[str, object] = {}
    applied: dict[str, Tensor] = {}

    def coin() -> Tensor:
        return _uniform(n, generator, device) < p  # (N,) bool: transform this sample?

    for name in names:
        if name == "color":
            values["brightness"] = _uniform(n, generator, device) - 0.5  # U[-0.5, 0.5)   (DiffAugment_pytorch.py:23)
            applied["brightness"] = coin()
            values["saturation"] = _uniform(n, generator, device) * 2  # U[0, 2)          (:29)
            applied["saturation"] = coin()
            values["contrast"] = _uniform(n, generator, device) + 0.5  # U[0.5, 1.5)      (:35)
            applied["contrast"] = coin()
        elif name == "translation":
            sy, sx = int(h * translation_ratio + 0.5), int(w * translation_ratio + 0.5)  # (:40)
            dy = _randint(-sy, sy + 1, (n,), generator, device)  # (:41-42) both ends included
            dx = _randint(-sx, sx + 1, (n,), generator, device)
            values["translation"] = torch.stack((dy, dx), dim=1)  # (N, 2)
            applied["translation"] = coin()
        elif name == "cutout":
            ch, cw = int(h * cutout_ratio + 0.5), int(w * cutout_ratio + 0.5)  # (:56)
            # centre in [0, H + (1 - ch % 2)), top-left = centre - ch // 2   (:57-58, :64-65)
            top = _randint(0, h + (1 - ch % 2), (n,), generator, device) - ch // 2
            left = _randint(0, w + (1 - cw % 2), (n,), generator, device) - cw // 2
            values["cutout"] = torch.stack((top, left), dim=1)  # (N, 2)
            values["cutout_size"] = (ch, cw)
            applied["cutout"] = coin()
    return AugmentParams(policy=names, size=(int(h), int(w)), applied=applied, **values)  # type: ignore[arg-type]


def _per_sample(values: Tensor, applied: Tensor, identity: float, x: Tensor) -> Tensor:
    """(N,) values, replaced by ``identity`` where not applied, as (N, 1, 1, 1) in x's dtype on x's device."""
    values = torch.where(applied, values, torch.full_like(values, identity))
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _translate(x: Tensor, shift: Tensor) -> Tensor:
    """``out[n, :, i, j] = x[n, :, i - dy_n, j - dx_n]``, zero outside the image; two batched gathers."""
    n, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))  # (N, C, H+2, W+2): a ring of zeros   (DiffAugment_pytorch.py:50)
    dy, dx = shift[:, 0].view(n, 1), shift[:, 1].view(n, 1)
    # source row/column in padded coordinates; anything off the image lands on the zero ring (0 or H+1)   (:48-49)
    rows = (torch.arange(h, device=x.device).view(1, h) - dy + 1).clamp(0, h + 1)  # (N, H)
    cols = (torch.arange(w, device=x.device).view(1, w) - dx + 1).clamp(0, w + 1)  # (N, W)
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2))  # (N, C, H, W+2)
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))  # (N, C, H, W)


def _cutout_mask(corner: Tensor, size: tuple[int, int], applied: Tensor, x: Tensor) -> Tensor:
    """(N, 1, H, W) mask in x's dtype: 0 inside each applied sample's square, 1 elsewhere (built by comparisons, as
    stylegan2-ada training/augment.py:422-426, instead of DiffAugment's scatter)."""
    n, _, h, w = x.shape
    top, left = corner[:, 0].view(n, 1, 1, 1), corner[:, 1].view(n, 1, 1, 1)
    i = torch.arange(h, device=x.device).view(1, 1, h, 1)
    j = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (i >= top) & (i < top + size[0]) & (j >= left) & (j < left + size[1])  # (N, 1, H, W)
    return (~(inside & applied.view(n, 1, 1, 1))).to(x.dtype)


def apply_params(x: Tensor, params: AugmentParams) -> Tensor:
    """Applies drawn parameters to a batch; differentiable w.r.t. ``x`` (also twice: R1/GP through it works).

    A sample whose coin flip says "not applied" comes out bit-identical for that op. Colour ops are written as
    ``x + (x - mean)·(factor - 1)``, equal to DiffAugment's ``(x - mean)·factor + mean`` up to rounding and exactly
    ``x`` for factor 1. Saturation is a no-op on one channel (the channel mean is the pixel itself).

    Args:
        x: (N, C, H, W) with the N and (H, W) the parameters were drawn for; any dtype, any device.
        params: from :func:`sample_params`.

    Returns:
        (N, C, H, W), same dtype and device as ``x``.

    Raises:
        ValueError: ``x`` does not match the batch size or image size of ``params``.
    """
    if not params.policy:
        return x
    if x.ndim != 4 or x.shape[0] != params.batch_size or tuple(x.shape[-2:]) != params.size:
        h, w = params.size
        raise ValueError(f"augmentation parameters were drawn for {params.batch_size} images of {h}x{w}, "
                         f"got a tensor of shape {tuple(x.shape)}: draw them with sample_params(x, ...)")
    dtype = x.dtype
    for name in params.policy:
        if name == "color":
            b = _per_sample(params.brightness, params.applied["brightness"], 0.0, x)
            x = x + b  # x + U[-0.5, 0.5)                                          (DiffAugment_pytorch.py:22-24)
            s = _per_sample(params.saturation, params.applied["saturation"], 1.0, x)
            mean = x.mean(dim=1, keepdim=True).to(dtype)  # (N, 1, H, W) per-pixel mean over channels
            x = x + (x - mean) * (s - 1)  # (x - m)·s + m                          (:27-30)
            c = _per_sample(params.contrast, params.applied["contrast"], 1.0, x)
            mean = x.mean(dim=(1, 2, 3), keepdim=True).to(dtype)  # (N, 1, 1, 1) per-image mean
            x = x + (x - mean) * (c - 1)  # (x - m)·c + m                          (:33-36)
        elif name == "translation":
            shift = torch.where(params.applied["translation"].view(-1, 1), params.translation,
                                torch.zeros_like(params.translation))
            x = _translate(x, shift.to(x.device))  # (N, C, H, W)                   (:39-52)
        elif name == "cutout":
            x = x * _cutout_mask(params.cutout.to(x.device), params.cutout_size,
                                 params.applied["cutout"].to(x.device), x)  # (:55-69)
    return x.to(dtype)  # guard: an autocast-promoted reduction must not change the output dtype


def augment(x: Tensor, policy: str | Sequence[str] | None, p: float | Tensor = 1.0,
            generator: torch.Generator | None = None, params: AugmentParams | None = None) -> Tensor:
    """Augments a batch: draws fresh parameters (or uses ``params``) and applies them.

    ``augment(x, "color,translation,cutout")`` is DiffAugment (``DiffAugment_pytorch.py:9-19``);
    ``augment(x, policy, p=ada.p)`` is the same ops applied per sample with probability ``p`` (ADA style).

    Args:
        x: (N, C, H, W).
        policy: policy names or config string; empty/None returns ``x`` itself.
        p: probability in [0, 1] of applying each op to each sample.
        generator: optional ``torch.Generator`` for reproducible draws.
        params: parameters drawn earlier with :func:`sample_params`; then ``p`` and ``generator`` are not used, and
            ``policy`` must match the policy they were drawn for.

    Returns:
        (N, C, H, W), same dtype and device as ``x``.
    """
    names = parse_policy(policy)
    if params is None:
        params = sample_params(x, names, p, generator)
    elif params.policy != names:
        raise ValueError(f"augment(policy={names}) was given parameters drawn for policy {params.policy}")
    return apply_params(x, params)


class AdaptiveAugmentProbability(nn.Module):
    """ADA's adaptive augmentation probability (Karras et al. 2020, Sec. 3 "Adaptive discriminator augmentation").

    Every D step, :meth:`accumulate` adds ``sign(D(x_real))`` of the real logits to a device tensor (no read-back).
    Every ``interval`` D steps, :meth:`step` reduces that tensor across processes through ``reduce_fn`` (if given),
    reads it back once, and adjusts

        r_t = E[sign(D(x_real))]                                        (stylegan2-ada training/loss.py:114)
        p  <- clamp(p + sign(r_t - target) · n_images / speed_images, 0, 1)   (training_loop.py:311-315)

    where ``n_images`` is the number of real images accumulated since the last adjustment over all processes, i.e.
    ``batch_size · interval`` with the global batch size, as in training_loop.py:314 (counting them, as StudioGAN's
    src/worker.py:481 does, keeps it right for a last partial batch and for DDP). The clamp to [0, 1] follows
    StudioGAN (worker.py:482); stylegan2-ada only clamps at 0 because its p multiplies per-op probabilities.
    r_t averages over every logit element (PatchGAN maps too); ``n_images`` counts images (the logits' first dim).
    ``sign(0) = 0``: when r_t equals the target exactly, p stays.

    The state (``p``, ``r_t``, the step count and the partial accumulator) is saved as this module's extra state, so
    ``state_dict``/``load_state_dict`` (and a Lightning checkpoint of a module holding this one) resume exactly,
    mid-interval included. It is deliberately not a buffer: DDP broadcasts buffers from rank 0 on every forward,
    which would overwrite the other ranks' partial sums.

    Args:
        p: initial probability (0 in ADA, training_loop.py:108).
        target: the r_t the heuristic holds (0.6, stylegan2-ada train.py:233); in [0, 1].
        interval: D steps between adjustments (4, training_loop.py:110).
        speed_images: images for p to move by 1 (500k: ``ada_kimg = 500``, training_loop.py:111).
    """

    def __init__(self, p: float = 0.0, target: float = 0.6, interval: int = 4, speed_images: int = 500_000) -> None:
        super().__init__()
        _check_p(p)
        if not 0.0 <= target <= 1.0:
            raise ConfigError(f"ADA target must be in [0, 1] (the r_t = E[sign(D(real))] to hold; 0.6 in the paper), "
                              f"got {target}")
        if int(interval) != interval or interval < 1:
            raise ConfigError(f"ADA interval must be a whole number of D steps >= 1 (4 in the paper), got {interval}")
        if not speed_images > 0:
            raise ConfigError(f"ADA speed_images must be > 0 (images for p to move by 1; 500000 in the paper), "
                              f"got {speed_images}")
        self.target, self.interval, self.speed_images = float(target), int(interval), speed_images
        self._p: float = float(p)
        self._r_t: float | None = None
        self._steps = 0  # D steps since the start (adjustments happen when it is a multiple of interval)
        self._acc: Tensor | None = None  # [Σ sign(D(real)), #logit elements, #images] since the last adjustment

    @property
    def p(self) -> float:
        """The current probability, a Python float (no device read-back): pass it to :func:`augment` / log it."""
        return self._p

    @property
    def r_t(self) -> float | None:
        """The overfitting heuristic of the last adjustment, None before the first one."""
        return self._r_t

    @property
    def steps(self) -> int:
        """D steps counted by :meth:`step` so far."""
        return self._steps

    @property
    def accumulator(self) -> Tensor | None:
        """The fp32 device tensor ``[Σ sign(D(real)), #logit elements, #images]`` since the last adjustment (None
        before the first :meth:`accumulate`); what ``reduce_fn`` receives and must sum across processes."""
        return self._acc

    @torch.no_grad()
    def accumulate(self, real_logits: Tensor) -> None:
        """Adds this batch's ``sign(D(x_real))`` on the logits' device; never reads back to the host.

        Args:
            real_logits: D's logits on (augmented) real images, (N,) or (N, ...) (detached here).
        """
        logits = real_logits.detach()
        if self._acc is None:
            self._acc = torch.zeros(3, dtype=torch.float32, device=logits.device)
        elif self._acc.device != logits.device:  # restored from a checkpoint on another device
            self._acc = self._acc.to(logits.device)
        self._acc[0].add_(logits.sign().sum(dtype=torch.float32))
        self._acc[1].add_(logits.numel())  # Python ints: no host read-back
        self._acc[2].add_(logits.shape[0] if logits.ndim else 1)

    def step(self, reduce_fn: Callable[[Tensor], Tensor] | None = None) -> bool:
        """Counts one D step; at every ``interval``-th, reduces, reads back and adjusts ``p``.

        Call it on every process at the same steps (it runs a collective through ``reduce_fn``), never from
        rank-zero-only code.

        Args:
            reduce_fn: sums a tensor across processes and returns the result, e.g.
                ``lambda t: trainer.strategy.reduce(t, reduce_op="sum")``; None for a single process.

        Returns:
            True when ``p`` was adjusted (then ``r_t`` is fresh: a good moment to log it).
        """
        self._steps += 1
        if self._steps % self.interval:
            return False
        acc = self._acc if self._acc is not None else torch.zeros(3)
        if reduce_fn is not None:
            acc = reduce_fn(acc)
        sign_sum, elements, images = acc.tolist()  # the one device -> host read-back per interval
        if self._acc is not None:
            self._acc.zero_()
        if elements == 0:  # nothing accumulated anywhere: keep p and r_t
            return False
        self._r_t = sign_sum / elements
        direction = (self._r_t > self.target) - (self._r_t < self.target)  # np.sign, 0 at the target (:314)
        adjust = direction * images / self.speed_images
        self._p = min(max(self._p + adjust, 0.0), 1.0)
        return True

    def update(self, real_logits: Tensor, reduce_fn: Callable[[Tensor], Tensor] | None = None) -> bool:
        """:meth:`accumulate` then :meth:`step`: the one call per D step for a loop without gradient accumulation."""
        self.accumulate(real_logits)
        return self.step(reduce_fn)

    def get_extra_state(self) -> dict:
        acc = None if self._acc is None else self._acc.detach().cpu().clone()
        return {"p": self._p, "r_t": self._r_t, "steps": self._steps, "accumulator": acc}

    def set_extra_state(self, state: dict) -> None:
        self._p, self._r_t, self._steps = float(state["p"]), state["r_t"], int(state["steps"])
        acc = state["accumulator"]
        if acc is not None and self._acc is not None:
            acc = acc.to(self._acc.device)
        self._acc = None if acc is None else acc.clone()

    def extra_repr(self) -> str:
        return f"p={self._p:.4f}, target={self.target}, interval={self.interval}, speed_images={self.speed_images}"


__all__ = ["POLICIES", "AdaptiveAugmentProbability", "AugmentParams", "apply_params", "augment", "parse_policy",
           "sample_params"]
