"""``gan-modules-sample``: a checkpoint to PNGs, a grid and an interpolation, loaded weights-only by class path."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from gan_modules import CGAN, DCGAN
from gan_modules.sample import generate_images, load_checkpoint, main, slerp
from tests.helpers import loader, trainer

TINY = dict(image_size=28, channels=1, ngf=4, ndf=4, latent_dim=8)


@pytest.fixture(scope="module", params=[DCGAN, CGAN], ids=["DCGAN", "CGAN"])
def checkpoint(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param.__name__)
    model = request.param(**TINY, num_classes=10, max_generator_steps=2)
    tr = trainer(tmp)
    tr.fit(model, loader(n=16, batch_size=8))
    tr.save_checkpoint(tmp / "model.ckpt")
    return tmp / "model.ckpt", model


def test_sample_command_writes_pngs_grid_and_interpolation(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    main([str(path), "-n", "5", "-o", str(tmp_path / "out"), "--interpolate", "--pairs", "2", "--steps", "3"])
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("0*.png")) == [f"{i:06d}.png" for i in range(5)]
    assert Image.open(out / "000000.png").size == (28, 28)
    assert Image.open(out / "interpolation.png").size == (3 * 30 + 2, 2 * 30 + 2)  # steps x pairs, 2 px padding
    assert (out / "grid.png").exists() and "wrote 5 images" in capsys.readouterr().out


def test_loaded_checkpoint_is_the_trained_model_and_agrees_with_predict(checkpoint):
    path, trained = checkpoint
    model = load_checkpoint(path)
    assert type(model) is type(trained) and model.generator_steps == 2 and not model.training
    for a, b in zip(model.state_dict().values(), trained.state_dict().values()):
        assert torch.equal(a, b)
    expected = trained.predict_step({"index": torch.arange(4)}, 0)["images"]
    assert torch.allclose(generate_images(model, 4, batch_size=3), expected)  # image i from seed sample_seed + i


def test_slerp_keeps_endpoints_and_gaussian_norms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 100, generator=g), torch.randn(1, 100, generator=g)
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    norms = path.norm(dim=-1).flatten()
    assert norms.min() > 0.9 * min(a.norm(), b.norm())  # a straight line would dip towards the origin


class Unsafe:
    pass


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        (b"not a zip", "is corrupt or truncated"),
        ({"state_dict": {}}, "was not written by gan_modules"),
        ({"gan_modules": {"class_path": "os.path.join"}, "state_dict": {}}, "is not one of the gan_modules models"),
        ({"gan_modules": {"class_path": "nowhere.Model"}}, "nowhere.Model is not one of the gan_modules models"),
        (Unsafe(), "Unsafe, which a safe (weights-only) load refuses"),
    ],
)
def test_bad_checkpoints_are_one_line_errors_with_exit_code_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(SystemExit) as exc:
        main([str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("gan-modules-sample: error:") and message in err
    assert "\n" not in err
