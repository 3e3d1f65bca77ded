"""The hf folder written by ``gan-modules-export --formats hf``: config.json and model card contents, the refusals of
``load_generator`` (classes outside ``gan_modules.nets``, foreign or tampered weights, no pickle ever), and the Hub
round trip with the upload/download API mocked (offline), including the one-line message when huggingface_hub is
missing."""

from __future__ import annotations

import inspect
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan_modules import load_generator
from gan_modules.errors import CheckpointError, ConfigError
from gan_modules.export import export, main

from .test_export import fitted_checkpoint, tiny_model


@pytest.fixture(scope="module")
def dcgan_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dcgan_hf")
    export(tiny_model("DCGAN"), folder, ("hf",))
    return folder


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_config_describes_the_generator_and_its_call(dcgan_folder):
    config = json.loads((dcgan_folder / "config.json").read_text())
    assert config["network"] == {"class_path": "gan_modules.nets.dcgan.DCGANGenerator",
                                 "init_args": {"latent_dim": 100, "channels": 1, "image_size": 28, "ngf": 4,
                                               "norm": "batch", "bias": False}}  # fmt: skip
    assert config["model"]["class_path"] == "gan_modules.dcgan.DCGAN"
    assert "Radford, Metz & Chintala 2016" in config["model"]["paper"]
    assert "https://arxiv.org/abs/1511.06434" in config["model"]["paper"]
    assert (config["image_size"], config["channels"], config["latent_dim"]) == (28, 1, 100)
    assert config["value_range"] == [-1.0, 1.0] and config["weights"] == "ema"
    assert config["inputs"] == {"z": {"shape": ["N", 100], "dtype": "float32", "meaning": "noise ~ N(0, 1)"}}
    assert config["output"]["shape"] == ["N", 1, 28, 28]
    namespace = {"torch": torch, "load_generator": load_generator, "path": str(dcgan_folder)}
    exec(config["usage"], namespace)
    assert namespace["images"].shape == (16, 1, 28, 28)
    assert float(namespace["images"].min()) >= -1.0 and float(namespace["images"].max()) <= 1.0


def test_cgan_and_stargan_configs_describe_their_second_input(tmp_path):
    export(tiny_model("CGAN"), tmp_path / "cgan", ("hf",))
    export(tiny_model("StarGAN"), tmp_path / "stargan", ("hf",))
    cgan = json.loads((tmp_path / "cgan" / "config.json").read_text())
    star = json.loads((tmp_path / "stargan" / "config.json").read_text())
    assert cgan["inputs"]["y"] == {"shape": ["N"], "dtype": "int64", "meaning": "class index in [0, 3)"}
    assert list(star["inputs"]) == ["image", "label"] and star["inputs"]["label"]["shape"] == ["N", 3]
    assert star["norm_statistics"] == "batch" and cgan["norm_statistics"] == "running"  # StarGAN's test_mode train
    for folder, config in ((tmp_path / "cgan", cgan), (tmp_path / "stargan", star)):
        namespace = {"torch": torch, "load_generator": load_generator, "path": str(folder)}
        exec(config["usage"], namespace)
        assert namespace["images"].shape[1:] == ((1, 28, 28) if folder.name == "cgan" else (1, 32, 32))


