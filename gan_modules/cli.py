"""The ``gan-modules`` command (same as ``python cli.py``): LightningCLI with fit / validate / test / predict.

Every variant in ``gan_modules`` and every datamodule in ``datamodules`` is selectable by ``class_path`` (or its
class name). The datamodule's ``image_size``, ``channels`` and ``num_classes`` are linked into the model, so they
are never typed twice. Training length is ``--model.init_args.max_generator_steps`` (generator steps, as papers
count them); ``--trainer.max_steps`` counts every optimizer step of both networks and is refused alongside it.

What every run shares lives here, not in the configs (``GANCLI.add_arguments_to_parser``): the seed, the trainer
defaults, a TensorBoard logger writing to ``runs/<config name>/version_N`` and the callbacks (sample grids, metrics,
checkpoints, plots). Outputs stay in one run directory: ``fit`` makes a new one (also with ``--trainer.logger
false``), a resumed ``fit`` and ``validate``/``test``/``predict`` with ``--ckpt_path`` write into the checkpoint's.

Exit status: 0 on success, 2 on a user error (one line after ``gan-modules: error:``; set ``GAN_MODULES_VERBOSE=1``
or pass ``--verbose`` for the full text), 1 on a crash.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import inspect
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.plugins.io import TorchCheckpointIO

import datamodules  # noqa: F401  (registers the datamodule classes for class-name resolution)
from datamodules import DATAMODULES, ImageDataModule

from ._compat import CheckpointPathHook
from .base import AdversarialModule
from .callbacks import GANCheckpoint, GeneratedImageWriter, GenerativeMetrics, SampleGrid
from .callbacks.plots import TrainingPlots
from .callbacks.progress import GANProgressBar, fit_summary
from .callbacks.samples import resolve_run_dir, run_dir
from .checkpoint import SafeCheckpointIO, check_checkpoint_class, read_checkpoint
from .errors import CheckpointError, ConfigError, find_user_error
from .registry import MODELS
from .translation import TranslationModule

VERBOSE_ENV = "GAN_MODULES_VERBOSE"
#: loggers whose runs are ``save_dir/name/version_N`` folders
VERSIONED_LOGGERS = ("TensorBoardLogger", "CSVLogger")


class NothingToDo(SystemExit):
    """Ends the command successfully before anything is written (e.g. resuming a run that reached its budget)."""

    def __init__(self, message: str) -> None:
        print(f"gan-modules: {message}", file=sys.stderr)
        super().__init__(0)


# ----------------------------------------------------------------------------------------------------------------
# One-line parse errors
def _chain(err: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while err is not None and id(err) not in seen:
        out.append(err)
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return out


def _init_params(cls: type) -> list[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "args", "kwargs")}
    return sorted(names)


def _resolve_class(path: str) -> type | None:
    module, _, name = path.rpartition(".")
    if not module:
        return MODELS.get(name) or DATAMODULES.get(name)
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        return None


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe_parse_error(err: BaseException) -> str:
    """One line for a jsonargparse parse error: an unknown option of a class (with a did-you-mean), an unknown class
    (with the valid ones), an unknown command-line argument, or the innermost message."""
    chain = _chain(err)
    texts = [str(e) for e in chain]
    whole = "\n".join(texts)
    section = re.search(r'Parser key "(\w+)"', whole)
    section = section.group(1) if section else None
    option = next((re.search(r"Option '([\w.]+)' is not accepted", t) for t in texts
                   if re.search(r"Option '([\w.]+)' is not accepted", t)), None)
    class_path = re.search(r"class_path '([\w.]+)'", whole)
    if option:
        key = option.group(1)
        cls = _resolve_class(class_path.group(1)) if class_path else None
        where = f" of {class_path.group(1)}" if class_path else ""
        hint = _did_you_mean(key, _init_params(cls)) if cls is not None else ""
        prefix = f"--{section}.init_args." if section in ("model", "data") else "--"
        return f"unknown option {prefix}{key}{where}{hint} (--print_config lists every option)"
    bad_class = re.search(r"(?:Expected a dot import path string|Import path): ?([\w.]+)", whole) or re.search(
        r"Problem with given class_path '([\w.]+)':\n\s*(?:Import path|No module|module|.*does not)", whole)
    if bad_class or "does not correspond to a subclass" in whole:
        name = bad_class.group(1) if bad_class else "?"
        if section == "data":
            valid, example = sorted(DATAMODULES), "--data datamodules.EmbeddedMNISTDataModule"
        else:
            valid, example = sorted(MODELS), "--model gan_modules.DCGAN"
        hint = _did_you_mean(name.rpartition(".")[2], valid)
        return f"unknown {section or 'model'} class {name!r}{hint}; choose one of {', '.join(valid)} (e.g. {example})"
    unknown_arg = re.search(r"unrecognized arguments: (\S+)", whole)
    if unknown_arg:
        return f"unknown argument {unknown_arg.group(1)} (gan-modules fit --help lists the arguments)"
    innermost = next((t for t in reversed(texts) if t.strip()), whole)
    return " ".join(line.strip() for line in innermost.strip().splitlines()[:2])


# ----------------------------------------------------------------------------------------------------------------
# Noise a user did not ask for
class _DropTips(logging.Filter):
    """Lightning's litlogger advertisement, and "Seed set to 0" (the seed is in the run's config.yaml)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not (message.startswith("💡 Tip") or re.fullmatch(r"(\[rank: \d+\] )?Seed set to -?\d+", message))


