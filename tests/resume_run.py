"""A small fit for tests/test_resume.py's kill tests: ``python tests/resume_run.py OUT [--ckpt_path last]
[--slow SECONDS] [--every N]``. Tiny GAN on the embedded MNIST, deterministic on CPU, last.ckpt every N generator steps
into OUT (written atomically by GANCheckpoint); ``--slow`` sleeps after each batch so a test can kill it mid-run."""

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch

from gan_modules.callbacks import GANCheckpoint
from tests.test_resume import build


class SlowDown(L.Callback):
    def __init__(self, seconds: float, marker: Path):
        self.seconds, self.marker = seconds, marker

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.marker.touch()
        time.sleep(self.seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--every", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    L.seed_everything(0)
    model, data = build("GAN")
    callbacks = [GANCheckpoint(dirpath=args.out, every_n_generator_steps=args.every, save_top_k=0),
                 SlowDown(args.slow, args.out / "started")]
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(default_root_dir=args.out, accelerator="cpu", devices=1, logger=False, deterministic=True,
                        max_epochs=-1, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        num_sanity_val_steps=1, callbacks=callbacks)
    trainer.fit(model, datamodule=data, ckpt_path=args.ckpt_path)
    print("done", model.generator_steps, file=sys.stderr)


if __name__ == "__main__":
    main()