def test_model_card_shows_paper_metrics_and_the_run_grid(tmp_path):
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "samples").mkdir()
    Image.new("RGB", (62, 62), (200, 10, 10)).save(run / "samples" / "final.png")
    record = {"stage": "val", "results": {"fid": 12.3456, "kid_mean": 0.0123, "kid_std": 0.0011, "num_real": 500,
                                          "num_fake": 500},
              "protocol": {"generator_steps": 800, "num_real": 500, "num_generated": 500,
                           "feature_extractor": "mnist_classifier"}}  # fmt: skip
    (run / "metrics" / "val_step_0000800.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    export(tiny_model("DCGAN"), out, ("pt2", "hf"), checkpoint=run / "checkpoints" / "last.ckpt")
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: gan-modules\ntags:\n")
    assert "**Paper**: DCGAN: Radford, Metz & Chintala 2016" in card
    assert "| val | 800 | 12.346 | 0.01230 ± 0.00110 | – | – | – | 500 real / 500 generated | mnist_classifier |" in card
    assert "![fixed-input samples](samples.png)" in card
    assert (out / "samples.png").read_bytes() == (run / "samples" / "final.png").read_bytes()
    assert "- `generator.pt2`: pt2" in card
    assert "- https://arxiv.org/abs/1511.06434" in card


def test_without_a_run_grid_the_card_shows_the_model_s_own_grid(dcgan_folder):
    with Image.open(dcgan_folder / "samples.png") as im:
        assert im.width >= 512  # enlarged for the Hub page (upscale_grid)
    assert "![fixed-input samples](samples.png)" in (dcgan_folder / "README.md").read_text()


# ----------------------------------------------------------------------------------------------------------------
# Refusals: only gan_modules.nets classes, safetensors only
@pytest.mark.parametrize("class_path, message", [
    ("os.system", "config.json names network 'os.system'; only classes of gan_modules.nets are built"),
    ("torch.nn.Linear", "config.json names network 'torch.nn.Linear'; only classes of gan_modules.nets are built"),
    ("gan_modules.nets.dcgan.nn.Linear",
     "config.json names gan_modules.nets.dcgan.nn.Linear, which is not a network class of gan_modules.nets"),
])  # fmt: skip
def test_load_generator_refuses_classes_outside_the_nets(dcgan_folder, tmp_path, class_path, message):
    folder = copy_folder(dcgan_folder, tmp_path / "f")
    config = json.loads((folder / "config.json").read_text())
    config["network"] = {"class_path": class_path, "init_args": {"command": "echo pwned"}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        load_generator(folder)
    assert str(err.value).startswith(message) and len(str(err.value).splitlines()) == 1


def test_load_generator_reads_no_pickle(dcgan_folder, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", forbidden)
    net = load_generator(dcgan_folder)
    assert type(net).__name__ == "DCGANGenerator" and not net.training
    assert net.gan_modules_config["model"]["name"] == "DCGAN"


def test_load_generator_refuses_tampered_or_foreign_weights(dcgan_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    wrong = copy_folder(dcgan_folder, tmp_path / "wrong")
    state = load_file(str(wrong / "model.safetensors"))
    key = next(iter(state))
    state[key] = torch.zeros(3, 3)
    save_file(state, str(wrong / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors does not fit gan_modules.nets.dcgan.DCGANGenerator"):
        load_generator(wrong)
    pickled = copy_folder(dcgan_folder, tmp_path / "pickled")
    torch.save({"x": torch.zeros(1)}, pickled / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model.safetensors is not a readable safetensors file"):
        load_generator(pickled)


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder; pass the folder written by gan-modules-export --formats hf or hf://owner/name"),
    ("no_config", "has no config.json; pass the folder written by gan-modules-export --formats hf"),
    ("newer", "has format_version 99, newer than this gan_modules reads (1); upgrade gan-modules"),
])  # fmt: skip
def test_load_generator_one_line_errors(dcgan_folder, tmp_path, case, message):
    folder = tmp_path / "f"
    if case != "missing":
        copy_folder(dcgan_folder, folder)
    if case == "no_config":
        (folder / "config.json").unlink()
    if case == "newer":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError) as err:
        load_generator(folder)
    assert str(err.value).endswith(message) and len(str(err.value).splitlines()) == 1


# ----------------------------------------------------------------------------------------------------------------
# Hub: the upload and download API mocked (no network)
class FakeHub:
    """Stands in for huggingface_hub with its real call signatures (checked below against the installed package)."""

    def __init__(self, snapshot: Path | None = None):
        self.calls: list[tuple] = []
        self.module = types.ModuleType("huggingface_hub")
        hub = self

        class HfApi:
            def __init__(self, token=None):
                hub.calls.append(("HfApi", token))

            def create_repo(self, repo_id, *, token=None, private=None, exist_ok=False, **kwargs):
                hub.calls.append(("create_repo", repo_id, private, exist_ok))
                return f"https://huggingface.co/{repo_id}"

            def upload_folder(self, *, repo_id, folder_path, commit_message=None, **kwargs):
                hub.calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir()),
                                  commit_message))  # fmt: skip

        def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kwargs):
            hub.calls.append(("snapshot_download", repo_id, revision, sorted(allow_patterns or [])))
            return str(snapshot)

        self.module.HfApi = HfApi
        self.module.snapshot_download = snapshot_download


def test_push_to_hub_uploads_the_hf_folder(tmp_path, monkeypatch, capsys):
    hub = FakeHub()
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub.module)
    ckpt = fitted_checkpoint(tmp_path)
    code = main([str(ckpt), "--out", str(tmp_path / "out"), "--formats", "pt2", "--push-to-hub", "me/dcgan-tiny",
                 "--private", "--no-check"])  # fmt: skip
    assert code == 0
    assert hub.calls == [
        ("HfApi", None),
        ("create_repo", "me/dcgan-tiny", True, True),
        ("upload_folder", "me/dcgan-tiny", ["README.md", "config.json", "generator.pt2", "model.safetensors",
                                            "samples.png"], "Upload generator exported by gan-modules"),
    ]  # fmt: skip
    assert capsys.readouterr().out.strip().endswith("pushed to https://huggingface.co/me/dcgan-tiny")


def test_load_generator_from_the_hub_downloads_the_snapshot(dcgan_folder, monkeypatch):
    hub = FakeHub(snapshot=dcgan_folder)
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub.module)
    net = load_generator("hf://me/dcgan-tiny@v1")
    assert hub.calls == [("snapshot_download", "me/dcgan-tiny", "v1", ["README.md", "config.json",
                                                                       "model.safetensors"])]  # fmt: skip
    z = torch.randn(2, 100)
    assert torch.equal(net(z), load_generator(dcgan_folder)(z))


def test_fake_hub_matches_the_real_signatures():
    hub = pytest.importorskip("huggingface_hub")
    inspect.signature(hub.HfApi.create_repo).bind(None, "me/x", private=None, exist_ok=True)
    inspect.signature(hub.HfApi.upload_folder).bind(None, repo_id="me/x", folder_path="f", commit_message="m")
    inspect.signature(hub.snapshot_download).bind("me/x", revision=None, allow_patterns=["config.json"])
    assert "token" in inspect.signature(hub.HfApi.__init__).parameters


def test_missing_huggingface_hub_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(ConfigError) as err:
        load_generator("hf://me/dcgan")
    assert str(err.value) == ('loading from the Hugging Face Hub needs the huggingface_hub package: '
                              'pip install "gan-modules[hub]"')
    code = main([str(tmp_path / "any.ckpt"), "--out", str(tmp_path / "o"), "--push-to-hub", "me/dcgan"])
    assert code == 2
    assert capsys.readouterr().err.strip() == ('gan-modules-export: error: --push-to-hub needs the huggingface_hub '
                                               'package: pip install "gan-modules[hub]"')


def test_bad_hub_names_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match=r"^hf://dcgan is not a Hub repository: write hf://owner/name"):
        load_generator("hf://dcgan")
