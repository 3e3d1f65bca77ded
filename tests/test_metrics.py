"""FID/KID/IS/precision-recall on known features, Parzen windows in closed form, extractor registry and errors."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from gan_modules import ConfigError
from gan_modules.metrics import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    GenerativeMetricSuite,
    InceptionExtractor,
    auto_feature_extractor,
    get_feature_extractor,
    parzen_evaluate,
    parzen_log_likelihood,
    precision_recall,
    select_sigma,
)

WEIGHTS = Path(__file__).resolve().parents[1] / "gan_modules" / "metrics" / "weights"


class TinyExtractor(FeatureExtractor):
    """Features = the pixels of (N, 1, 2, 2) images; logits = 50 x features (4 confident classes)."""

    name = "tiny"
    num_features = 4
    num_classes = 4

    def forward(self, images):
        f = images.flatten(1).double().float()
        return f, 50 * f


def suite(**kw) -> GenerativeMetricSuite:
    return GenerativeMetricSuite(TinyExtractor(), **{"kid_subsets": 3, "precision_recall_k": 3, **kw})


def images(n=400, seed=0):
    return torch.randn(n, 1, 2, 2, generator=torch.Generator().manual_seed(seed))


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """KID's estimator written out: cubic polynomial kernel k(a, b) = (a.b / d + 1)^3, unbiased MMD^2."""
    x, y = x.double(), y.double()
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = lambda t: (t.sum() - t.diagonal().sum()) / (m * (m - 1))  # noqa: E731
    return (off(kxx) + off(kyy) - 2 * kxy.mean()).item()


def test_fid_is_zero_for_identical_sets_and_the_squared_mean_shift_for_shifted_ones():
    real = images()
    s = suite()
    s.update(real, real=True)
    s.update(real, real=False)
    assert s.compute()["fid"] == pytest.approx(0.0, abs=1e-4)
    s.reset()
    shift = 0.5
    s.update(real, real=True)
    s.update(real + shift, real=False)
    # equal covariances: FID = ||mu_r - mu_f||^2 = D * shift^2
    assert s.compute()["fid"] == pytest.approx(4 * shift**2, rel=1e-4)


def test_kid_matches_the_unbiased_mmd_with_the_cubic_kernel():
    real = images(200)
    s = suite(kid_subset_size=200, kid_max_fraction=1.0)  # one subset = the whole (permuted) set: exact estimate
    for shift, fake in ((0.0, real), (0.5, real + 0.5)):
        s.reset()
        s.update(real, real=True)
        s.update(fake, real=False)
        out = s.compute()
        expected = mmd2_unbiased(real.flatten(1), fake.flatten(1))
        assert out["kid_mean"] == pytest.approx(expected, rel=1e-4, abs=1e-7), shift
        assert out["kid_std"] == pytest.approx(0.0, abs=1e-5)  # float32 features: rounding only
    # two independent draws of one distribution: KID ~ 0; a shifted distribution: clearly > 0
    s.reset()
    s.update(real, real=True)
    s.update(images(200, seed=1), real=False)
    same_distribution = s.compute()["kid_mean"]
    assert abs(same_distribution) < 0.05 * mmd2_unbiased(real.flatten(1), (real + 0.5).flatten(1))


def test_kid_subset_size_is_capped_at_half_the_number_of_samples_so_the_std_is_informative():
    s = suite(kid_subset_size=1000)
    s.update(images(50), real=True)
    s.update(images(50, seed=1), real=False)
    out = s.compute()
    assert out["kid_subset_size"] == 25 and out["num_real"] == out["num_fake"] == 50
    assert out["kid_std"] > 0  # different subsets -> a spread; with one subset = everything it would be exactly 0


def test_inception_score_is_one_for_a_repeated_image_and_k_for_uniform_confident_classes():
    s = suite(is_splits=1)
    s.update(images(2), real=True)
    s.update(images(1).repeat(100, 1, 1, 1), real=False)
    assert s.compute()["is_mean"] == pytest.approx(1.0, abs=1e-6)
    s.reset()
    one_hot = torch.eye(4).view(4, 1, 2, 2).repeat(25, 1, 1, 1)  # 25 images of each of the 4 classes
    s.update(images(2), real=True)
    s.update(one_hot, real=False)
    assert s.compute()["is_mean"] == pytest.approx(4.0, rel=1e-6)


def test_precision_recall_closed_forms():
    real = torch.arange(10.0).view(-1, 1)  # k=1 radii: 1 everywhere
    fake = torch.tensor([[0.5], [20.0]])  # radius 19.5 each: covers every real point
    p, r = precision_recall(real, fake, k=1)
    assert (p.item(), r.item()) == (pytest.approx(0.5), pytest.approx(1.0))
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    assert [v.item() for v in precision_recall(x, x)] == [1.0, 1.0]
    assert [v.item() for v in precision_recall(x, x + 100)] == [0.0, 0.0]


