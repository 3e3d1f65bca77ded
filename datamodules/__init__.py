"""LightningDataModules for GAN training: one per data family; batches are dicts with ``image`` in [-1, 1].

``EmbeddedMNISTDataModule`` (the default) needs no files and no network.
"""

from .base import ImageDataModule, InMemoryImageDataModule
from .celeba import CelebADataModule
from .cifar import CIFAR10DataModule
from .errors import DataError
from .image_folder import ImageFolderDataModule
from .mnist import EmbeddedMNISTDataModule, FashionMNISTDataModule, MNISTDataModule
from .samplers import ResumableDataLoader, SeededRandomSampler
from .offline_tasks import FashionEdgesDataModule, FashionUnpairedDataModule, MNISTColorsDataModule
from .translation import AlignedPairDataModule, CelebAAttributesDataModule, DomainFolderDataModule, UnpairedDataModule

#: every concrete datamodule, by class name (tests are parametrized over it).
DATAMODULES: dict[str, type[ImageDataModule]] = {
    cls.__name__: cls
    for cls in (
        EmbeddedMNISTDataModule,
        MNISTDataModule,
        FashionMNISTDataModule,
        CIFAR10DataModule,
        CelebADataModule,
        ImageFolderDataModule,
        AlignedPairDataModule,
        UnpairedDataModule,
        CelebAAttributesDataModule,
        DomainFolderDataModule,
        FashionEdgesDataModule,
        FashionUnpairedDataModule,
        MNISTColorsDataModule,
    )
}

__all__ = [
    "DATAMODULES",
    "AlignedPairDataModule",
    "CelebAAttributesDataModule",
    "DomainFolderDataModule",
    "FashionEdgesDataModule",
    "FashionUnpairedDataModule",
    "MNISTColorsDataModule",
    "UnpairedDataModule",
    "CIFAR10DataModule",
    "CelebADataModule",
    "DataError",
    "EmbeddedMNISTDataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "InMemoryImageDataModule",
    "MNISTDataModule",
    "ResumableDataLoader",
    "SeededRandomSampler",
]
