"""What the image-to-image variants (Pix2Pix, CycleGAN, StarGAN) share: the reference's loss scaling, the linear-decay
LR schedule, the history pool of generated images, padding inputs of any size, and a base module with translation
sample grids and a ``predict`` that keeps file names and writes side-by-side comparisons."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from .base import AdversarialModule
from .context import Batch
from .errors import ConfigError
from .nets.common import use_batch_statistics_


def reference_scales(loss: str) -> tuple[float, float]:
    """``(d_scale, g_scale)`` turning ``gan_modules.losses`` into the junyanz reference's ``GANLoss`` scaling:
    D = ½[ℓ(D(x), 1) + ℓ(D(G(x)), 0)], G = ℓ(D(G(x)), 1). Our ``least_squares`` already halves both sides, so its D
    needs no ½ and its G needs ×2; the logistic/hinge/Wasserstein D losses are plain sums and get the ½."""
    return (1.0, 2.0) if loss == "least_squares" else (0.5, 1.0)


class LinearDecay:
    """LambdaLR factor of the pix2pix/CycleGAN reference: 1 for ``n_epochs`` steps, then linearly to ~0 over
    ``n_epochs_decay`` more: ``1 − max(0, t + 1 − n_epochs) / (n_epochs_decay + 1)`` (a picklable callable, so
    LambdaLR saves it in checkpoints)."""

    def __init__(self, n_epochs: int, n_epochs_decay: int):
        self.n_epochs, self.n_epochs_decay = n_epochs, n_epochs_decay

    def __call__(self, t: int) -> float:
        return max(0.0, 1.0 - max(0, t + 1 - self.n_epochs) / (self.n_epochs_decay + 1))


class ImagePool:
    """History of generated images shown to a discriminator (Shrivastava et al. 2017; CycleGAN §4, size 50).

    Until the pool holds ``size`` images every new image is stored and returned. After that, each new image is, with
    probability ½, swapped for a uniformly chosen stored one (the stored one is returned, the new one kept), and
    otherwise returned as is. The draws come from the pool's own generator, saved in ``state_dict`` with the images,
    so a resumed run continues exactly.

    Args:
        size: capacity (0 disables the pool: images pass through).
        seed: seed of the pool's random generator.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        if size < 0:
            raise ConfigError(f"pool_size must be >= 0 (0 disables the history pool), got {size}")
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """Images (N, C, H, W) → the batch D should see, same shape."""
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                k = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[k].to(image.device, image.dtype))
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        images = torch.stack(self.images).cpu() if self.images else None
        return {"size": self.size, "images": images, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images = list(state["images"].unbind(0)) if state.get("images") is not None else []
        self.generator.set_state(state["rng"])


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pads (N, C, H, W) at the bottom/right to multiples of ``multiple`` (reflection where the image is large enough,
    else edge replication); returns the padded batch and the original ``(H, W)`` to crop back to."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


@contextlib.contextmanager
def inference_mode(net: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Runs ``net`` in ``eval`` mode (running statistics, no dropout), or in ``train`` mode (test-batch statistics and
    dropout, what the pix2pix paper and yunjey/stargan do at test time) with its buffers restored afterwards, so
    inference never changes the running statistics. The previous mode is restored either way."""
    was_training = net.training
    saved = [b.detach().clone() for b in net.buffers()] if mode == "train" else []
    net.train(mode == "train")
    try:
        yield net
    finally:
        with torch.no_grad():
            for b, s in zip(net.buffers(), saved):
                b.copy_(s)
        net.train(was_training)


def batch_statistics_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in eval mode whose norm layers always use the statistics of their input (no running stats):
    the deterministic equivalent of ``test_mode='train'`` (dropout off) for export."""
    return use_batch_statistics_(copy.deepcopy(net).eval())


def side_by_side(*rows: Tensor) -> Tensor:
    """(N, C, H, W) tensors of the same shape → (N, C, H, W·k): one comparison strip per item."""
    return torch.cat(rows, dim=-1)


class TranslationModule(AdversarialModule):
    """Base of the image → image variants (not registered in ``MODELS``): linear-decay LR schedule by default, a
    fixed batch of training inputs for sample grids, and a ``predict`` that pads inputs of any size to what G needs,
    crops back, keeps file names and writes comparison strips. There is no noise input (and no ``latent_dim``):
    Pix2Pix's noise is its dropout.

    Args:
        n_epochs: LR stays constant for this many scheduler steps (epochs with ``lr_scheduler_interval='epoch'``,
            the reference; generator steps with ``'generator_step'``); None disables the default schedule.
        n_epochs_decay: then decays linearly to 0 over this many steps.
        test_mode: ``eval`` (running statistics, no dropout: deterministic) or ``train`` (statistics of the test
            batch and dropout on, as the pix2pix paper and yunjey/stargan test); buffers are never changed.
        grid_size: training inputs kept for the sample grid.
        **kwargs: see :class:`~gan_modules.base.AdversarialModule` (``ema_decay`` defaults to None here: the papers
            sample from the trained G).
    """

    def __init__(self, n_epochs: int | None = 100, n_epochs_decay: int = 100,
                 test_mode: Literal["eval", "train"] = "eval", grid_size: int = 8,
                 lr_scheduler_interval: Literal["generator_step", "epoch"] = "epoch", ema_decay: float | None = None,
                 **kwargs: Any):
        super().__init__(lr_scheduler_interval=lr_scheduler_interval, ema_decay=ema_decay, **kwargs)
        if n_epochs is not None and (n_epochs < 0 or n_epochs_decay < 0):
            raise ConfigError(f"n_epochs and n_epochs_decay must be >= 0, got {n_epochs} and {n_epochs_decay}")
        if test_mode not in ("eval", "train"):
            raise ConfigError(f"test_mode must be 'eval' or 'train', got {test_mode!r}")
        self.grid_inputs: Batch | None = None

    # ----------------------------------------------------------------------------------------------------------
    def adapt_plain_batch(self, image: Tensor) -> Batch:
        """Maps a plain ``{"image"}`` batch (a non-translation datamodule) to this variant's keys; variants override."""
        return {"image": image}

    def adapt_batch(self, batch: Any) -> Any:
        """Plain image batches become identity-translation batches (with one warning) in training and validation: a
        smoke test that any image datamodule can drive; real work needs a paired/unpaired/labelled translation
        datamodule."""
        if isinstance(batch, dict) and "image" in batch and not self.translation_keys & set(batch):
            if not getattr(self, "_warned_plain", False):
                rank_zero_warn(f"{type(self).__name__} got plain image batches (keys {sorted(batch)}), not "
                               f"{sorted(self.translation_keys)}: training the identity mapping; use a translation "
                               "datamodule for real work")
                self._warned_plain = True
            batch = {**batch, **self.adapt_plain_batch(batch["image"])}
        return batch

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        super().validation_step(self.adapt_batch(batch), batch_idx)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        super().test_step(self.adapt_batch(batch), batch_idx)

    translation_keys: frozenset[str] = frozenset()

    def configure_optimizers(self):
        opts, scheds = super().configure_optimizers()
        if not scheds and self.hparams.n_epochs is not None:
            rule = LinearDecay(self.hparams.n_epochs, self.hparams.n_epochs_decay)
            scheds = [torch.optim.lr_scheduler.LambdaLR(o, rule) for o in opts]
        return opts, scheds

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        batch = self.adapt_batch(batch)
        if self.grid_inputs is None:
            n = self.hparams.grid_size
            self.grid_inputs = {k: v[:n].detach().clone() for k, v in batch.items() if isinstance(v, Tensor)}
        super().training_step(batch, batch_idx)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (padding makes them so)."""
        return int(getattr(self.generator_network(), "size_multiple", 1))

    def generator_network(self, key: str | None = None) -> nn.Module:
        return self.generator if key is None else self.generator[key]

    @torch.no_grad()
    def run_generator(self, x: Tensor, *args: Tensor, key: str | None = None, use_ema: bool | None = None) -> Tensor:
        """G (the EMA copy if any; ``key`` picks one of several) on images of any size: padded to ``size_multiple``
        and cropped back; output in [-1, 1]."""
        net = self.sampling_generator(use_ema)
        net = net if key is None else net[key]
        padded, (h, w) = pad_to_multiple(x, int(getattr(net, "size_multiple", 1)))
        with inference_mode(net, self.hparams.test_mode):
            out = net(padded, *args)
        return out[..., :h, :w].float().clamp(-1, 1)

    @torch.no_grad()
    def generate(self, inputs: dict[str, Tensor], use_ema: bool | None = None) -> Tensor:
        """G on ready-made keyword inputs (what ``evaluation_inputs`` returns; used by the metrics callback), in the
        configured ``test_mode``; images in [-1, 1]."""
        net = self.sampling_generator(use_ema)
        with inference_mode(net, self.hparams.test_mode):
            return net(**inputs).float().clamp(-1, 1)

    def predict_names(self, batch: Batch) -> list[str]:
        names = batch.get("name")
        if names is None:
            return [f"{int(i):06d}.png" for i in batch["index"]]
        return [str(n) for n in names]

    def sample_grid(self, n: int = 64, seed: int | None = None) -> tuple[Tensor, int]:
        """Rows of (input, output[, target/reconstruction]) for the first training inputs."""
        if self.grid_inputs is None:
            raise RuntimeError("no training batch seen yet: the translation grid shows training inputs")
        strips = self.comparison_strips({k: v.to(self.device) for k, v in self.grid_inputs.items()})
        k = strips.shape[-1] // strips.shape[-2]
        cols = [strips[..., i * strips.shape[-2]:(i + 1) * strips.shape[-2]] for i in range(k)]
        images = torch.stack(cols, 1).flatten(0, 1)  # (N·k, C, H, W), one row per item
        return images, k

    def comparison_strips(self, batch: Batch) -> Tensor:
        """(N, C, H, W·k) strips for the grid; variants override."""
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.grid_inputs is not None:
            checkpoint["gan_modules"]["grid_inputs"] = {k: v.cpu() for k, v in self.grid_inputs.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.grid_inputs = checkpoint.get("gan_modules", {}).get("grid_inputs")


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Peak signal-to-noise ratio of images in [-1, 1] (peak-to-peak 2), averaged over the batch."""
    mse = (x.float() - y.float()).square().flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(4.0 / mse)).mean()


__all__ = ["ImagePool", "LinearDecay", "TranslationModule", "batch_statistics_copy", "inference_mode",
           "pad_to_multiple", "psnr", "reference_scales", "side_by_side"]