def quiet_third_party() -> None:
    """Filters Lightning's litlogger tip and known third-party warnings that say nothing about the user's run."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).addFilter(_DropTips())
    for message in (
        r".*isinstance\(treespec, LeafSpec\)",  # torch pytree deprecation inside Lightning
        r".*does not have many workers",  # in-memory datasets need none
        r"Checkpoint directory .* exists and is not empty",  # resuming into the run's own folder
        r".*will save all extracted features in buffer",  # torchmetrics KID/IS: bounded by --metrics.num_samples
        r"The number of training batches .* is smaller than the logging interval",
        r"You defined a `validation_step` but have no `val_dataloader`",
        r"LightningCLI's args parameter is intended to run from within Python",  # run() passes the parsed argv
        r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint",  # fit-only callbacks
    ):
        warnings.filterwarnings("ignore", message=message)


# ----------------------------------------------------------------------------------------------------------------
class GANSaveConfig(SaveConfigCallback):
    """Saves the resolved config in the run directory without ever overwriting one silently (``config.yaml`` for
    fit; ``config.<stage>.yaml`` otherwise; a numbered name, announced in one line, when that exists with other
    content) and logs it, flattened, as hyperparameters to every logger (learning rates and betas included), so runs
    can be compared and swept."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.already_saved:
            return
        run = resolve_run_dir(trainer)  # a collective under DDP: every rank calls setup
        stage = str(getattr(stage, "value", stage))  # Lightning passes a TrainerFn
        text = self.parser.dump(self.config, skip_none=False)
        name = None
        if trainer.is_global_zero:
            base = "config" if stage == "fit" else f"config.{stage}"
            name, k = f"{base}.yaml", 1
            while (run / name).is_file() and (run / name).read_text() != text:
                k += 1
                name = f"{base}.{k}.yaml"
            if k > 1:
                print(f"gan-modules: {run / base}.yaml exists with another config; this run's is {run / name}",
                      file=sys.stderr)
            run.mkdir(parents=True, exist_ok=True)
            (run / name).write_text(text)
            flat = flatten(yaml.safe_load(text) or {})
            for logger in trainer.loggers:
                logger.log_hyperparams({f"config/{k}": v for k, v in flat.items()})
        self.already_saved = True


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts → ``{"a/b/c": value}`` with scalar values (lists and None as text), what loggers accept."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}/" if prefix or key else ""))
        return out
    key = prefix.rstrip("/")
    out[key] = tree if isinstance(tree, (int, float, str, bool)) else str(tree)
    return out


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
        # losses.png, scalars.csv, real_vs_fake.png, progress.gif in the run directory
        parser.add_lightning_class_args(TrainingPlots, "plots")
        parser.set_defaults({
            # last.ckpt at least every 5 minutes (atomic), so a kill loses at most that much work; also at the end and
            # on SIGTERM. --checkpoint.every_n_generator_steps N adds saves counted in generator steps.
            "checkpoint.save_last": True, "checkpoint.save_top_k": 0, "checkpoint.every_n_seconds": 300,
            # every run: one device unless asked (--trainer.devices 2 ... for DDP), fp32 (bf16-mixed on GPUs), the
            # generator-step budget decides the length, validation (D's view of held-out data) every 5 epochs
            "trainer.accelerator": "auto", "trainer.devices": 1, "trainer.precision": "32-true",
            "trainer.max_epochs": -1, "trainer.log_every_n_steps": 50, "trainer.num_sanity_val_steps": 0,
            "trainer.check_val_every_n_epoch": 5,
            "trainer.logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                               "init_args": {"save_dir": "runs", "name": None}},
        })  # fmt: skip

    #: hyperparameters that the command line decides even when a checkpoint is given (extend a run on resume)
    RUN_LENGTH_KEYS = ("max_generator_steps",)

    # ------------------------------------------------------------------------------------------------------------
    def parse_arguments(self, parser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except (argparse.ArgumentError, TypeError, ValueError) as err:  # jsonargparse with exit_on_error=False
            if find_user_error(err) is not None:
                raise
            if os.environ.get(VERBOSE_ENV):
                print("\n".join(str(e) for e in _chain(err)), file=sys.stderr)
            raise ConfigError(describe_parse_error(err)) from None

    def _sub(self) -> Namespace:
        sub = self.config.get("subcommand")
        return self.config[sub] if sub else self.config

    def run_name(self) -> str:
        """The run's folder name under ``runs/``: the config file's name, else the model class's."""
        cfg = self._sub()
        configs = cfg.get("config") or []
        if configs:
            return Path(str(configs[-1])).stem
        model = cfg.get("model")
        class_path = getattr(model, "class_path", None) or "gan"
        return class_path.rpartition(".")[2].lower()

    def _logger_cfg(self) -> Any:
        logger = self._sub().get("trainer", {}).get("logger")
        if isinstance(logger, Namespace) and str(logger.get("class_path", "")).rpartition(".")[2] in VERSIONED_LOGGERS:
            return logger
        return None

    def _last_checkpoint(self) -> str | None:
        """``--ckpt_path last``: the newest ``last.ckpt`` of this config's runs (``<save_dir>/<name>/*/checkpoints``,
        or, without a versioned logger, ``<default_root_dir>/checkpoints`` and ``runs/<name>/*/checkpoints``)."""
        logger = self._logger_cfg()
        patterns = []
        if logger is not None:
            init = logger.get("init_args") or {}
            patterns.append(Path(str(init.get("save_dir") or "runs")) / str(init.get("name") or self.run_name()) / "*")
        else:
            root_dir = self._sub().get("trainer", {}).get("default_root_dir")
            if root_dir:
                patterns.append(Path(str(root_dir)))
            patterns.append(Path("runs") / self.run_name() / "*")
        found = [p for pattern in patterns for p in glob.glob(str(pattern / "checkpoints" / "last*.ckpt"))]
        return max(found, key=os.path.getmtime) if found else None

    def parse_checkpoint_path(self) -> None:
        """Lightning's version reads ``--ckpt_path`` with a raw ``torch.load`` (a corrupt file gives a traceback) and
        lets every checkpoint hyperparameter override the command line. Here ``last`` is resolved to this config's
        newest ``last.ckpt``, the file is read weights-only with one-line errors, a checkpoint of another model class
        is refused by name, and the run length stays the command line's, so a finished run can be extended by
        resuming with a larger ``max_generator_steps``."""
        sub = self.config.get("subcommand")
        self._checkpoint_state: dict[str, Any] = {}
        if not sub:
            return
        self._fill_logger_name()
        ckpt_path = self.config[sub].get("ckpt_path")
        if str(ckpt_path) == "last":
            found = self._last_checkpoint()
            if found is None:
                if sub == "fit":
                    print(f"gan-modules: --ckpt_path last: no last.ckpt under runs/{self.run_name()}; starting a new "
                          "run", file=sys.stderr)
                    self.config[sub]["ckpt_path"] = None
                    return
                raise CheckpointError(f"--ckpt_path last: no last.ckpt under runs/{self.run_name()}; pass the "
                                      "checkpoint's path")
            self.config[sub]["ckpt_path"] = ckpt_path = found
        if not ckpt_path or str(ckpt_path) in ("best", "hpc", "registry"):
            return
        checkpoint = read_checkpoint(ckpt_path)
        self._checkpoint_state = checkpoint.get("gan_modules") or {}
        model_cfg = self.config[sub].get("model")
        class_path = getattr(model_cfg, "class_path", None) if model_cfg is not None else None
        if class_path:
            cls = MODELS.get(class_path.rpartition(".")[2])
            if cls is not None:
                check_checkpoint_class(self._checkpoint_state.get("class_path"), cls)
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
        except (SystemExit, TypeError, ValueError):
            raise CheckpointError(
                f"the hyperparameters saved in {ckpt_path} do not fit this config; use the config of the run that "
                "wrote the checkpoint"
            ) from None

    def _fill_logger_name(self) -> None:
        logger = self._logger_cfg()
        if logger is not None:
            init = logger.get("init_args")
            if init is None:
                logger["init_args"] = init = Namespace()
            if init.get("name") in (None, "", "lightning_logs"):
                init["name"] = self.run_name()

    # ------------------------------------------------------------------------------------------------------------
    def before_instantiate_classes(self) -> None:
        cfg = self._sub()
        init = cfg.get("model", {}).get("init_args", {}) or {}
        trainer = cfg.get("trainer", {})
        budget = init.get("max_generator_steps")
        if budget is not None:
            if trainer.get("max_steps", -1) not in (-1, None):
                raise ConfigError(
                    "set either model.init_args.max_generator_steps (generator steps, what papers count) or "
                    "trainer.max_steps (every optimizer step of both networks, Lightning #17958), not both"
                )
            if trainer.get("max_epochs") is None:
                trainer["max_epochs"] = -1  # the generator-step budget decides when to stop
        ckpt_path = cfg.get("ckpt_path")
        done = self._checkpoint_state.get("generator_steps")
        if self.subcommand == "fit" and ckpt_path and budget is not None and done is not None and done >= budget:
            raise NothingToDo(f"{ckpt_path} already has {done} generator steps (max_generator_steps={budget}): "
                              "nothing to train and nothing written; raise --model.init_args.max_generator_steps to "
                              "extend the run")
        self._place_run(trainer, ckpt_path)

    def _place_run(self, trainer: Namespace, ckpt_path: Any) -> None:
        """Outputs in one place: a resumed fit and validate/test/predict with a checkpoint write into the checkpoint's
        run directory (no new, empty version folder); ``--trainer.logger false`` gets a run directory under runs/
        too (never the current directory)."""
        run = None
        if ckpt_path and str(ckpt_path) not in ("best", "hpc", "registry"):
            path = Path(str(ckpt_path)).resolve()
            run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        logger = self._logger_cfg()
        if logger is not None:
            init = logger["init_args"]
            root = (Path(str(init.get("save_dir") or "runs")) / str(init.get("name"))).resolve()
            if run is not None and run.parent == root:
                init["version"] = run.name  # continue the checkpoint's run: same folder, same TensorBoard run
            elif run is not None and self.subcommand != "fit":
                trainer["logger"] = False
                trainer["default_root_dir"] = str(run)
            return
        if trainer.get("logger") is False and not trainer.get("default_root_dir"):
            if run is not None:
                trainer["default_root_dir"] = str(run)
            else:
                root = Path("runs") / self.run_name()
                taken = {int(p.name[8:]) for p in root.glob("version_*") if p.name[8:].isdigit()}
                trainer["default_root_dir"] = str(root / f"version_{max(taken, default=-1) + 1}")

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        trainer = self.trainer
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own CheckpointIO plugin stays
            trainer.strategy.checkpoint_io = SafeCheckpointIO()  # weights-only reads, one-line CheckpointError
        # Lightning's epoch bar -> one bar in generator steps (a user's own bar, or none, stays as it is)
        trainer.callbacks = [GANProgressBar(c.refresh_rate, c.process_position) if type(c) is TQDMProgressBar else c
                             for c in trainer.callbacks]
        # callbacks that do nothing in this command cost a hook call per batch: drop them
        keep_metrics = self.subcommand in ("validate", "test") or self._sub().get("metrics", {}).get(
            "every_n_generator_steps", 0)
        unused = {
            "fit": (GeneratedImageWriter,) + (() if keep_metrics else (GenerativeMetrics,)),
            "validate": (GeneratedImageWriter, SampleGrid, TrainingPlots),
            "test": (GeneratedImageWriter, SampleGrid, TrainingPlots),
            "predict": (GenerativeMetrics, SampleGrid, TrainingPlots),
        }.get(self.subcommand, ())
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, unused)]

    def after_fit(self) -> None:
        """The end-of-fit summary, when no GAN progress bar printed it (``--trainer.enable_progress_bar false``)."""
        trainer, model = self.trainer, self.model
        if any(isinstance(c, GANProgressBar) for c in trainer.callbacks) or not trainer.is_global_zero:
            return
        ckpt = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else None
        print(fit_summary(type(model).__name__, getattr(model, "generator_steps", 0),
                          model.hparams.get("max_generator_steps"), run_dir(trainer), ckpt,
                          translation=isinstance(model, TranslationModule)), file=sys.stderr)


def run(args: list[str] | None = None) -> GANCLI:
    """Runs the CLI in-process and returns it (notebooks, tests). A user error prints one line after
    ``gan-modules: error:`` and raises ``SystemExit(2)``; anything else propagates."""
    quiet_third_party()
    argv = list(sys.argv[1:] if args is None else args)
    if "--verbose" in argv:  # full error texts, as GAN_MODULES_VERBOSE=1
        argv.remove("--verbose")
        os.environ[VERBOSE_ENV] = "1"
    subcommands = ("fit", "validate", "test", "predict")
    try:
        return GANCLI(
            AdversarialModule,
            ImageDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_callback=GANSaveConfig,
            seed_everything_default=0,
            parser_kwargs={"exit_on_error": False, **{s: {"exit_on_error": False} for s in subcommands}},
            args=argv,
        )
    except NothingToDo:
        raise
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
