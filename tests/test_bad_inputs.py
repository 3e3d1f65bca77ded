"""Bad inputs a user meets with data and checkpoints: each gives one line that says what is wrong and what to do,
both from the Python API and through the CLI (``gan-modules: error: <line>``, exit code 2, no traceback)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from datamodules import CIFAR10DataModule, DataError, ImageFolderDataModule, MNISTDataModule
from gan_modules import CGAN, DCGAN, GAN, CheckpointError, ConfigError
from gan_modules.callbacks import GANCheckpoint
from gan_modules.checkpoint import read_checkpoint
from gan_modules.cli import main
from gan_modules.registry import load_model

from .helpers import loader, trainer

ROOT = Path(__file__).resolve().parents[1]
DCGAN_MNIST = str(ROOT / "configs/dcgan_mnist.yaml")
TINY_CLI = [
    "--model.init_args.ngf", "4", "--model.init_args.ndf", "4", "--model.init_args.max_generator_steps", "1",
    "--data.init_args.batch_size", "4", "--trainer.limit_val_batches", "0",
]  # fmt: skip


def _common(tmp_path: Path) -> list[str]:
    return [
        "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu",
        "--trainer.devices", "1", "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true",
        "--trainer.num_sanity_val_steps", "0", "--checkpoint.dirpath", str(tmp_path / "ckpt"),
    ]  # fmt: skip


def _cli_error(capsys, args: list[str]) -> str:
    """Runs the CLI expecting a user error; returns its one line (after asserting exit code 2 and one line)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("gan-modules: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    line = lines[0]
    assert "\n" not in line
    return line


def _save_png(path: Path, mode: str = "RGB", size: tuple[int, int] = (20, 20), color=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if color is None:
        color = {"L": 128, "LA": (128, 0), "RGBA": (255, 0, 0, 0), "P": 3, "RGB": (0, 128, 255)}[mode]
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture(scope="module")
def gan_ckpt(tmp_path_factory) -> Path:
    """A checkpoint written by fit for a tiny (MLP) ``GAN``, which a DCGAN must refuse."""
    tmp = tmp_path_factory.mktemp("gan_ckpt")
    model = GAN(g_hidden=[8], d_hidden=[8], latent_dim=4, image_size=28, channels=1, max_generator_steps=1,
                ema_decay=None)  # fmt: skip
    tr = trainer(tmp)
    tr.fit(model, loader(n=4, batch_size=4))
    path = tmp / "gan.ckpt"
    tr.save_checkpoint(path)
    return path


# ---------------------------------------------------------------------------------------------------- data sets
def test_bad_input_mnist_missing_offline(tmp_path):
    dm = MNISTDataModule(data_dir=str(tmp_path))
    where = re.escape(str(tmp_path))
    with pytest.raises(DataError, match=rf"^MNIST not found in {where} .*pass --data.download true$"):
        dm.setup("fit")


def test_bad_input_cifar10_missing_offline(tmp_path):
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(DataError, match=r"^CIFAR-10 not found in .*cifar-10-batches-py; pass --data.download true"):
        dm.setup("fit")


def test_bad_input_cifar10_missing_offline_through_the_cli(tmp_path, capsys):
    line = _cli_error(capsys, ["fit", "--config", DCGAN_MNIST, *_common(tmp_path), *TINY_CLI,
                               "--data", "datamodules.CIFAR10DataModule", "--data.init_args.data_dir", str(tmp_path),
                               "--data.init_args.download", "false"])  # fmt: skip
    assert re.fullmatch(r"gan-modules: error: CIFAR-10 not found in .*; pass --data.download true, or extract \S+ "
                        r"into .*", line), line  # fmt: skip


def test_bad_input_empty_image_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(data_dir=str(tmp_path / "empty"), num_workers=0)
    with pytest.raises(DataError, match=r"^no images in .*empty \(searched recursively for .jpg, .*\); check "
                                        r"--data.data_dir$"):  # fmt: skip
        dm.setup("fit")


def test_bad_input_missing_image_folder(tmp_path):
    dm = ImageFolderDataModule(data_dir=str(tmp_path / "nowhere"), num_workers=0)
    with pytest.raises(DataError, match=r"^image folder .*nowhere does not exist; check --data.data_dir$"):
        dm.setup("fit")


def test_bad_input_corrupt_images_are_skipped_with_a_counted_warning(tmp_path):
    for i in range(6):
        _save_png(tmp_path / f"good{i}.png")
    (tmp_path / "bad0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # truncated after the signature
    (tmp_path / "bad1.jpg").write_bytes(b"this is not a jpeg")
    good = tmp_path / "good0.png"
    (tmp_path / "bad2.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated file
    dm = ImageFolderDataModule(data_dir=str(tmp_path), image_size=16, num_workers=0, batch_size=2, val_fraction=0.2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    messages = [str(w.message) for w in caught if "cannot be read" in str(w.message)]
    assert len(messages) == 1, messages
    assert "skipped 3 of 9 image files that cannot be read" in messages[0]
    assert all(name in messages[0] for name in ("bad0.png", "bad1.jpg", "bad2.png"))
    assert sum(len(dm.dataset(s)) for s in ("train", "val")) == 6


def test_bad_input_all_images_corrupt(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    dm = ImageFolderDataModule(data_dir=str(tmp_path), num_workers=0)
    with pytest.raises(DataError, match=r"^none of the 2 image files can be read, e\.g\. .*a\.png \(.*\); replace "
                                        r"the files or point --data.data_dir elsewhere$"):  # fmt: skip
        dm.setup("fit")


def test_bad_input_mixed_modes_are_converted(tmp_path):
    _save_png(tmp_path / "rgb.png", "RGB")
    _save_png(tmp_path / "gray.png", "L")
    _save_png(tmp_path / "rgba.png", "RGBA")  # fully transparent red: composited over white
    _save_png(tmp_path / "la.png", "LA")
    _save_png(tmp_path / "palette.png", "P")
    dm = ImageFolderDataModule(data_dir=str(tmp_path), image_size=8, channels=3, num_workers=0, batch_size=5,
                               val_fraction=0.0, drop_last=False)  # fmt: skip
    dataset = dm.dataset("train")
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    assert images.shape == (5, 3, 8, 8) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    by_name = {p.name: img for p, img in zip(dataset.paths, images)}
    gray = by_name["gray.png"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # gray repeated to RGB
    assert by_name["rgba.png"] == pytest.approx(torch.ones(3, 8, 8), abs=1e-6)  # transparent over white = white


def test_bad_input_crop_larger_than_the_image_is_capped(tmp_path):
    for i in range(2):
        _save_png(tmp_path / f"{i}.png", "RGB", size=(10, 14), color=(200, 10 * i, 0))
    dm = ImageFolderDataModule(data_dir=str(tmp_path), image_size=16, crop_size=64, num_workers=0, batch_size=2,
                               val_fraction=0.0)  # fmt: skip
    image = dm.dataset("train")[0]["image"]
    assert image.shape == (3, 16, 16)  # crop capped at the shorter side (10), then upscaled to 16
    assert image.min() >= -1 and image.max() <= 1
    assert image[0].mean().item() == pytest.approx(200 / 127.5 - 1, abs=1e-2)  # a uniform image stays uniform


def test_bad_input_non_positive_crop_size(tmp_path):
    with pytest.raises(DataError, match=r"^crop_size must be a positive number of pixels or null, got 0$"):
        ImageFolderDataModule(data_dir=str(tmp_path), crop_size=0)


# ------------------------------------------------------------------------------------------ conditional models
def test_bad_input_label_beyond_num_classes_for_cgan():
    model = CGAN(image_size=28, channels=1, num_classes=10, ngf=4, ndf=4, latent_dim=8, ema_decay=None)
    batch = {"image": torch.zeros(2, 1, 28, 28), "label": torch.tensor([3, 12])}
    with pytest.raises(ConfigError, match=r"^labels range over \[3, 12\] but the model was built for num_classes=10; "
                                          r"set --model.init_args.num_classes 13$"):  # fmt: skip
        model.check_batch(batch)


# ------------------------------------------------------------------------------------------------- checkpoints
def test_bad_input_checkpoint_from_another_model_class(gan_ckpt):
    with pytest.raises(CheckpointError, match=r"^.*gan\.ckpt holds a GAN, not a DCGAN; pass a DCGAN checkpoint$"):
        load_model(gan_ckpt, expected=DCGAN)


def test_bad_input_checkpoint_from_another_model_class_via_load_from_checkpoint(gan_ckpt):
    model = DCGAN(ngf=4, ndf=4, latent_dim=4, image_size=28, channels=1, ema_decay=None)
    checkpoint = read_checkpoint(gan_ckpt)
    with pytest.raises(CheckpointError, match=r"^the checkpoint is from gan_modules\.gan\.GAN, not "
                                              r"gan_modules\.dcgan\.DCGAN; use the config of the run that wrote it"):
        model.on_load_checkpoint(checkpoint)


def test_bad_input_checkpoint_from_another_model_class_load_from_checkpoint_classmethod(gan_ckpt):
    with pytest.raises(CheckpointError, match=r"GAN.*DCGAN"):
        DCGAN.load_from_checkpoint(gan_ckpt, weights_only=True)



def test_bad_input_checkpoint_from_another_model_class_through_the_cli(tmp_path, capsys, gan_ckpt):
    line = _cli_error(capsys, ["validate", "--config", DCGAN_MNIST, *_common(tmp_path), *TINY_CLI,
                               "--ckpt_path", str(gan_ckpt)])  # fmt: skip
    assert re.fullmatch(r"gan-modules: error: the checkpoint is from gan_modules\.gan\.GAN, not "
                        r"gan_modules\.dcgan\.DCGAN; use the config of the run that wrote it .*", line), line


@pytest.mark.parametrize("content", [b"", b"\x00\x01random bytes\xff" * 40, "truncated"],
                         ids=["empty", "random", "truncated"])
def test_bad_input_corrupt_checkpoint(tmp_path, content, gan_ckpt):
    path = tmp_path / "bad.ckpt"
    data = gan_ckpt.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    with pytest.raises(CheckpointError, match=r"^checkpoint .*bad\.ckpt is corrupt or truncated \(.+\); resume from "
                                              r"an earlier checkpoint"):  # fmt: skip
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"is corrupt or truncated"):
        load_model(path)


def test_bad_input_corrupt_checkpoint_through_the_cli(tmp_path, capsys):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    line = _cli_error(capsys, ["validate", "--config", DCGAN_MNIST, *_common(tmp_path), *TINY_CLI,
                               "--ckpt_path", str(path)])  # fmt: skip
    assert re.fullmatch(r"gan-modules: error: checkpoint .*bad\.ckpt is corrupt or truncated \(.+\); resume from an "
                        r"earlier checkpoint .*", line), line  # fmt: skip


def test_bad_input_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"^checkpoint .*nowhere\.ckpt not found; pass the \.ckpt that fit wrote"):
        load_model(tmp_path / "nowhere.ckpt")


def test_bad_input_missing_checkpoint_through_the_cli(tmp_path, capsys):
    line = _cli_error(capsys, ["validate", "--config", DCGAN_MNIST, *_common(tmp_path), *TINY_CLI,
                               "--ckpt_path", str(tmp_path / "nowhere.ckpt")])  # fmt: skip
    assert "nowhere.ckpt not found" in line, line


def test_bad_input_last_checkpoint_survives_a_failing_run(tmp_path):
    """A resumed run that crashes at its first batch (data with the wrong channel count) leaves last.ckpt as it was."""
    tiny = {"ngf": 4, "ndf": 4, "latent_dim": 4, "image_size": 28, "channels": 1, "ema_decay": None}
    ckpt_dir = tmp_path / "ckpt"
    first = trainer(tmp_path, enable_checkpointing=True,
                    callbacks=[GANCheckpoint(dirpath=ckpt_dir, save_top_k=0, every_n_generator_steps=1)])
    first.fit(DCGAN(**tiny, max_generator_steps=1), loader(n=4, batch_size=4))
    last = ckpt_dir / "last.ckpt"
    assert last.is_file()
    before = last.read_bytes()
    second = trainer(tmp_path, enable_checkpointing=True,
                     callbacks=[GANCheckpoint(dirpath=ckpt_dir, save_top_k=0, every_n_generator_steps=1)])
    with pytest.raises(ConfigError, match=r"data has 3 channel\(s\) but the model was built for 1"):
        second.fit(DCGAN(**tiny, max_generator_steps=3), loader(n=4, batch_size=4, channels=3), ckpt_path=str(last))
    assert last.read_bytes() == before
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt"]  # no temporary file left behind
    assert load_model(last, expected=DCGAN).generator_steps == 1
