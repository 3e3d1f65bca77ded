"""CGAN: Mirza & Osindero 2014, "Conditional Generative Adversarial Nets", arXiv. https://arxiv.org/abs/1411.1784
Projection option: Miyato & Koyama 2018, "cGANs with Projection Discriminator", ICLR.
https://arxiv.org/abs/1802.05637"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from .context import Batch
from .errors import ConfigError
from .image_gan import ImageGAN
from .nets.conditional import ConditionalDiscriminator, ConditionalGenerator
from .nets.spectral import add_spectral_norm


class CGAN(ImageGAN):
    """Class-conditional GAN: G(z, y) and D(x, y) with the labels of the datamodule. ``conditioning="concat"`` is
    the paper's scheme (the class code concatenated to G's input and to D's input, as one-hot or a learned
    embedding); ``conditioning="projection"`` is the projection discriminator with conditional BatchNorm in G.
    The paper's MLPs (with maxout D) are replaced by DCGAN-style conv nets and Adam 2e-4, β = (0.5, 0.999). The labels
    of generated images are the real batch's (``fake_labels: data``, the concat default: they follow the data's
    class frequencies) or uniform draws (``fake_labels: uniform``; the projection reference's updater samples them
    uniformly, pfnet-research/sngan_projection ``updater.py``); None picks by ``conditioning``.
    Sample grids have one row per class, and each column shares its z across classes.

    Args:
        conditioning: ``"concat"`` or ``"projection"``.
        label_encoding: ``"onehot"`` (paper) or ``"embedding"`` for the concat code.
        embed_dim: size of the learned label embedding.
        ngf: generator width (DCGAN's last hidden block).
        ndf: discriminator width (DCGAN's first block).
        d_norm: normalisation in D (batch, layer, instance, none).
        spectral_norm: spectral normalization on every D layer (Miyato & Koyama trained projection D with it).
        fake_labels: ``data``, ``uniform`` or None (``uniform`` for projection, ``data`` for concat).
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN`; ``num_classes`` comes from the datamodule.
    """

    conditional = True

    def __init__(self, conditioning: Literal["concat", "projection"] = "concat",
                 label_encoding: Literal["onehot", "embedding"] = "onehot", embed_dim: int = 50, ngf: int = 64,
                 ndf: int = 64, d_norm: str = "batch", spectral_norm: bool = False,
                 fake_labels: Literal["data", "uniform"] | None = None, **kwargs):
        if fake_labels is None:
            fake_labels = "uniform" if conditioning == "projection" else "data"
        super().__init__(fake_labels=fake_labels, **kwargs)
        hp = self.hparams
        hp.update(fake_labels=fake_labels)  # the resolved value (the CLI saves the given one)
        if hp.num_classes is None or hp.num_classes < 1:
            raise ConfigError(
                "CGAN needs class labels but num_classes is not set: use a labelled datamodule (e.g. "
                "datamodules.EmbeddedMNISTDataModule) or set --model.init_args.num_classes"
            )
        if conditioning not in ("concat", "projection"):
            raise ConfigError(f"unknown conditioning {conditioning!r}: choose concat or projection")
        if label_encoding not in ("onehot", "embedding"):
            raise ConfigError(f"unknown label_encoding {label_encoding!r}: choose onehot or embedding")
        g = ConditionalGenerator(hp.latent_dim, hp.num_classes, hp.channels, hp.image_size, ngf, conditioning,
                                 label_encoding, embed_dim)
        d = ConditionalDiscriminator(hp.channels, hp.num_classes, hp.image_size, ndf, d_norm, conditioning,
                                     label_encoding, embed_dim)
        self.finish_setup(g, add_spectral_norm(d) if spectral_norm else d)

    # --- conditioning: G(z, y), D(x, y) -------------------------------------------------------------------------
    def generator_inputs(self, z: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        return {"z": z, "y": y}

    def discriminate(self, images: Tensor, labels: Tensor | None) -> Tensor:
        return self.discriminator(images, labels)

    def check_batch(self, batch: Batch) -> None:
        super().check_batch(batch)
        label = batch.get("label")
        k = self.hparams.num_classes
        if label is None or label.ndim != 1 or label.is_floating_point():
            raise ConfigError("CGAN needs integer class labels in batch['label']: use a labelled datamodule")
        if len(label) and (int(label.min()) < 0 or int(label.max()) >= k):
            raise ConfigError(
                f"labels range over [{int(label.min())}, {int(label.max())}] but the model was built for "
                f"num_classes={k}; set --model.init_args.num_classes {int(label.max()) + 1}"
            )

    # --- sampling ------------------------------------------------------------------------------------------------
    def class_inputs(self, per_class: int, seed: int | None = None) -> dict[str, Tensor]:
        """``per_class`` samples of every class, row-major by class; column ``j`` shares one z across classes."""
        k = self.hparams.num_classes
        z = self.sample_inputs(per_class, seed)["z"]
        return {"z": z.repeat(k, 1), "y": torch.arange(k, device=self.device).repeat_interleave(per_class)}

    def sample_grid(self, n: int = 64, seed: int | None = None) -> tuple[Tensor, int]:
        """One row per class with ``ceil(n / num_classes)`` columns."""
        per_class = max(1, math.ceil(n / self.hparams.num_classes))
        seed = self.hparams.sample_seed if seed is None else seed
        return self.generate(self.class_inputs(per_class, seed)), per_class
