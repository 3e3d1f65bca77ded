"""Suite-wide settings: one torch thread per test worker (the suite runs on 2 cores with pytest-xdist), W&B off
unless a test turns it on, Lightning's tips quiet."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
