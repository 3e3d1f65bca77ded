"""Translation tasks that need no network, built from Debian's Fashion-MNIST (``apt-get install
dataset-fashion-mnist``) and the embedded MNIST, with the true translation known so that quality can be measured:
edges → item (pix2pix), sneaker ↔ ankle boot or gray ↔ red tint (CycleGAN), coloured/inverted digits (StarGAN).
Generated data are never committed: they live in memory or under ``cache_dir``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .base import BatchDataset
from .celeba import CelebAAttributesDataModule
from .errors import DataError
from .mnist import FashionMNISTDataModule, load_embedded_mnist
from .transforms import fit_square, to_unit_range
from .translation import TranslationDataModule
from .unpaired import UnpairedDataset

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def fashion_arrays(data_dir: Path | None, val_fraction: float, split_seed: int) -> dict[str, tuple[Tensor, Tensor]]:
    """Fashion-MNIST through ``FashionMNISTDataModule`` (which also finds Debian's copy): split → (uint8 (N, 1, 28,
    28), int64 labels)."""
    dm = FashionMNISTDataModule(data_dir=data_dir, val_fraction=val_fraction, split_seed=split_seed)
    return dm.load_arrays()


def sobel_edges(images: Tensor, threshold: float = 0.2) -> Tensor:
    """uint8 (N, 1, H, W) → uint8 binary edge maps (N, 1, H, W): Sobel gradient magnitude over each image's maximum,
    thresholded (white edges on black)."""
    x = images.float() / 255.0
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    gx, gy = F.conv2d(x, kx, padding=1), F.conv2d(x, kx.transpose(-1, -2), padding=1)
    magnitude = (gx.square() + gy.square()).sqrt()
    magnitude = magnitude / magnitude.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return ((magnitude > threshold).to(torch.uint8) * 255)


class NamedTensorDataset(BatchDataset):
    """uint8 images (N, C, H, W) in memory, by key → batches of them in [-1, 1], the ``extra`` keys (a tensor per
    item, or an int for all), ``index`` and ``name`` (``<prefix>_<index>.png``)."""

    def __init__(self, images: dict[str, Tensor], prefix: str, **extra: Tensor | int):
        self.images, self.prefix, self.extra = images, prefix, extra

    def __len__(self) -> int:
        return len(next(iter(self.images.values())))

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        batch = {key: to_unit_range(images[index]) for key, images in self.images.items()}
        for key, value in self.extra.items():
            batch[key] = value[index] if isinstance(value, Tensor) else torch.full((len(indices),), value)
        return {**batch, "index": index, "name": [f"{self.prefix}_{i:05d}.png" for i in indices]}


class FashionEdgesDataModule(TranslationDataModule):
    """Pix2Pix task: Sobel edges of a Fashion-MNIST item → the item (``source`` edges, ``target`` item, ``label`` its
    class). Items are padded 28 → 32 (the U-Net needs powers of two). Train/val from the 60k train split, test = the
    official 10k test split (``max_test`` of them).

    Args:
        edge_threshold: Sobel magnitude threshold (relative to each image's maximum).
        max_train: keep only this many training pairs (None: all).
        max_test: keep only this many test (and val) pairs.
    """

    native_size: ClassVar[int] = 32

    def __init__(self, *args: Any, edge_threshold: float = 0.2, max_train: int | None = None,
                 max_test: int | None = 1000, batch_size: int = 16, val_fraction: float = 1 / 60, **kwargs: Any):
        super().__init__(*args, channels=1, batch_size=batch_size, val_fraction=val_fraction, **kwargs)
        self.edge_threshold, self.max_train, self.max_test = edge_threshold, max_train, max_test

    def build_datasets(self) -> dict[str, Dataset]:
        arrays = fashion_arrays(self.data_dir, self.val_fraction, self.split_seed)
        out = {}
        for split, (images, labels) in arrays.items():
            limit = self.max_train if split == "train" else self.max_test
            target = fit_square(images[:limit], self.image_size, "pad")
            source = sobel_edges(target, self.edge_threshold)
            out[split] = NamedTensorDataset({"source": source, "target": target}, split, label=labels[:limit])
        return out


# --------------------------------------------------------------------------------------------------- unpaired
def tint(images: Tensor, colour: tuple[float, float, float] = (1.0, 0.35, 0.35)) -> Tensor:
    """uint8 gray (N, 1, H, W) → uint8 RGB (N, 3, H, W) multiplied per channel by ``colour`` (default: red, white
    becomes light red and black stays black)."""
    weights = torch.tensor(colour).view(1, 3, 1, 1)
    return (images.float() * weights).round().clamp(0, 255).to(torch.uint8)


class FashionUnpairedDataModule(TranslationDataModule):
    """CycleGAN task from Fashion-MNIST (padded to 32 px), B drawn at random for each A; batch size 8 (1 in the
    paper; larger is much faster on CPU). ``task="classes"``: A = class ``class_a`` (7, sneaker), B = class
    ``class_b`` (9, ankle boot); 1 channel. ``task="tint"``: A = grayscale items as RGB, B = red-tinted items, from
    disjoint halves of the data, so unpaired, but the true translation is given as ``a_target``/``b_target``.

    Args:
        task: ``classes`` or ``tint``.
        class_a: the A class (``classes`` task).
        class_b: the B class.
        max_train: images per domain kept for training (None: all).
        max_test: images per domain for val/test.
    """

    native_size: ClassVar[int] = 32

    def __init__(self, task: Literal["classes", "tint"] = "classes", class_a: int = 7, class_b: int = 9, *,
                 batch_size: int = 8, max_train: int | None = None, max_test: int | None = 500,
                 val_fraction: float = 1 / 60, **kwargs: Any) -> None:
        if task not in ("classes", "tint"):
            raise DataError(f"task must be 'classes' or 'tint', got {task!r}")
        for name, c in (("class_a", class_a), ("class_b", class_b)):
            if not 0 <= c < 10:
                raise DataError(f"{name} must be a Fashion-MNIST class 0..9, got {c}")
        if task == "classes" and class_a == class_b:
            raise DataError(f"class_a and class_b are both {class_a}; pick two different classes")
        super().__init__(channels=3 if task == "tint" else 1, batch_size=batch_size, val_fraction=val_fraction,
                         **kwargs)
        self.task, self.class_a, self.class_b = task, class_a, class_b
        self.max_train, self.max_test = max_train, max_test
        self.domain_names = ["gray", "red"] if task == "tint" else [FASHION_CLASSES[class_a], FASHION_CLASSES[class_b]]

    def domains(self, split: str, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """uint8 images per role: ``a``, ``b`` and, for the tint task, ``a_target``, ``b_target``."""
        limit = self.max_train if split == "train" else self.max_test
        images = fit_square(images, self.image_size, "pad")
        if self.task == "classes":
            return {"a": images[labels == self.class_a][:limit], "b": images[labels == self.class_b][:limit]}
        half = len(images) // 2
        gray_a, gray_b = images[:half][:limit], images[half:][:limit]
        return {"a": gray_a.expand(-1, 3, -1, -1).contiguous(), "b": tint(gray_b), "a_target": tint(gray_a),
                "b_target": gray_b.expand(-1, 3, -1, -1).contiguous()}

    def build_datasets(self) -> dict[str, Dataset]:
        arrays = fashion_arrays(self.data_dir, self.val_fraction, self.split_seed)
        self.images: dict[str, dict[str, Tensor]] = {s: self.domains(s, *arrays[s]) for s in arrays}
        out = {}
        for split, d in self.images.items():
            if len(d["a"]) == 0 or len(d["b"]) == 0:
                raise DataError(f"the {split} split has no images of one domain; check class_a/class_b")
            out[split] = UnpairedDataset(d["a"], d["b"], self.image_size, None, False,
                                         a_target=d.get("a_target"), b_target=d.get("b_target"))
        return out

    def predict_split_dataset(self) -> Dataset:
        self.setup()
        return NamedTensorDataset({"image": self.images["test"]["a"]}, "testA", domain=0)


# ---------------------------------------------------------------------------------------------------- StarGAN
COLOR_ATTRIBUTES = ["Red", "Green", "Blue", "Inverted"]
_PRIMARIES = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def render_colored_digit(gray: Tensor, colour: int, inverted: bool, size: int = 32) -> Tensor:
    """uint8 (28, 28) or (1, H, W) digit → uint8 RGB (3, size, size): padded to ``size``, optionally inverted
    (colour background, dark digit), multiplied by the primary ``colour`` (0 red, 1 green, 2 blue)."""
    g = fit_square(gray.reshape(1, 1, *gray.shape[-2:]), size, "pad")[0].float()  # (1, S, S)
    if inverted:
        g = 255.0 - g
    return (g * torch.tensor(_PRIMARIES[colour]).view(3, 1, 1)).round().to(torch.uint8)


def write_color_digits(root: Path, num_images: int, size: int, seed: int) -> None:
    """Writes ``root/img_align_celeba/<k>.png`` (``k`` = index into the embedded MNIST) and a CelebA-format
    ``root/list_attr_celeba.txt`` over ``COLOR_ATTRIBUTES`` (each image: a random colour, inverted with p = ½).
    Atomic: built in a temporary folder, then renamed."""
    images, _ = load_embedded_mnist()
    if not 1 <= num_images <= len(images):
        raise DataError(f"num_images must be in 1..{len(images)}, got {num_images}")
    g = torch.Generator().manual_seed(seed)
    colours = torch.randint(3, (num_images,), generator=g).tolist()
    inverted = (torch.rand(num_images, generator=g) < 0.5).tolist()
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".{root.name}.", ignore_cleanup_errors=True) as tmp:
        (folder := Path(tmp) / "img_align_celeba").mkdir()
        lines = [str(num_images), " ".join(COLOR_ATTRIBUTES)]
        for k in range(num_images):
            rgb = render_colored_digit(torch.from_numpy(images[k]), colours[k], inverted[k], size)
            Image.fromarray(rgb.permute(1, 2, 0).numpy()).save(folder / f"{k:05d}.png", compress_level=1)
            values = [colours[k] == c for c in range(3)] + [inverted[k]]
            lines.append(f"{k:05d}.png {' '.join('1' if v else '-1' for v in values)}")
        (Path(tmp) / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        if not root.exists():  # else another process finished first (the temporary folder is then deleted)
            os.replace(tmp, root)


class MNISTColorsDataModule(CelebAAttributesDataModule):
    """StarGAN task: embedded-MNIST digits coloured red, green or blue (a one-hot group, like CelebA's hair colours)
    and plain or ``Inverted`` (a binary attribute), 32 px. The images and a CelebA-format attribute file are written
    once to ``cache_dir`` and read by ``CelebAAttributesDataModule`` itself. File ``<k>.png`` is MNIST digit ``k``, so
    ``render_colored_digit`` gives the exact ground truth of any translation. The digits are neither cropped nor
    flipped (a mirrored digit is no digit); ``attributes`` are a subset of ``Red Green Blue Inverted``, all by default.

    Args:
        cache_dir: where the generated files go (``./data/mnist_colors``; delete it to regenerate).
        num_images: digits used (up to the 10,000 embedded).
    """

    native_size: ClassVar[int] = 32
    default_attributes: ClassVar[Sequence[str]] = COLOR_ATTRIBUTES
    one_hot_attributes: ClassVar[Sequence[str]] = COLOR_ATTRIBUTES[:3]

    def __init__(self, cache_dir: str = "./data/mnist_colors", num_images: int = 10000, num_test: int = 1000,
                 num_workers: int = 0, crop_size: int | None = None, flip: bool = False, **kwargs: Any) -> None:
        super().__init__(data_dir=cache_dir, num_test=num_test, num_workers=num_workers, crop_size=crop_size,
                         flip=flip, **kwargs)
        self.num_images = num_images

    def prepare_data(self) -> None:
        if not (self.data_dir / "img_align_celeba").is_dir():
            write_color_digits(self.data_dir, self.num_images, self.native_size, seed=self.split_seed)

    def build_datasets(self) -> dict[str, Dataset]:
        self.prepare_data()  # also when used without a trainer (tests, benchmarks)
        return super().build_datasets()

