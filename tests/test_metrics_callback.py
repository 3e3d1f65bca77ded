"""GenerativeMetrics in validate / test / fit and through the CLI on the embedded MNIST (shipped classifier)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger

from gan_modules import DCGAN, ConfigError
from gan_modules.callbacks import GenerativeMetrics
from gan_modules.metrics import FEATURE_EXTRACTORS, FeatureExtractor
from tests.helpers import loader, trainer

TINY = dict(image_size=28, channels=1, ngf=4, ndf=4, latent_dim=8)


class Pooled(FeatureExtractor):
    """Features: 4x4 average pooling of the image (16-d); logits: the first 4 of them."""

    name = "pooled"
    num_features = 16
    num_classes = 4

    def forward(self, images):
        f = F.adaptive_avg_pool2d(images.float(), 4).flatten(1)
        return f, 5 * f[:, :4]


@pytest.fixture(autouse=True)
def pooled_extractor(monkeypatch):
    monkeypatch.setitem(FEATURE_EXTRACTORS, "pooled", lambda **kw: Pooled())


class Data(L.LightningDataModule):
    def train_dataloader(self):
        return loader(n=32, batch_size=8)

    def val_dataloader(self):
        return loader(n=24, batch_size=8, seed=1)


def test_validate_logs_metrics_with_protocol_and_is_reproducible(tmp_path):
    model = DCGAN(**TINY)
    cb = GenerativeMetrics("pooled", num_samples=20, kid_subsets=5, kid_subset_size=10)
    tr = trainer(tmp_path, callbacks=[cb])
    first = tr.validate(model, loader(n=40, batch_size=8), verbose=False)[0]
    for key in ("val/fid", "val/kid_mean", "val/kid_std", "val/is_mean", "val/is_std", "val/precision", "val/recall"):
        assert key in first and torch.isfinite(torch.tensor(first[key])), key
    assert first["val/fid_num_samples"] == 20  # 2 full batches + 4 of the third
    assert first["val/fid"] > 0
    report = json.loads((tmp_path / "metrics" / "val_step_0000000.json").read_text())
    assert report["protocol"]["feature_extractor"] == "pooled" and report["protocol"]["feature_dim"] == 16
    assert report["protocol"]["num_real"] == report["protocol"]["num_generated"] == 20
    assert report["protocol"]["kid_subset_size"] == 10 and report["results"]["fid"] == pytest.approx(first["val/fid"])
    torch.manual_seed(123)  # the global RNG does not matter: generated noise is seeded per batch
    again = trainer(tmp_path, callbacks=[cb]).validate(model, loader(n=40, batch_size=8), verbose=False)[0]
    assert again["val/fid"] == pytest.approx(first["val/fid"], rel=1e-6)
    test = trainer(tmp_path, callbacks=[cb]).test(model, loader(n=40, batch_size=8), verbose=False)[0]
    assert test["test/fid"] == pytest.approx(first["val/fid"], rel=1e-6)  # same images, same seeds
    assert (tmp_path / "metrics" / "test_step_0000000.json").exists()


def test_fit_computes_metrics_every_n_generator_steps_on_the_val_split(tmp_path):
    model = DCGAN(**TINY, max_generator_steps=4)
    cb = GenerativeMetrics("pooled", num_samples=16, every_n_generator_steps=2, kid_subsets=2, kid_subset_size=8)
    logger = CSVLogger(tmp_path, name="run", version=0)
    tr = trainer(tmp_path, callbacks=[cb], logger=logger, limit_val_batches=0)
    tr.fit(model, datamodule=Data())
    written = sorted(p.name for p in (tmp_path / "run" / "version_0" / "metrics").glob("*.json"))
    assert written == ["val_step_0000002.json", "val_step_0000004.json"]  # not repeated at the end of training
    rows = (tmp_path / "run" / "version_0" / "metrics.csv").read_text()
    assert "val/fid" in rows and "val/fid_num_samples" in rows
    assert cb.last_results["protocol"]["num_real"] == 16 and cb.last_results["protocol"]["generator_steps"] == 4


def test_batches_without_images_skip_metrics_with_a_warning(tmp_path):
    model = DCGAN(**TINY)
    cb = GenerativeMetrics("pooled", num_samples=8)
    batch = {"source": torch.zeros(2, 1, 28, 28)}
    cb._start(trainer(tmp_path), model)
    with pytest.warns(UserWarning, match="no 'image' entry"):
        cb._update(trainer(tmp_path), model, batch, 0)
    assert not cb._active  # the metrics are off for this run (the suite was built at the start, on every rank)


def test_auto_inception_without_weights_skips_metrics_and_validate_still_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GAN_MODULES_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("auto must not download"))
    cb = GenerativeMetrics("auto", num_samples=8)  # no datamodule: auto -> inception
    with pytest.warns(UserWarning, match="FID/KID/IS skipped: Inception weights not found at .*put the file there"):
        out = trainer(tmp_path, callbacks=[cb]).validate(DCGAN(**TINY), loader(n=8), verbose=False)[0]
    assert "val/d_real_prob" in out and "val/fid" not in out


def test_bad_settings_and_unknown_extractor_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"metrics.num_samples must be >= 0, got -1"):
        GenerativeMetrics(num_samples=-1)
    with pytest.raises(ConfigError, match=r"metrics.kid_subset_size must be >= 1"):
        GenerativeMetrics(kid_subset_size=0)
    cb = GenerativeMetrics("vgg", num_samples=8)
    with pytest.raises(ConfigError, match=r"unknown feature extractor 'vgg'; choose one of mnist_classifier"):
        trainer(tmp_path, callbacks=[cb]).validate(DCGAN(**TINY), loader(n=8), verbose=False)


def test_cli_validate_on_embedded_mnist_prints_fid_and_kid_with_the_shipped_classifier(tmp_path, caplog):
    from gan_modules.cli import run

    common = ["--config", "configs/dcgan_mnist.yaml", "--trainer.logger", "false", "--trainer.default_root_dir",
              str(tmp_path), "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
              "--model.init_args.ngf", "4", "--model.init_args.ndf", "4", "--data.init_args.batch_size", "16",
              "--checkpoint.dirpath", str(tmp_path / "ckpt"), "--trainer.num_sanity_val_steps", "0"]  # fmt: skip
    run(["fit", *common, "--model.init_args.max_generator_steps", "2", "--trainer.limit_val_batches", "0"])
    with caplog.at_level("INFO"):
        cli = run(["validate", *common, "--ckpt_path", str(tmp_path / "ckpt" / "last.ckpt"),
                    "--trainer.limit_val_batches", "3", "--metrics.num_samples", "40"])  # fmt: skip
    metrics = cli.trainer.callback_metrics
    assert metrics["val/fid_num_samples"].item() == 40
    assert metrics["val/fid"].item() > 0 and torch.isfinite(metrics["val/kid_mean"])
    line = next(r.getMessage() for r in caplog.records if "FID" in r.getMessage())
    assert "40 real val images vs 40 generated" in line and "mnist_classifier (128-d)" in line
    report = json.loads(next((tmp_path / "metrics").glob("val_step_*.json")).read_text())
    assert report["protocol"]["feature_extractor"] == "mnist_classifier"
    assert report["protocol"]["datamodule"] == "EmbeddedMNISTDataModule"
    assert report["protocol"]["classifier_crop"] == [2, 28]  # the config's padded 32 px digits, border cropped off
