"""Tiny in-test data and trainers shared by the test files (no datamodule needed)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset


class RandomImages(Dataset):
    """Deterministic random images in [-1, 1] with labels, as batch dicts."""

    def __init__(self, n: int = 64, channels: int = 1, size: int = 28, num_classes: int = 10, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, channels, size, size, generator=g) * 2 - 1
        self.labels = torch.randint(0, num_classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i]}


def loader(n: int = 64, batch_size: int = 8, **kwargs) -> DataLoader:
    return DataLoader(RandomImages(n, **kwargs), batch_size=batch_size, shuffle=False, drop_last=True)


def trainer(tmp_path, **kwargs) -> L.Trainer:
    opts = dict(default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, max_epochs=-1)
    opts.update(kwargs)
    return L.Trainer(**opts)


class Crash(L.Callback):
    """A callback that fails at the start of training (the CLI must exit 1 with the traceback: a crash, not a user
    error)."""

    def on_train_start(self, trainer, pl_module):
        raise RuntimeError("deliberate crash")
