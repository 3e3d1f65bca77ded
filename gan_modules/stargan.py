"""StarGAN: Choi, Choi, Kim, Ha, Kim & Choo 2018, "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", CVPR. https://arxiv.org/abs/1711.09020 (reference: yunjey/stargan)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._compat import attached_trainer
from .context import Batch, StepContext
from .errors import ConfigError
from .losses import d_real_fake_scores
from .nets.resnet_translation import StarGANDiscriminator, StarGANGenerator
from .translation import TranslationModule, side_by_side


def classification_loss(logits: Tensor, target: Tensor, label_type: str) -> Tensor:
    """yunjey/stargan's ``classification_loss``: multi-label BCE with logits summed over attributes and averaged over
    the batch, or cross-entropy over single-label domains."""
    if label_type == "multi_label":
        return F.binary_cross_entropy_with_logits(logits, target.float(), reduction="sum") / logits.shape[0]
    return F.cross_entropy(logits, target.long())  # −log softmax(logits)[target]


def target_labels(label: Tensor, label_groups: list[list[int]], c_dim: int, label_type: str) -> list[Tensor]:
    """Every test-time target domain for a batch (yunjey/stargan ``create_labels``): for single-label data each class;
    for attributes, attribute ``i`` set (and the rest of its one-hot group cleared) if it is in a group, else flipped.
    Returns ``c_dim`` float tensors (N, c_dim)."""
    if label_type == "single_label":
        return [F.one_hot(torch.full_like(label, i), c_dim).float() for i in range(c_dim)]
    group_of = {i: g for g in label_groups for i in g}
    targets = []
    for i in range(c_dim):
        t = label.float().clone()
        if i in group_of:
            t[:, group_of[i]] = 0.0
            t[:, i] = 1.0
        else:
            t[:, i] = 1.0 - t[:, i]
        targets.append(t)
    return targets


class StarGAN(TranslationModule):
    """One generator for many domains: G(x, c) with the target label ``c`` tiled as input channels; D with a PatchGAN
    source head (real/fake) and a domain-classification head. WGAN-GP adversarial loss (λ_gp 10, one interpolation
    weight per sample), λ_cls 1, λ_rec 10 (cycle reconstruction G(G(x, c'), c) ≈ x), G every 5th D step, Adam 1e-4
    β (0.5, 0.999), batch 16. Target labels are the batch's own labels shuffled, drawn once per iteration.

    Learning rate: the paper (§4.1) keeps it constant for the first 100k of 200k D iterations and then "linearly decays
    the learning rate to 0 over the next 100k". The reference code (yunjey/stargan ``solver.py``, ``train``) instead
    subtracts ``lr / num_iters_decay`` = lr/1e5 every ``lr_update_step`` = 1,000 iterations of the last 100k, so its LR
    ends at 99.9% of the start: practically constant. We follow the paper: no schedule by default (short runs), and
    ``configs/stargan_celeba.yaml`` sets ``n_epochs``/``n_epochs_decay`` in generator steps (20k + 20k = the paper's
    100k + 100k D iterations at n_critic 5) with ``lr_scheduler_interval: generator_step``.

    Batches: ``image`` (N, C, H, W) in [-1, 1] and ``label``: a float 0/1 attribute vector (N, c_dim)
    (``label_type: multi_label``, CelebA) or a class index (N,) (``single_label``, folder-per-domain).

    Args:
        ngf: G's first width (64).
        ndf: D's first width (64).
        n_residual_blocks: residual blocks in G (6).
        repeat_num: strided convs in D (None: 6 at 128 px and above, else log2(size) − 2).
        label_type: ``multi_label`` (attribute vectors), ``single_label`` (class indices) or ``auto`` (from the first
            batch: float labels are attributes, integer labels class indices; saved in checkpoints).
        label_groups: attribute indices that form one-hot groups (hair colour), used for test-time targets; None:
            the datamodule's ``label_groups`` if it has one, else every attribute is binary.
        domain_names: names of the label entries for output file names (None: the datamodule's ``domain_names``).
        lambda_cls: weight of the domain-classification losses (1).
        lambda_rec: weight of the reconstruction L1 (10).
        penalty: the gradient penalty of the adversarial head (WGAN-GP's, applied by the loop on D's source output).
        penalty_weight: its weight λ_gp (10).
        n_critic: D steps per G step (5).
        test_mode: ``train`` by default: yunjey/stargan tests with instance statistics (its G's running statistics
            are a training by-product); buffers are never changed by inference.
        **kwargs: see :class:`~gan_modules.translation.TranslationModule`.
    """

    default_optimizer: ClassVar[dict[str, Any]] = {"name": "Adam", "lr": 1e-4, "betas": (0.5, 0.999)}
    translation_keys = frozenset({"image"})  # labelled image batches are StarGAN's own

    def __init__(self, ngf: int = 64, ndf: int = 64, n_residual_blocks: int = 6, repeat_num: int | None = None,
                 label_type: Literal["auto", "multi_label", "single_label"] = "auto",
                 label_groups: list[list[int]] | None = None, domain_names: list[str] | None = None,
                 lambda_cls: float = 1.0, lambda_rec: float = 10.0, n_critic: int = 5, loss: str = "wasserstein",
                 penalty: str | None = "gradient_penalty", penalty_weight: float = 10.0, n_epochs: int | None = None,
                 test_mode: Literal["eval", "train"] = "train", **kwargs: Any):
        super().__init__(loss=loss, n_critic=n_critic, penalty=penalty, penalty_weight=penalty_weight,
                         n_epochs=n_epochs, test_mode=test_mode, **kwargs)
        hp = self.hparams
        if label_type not in ("auto", "multi_label", "single_label"):
            raise ConfigError(f"label_type must be 'auto', 'multi_label' or 'single_label', got {label_type!r}")
        self.label_type = "multi_label" if label_type == "auto" else label_type
        if not hp.num_classes:
            raise ConfigError(f"StarGAN needs the number of domains/attributes (num_classes, linked from the "
                              f"datamodule), got {hp.num_classes}")
        if min(lambda_cls, lambda_rec) < 0:
            raise ConfigError(f"lambda_cls and lambda_rec must be >= 0, got {lambda_cls} and {lambda_rec}")
        try:
            generator = StarGANGenerator(hp.channels, hp.num_classes, ngf, n_residual_blocks)
            discriminator = StarGANDiscriminator(hp.channels, hp.image_size, hp.num_classes, ndf, repeat_num)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.finish_setup(generator, discriminator)

    def adapt_batch(self, batch: Any) -> Any:
        """Resolves ``label_type: auto`` from the labels' dtype (float: attributes, integer: class indices)."""
        label = batch.get("label") if isinstance(batch, dict) else None
        if label is not None and self.hparams.label_type == "auto":
            self.label_type = "multi_label" if label.is_floating_point() else "single_label"
        return batch

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_modules"]["label_type"] = self.label_type

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.label_type = checkpoint.get("gan_modules", {}).get("label_type", self.label_type)

    @property
    def c_dim(self) -> int:
        return int(self.hparams.num_classes)

    def check_batch(self, batch: Batch) -> None:
        if "image" not in batch:
            raise ConfigError(f"StarGAN needs labelled image batches ('image', 'label'), got keys {sorted(batch)}")
        self.check_images(batch["image"])
        label = batch.get("label")
        if label is None:
            raise ConfigError("StarGAN needs batches with 'label' (domain index or attribute vector)")
        if self.hparams.label_type == "auto":
            self.label_type = "multi_label" if label.is_floating_point() else "single_label"
        kind = self.label_type
        if kind == "multi_label" and (label.ndim != 2 or label.shape[1] != self.c_dim or not label.is_floating_point()):
            raise ConfigError(f"label_type multi_label expects float labels (N, {self.c_dim}), got {label.dtype} "
                              f"{tuple(label.shape)}; set --model.init_args.label_type single_label for class indices")
        if kind == "single_label" and (label.ndim != 1 or label.is_floating_point()):
            raise ConfigError(f"label_type single_label expects class indices (N,), got {label.dtype} "
                              f"{tuple(label.shape)}; set --model.init_args.label_type multi_label for attributes")

    def as_vector(self, label: Tensor) -> Tensor:
        """The G conditioning vector (N, c_dim): attributes as they are, class indices one-hot."""
        if self.label_type == "multi_label":
            return label.float()
        return F.one_hot(label.long(), self.c_dim).float()

    def make_context(self, batch: Batch, generator_step: bool) -> StepContext:
        """The iteration's target domains: the batch's own labels in a random order, drawn once per iteration and
        shared by its D step and (every ``n_critic``-th iteration) its G step, as the reference's one ``randperm`` per
        iteration (yunjey/stargan ``solver.py`` ``train``: ``rand_idx = torch.randperm(label_org.size(0))``)."""
        ctx = super().make_context(batch, generator_step)
        label = batch["label"]
        ctx["target"] = label[ctx.randperm(label.shape[0]).to(label.device)]
        return ctx

    def cls_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return classification_loss(logits, target, self.label_type)

    def discriminator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        hp = self.hparams
        x, label = batch["image"], batch["label"]
        src_real, cls_real = self.discriminator(x)
        with torch.no_grad():
            fake = self.generator(x, self.as_vector(ctx["target"]))
        src_fake, _ = self.discriminator(fake)
        adv = self.adversarial_loss.discriminator(src_real, src_fake)  # E[D(G(x,c))] − E[D(x)]
        cls = self.cls_loss(cls_real, label)  # D learns the real domains
        ctx.add_critic(lambda z: self.discriminator(z)[0], x, fake)  # the loop adds λ_gp·GP on the source head
        loss = adv + hp.lambda_cls * cls
        return loss, {"loss_d": loss.detach(), "loss_d_adv": adv.detach(), "loss_d_cls": cls.detach(),
                      **d_real_fake_scores(src_real, src_fake)}

    def generator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        hp = self.hparams
        x, label = batch["image"], batch["label"]
        trg = ctx["target"]
        fake = self.generator(x, self.as_vector(trg))
        src_fake, cls_fake = self.discriminator(fake)
        adv = self.adversarial_loss.generator(src_fake)  # −E[D(G(x, c'))]
        cls = self.cls_loss(cls_fake, trg)  # G fools the classifier into the target domain
        rec = F.l1_loss(self.generator(fake, self.as_vector(label)), x)  # ‖x − G(G(x, c'), c)‖₁
        loss = adv + hp.lambda_cls * cls + hp.lambda_rec * rec
        return loss, {"loss_g": loss.detach(), "loss_g_adv": adv.detach(), "loss_g_cls": cls.detach(),
                      "loss_rec": rec.detach()}

    # ----------------------------------------------------------------------------------------------------------
    def translate(self, x: Tensor, label: Tensor) -> Tensor:
        """Images (any size) → the domain ``label`` (class indices or attribute vectors)."""
        return self.run_generator(x, self.as_vector(label))

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        return self.translate(x, label)

    def _datamodule_attr(self, name: str) -> Any:
        trainer = attached_trainer(self)
        return getattr(getattr(trainer, "datamodule", None), name, None) if trainer is not None else None

    def label_groups(self) -> list[list[int]]:
        return self.hparams.label_groups or self._datamodule_attr("label_groups") or []

    def domain_names(self) -> list[str]:
        names = self.hparams.domain_names or self._datamodule_attr("domain_names")
        return list(names) if names and len(names) == self.c_dim else [f"domain{i}" for i in range(self.c_dim)]

    def all_targets(self, label: Tensor) -> list[Tensor]:
        """One target label batch per domain (see :func:`target_labels`), as G conditioning vectors."""
        vec = self.as_vector(label) if self.label_type == "multi_label" else label
        return target_labels(vec, self.label_groups(), self.c_dim, self.label_type)

    def evaluation_inputs(self, batch: Batch) -> dict[str, Tensor]:
        """G inputs for a held-out batch: its images and its labels in a fixed shuffled order as targets."""
        label = batch["label"]
        order = torch.randperm(len(label), generator=torch.Generator().manual_seed(self.hparams.sample_seed))
        return {"x": batch["image"], "c": self.as_vector(label[order.to(label.device)])}

    @torch.no_grad()
    def evaluation_scores(self, batch: Batch) -> dict[str, Tensor]:
        x, label = batch["image"], batch["label"]
        trg = label[torch.randperm(len(label), generator=torch.Generator().manual_seed(0)).to(label.device)]
        fake = self.translate(x, trg)
        rec = self.translate(fake, label)
        _, cls_real = self.discriminator(x)
        _, cls_fake = self.discriminator(fake)
        return {"cls_accuracy_real": self._accuracy(cls_real, label),
                "cls_accuracy_fake": self._accuracy(cls_fake, trg), "rec_l1": F.l1_loss(rec, x)}

    def _accuracy(self, logits: Tensor, label: Tensor) -> Tensor:
        if self.label_type == "multi_label":
            return ((logits > 0).float() == label.float()).float().mean()
        return (logits.argmax(1) == label).float().mean()

    def comparison_strips(self, batch: Batch) -> Tensor:
        x = batch["image"]
        return side_by_side(x, *[self.run_generator(x, t) for t in self.all_targets(batch["label"])])

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """``image`` (any size), optional ``label`` (the source domain; zeros if absent), ``name``, ``index`` → one
        output per target domain named ``<stem>_<domain>.png`` and a strip input | every domain per image."""
        batch = self.adapt_batch(batch)
        x = batch["image"]
        label = batch.get("label")
        if label is None:
            label = (torch.zeros(len(x), self.c_dim, device=x.device) if self.label_type == "multi_label"
                     else torch.zeros(len(x), dtype=torch.long, device=x.device))
        outs = [self.run_generator(x, t) for t in self.all_targets(label)]
        stems = [n.rsplit(".", 1)[0] for n in self.predict_names(batch)]
        domains = self.domain_names()
        images = torch.stack(outs, 1).flatten(0, 1)  # (N·c_dim, C, H, W), image-major
        names = [f"{s}_{d}.png" for s in stems for d in domains]
        return {"images": images, "index": batch["index"], "names": names, "grid": side_by_side(x, *outs),
                "grid_names": [f"{s}.png" for s in stems]}