def test_parzen_with_one_kernel_is_the_gaussian_log_density():
    center = torch.tensor([[0.2, -0.3, 0.5]], dtype=torch.float64)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = 0.7
    expected = torch.distributions.Normal(center, sigma).log_prob(x).sum(1)
    assert parzen_log_likelihood(x, center, sigma).tolist() == pytest.approx(expected.tolist(), rel=1e-10)
    # two kernels: log of the equal mixture; batching changes nothing
    centers = torch.cat([center, -center])
    mix = torch.logsumexp(torch.stack([torch.distributions.Normal(c, sigma).log_prob(x).sum(1) for c in centers]), 0)
    expected = mix - math.log(2)
    for bs in (1, 3, 100):
        assert parzen_log_likelihood(x, centers, sigma, batch_size=bs).tolist() == pytest.approx(expected.tolist())


def test_parzen_sigma_selection_picks_the_best_validation_score_and_reports_the_protocol():
    g = torch.Generator().manual_seed(0)
    centers, val, test = (0.3 * torch.randn(n, 2, generator=g) for n in (2000, 200, 300))
    sigma, scores = select_sigma(val, centers, sigmas=[0.01, 0.1, 1.0])
    assert sigma == max(scores, key=scores.get) == 0.1
    out = parzen_evaluate(centers, val, test, sigmas=[0.01, 0.1, 1.0])
    assert out["sigma"] == 0.1 and (out["num_centers"], out["num_validation"], out["num_test"], out["dim"]) == (
        2000, 200, 300, 2)  # fmt: skip
    # the true density N(0, 0.3^2 I) bounds a good kernel estimate from above, within sampling error
    true_ll = torch.distributions.Normal(0.0, 0.3).log_prob(test).sum(1).mean().item()
    assert true_ll - 0.5 < out["log_likelihood"] < true_ll + 0.1
    with pytest.raises(ValueError, match="sigma must be positive"):
        parzen_log_likelihood(test, centers, 0.0)


def test_unknown_feature_extractor_is_one_line_that_lists_the_names():
    with pytest.raises(ConfigError) as err:
        get_feature_extractor("resnet")
    msg = str(err.value)
    assert "\n" not in msg and all(name in msg for name in FEATURE_EXTRACTORS)


def test_auto_feature_extractor_follows_the_hint_then_the_datamodule_class():
    from datamodules import EmbeddedMNISTDataModule, FashionMNISTDataModule

    class Hinted:
        feature_extractor_hint = "fashion_mnist_classifier"

    assert auto_feature_extractor(Hinted()) == "fashion_mnist_classifier"
    assert auto_feature_extractor(EmbeddedMNISTDataModule()) == "mnist_classifier"
    assert auto_feature_extractor(FashionMNISTDataModule()) == "fashion_mnist_classifier"
    assert auto_feature_extractor(None) == "inception"


def test_inception_offline_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GAN_MODULES_INCEPTION_WEIGHTS", raising=False)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    with pytest.raises(ConfigError) as err:
        InceptionExtractor(allow_download=False)
    msg = str(err.value)
    assert "\n" not in msg and str(expected) in msg and "https://" in msg and "GAN_MODULES_INCEPTION_WEIGHTS" in msg

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # never download in tests
    with pytest.raises(ConfigError, match=r"download failed: .*name resolution") as err:
        InceptionExtractor()
    assert "\n" not in str(err.value) and str(expected) in str(err.value)
    monkeypatch.setenv("GAN_MODULES_INCEPTION_WEIGHTS", str(tmp_path / "mine.pth"))
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "mine.pth"))):
        InceptionExtractor(allow_download=False)


def _stated_accuracy(name: str) -> float:
    """The accuracy the weights README states for ``name`` (a table row | `name` | ... | 98.90 % | ...)."""
    for line in (WEIGHTS / "README.md").read_text().splitlines():
        if line.startswith(f"| `{name}`"):
            return float(re.search(r"\|\s*([\d.]+) %", line).group(1)) / 100
    raise AssertionError(f"{name} has no row in {WEIGHTS / 'README.md'}")


