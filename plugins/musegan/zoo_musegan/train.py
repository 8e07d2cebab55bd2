"""WGAN-GP training for MuseGAN: the book's recipe with its bugs fixed, a moving average of the generator, and
a release rule that hears rests and parallels.

One trainer step = `n_critic` (5) critic updates on the same real batch, then one generator update, then the
moving average of the generator's weights (`ema_decay`) takes a step toward it. Fixes against the book: the
interpolation weight alpha is drawn fresh at every critic step (the book drew it once for the whole run), and
the generator is put in eval mode to generate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.limits import MAX_EVAL_NUM
from zoo.train import TrainConfig, Trainer


def _as_step(opt: torch.optim.Optimizer | Callable) -> Callable:
    if callable(opt) and not isinstance(opt, torch.optim.Optimizer):
        return opt

    def step(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """mean((1 - ||grad C(x_hat)||_2)^2), x_hat = alpha*real + (1-alpha)*fake, alpha ~ U[0,1) fresh per sample and call."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    with torch.autocast(real.device.type, enabled=False):   # a gradient of a gradient wants full precision
        score = critic(x_hat)
        (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((1 - grad.flatten(1).norm(2, dim=1)) ** 2).mean()


def wgan_gp_iteration(generator: Callable, critic: nn.Module, gen_opt, critic_opt, real: torch.Tensor,
                      sample_noise: Callable[[int], tuple], n_critic: int = 5,
                      gp_weight: float = 10.0) -> dict[str, torch.Tensor]:
    """n_critic critic updates on one real batch, then one generator update; returns the losses as detached
    tensors (a float() here would wait for the GPU at every step: the trainer converts them when it logs).

    generator maps noise to the rolls the critic judges (a module, or MuseGAN.fake_rolls);
    gen_opt / critic_opt are optimizers or step(loss) callables (the trainer's self.optimize).
    """
    step_c, step_g = _as_step(critic_opt), _as_step(gen_opt)
    b = real.shape[0]
    critic.requires_grad_(True)
    for _ in range(n_critic):
        with torch.no_grad():   # the critic's update needs no graph through the generator
            fake = generator(*sample_noise(b)).float()
        c_fake, c_real = critic(fake).float().mean(), critic(real).float().mean()
        gp = gradient_penalty(critic, real, fake)
        c_loss = c_fake - c_real + gp_weight * gp
        step_c(c_loss)
    # the critic's weights need no gradient for the generator's update
    critic.requires_grad_(False)
    try:
        g_loss = -critic(generator(*sample_noise(b))).float().mean()
        step_g(g_loss)
    finally:
        critic.requires_grad_(True)
    return {"critic_loss": c_loss.detach(), "gp": gp.detach(), "wasserstein": (c_real - c_fake).detach(),
            "gen_loss": g_loss.detach()}


@dataclass(frozen=True)
class MuseGANTrainConfig(TrainConfig):
    """TrainConfig plus the WGAN-GP knobs."""

    n_critic: int = 5             # critic updates per generator update
    gp_weight: float = 10.0       # lambda of the gradient penalty
    beta1: float = 0.5            # Adam betas of both networks (the book's)
    beta2: float = 0.9
    critic_lr: float = 0.0        # the critic's learning rate (two time-scale updates, Heusel et al. 2017); 0 = lr
    ema_decay: float = 0.999      # moving average of the generator's weights, which plays and is released; 0 = off
    transpose: int = 0            # augmentation: random shift in [-K, K] semitones, kept inside every voice's range
    eval_samples: int = 256       # generated pieces compared with the test windows in evaluate()

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.n_critic <= 1_000:   # critic updates per step: 10**9 never finished one
            raise ConfigError(f"n_critic must be 1..1,000, got {self.n_critic}")
        if self.gp_weight < 0:
            raise ConfigError(f"gp_weight must be >= 0, got {self.gp_weight}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("beta1 and beta2 must be in [0, 1)")
        if not (self.critic_lr == 0 or 0 < self.critic_lr <= 1):
            raise ConfigError(f"critic_lr must be 0 (the same as lr) or in (0, 1], got {self.critic_lr}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1) (0 turns the average off), got {self.ema_decay}")
        if not 0 <= self.transpose <= 12:
            raise ConfigError(f"transpose must be 0..12 semitones, got {self.transpose}")
        if not 1 <= self.eval_samples <= MAX_EVAL_NUM:
            raise ConfigError(f"eval_samples must be 1..{MAX_EVAL_NUM:,}, got {self.eval_samples}")


# The release rule (issue #30), fixed before the runs it picks from. Each weight, and why:
REST_WEIGHT = 4.0        # a silent voice is what a listener hears first; 4 puts the bass of musegan-bach v3 (resting
                         # 22 % of the validation 16ths, Bach 1 %) at +0.83, more than twice its whole distance (0.35)
PARALLELS_WEIGHT = 0.06  # parallel fifths and octaves are audible faults; v3 writes 7.6 per 100 16ths (all six voice
                         # pairs; Bach 0.16): 0.06 puts that at +0.45, about its distance, and a fifth of it at +0.09


def release_score(gen: dict, data: dict) -> float:
    """The number zoo release picks checkpoints by (lower is better): distance_to_data, plus REST_WEIGHT times
    the largest gap between a voice's rest rate and the data's (the worst voice: an average over four hides one
    silent bass), plus PARALLELS_WEIGHT times the parallel fifths and octaves per 100 16ths beyond the data's."""
    from zoo_chorales.metrics import distance_to_data

    rests = [abs(gen[k] - data[k]) for k in gen if k.startswith("rest_rate_") and k in data]
    parallels = max(0.0, gen["parallels_per_100"] - data["parallels_per_100"])
    return distance_to_data(gen, data) + REST_WEIGHT * max(rests, default=0.0) + PARALLELS_WEIGHT * parallels


def average_decay(ema_decay: float, step: int, fine_tuning: bool) -> float:
    """The moving average's decay at a step. From scratch it warms up as TensorFlow's
    ExponentialMovingAverage(num_updates) does, min(ema_decay, (1 + step) / (10 + step)), so that a short run is
    not dominated by the random init. A fine-tuning run (init=) starts its average at trained weights worth
    keeping, so it decays by ema_decay from the first step (the warm-up let a branch's average follow the
    drifting generator within a few dozen steps)."""
    return ema_decay if fine_tuning else min(ema_decay, (1 + step) / (10 + step))


class MuseGANTrainer(Trainer):
    """WGAN-GP: one step = n_critic critic updates + one generator update, on a batch of real windows."""

    config_class = MuseGANTrainConfig
    # zoo release picks the checkpoint with the lowest release_score on the validation windows
    select_by = ("valid_release_score", "min")
    manual_optimization = True   # two optimizers: training_step calls self.optimize("critic" / "generator", loss)
    # the book: Adam 1e-3, betas (0.5, 0.9), batch 64, no LR schedule, no gradient clipping.
    # amp off: bf16 moved the critic's gradients by 27 % on trained weights, and no run has shown yet
    # that the GAN's music survives it (--set amp=true tries it; on CUDA and AMX CPUs it is ~1.4x faster).
    defaults = {"lr": 1e-3, "batch_size": 64, "schedule": "constant", "grad_clip": 0.0, "ckpt_every": 100,
                "amp": False}

    def __init__(self, model, config, source=None, device="cpu"):
        super().__init__(model, config, source, device)
        if config.init:   # fine-tuning starts from the weights that play (an older folder has no trained copy)
            model.generator.load_state_dict(model.generator_ema.state_dict())

    def _data(self, source):
        from .data import load_data

        key = str(source)
        if getattr(self, "_data_key", None) != key:
            c = self.model.config
            self._windows = load_data(source, n_bars=c.n_bars, steps_per_bar=c.steps_per_bar, n_pitches=c.n_pitches)
            self._data_key = key
        return self._windows

    def build_dataset(self, source, split):
        """The registered builder's windows of the split, from the windows loaded once per source; the train
        split transposed (config.transpose)."""
        from .data import build_dataset

        return build_dataset(source, split, self.model, transpose=self.config.transpose if split == "train" else 0,
                             seed=self.config.seed, data=self._data(source))

    def configure_optimizers(self):
        betas = (self.config.beta1, self.config.beta2)
        critic_lr = self.config.critic_lr or self.config.lr
        return {"critic": torch.optim.Adam(self.model.critic.parameters(), lr=critic_lr, betas=betas),
                "generator": torch.optim.Adam(self.model.generator.parameters(), lr=self.config.lr, betas=betas)}

    def parallelize(self, module, mesh):
        """Called for the generator and for the critic. Under fsdp each is one unit (a few MB: gathering a whole
        network at once costs little, and its layers need no finer units). The critic's weights stay gathered
        for the whole step: the gradient penalty differentiates through a gradient (autograd.grad with
        create_graph, then backward), and FSDP would free the gathered weights after the first of the two
        backward passes that the second still reads. Under ddp, the core's default."""
        if self.config.distributed != "fsdp":
            return super().parallelize(module, mesh)
        from torch.distributed.fsdp import fully_shard

        keep = module is self.raw_model.critic
        fully_shard(module, mesh=mesh, reshard_after_forward=not keep)
        if keep:
            module.set_reshard_after_backward(False)
        return module

    def training_step(self, batch, step):
        logs = wgan_gp_iteration(
            self.model.fake_rolls, self.model.critic,
            gen_opt=lambda loss: self.optimize("generator", loss),
            critic_opt=lambda loss: self.optimize("critic", loss),
            real=batch, sample_noise=lambda b: self.model.sample_noise(b),
            n_critic=self.config.n_critic, gp_weight=self.config.gp_weight)
        self.model.update_average(average_decay(self.config.ema_decay, step, fine_tuning=bool(self.config.init)))
        return logs

    def evaluate(self, dataset):
        """Metrics of generated pieces paired with the same metrics of the split's windows, and
        distance_to_data (metrics.distance_to_data), the number checkpoints are picked by."""
        from zoo.metrics import Metrics
        from zoo_chorales.metrics import all_metrics, distance_to_data

        model, c = self.model, self.model.config
        n = self.config.eval_samples
        rolls = model.sample(n, seed=self.config.seed + 12345)
        grid = model.tokenizer.roll_to_grid(rolls)                       # (tracks, n * T)
        gen = grid.reshape(c.n_tracks, n, -1).transpose(1, 0, 2)
        gen_m, data_m = all_metrics(gen, c.steps_per_bar), all_metrics(dataset.grids, c.steps_per_bar)
        paired = {k: (v, data_m[k]) for k, v in gen_m.items()}
        out = {"distance_to_data": distance_to_data(gen_m, data_m), "release_score": release_score(gen_m, data_m)}
        # the same for the trained generator itself, to measure what the moving average brings
        raw = model.tokenizer.roll_to_grid(model.sample(n, seed=self.config.seed + 12345, averaged=False))
        raw_m = all_metrics(raw.reshape(c.n_tracks, n, -1).transpose(1, 0, 2), c.steps_per_bar)
        out["trained_distance_to_data"] = distance_to_data(raw_m, data_m)
        out["trained_release_score"] = release_score(raw_m, data_m)
        train = self._data(self.source).splits["train"]
        if len(train) and len(dataset.grids):   # does it copy training windows? (held-out Bach as the yardstick)
            from zoo_chorales.metrics import copy_check

            out.update(copy_check(gen, dataset.grids, train))
        # the critic's estimate of the Wasserstein distance between the split and generated pieces
        m = min(len(dataset), 512)
        real = torch.stack([dataset[i] for i in range(m)]).to(model.device)
        with torch.no_grad():
            out["critic_w_distance"] = float(model.critic(real).mean() - model.critic(rolls[:m].to(model.device)).mean())
        return Metrics(paired=paired, scores=out)

    def card_sections(self, summary):
        from .card import card_sections

        return card_sections(summary)
