"""The datamodules through the CLI's parser: subclasses declare only what they add or change and pass the rest on
through ``*args``/``**kwargs``, so ``--print_config`` must still list every data argument with its default (a lost
argument would break users' YAML files); bad data arguments end in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gan_modules.cli import main

ROOT = Path(__file__).resolve().parents[1]

#: ImageDataModule's arguments and defaults, shared by every datamodule unless it changes or fixes them.
BASE = {
    "data_dir": None, "image_size": None, "channels": None, "batch_size": 128, "eval_batch_size": None,
    "num_workers": 0, "val_fraction": 0.1, "split_seed": 0, "seed": 0, "num_predict": 64, "predict_batch_size": 64,
    "drop_last": True, "pin_memory": None, "limit_train_images": None,
}
FOLDER = {"use_subfolders_as_classes": False, "crop_size": None, "flip": False, "check_images": "header",
          "val_fraction": 0.05, "test_fraction": 0.0, "num_workers": 4, "cache_dir": None, "cache_on_gpu": None}
PREDICT = {"predict_dir": None, "predict_keep_size": True}
ATTRIBUTES = {"attributes": None, "image_dir": "img_align_celeba", "attr_file": "list_attr_celeba.txt",
              "crop_size": 178, "flip": True, "num_test": 2000, "batch_size": 16, "num_workers": 4}

#: every data argument and its default, as users' YAML files have them (recorded before the subclasses were slimmed).
EXPECTED = {
    "EmbeddedMNISTDataModule": {**BASE, "resize_mode": "resize", "data_dir": "-"},
    "FashionMNISTDataModule": {**BASE, "download": False, "resize_mode": "resize", "val_fraction": 1 / 12},
    "CIFAR10DataModule": {**BASE, "download": False, "resize_mode": "resize"},
    "CelebADataModule": {**BASE, **FOLDER, "download": False, "crop_size": 178, "use_subfolders_as_classes": "-"},
    "DomainFolderDataModule": {**BASE, **FOLDER, **PREDICT},
    "AlignedPairDataModule": {**BASE, **PREDICT, "load_size": None, "flip": True, "num_workers": 4, "batch_size": 1},
    "UnpairedDataModule": {**BASE, **PREDICT, "load_size": None, "flip": True, "num_workers": 4, "batch_size": 1,
                           "predict_domain": "A"},
    "CelebAAttributesDataModule": {**BASE, **PREDICT, **ATTRIBUTES},
    "MNISTColorsDataModule": {**BASE, **PREDICT, **ATTRIBUTES, "data_dir": "-", "cache_dir": "./data/mnist_colors",
                              "num_images": 10000, "num_test": 1000, "num_workers": 0, "crop_size": None,
                              "flip": False},
    "FashionEdgesDataModule": {**BASE, **PREDICT, "channels": "-", "edge_threshold": 0.2, "max_train": None,
                               "max_test": 1000, "batch_size": 16, "val_fraction": 1 / 60},
    "FashionUnpairedDataModule": {**BASE, **PREDICT, "channels": "-", "task": "classes", "class_a": 7, "class_b": 9,
                                  "batch_size": 8, "max_train": None, "max_test": 500, "val_fraction": 1 / 60},
}


def printed_config(capsys, args: list[str]) -> dict:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["fit", *args, "--print_config"])
    assert exc.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_print_config_lists_every_data_argument_with_its_default(capsys, name):
    config = printed_config(capsys, ["--model", "DCGAN", "--data", name])
    assert config["data"]["class_path"] == f"datamodules.{name}"
    expected = {key: value for key, value in EXPECTED[name].items() if value != "-"}  # "-": fixed by the class
    assert config["data"]["init_args"] == pytest.approx(expected)


def test_print_config_of_a_config_file_keeps_its_values_and_the_defaults(capsys):
    config = printed_config(capsys, ["--config", str(ROOT / "configs/stargan_mnist_colors.yaml")])
    written = yaml.safe_load((ROOT / "configs/stargan_mnist_colors.yaml").read_text())["data"]["init_args"]
    defaults = {key: value for key, value in EXPECTED["MNISTColorsDataModule"].items() if value != "-"}
    assert config["data"]["init_args"] == {**defaults, **written}


def test_bad_input_data_argument_is_one_line(tmp_path, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--model", "DCGAN", "--data", "EmbeddedMNISTDataModule", "--data.limit_train_images", "0",
              "--trainer.default_root_dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gan-modules: error: limit_train_images must be at least 1 (or null for all), got 0"]