@pytest.mark.parametrize("name", ["mnist_classifier", "fashion_mnist_classifier"])
def test_shipped_classifier_reaches_its_stated_held_out_accuracy(name):
    from gan_modules.metrics.train_classifier import accuracy, load_split

    path = WEIGHTS / f"{name}.pt"
    assert path.stat().st_size < 1_000_000
    extractor = get_feature_extractor(name)
    x, y = load_split(name.removesuffix("_classifier"), "test")
    stated = _stated_accuracy(name)
    assert extractor.meta["test_accuracy"] == pytest.approx(stated, abs=5e-5)
    assert accuracy(extractor.net, x, y) == pytest.approx(stated, abs=0.002)
    features, logits = extractor(x[:8])
    assert features.shape == (8, extractor.num_features) and logits.shape == (8, 10)


def test_shipped_mnist_classifier_tells_real_digits_from_noise():
    from gan_modules.metrics.train_classifier import load_split

    train, _ = load_split("mnist", "train")
    test, _ = load_split("mnist", "test")
    s = GenerativeMetricSuite(get_feature_extractor("mnist_classifier"), kid_subsets=10, kid_subset_size=500)
    s.update(test[:500], real=True)
    s.update(train[:500], real=False)
    real_vs_real = s.compute()
    s.reset()
    s.update(test[:500], real=True)
    s.update(torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1, real=False)
    real_vs_noise = s.compute()
    assert 8.0 < real_vs_real["is_mean"] <= 10.0  # confident, balanced classes: close to the 10-class maximum
    assert real_vs_noise["fid"] > 20 * real_vs_real["fid"]
    assert real_vs_noise["kid_mean"] > 20 * abs(real_vs_real["kid_mean"])
    assert real_vs_real["precision"] > 0.7 and real_vs_real["recall"] > 0.7
    assert real_vs_noise["precision"] < 0.1


def test_parzen_module_runs_as_a_script_without_runpy_warnings():
    """``python -m gan_modules.metrics.parzen`` (the README's command) prints its help and nothing on stderr."""
    proc = subprocess.run([sys.executable, "-m", "gan_modules.metrics.parzen", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "Parzen-window log-likelihood" in proc.stdout
    assert proc.stderr == "", proc.stderr


def test_parzen_takes_28px_digits_as_they_are_and_crops_the_padded_32px_border():
    from gan_modules.metrics.parzen import as_mnist_28

    digits = torch.rand(3, 1, 28, 28) * 2 - 1
    assert as_mnist_28(digits) is digits
    padded = torch.nn.functional.pad(digits, (2, 2, 2, 2), value=-1.0)  # resize_mode "pad": background -1
    assert torch.equal(as_mnist_28(padded), digits)
    with pytest.raises(ValueError, match=r"generates \(3, 64, 64\) images; this protocol needs 1x28x28"):
        as_mnist_28(torch.zeros(2, 3, 64, 64))


def test_classifier_sees_padded_digits_at_their_trained_layout_not_shrunk():
    """MNIST padded 28 -> 32 (``resize_mode: pad``, the quickstart's data) reaches the 28 px classifier with the border
    cropped off: the same logits as the unpadded digits, where resizing the whole frame would shrink them by 12.5%."""
    from datamodules import EmbeddedMNISTDataModule
    from gan_modules.metrics.extractors import crop_padding, padded_content

    padded_dm = EmbeddedMNISTDataModule(image_size=32, resize_mode="pad")
    assert padded_content(padded_dm) == (2, 28)
    assert padded_content(EmbeddedMNISTDataModule(image_size=32)) is None  # resized: the digit fills the frame
    assert padded_content(EmbeddedMNISTDataModule()) is None
    assert padded_content(EmbeddedMNISTDataModule(image_size=64, resize_mode="pad")) == (18, 28)
    assert padded_content(None) is None

    padded_dm.setup("validate")
    plain_dm = EmbeddedMNISTDataModule()
    plain_dm.setup("validate")
    padded = next(iter(padded_dm.val_dataloader()))["image"][:64]
    plain = next(iter(plain_dm.val_dataloader()))["image"][:64]
    assert padded.shape[-1] == 32 and torch.equal(crop_padding(padded, (2, 28)), plain)

    cropping = get_feature_extractor("mnist_classifier", content=padded_content(padded_dm))
    resizing = get_feature_extractor("mnist_classifier")
    _, exact = resizing(plain)
    torch.testing.assert_close(cropping(padded)[1], exact)
    shrunk = resizing(padded)[1]  # the whole padded frame resized: a different input, different logits
    assert (shrunk - exact).abs().max() > 0.1
    assert GenerativeMetricSuite(cropping).settings["classifier_crop"] == [2, 28]
    assert "classifier_crop" not in GenerativeMetricSuite(resizing).settings
    with pytest.raises(ConfigError, match=r"cannot hold a 28 px padded content at offset 2; generate at the"):
        cropping(torch.zeros(2, 1, 28, 28))
