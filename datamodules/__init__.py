"""LightningDataModules for GAN training: one per data family; batches are dicts with ``image`` in [-1, 1].

``EmbeddedMNISTDataModule`` (the default) needs no files and no network.
"""

from .base import ImageDataModule, InMemoryImageDataModule
from .celeba import CelebAAttributesDataModule, CelebADataModule
from .cifar import CIFAR10DataModule
from .errors import DataError
from .image_folder import DomainFolderDataModule, ImageFolderDataModule
from .mnist import EmbeddedMNISTDataModule, FashionMNISTDataModule, MNISTDataModule
from .offline_tasks import FashionEdgesDataModule, FashionUnpairedDataModule, MNISTColorsDataModule
from .paired import AlignedPairDataModule
from .samplers import PairIndexSampler, ResumableDataLoader, SeededRandomSampler
from .unpaired import UnpairedDataModule

#: every concrete datamodule, by class name (tests are parametrized over it).
DATAMODULES: dict[str, type[ImageDataModule]] = {cls.__name__: cls for cls in (
    EmbeddedMNISTDataModule, MNISTDataModule, FashionMNISTDataModule, CIFAR10DataModule, CelebADataModule,
    ImageFolderDataModule, AlignedPairDataModule, UnpairedDataModule, CelebAAttributesDataModule,
    DomainFolderDataModule, FashionEdgesDataModule, FashionUnpairedDataModule, MNISTColorsDataModule,
)}

__all__ = [
    "DATAMODULES", "AlignedPairDataModule", "CIFAR10DataModule", "CelebAAttributesDataModule", "CelebADataModule",
    "DataError", "DomainFolderDataModule", "EmbeddedMNISTDataModule", "FashionEdgesDataModule",
    "FashionMNISTDataModule", "FashionUnpairedDataModule", "ImageDataModule", "ImageFolderDataModule",
    "InMemoryImageDataModule", "MNISTColorsDataModule", "MNISTDataModule", "PairIndexSampler", "ResumableDataLoader",
    "SeededRandomSampler", "UnpairedDataModule",
]
