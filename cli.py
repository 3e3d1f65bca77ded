"""Entry point: ``python cli.py fit --config configs/dcgan_mnist.yaml`` (same as the ``gan-modules`` command)."""

import sys

from gan_modules.cli import main

if __name__ == "__main__":
    sys.exit(main())
