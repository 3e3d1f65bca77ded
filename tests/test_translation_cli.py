"""Pix2Pix, CycleGAN and StarGAN end to end through the real CLI on their offline tasks (tiny widths): fit, predict
on a folder of odd-sized images (names kept, sizes kept, comparison strips) or on the test split (StarGAN: one
output per target domain), export of G to TorchScript and ONNX matching eager outputs, and exact resume of CycleGAN
with its history pools."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from gan_modules.cli import run as run_cli
from gan_modules.export import example_inputs, export, load_translation_model
from gan_modules.export import main as export_main

from .helpers import trainer

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--trainer.logger", "false", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true",
          "--trainer.num_sanity_val_steps", "0", "--trainer.limit_val_batches", "1", "--sample_grid.num_samples", "4"]
TINY = {
    "pix2pix_fashion_edges": ["--model.init_args.ngf", "4", "--model.init_args.ndf", "4",
                              "--data.init_args.max_train", "16", "--data.init_args.max_test", "4"],
    "cyclegan_fashion_sneaker_boot": ["--model.init_args.ngf", "4", "--model.init_args.ndf", "4",
                                      "--model.init_args.n_residual_blocks", "1", "--data.init_args.max_train", "16",
                                      "--data.init_args.max_test", "4"],
    "stargan_mnist_colors": ["--model.init_args.ngf", "4", "--model.init_args.ndf", "4",
                             "--model.init_args.n_residual_blocks", "1", "--model.init_args.repeat_num", "1",
                             "--data.init_args.num_images", "40", "--data.init_args.num_test", "8"],
}


def run(config: str, tmp_path: Path, *extra: str, command: str = "fit"):
    args = [command, "--config", str(ROOT / "configs" / f"{config}.yaml"), *COMMON, *TINY[config],
            "--trainer.default_root_dir", str(tmp_path), "--checkpoint.dirpath", str(tmp_path / "ckpt"),
            "--data.init_args.batch_size", "4", *extra]
    if config.startswith("stargan"):
        args += ["--data.init_args.cache_dir", str(tmp_path / "colors")]
    return run_cli(args)


def odd_sized_inputs(folder: Path, channels: int) -> list[str]:
    folder.mkdir()
    names = []
    for i, (h, w) in enumerate([(37, 45), (20, 33)]):
        shape = (h, w) if channels == 1 else (h, w, 3)
        Image.fromarray(np.random.default_rng(i).integers(0, 256, shape).astype(np.uint8)).save(folder / f"in{i}.png")
        names.append(f"in{i}.png")
    return names


def assert_export_matches_eager(model, out_dir: Path) -> None:
    import onnxruntime as ort

    written = export(model, out_dir, formats=("pt2", "onnx"))
    args = example_inputs(model, batch=3)  # a batch size other than the traced one (dynamic axes)
    if hasattr(model, "c_dim"):
        eager = model.run_generator(args[0], model.as_vector(args[1]))
    else:
        eager = model.run_generator(args[0], key="a2b" if hasattr(model, "pools") else None)
    scripted = torch.export.load(str(written["pt2"])).module()(*args)
    session = ort.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    feeds = dict(zip(["image", "label"], [a.numpy() for a in args]))
    onnx_out = torch.from_numpy(session.run(["output"], feeds)[0])
    assert torch.allclose(scripted, eager, atol=1e-5), (scripted - eager).abs().max()
    assert torch.allclose(onnx_out, eager, atol=1e-4), (onnx_out - eager).abs().max()


@pytest.mark.parametrize("config", ["pix2pix_fashion_edges", "cyclegan_fashion_sneaker_boot"])
def test_fit_then_translate_a_folder_of_odd_sized_images_and_export(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run(config, tmp_path, "--model.init_args.max_generator_steps", "2")
    assert cli.model.generator_steps == 2
    assert (tmp_path / "samples" / "final.png").exists()
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    names = odd_sized_inputs(tmp_path / "inputs", channels=1)
    out = tmp_path / "translated"
    run(config, tmp_path, "--ckpt_path", str(ckpt), "--data.init_args.predict_dir", str(tmp_path / "inputs"),
        "--predict_writer.output_dir", str(out), command="predict")
    for name, size in zip(names, [(45, 37), (33, 20)]):
        with Image.open(out / name) as im:
            assert im.size == size  # padded to the generator's multiple, cropped back
        with Image.open(out / "comparisons" / name) as im:
            assert im.size == (size[0] * (2 if config.startswith("pix2pix") else 3), size[1])  # in | out [| rec]
    assert_export_matches_eager(load_translation_model(ckpt), tmp_path / "exported")


def test_stargan_translates_the_test_split_to_every_domain_and_exports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("stargan_mnist_colors", tmp_path, "--model.init_args.max_generator_steps", "2")
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    out = tmp_path / "translated"
    run("stargan_mnist_colors", tmp_path, "--ckpt_path", str(ckpt), "--predict_writer.output_dir", str(out),
        "--trainer.limit_predict_batches", "1", command="predict")
    comparisons = sorted(p.name for p in (out / "comparisons").glob("*.png"))
    assert len(comparisons) == 8
    stem = comparisons[0][:-4]
    assert {p.name for p in out.glob(f"{stem}_*.png")} == {f"{stem}_{d}.png" for d in ("Red", "Green", "Blue",
                                                                                        "Inverted")}
    with Image.open(out / "comparisons" / comparisons[0]) as im:
        assert im.size == (32 * 5, 32)  # input + 4 domains
    model = load_translation_model(ckpt)
    assert model.label_type == "multi_label" and model.hparams.test_mode == "train"
    assert_export_matches_eager(model, tmp_path / "exported")
    assert export_main([str(tmp_path / "nope.ckpt")]) == 2


def test_cyclegan_resume_is_exact_with_its_history_pools(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from datamodules import FashionUnpairedDataModule
    from gan_modules import CycleGAN

    def setup(callbacks=()):
        L.seed_everything(0)
        model = CycleGAN(image_size=32, channels=1, ngf=4, ndf=4, n_residual_blocks=1, pool_size=3,
                         max_generator_steps=6)
        data = FashionUnpairedDataModule(max_train=8, max_test=4, batch_size=2)  # 4 batches per epoch
        return model, data, trainer(tmp_path, limit_val_batches=0, callbacks=list(callbacks),
                                    enable_checkpointing=bool(callbacks))

    # global_step counts both optimizers: 6 = after 3 batches (mid-epoch, pools already full)
    ckpt = ModelCheckpoint(dirpath=tmp_path, filename="{step}", every_n_train_steps=6, save_top_k=-1)
    straight, data, tr = setup([ckpt])
    tr.fit(straight, data)
    resumed, data, tr = setup()
    mid = torch.load(tmp_path / "step=6.ckpt", weights_only=False)["gan_modules"]
    pools = mid["rng"]["ranks"][0]["variant"]["image_pools"]  # per-rank state: rank 0 of 1
    assert mid["generator_steps"] == 3 and len(pools["a"]["images"]) == 3
    tr.fit(resumed, data, ckpt_path=tmp_path / "step=6.ckpt")
    assert resumed.generator_steps == straight.generator_steps == 6
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    for side in ("a", "b"):
        assert len(resumed.pools[side]) == 3
        assert all(torch.equal(x, y) for x, y in zip(straight.pools[side].images, resumed.pools[side].images))
    assert resumed.lr_schedulers()[0].last_epoch == straight.lr_schedulers()[0].last_epoch  # per-epoch schedule
