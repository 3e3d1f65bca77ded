"""The ``gan-modules`` command (same as ``python cli.py``): LightningCLI with fit / validate / test / predict.

Every variant in ``gan_modules`` and every datamodule in ``datamodules`` is selectable by ``class_path`` (or its
class name). The datamodule's ``image_size``, ``channels`` and ``num_classes`` are linked into the model, so they
are never typed twice. Training length is ``--model.init_args.max_generator_steps`` (generator steps, as papers
count them); ``--trainer.max_steps`` counts every optimizer step of both networks and is refused alongside it.
"""

from __future__ import annotations

import sys

from lightning.pytorch.plugins.io import TorchCheckpointIO

import datamodules  # noqa: F401  (registers the datamodule classes for class-name resolution)
from datamodules import ImageDataModule

from ._compat import CheckpointPathHook
from .base import AdversarialModule
from .callbacks import GANCheckpoint, GeneratedImageWriter, GenerativeMetrics, SampleGrid
from .checkpoint import SafeCheckpointIO, check_checkpoint_class, read_checkpoint
from .errors import CheckpointError, ConfigError, find_user_error
from .registry import MODELS


class GANCLI(CheckpointPathHook):
    def add_arguments_to_parser(self, parser) -> None:
        for attr in ("image_size", "channels", "num_classes"):
            parser.link_arguments(f"data.{attr}", f"model.init_args.{attr}", apply_on="instantiate")
        parser.add_lightning_class_args(SampleGrid, "sample_grid")
        parser.add_lightning_class_args(GeneratedImageWriter, "predict_writer")
        # FID/KID/IS/precision-recall in validate/test (and every N generator steps of fit when asked)
        parser.add_lightning_class_args(GenerativeMetrics, "metrics")
        # last.ckpt every N generator steps / T seconds / on SIGTERM, written atomically (GANCheckpoint)
        parser.add_lightning_class_args(GANCheckpoint, "checkpoint")
        # last.ckpt at least every 5 minutes (atomic), so a kill loses at most that much work; also at the end and on
        # SIGTERM. --checkpoint.every_n_generator_steps N adds saves counted in generator steps.
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_top_k": 0, "checkpoint.every_n_seconds": 300})

    #: hyperparameters that the command line decides even when a checkpoint is given (extend a run on resume)
    RUN_LENGTH_KEYS = ("max_generator_steps",)

    def parse_checkpoint_path(self) -> None:
        """Lightning's version reads ``--ckpt_path`` with a raw ``torch.load`` (a corrupt file gives a traceback) and
        lets every checkpoint hyperparameter override the command line. Here the file is read weights-only with
        one-line errors, a checkpoint of another model class is refused by name, and the run length stays the
        command line's, so a finished run can be extended by resuming with a larger ``max_generator_steps``."""
        sub = self.config.get("subcommand")
        if not sub:
            return
        ckpt_path = self.config[sub].get("ckpt_path")
        if not ckpt_path or str(ckpt_path) in ("last", "best", "hpc", "registry"):
            return
        checkpoint = read_checkpoint(ckpt_path)
        model_cfg = self.config[sub].get("model")
        class_path = getattr(model_cfg, "class_path", None) if model_cfg is not None else None
        if class_path:
            cls = MODELS.get(class_path.rpartition(".")[2])
            if cls is not None:
                check_checkpoint_class((checkpoint.get("gan_modules") or {}).get("class_path"), cls)
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        for key in self.RUN_LENGTH_KEYS:
            hparams.pop(key, None)
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        if not hparams:
            return
        try:
            self.config = self.parser.parse_object({sub: {"model": hparams}}, self.config)
        except SystemExit:
            raise CheckpointError(
                f"the hyperparameters saved in {ckpt_path} do not fit this config; use the config of the run that "
                "wrote the checkpoint"
            ) from None

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own CheckpointIO plugin is left alone
            strategy.checkpoint_io = SafeCheckpointIO()  # --ckpt_path: weights-only reads, one-line CheckpointError

    def before_instantiate_classes(self) -> None:
        cfg = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        init = cfg.get("model", {}).get("init_args", {}) or {}
        trainer = cfg.get("trainer", {})
        if init.get("max_generator_steps") is not None:
            if trainer.get("max_steps", -1) not in (-1, None):
                raise ConfigError(
                    "set either model.init_args.max_generator_steps (generator steps, what papers count) or "
                    "trainer.max_steps (every optimizer step of both networks, Lightning #17958), not both"
                )
            if trainer.get("max_epochs") is None:
                trainer["max_epochs"] = -1  # the generator-step budget decides when to stop


def run(args: list[str] | None = None) -> GANCLI:
    """Runs the CLI in-process and returns it (notebooks, tests). A user error prints one line after
    ``gan-modules: error:`` and raises ``SystemExit(2)``; anything else propagates."""
    try:
        return GANCLI(
            AdversarialModule,
            ImageDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"gan-modules: error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None


def main(args: list[str] | None = None) -> int:
    """The ``gan-modules`` console script: exit status 0 on success, 2 on a user error (one line on stderr), 1 on a
    crash (Python's traceback)."""
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
