"""Non-finite guard: a NaN loss skips the update (weights and optimizer state unchanged), is counted, training goes
on; max_nonfinite_steps skips in a row stop training with one clear line."""

import pytest
import torch

from gan_modules import GAN, ConfigError
from tests.helpers import loader, trainer


class NaNAt(GAN):
    """GAN whose discriminator loss is NaN at the given generator steps."""

    def __init__(self, nan_at=(), **kwargs):
        super().__init__(**kwargs)
        self.nan_at = set(nan_at)
        self.snapshots = {}

    def discriminator_loss(self, batch, ctx):
        loss, logs = super().discriminator_loss(batch, ctx)
        if self.generator_steps in self.nan_at:
            self.snapshots[self.generator_steps] = [p.detach().clone() for p in self.discriminator.parameters()]
            loss = loss * float("nan")
        return loss, logs


TINY = dict(g_hidden=(8,), d_hidden=(8,), latent_dim=4, image_size=8, channels=1)


def test_nonfinite_guard_skips_the_update_counts_it_and_continues(tmp_path):
    model = NaNAt(nan_at=(2,), max_generator_steps=4, **TINY)
    trainer(tmp_path).fit(model, loader(64, 8, size=8))
    assert model.generator_steps == 4 and model.nonfinite_skips == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    opt_d = model.optimizers()[1].optimizer
    assert all(opt_d.state[p]["step"] == 3 for p in model.discriminator.parameters())  # 4 D steps, 1 skipped


def test_nonfinite_guard_leaves_weights_unchanged_at_the_skipped_step(tmp_path):
    class Check(NaNAt):
        def after_discriminator_step(self):
            if self.generator_steps in self.snapshots:
                for before, p in zip(self.snapshots.pop(self.generator_steps), self.discriminator.parameters()):
                    assert torch.equal(before, p)
                self.checked = True
            super().after_discriminator_step()

    model = Check(nan_at=(1,), max_generator_steps=3, **TINY)
    trainer(tmp_path).fit(model, loader(64, 8, size=8))
    assert model.checked and model.nonfinite_skips == 1


def test_bad_input_nonfinite_steps_in_a_row_stop_with_a_clear_error(tmp_path):
    model = NaNAt(nan_at=range(100), max_generator_steps=50, max_nonfinite_steps=3, **TINY)
    with pytest.raises(ConfigError, match=r"training diverged: 3 discriminator optimizer steps in a row .* lower the learning rate"):
        trainer(tmp_path).fit(model, loader(64, 8, size=8))
    assert model.nonfinite_skips == 3 and all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_input_max_nonfinite_steps_below_one():
    with pytest.raises(ConfigError, match="max_nonfinite_steps must be >= 1"):
        GAN(max_nonfinite_steps=0, **TINY)
