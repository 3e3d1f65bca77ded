"""End-to-end training throughput (data + DCGAN step through the Lightning Trainer) with two input pipelines:

- ``jpeg``: torchvision ``ImageFolder`` of CelebA-size JPEGs with the DCGAN tutorial's transforms (centre crop 178,
  resize 64, to tensor, normalize), decoded by DataLoader worker processes every epoch;
- ``cache``: ``ImageFolderDataModule(cache_dir=...)`` on the same files: decoded and resized once into a uint8 memory
  map (the build time is reported separately), flips and normalization on the device, the cache on the GPU when
  it fits.

The JPEGs are generated (178×218, random smooth colour fields, quality 90) into a temporary folder that is deleted
afterwards. Repeats alternate the two pipelines; the final line is ``ratio=<cache/jpeg>`` (median of adjacent pairs).

    python benchmarks/data_pipeline.py --device cpu --quick
    python benchmarks/data_pipeline.py --device cuda --num-images 20000 --workers 16 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from datamodules import ImageFolderDataModule
from gan_modules import DCGAN


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="few images and steps, narrow nets (CPU: a few minutes)")
    p.add_argument("--tiny", action="store_true", help="a smoke run of a few seconds (tests)")
    p.add_argument("--num-images", type=int, default=None, help="generated JPEGs (default 2000; quick 256)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (quick 32)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers of the JPEG pipeline (default 4; "
                   "quick 2)")
    p.add_argument("--width", type=int, default=None, help="DCGAN ngf = ndf (default 64; quick 8)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default 50; quick 12)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per repeat (default 5; quick 2)")
    p.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 3)")
    p.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed", "16-mixed"))
    p.add_argument("--data-dir", type=Path, default=None, help="use these JPEGs instead of generating them")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    small = args.quick or args.tiny
    defaults = dict(num_images=256 if small else 2000, batch_size=32 if small else 128, workers=2 if small else 4,
                    width=8 if small else 64, steps=12 if small else 50, warmup=2 if small else 5, repeats=3)
    if args.tiny:
        defaults.update(num_images=24, batch_size=4, workers=0, width=4, steps=2, warmup=1, repeats=1)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is visible; use --device cpu")
    return args


def generate_jpegs(root: Path, n: int) -> None:
    """CelebA-size (178×218) JPEGs with smooth random content (so they compress like photos, not noise)."""
    from PIL import Image

    folder = root / "faces"  # torchvision's ImageFolder wants one folder per class
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        low = torch.rand(1, 3, 7, 6, generator=g)
        img = torch.nn.functional.interpolate(low, size=(218, 178), mode="bicubic", align_corners=False)[0]
        img = (img.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(img).save(folder / f"{i:06d}.jpg", "JPEG", quality=90)


class Timer(L.Callback):
    """Wall time from the start of the ``warmup``-th batch (counted across epochs) to the end of training."""

    def __init__(self, warmup: int, device: str):
        self.warmup, self.device, self.start, self.end, self.seen = warmup, device, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen += 1
        if self.seen == self.warmup + 1:
            if self.device == "cuda":
                torch.cuda.synchronize()
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.end = time.perf_counter()


class TutorialFolder(L.LightningDataModule):
    """The DCGAN tutorial's pipeline: ``ImageFolder`` + CenterCrop(178) + Resize(64) + ToTensor + Normalize."""

    def __init__(self, root: Path, batch_size: int, workers: int):
        super().__init__()
        tf = transforms.Compose([transforms.CenterCrop(178), transforms.Resize(64), transforms.CenterCrop(64),
                                 transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
        self.dataset = datasets.ImageFolder(str(root), transform=tf)
        self.batch_size, self.workers = batch_size, workers

    def train_dataloader(self):
        collate = lambda items: {"image": torch.stack([x for x, _ in items])}  # noqa: E731
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, drop_last=True, collate_fn=collate,
                          num_workers=self.workers, persistent_workers=self.workers > 0,
                          pin_memory=torch.cuda.is_available())


def fit_once(args, model: DCGAN, dm) -> float:
    timer = Timer(args.warmup, args.device)
    trainer = L.Trainer(accelerator=args.device, devices=1, precision=args.precision, max_epochs=-1,
                        max_steps=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
    model.hparams.max_generator_steps = model.generator_steps + args.warmup + args.steps
    trainer.fit(model, datamodule=dm)
    return args.steps * args.batch_size / (timer.end - timer.start)


def main(argv=None) -> dict:
    args = parse_args(argv)
    tmp = None
    root = args.data_dir
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="gan_modules_jpegs_"))
        root = tmp / "jpegs"
        t0 = time.perf_counter()
        generate_jpegs(root, args.num_images)
        print(f"generated {args.num_images} JPEGs of 178x218 in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        needed = (args.warmup + args.steps) * args.batch_size
        if needed > args.num_images:
            print(f"note: {needed} images per run > {args.num_images}: epochs repeat (the cache path reads no file "
                  "twice anyway)")
        jpeg = TutorialFolder(root, args.batch_size, args.workers)
        cache_dir = (tmp or Path(tempfile.mkdtemp())) / "cache"
        cached = ImageFolderDataModule(str(root), image_size=64, channels=3, crop_size=178, flip=True,
                                       batch_size=args.batch_size, val_fraction=0.0, num_workers=0,
                                       cache_dir=str(cache_dir), check_images="none")
        t0 = time.perf_counter()
        cached.setup()
        build_s = time.perf_counter() - t0
        print(f"cache built in {build_s:.1f} s ({len(cached.dataset('train'))} images)", flush=True)
        torch.manual_seed(0)
        model = DCGAN(image_size=64, channels=3, ngf=args.width, ndf=args.width)
        rates = {"jpeg": [], "cache": []}
        ratios = []
        for r in range(args.repeats):
            order = ("jpeg", "cache") if r % 2 == 0 else ("cache", "jpeg")
            pair = {}
            for side in order:
                pair[side] = fit_once(args, model, jpeg if side == "jpeg" else cached)
                rates[side].append(pair[side])
            ratios.append(pair["cache"] / pair["jpeg"])
            print(f"  repeat {r + 1}/{args.repeats}: jpeg {pair['jpeg']:.1f} img/s, cache {pair['cache']:.1f} img/s, "
                  f"ratio {ratios[-1]:.2f}", flush=True)
        ratio = statistics.median(ratios)
        print()
        print("| pipeline | img/s (data + DCGAN step) |")
        print("|---|---|")
        print(f"| ImageFolder JPEG, {args.workers} workers | {statistics.median(rates['jpeg']):.1f} |")
        print(f"| decoded uint8 cache (built once in {build_s:.1f} s) | {statistics.median(rates['cache']):.1f} |")
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        settings.update(torch=torch.__version__, lightning=L.__version__, python=platform.python_version(),
                        device_name=torch.cuda.get_device_name() if args.device == "cuda" else platform.machine(),
                        threads=torch.get_num_threads())
        out = {"settings": settings, "jpeg_img_s": rates["jpeg"], "cache_img_s": rates["cache"], "ratios": ratios,
               "cache_build_s": build_s, "ratio": ratio}
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2))
        print(f"ratio={ratio:.3f}")
        return out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
