"""CGAN: the label path of G and D with fixed networks, per-class grids, labels used in training, bad inputs."""

import pytest
import torch

from gan_modules import CGAN, ConfigError
from gan_modules.nets.conditional import ConditionalBatchNorm2d
from tests.helpers import loader, trainer

TINY = dict(image_size=28, channels=1, num_classes=10, ngf=4, ndf=4, latent_dim=8)
VARIANTS = [
    {"conditioning": "concat", "label_encoding": "onehot"},
    {"conditioning": "concat", "label_encoding": "embedding", "embed_dim": 6},
    {"conditioning": "projection"},
    {"conditioning": "projection", "spectral_norm": True, "d_norm": "none"},
]


def fixed_model(**kwargs) -> CGAN:
    torch.manual_seed(0)
    model = CGAN(**TINY, **kwargs, ema_decay=None)
    with torch.no_grad():  # non-trivial conditional BN gains/biases and projection rows, as after training
        for m in model.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.gain.weight.normal_(1.0, 0.5)
                m.bias.weight.normal_(0.0, 0.5).abs_()  # > 0: no class is silenced by the ReLU
    return model.eval()


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_generator_output_depends_on_the_label_and_only_on_its_own(kwargs):
    model = fixed_model(**kwargs)
    z = torch.randn(1, 8).repeat(10, 1)  # one z, every class
    y = torch.arange(10)
    with torch.no_grad():
        out = model.generator(z, y)
        assert torch.equal(out, model.generator(z, y))  # same (z, label) -> same image
        for k in range(10):
            single = model.generator(z[:1], y[k:k + 1])
            assert torch.allclose(out[k], single[0], atol=1e-6)  # sample k comes from label k, batch-independent
        diffs = (out[:, None] - out[None]).flatten(2).abs().amax(-1)  # (10, 10) max |G(z, i) - G(z, j)|
        assert (diffs + torch.eye(10) > 1e-4).all()  # every pair of labels gives a different image
        swapped = model.generator(z[:2], y[[1, 0]])
        assert torch.allclose(swapped, out[[1, 0]], atol=1e-6)  # swapping labels swaps the images


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_discriminator_output_depends_on_the_label(kwargs):
    model = fixed_model(**kwargs)
    with torch.no_grad():
        if model.discriminator.projection is not None:
            model.discriminator.projection.weight.normal_(0.0, 1.0)
        x = torch.randn(1, 1, 28, 28).repeat(10, 1, 1, 1)
        scores = model.discriminator(x, torch.arange(10))
        assert scores.unique().numel() == 10
        assert torch.allclose(model.discriminator(x[:1], torch.tensor([3])), scores[3:4], atol=1e-6)


def test_projection_logit_is_psi_plus_inner_product_with_the_class_embedding():
    model = fixed_model(conditioning="projection", d_norm="none")
    d = model.discriminator
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 3, 9])
    with torch.no_grad():
        phi = d.features(x).sum(dim=(2, 3))
        expected = d.head(phi).flatten() + (d.projection.weight[y] * phi).sum(1)
        assert torch.allclose(d(x, y), expected, atol=1e-6)


def test_sample_grid_has_one_row_per_class_and_shares_z_along_columns():
    model = fixed_model()
    inputs = model.class_inputs(7, seed=0)
    assert inputs["y"].tolist() == [k for k in range(10) for _ in range(7)]
    z = inputs["z"].view(10, 7, -1)
    assert torch.equal(z, z[:1].expand_as(z))
    images, ncol = model.sample_grid(64)
    assert (images.shape, ncol) == ((70, 1, 28, 28), 7)
    for k in (0, 4, 9):
        row = model.generate({"z": z[0], "y": torch.full((7,), k)})
        assert torch.allclose(images[7 * k:7 * (k + 1)], row, atol=1e-6)


@pytest.mark.parametrize("reuse_fakes", [True, False])
def test_training_feeds_the_batch_labels_to_g_and_d(tmp_path, reuse_fakes):
    model = CGAN(**TINY, max_generator_steps=2, reuse_fakes=reuse_fakes)
    seen = {"g": [], "d": []}
    g_forward, d_forward = model.generator.forward, model.discriminator.forward
    model.generator.forward = lambda z, y: seen["g"].append(y.clone()) or g_forward(z, y)
    model.discriminator.forward = lambda x, y: seen["d"].append(y.clone()) or d_forward(x, y)
    data = loader(n=8, batch_size=4)
    trainer(tmp_path).fit(model, data)
    labels = [b["label"] for b in data]
    # per batch: one G forward shared by the D and G steps (n_critic 1, the reference DCGAN loop), or one for D's
    # fakes and a fresh one for the G step; D sees real, fake (D step) and fake (G step)
    g_per_batch = 1 if reuse_fakes else 2
    assert len(seen["g"]) == 2 * g_per_batch and len(seen["d"]) == 6
    for i, y in enumerate(seen["g"]):
        assert torch.equal(y, labels[i // g_per_batch])
    for i, y in enumerate(seen["d"]):
        assert torch.equal(y, labels[i // 3])


def test_predict_cycles_through_the_classes():
    model = fixed_model()
    out = model.predict_step({"index": torch.arange(12)}, 0)
    assert out["images"].shape == (12, 1, 28, 28)
    again = model.generate({"z": model.sample_inputs(1, seed=11)["z"], "y": torch.tensor([1])})
    assert torch.allclose(out["images"][11:], again, atol=1e-6)  # image 11: seed 11, class 11 % 10


def test_conditional_penalty_uses_the_labels(tmp_path):
    model = CGAN(**TINY, d_norm="layer", penalty="r1", penalty_weight=1.0, max_generator_steps=1)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=4, batch_size=4))
    assert torch.isfinite(tr.callback_metrics["train/r1"]) and tr.callback_metrics["train/r1"] > 0


def test_bad_input_cgan_without_num_classes():
    with pytest.raises(ConfigError, match="CGAN needs class labels but num_classes is not set: use a labelled"):
        CGAN(**{**TINY, "num_classes": None})


def test_bad_input_labels_outside_num_classes(tmp_path):
    model = CGAN(**{**TINY, "num_classes": 3}, max_generator_steps=1)
    with pytest.raises(ConfigError, match=r"labels range over \[0, \d\] but the model was built for num_classes=3"):
        trainer(tmp_path).fit(model, loader(n=16, batch_size=16, num_classes=10))


def test_bad_input_unknown_conditioning():
    with pytest.raises(ConfigError, match="unknown conditioning 'film': choose concat or projection"):
        CGAN(**TINY, conditioning="film")
