"""MuseGAN (Dong et al. 2018, as in the book "Hands-On Generative AI with Transformers and Diffusion Models"'s
music chapter): a generator of four-voice, two-bar piano rolls from four noise inputs, and its WGAN critic.

The default config is the book's network (6,576,612 generator and 1,446,401 critic parameters); the plugin's
tests/musegan_reference.py holds the book's layers literally and the tests compare the two weight for weight.
One change from the book: each bar generator runs all bars in one call, so its batch-norm statistics are
taken over batch x bars (the book called it once per bar, statistics per bar). In eval mode, where the
running statistics are used, the two compute the same function.

Options beyond the book (each documented in the plugin's README, with what it measured in the model card):
a categorical output (`output`, zoo_musegan.categorical), the onsets the critic also reads (`critic_onsets`)
and a critic front end that hears each voice along time (`critic_voice_channels`). Options that lost when
measured are removed (`MuseGANConfig.removed_keys`).
The model keeps two generators: `generator`, which the optimizer trains, and `generator_ema`, the moving
average of its weights that the trainer keeps, which plays (model.safetensors).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError
from zoo.model import Model

from .categorical import categorical_roll
from .patch_conv import PatchConv3d, PatchConvTranspose2d


MAX_TRACKS, MAX_BARS = 16, 64   # as the piano-roll tokenizer allows
REMOVED = ("it lost when measured (musezoo-musegan's README, 'Measured history of the options'); a folder that "
           "uses it plays with musezoo-musegan 0.1.0, and a new run leaves the key out")


@dataclass(frozen=True)
class MuseGANConfig:
    n_tracks: int = 4                 # voices (soprano, alto, tenor, bass)
    n_bars: int = 2
    steps_per_bar: int = 16           # 16th notes in 4/4
    n_pitches: int = 84               # pitch index = MIDI number 0..83
    z_dim: int = 32                   # size of each of the four noise vectors
    temporal_hidden: int = 1024       # channels inside the temporal networks
    bar_hidden_features: int = 1024   # width of the bar generator's first linear layer
    bar_hidden_channels: int = 512    # channels of its first transposed convolution
    critic_hidden: int = 128          # channels of the critic's convolutions
    critic_hidden_features: int = 1024  # width of the critic's hidden linear layer
    output: str = "linear"            # "linear" (the book: one value per pitch, >0 = on), "onehot" or "gumbel"
    gumbel_tau: float = 1.0           # softmax temperature of the straight-through gradient (onehot, gumbel)
    sample_temperature: float = 1.0   # gumbel only: draw each cell from softmax(logits / T); the critic sees the same draws
    critic_onsets: bool = False       # the critic also sees where each note starts (Dong & Yang's onset stream)
    critic_voice_channels: int = 0    # >0: the critic first hears each voice along time with this many channels

    # options that lost when measured (the plugin's README), removed in musezoo-musegan 0.2.0: folders saved
    # before name them, and load as before at the value that kept them off (zoo.config.drop_removed_keys)
    removed_keys: ClassVar[dict[str, tuple[object, str]]] = {
        "hold": (False, REMOVED), "critic_rests": (False, REMOVED), "gumbel_noise": ("cell", REMOVED)}

    def __post_init__(self):
        for name in ("n_tracks", "n_bars", "steps_per_bar", "n_pitches", "z_dim", "temporal_hidden",
                     "bar_hidden_features", "bar_hidden_channels", "critic_hidden", "critic_hidden_features"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"musegan config {name} must be a positive integer, got {value!r}")
        if self.n_bars < 2:
            raise ConfigError(f"musegan config n_bars must be at least 2 (the temporal network spans bars), got {self.n_bars}")
        if self.n_pitches % 12:
            raise ConfigError(f"musegan config n_pitches must be a multiple of 12 (whole octaves), got {self.n_pitches}")
        if self.bar_hidden_channels % 2:
            raise ConfigError(f"musegan config bar_hidden_channels must be even, got {self.bar_hidden_channels}")
        if self.bar_hidden_features % self.bar_hidden_channels:
            raise ConfigError(
                f"musegan config bar_hidden_features ({self.bar_hidden_features}) must be a multiple of "
                f"bar_hidden_channels ({self.bar_hidden_channels})")
        rows = self.bar_hidden_features // self.bar_hidden_channels
        if self.steps_per_bar != 8 * rows:
            raise ConfigError(
                f"musegan config steps_per_bar must be 8 * bar_hidden_features / bar_hidden_channels = {8 * rows} "
                f"(three 2x upsamplings), got {self.steps_per_bar}; change the widths or steps_per_bar")
        if self.output not in ("linear", "onehot", "gumbel"):
            raise ConfigError(f"musegan config output must be 'linear', 'onehot' or 'gumbel', got {self.output!r}")
        if not isinstance(self.gumbel_tau, (int, float)) or isinstance(self.gumbel_tau, bool) or not 0.05 <= self.gumbel_tau <= 10:
            raise ConfigError(f"musegan config gumbel_tau must be a number in [0.05, 10], got {self.gumbel_tau!r}")
        t = self.sample_temperature
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.05 <= t <= 10:
            raise ConfigError(f"musegan config sample_temperature must be a number in [0.05, 10], got {t!r}")
        if t != 1.0 and self.output != "gumbel":
            raise ConfigError(f"musegan config sample_temperature applies to output='gumbel' only (got output="
                              f"{self.output!r}); drop it or set output=gumbel")
        if not isinstance(self.critic_voice_channels, int) or isinstance(self.critic_voice_channels, bool) \
                or not 0 <= self.critic_voice_channels <= 4096:
            raise ConfigError(f"musegan config critic_voice_channels must be 0 (off) to 4096, got "
                              f"{self.critic_voice_channels!r}")
        if not isinstance(self.critic_onsets, bool):
            raise ConfigError(f"musegan config critic_onsets must be true or false, got {self.critic_onsets!r}")
        if critic_steps_out(self.steps_per_bar) != 1:
            raise ConfigError(f"musegan config steps_per_bar must be 8 or 16 for the critic's strides, got {self.steps_per_bar}")
        # the piano-roll tokenizer's ranges: one network per track is built, so a million tracks took minutes of
        # building on the meta device before the size check could stop it
        if self.n_tracks > MAX_TRACKS or self.n_bars > MAX_BARS:
            raise ConfigError(f"musegan config n_tracks must be 1..{MAX_TRACKS} and n_bars 2..{MAX_BARS}, got "
                              f"{self.n_tracks} and {self.n_bars}")
        from zoo.build import machine_elements

        if self.numbers() > machine_elements():
            raise ConfigError(f"musegan config builds a model of {self.numbers():,} numbers, more than this machine "
                              f"can train or hold ({machine_elements():,}); lower its sizes (temporal_hidden, "
                              f"bar_hidden_features, bar_hidden_channels, critic_hidden ...)")

    def numbers(self) -> int:
        """Parameters and buffers of the generator (twice: it and its moving average) and the critic, from
        arithmetic on the sizes (nothing built)."""
        z, h, nb, f, c = self.z_dim, self.temporal_hidden, self.n_bars, self.bar_hidden_features, self.bar_hidden_channels
        half, octaves = c // 2, self.n_pitches // 12

        def batch_norm(n):   # weight, bias, running mean and variance, and the batch count
            return 4 * n + 1

        temporal = 2 * z * h + h + batch_norm(h) + h * z * (nb - 1) + z + batch_norm(z)
        convs = [(c, c, 2), (c, half, 2), (half, half, 2), (half, half, octaves), (half, 1, 12)]
        rest = self.output != "linear"   # a categorical output's rest logit
        bar = (4 * z * f + f + batch_norm(f) + sum(i * o * k + o for i, o, k in convs)
               + sum(batch_norm(o) for _, o, _ in convs[:-1]) + rest * (half + 1))
        generator = temporal + self.n_tracks * (temporal + bar)
        k = self.critic_hidden
        layers = [(self.n_tracks * self.critic_streams, k, 2), (k, k, nb - 1), (k, k, 12),
                  (k, k, octaves), (k, k, 2), (k, k, 2), (k, 2 * k, 4), (2 * k, 4 * k, 3)]
        g = self.critic_hidden_features
        critic = sum(i * o * kk + o for i, o, kk in layers) + 4 * k * g + g + g + 1
        v, t = self.critic_voice_channels, self.n_tracks
        if v:
            per_voice = self.critic_streams * self.n_pitches * v * 3 + v + v * v * 3 + v
            mixing = t * v * 4 * v * 4 + 4 * v + 4 * v * 4 * v * 4 + 4 * v
            critic += t * per_voice + mixing + 4 * v * voice_steps_out(nb * self.steps_per_bar) * g
        return 2 * generator + critic

    @property
    def critic_streams(self) -> int:
        """Copies of each voice the critic reads: its roll, and its onsets where asked for."""
        return 1 + self.critic_onsets


def critic_steps_out(steps: int) -> int:
    """Length of the step axis after the critic's convolutions (must be 1)."""
    for _ in range(2):
        steps //= 2
    steps = (steps + 2 - 4) // 2 + 1
    return (steps + 2 - 3) // 2 + 1


def voice_steps_out(steps: int) -> int:
    """Length of the time axis after the voice front end's two mixing convolutions (kernel 4, stride 2, pad 1)."""
    for _ in range(2):
        steps = (steps + 2 - 4) // 2 + 1
    return steps


def book_init(module: nn.Module) -> None:
    """The book's init: conv and linear weights ~ N(0, 0.02); linear and BN2d biases 0, BN2d weights ~ N(0, 0.02)."""
    if isinstance(module, (nn.Conv1d, nn.Conv3d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.Linear, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0.0)


# ---- the generator -----------------------------------------------------------------------------------------

class TemporalNetwork(nn.Module):
    """Noise (B, z) -> one noise vector per bar (B, z, n_bars); two transposed convolutions over the bar axis."""

    def __init__(self, z_dim: int = 32, hidden: int = 1024, n_bars: int = 2):
        super().__init__()
        self.z_dim, self.n_bars = z_dim, n_bars
        self.conv1 = PatchConvTranspose2d(z_dim, hidden, kernel_size=(2, 1))
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = PatchConvTranspose2d(hidden, z_dim, kernel_size=(n_bars - 1, 1))
        self.bn2 = nn.BatchNorm2d(z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.view(z.shape[0], self.z_dim, 1, 1)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return x.view(z.shape[0], self.z_dim, self.n_bars)


class BarGenerator(nn.Module):
    """One voice's bars: (N, 4z) -> (N, steps, pitches), N being batch x bars.

    A linear layer, then transposed convolutions that double the steps three times, then spread the
    octaves and the 12 pitches of each octave. A categorical output adds a rest logit per step, read from the
    features of all octaves."""

    def __init__(self, z_dim: int = 32, hidden_features: int = 1024, hidden_channels: int = 512, n_pitches: int = 84,
                 rest_logit: bool = False):
        super().__init__()
        c, half = hidden_channels, hidden_channels // 2
        self.channels, self.rows = c, hidden_features // c   # the book's Reshape((c, rows, 1)) after the linear
        self.linear = nn.Linear(4 * z_dim, hidden_features)
        self.bn0 = nn.BatchNorm1d(hidden_features)
        shapes = [(c, c, (2, 1)), (c, half, (2, 1)), (half, half, (2, 1)), (half, half, (1, n_pitches // 12)),
                  (half, 1, (1, 12))]
        self.convs = nn.ModuleList(PatchConvTranspose2d(i, o, k, stride=k) for i, o, k in shapes)
        self.bns = nn.ModuleList(nn.BatchNorm2d(o) for _, o, _ in shapes[:-1])
        self.rest = nn.Linear(half, 1) if rest_logit else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.linear(z)))
        x = x.view(z.shape[0], self.channels, self.rows, 1)          # (N, C, steps, octaves), growing
        for conv, bn in zip(self.convs[:-1], self.bns):
            x = F.relu(bn(conv(x)))
        pitches = self.convs[-1](x).squeeze(1)                        # (N, steps, pitches), no activation
        if self.rest is None:
            return pitches
        features = x.mean(dim=3).transpose(1, 2)                      # (N, steps, C): all octaves, per step
        return torch.cat([pitches, self.rest(features)], dim=-1)


class MuseGenerator(nn.Module):
    """Four noise inputs -> piano rolls (B, tracks, bars, steps, pitches).

    chords (one per piece, varied over bars by a temporal network), style (one per piece), melody (one per
    voice, varied over bars) and groove (one per voice) are concatenated per bar and voice, and each voice's
    bar generator turns them into its bars."""

    def __init__(self, config: MuseGANConfig):
        super().__init__()
        c = config
        self.n_tracks, self.n_bars = c.n_tracks, c.n_bars
        self.chords_network = TemporalNetwork(c.z_dim, c.temporal_hidden, c.n_bars)
        self.melody_networks = nn.ModuleList(TemporalNetwork(c.z_dim, c.temporal_hidden, c.n_bars)
                                             for _ in range(c.n_tracks))
        self.bar_generators = nn.ModuleList(
            BarGenerator(c.z_dim, c.bar_hidden_features, c.bar_hidden_channels, c.n_pitches,
                         rest_logit=c.output != "linear") for _ in range(c.n_tracks))

    def forward(self, chords, style, melody, groove) -> torch.Tensor:
        """chords, style: (B, z); melody, groove: (B, tracks, z)."""
        b, bars = style.shape[0], self.n_bars
        chords_t = self.chords_network(chords)                              # (B, z, bars)
        style_t = style.unsqueeze(-1).expand(-1, -1, bars)                  # shared by all bars
        voices = []
        for t, (melody_net, bar_gen) in enumerate(zip(self.melody_networks, self.bar_generators)):
            melody_t = melody_net(melody[:, t])                             # (B, z, bars)
            groove_t = groove[:, t].unsqueeze(-1).expand(-1, -1, bars)
            z = torch.cat([chords_t, style_t, melody_t, groove_t], dim=1)   # (B, 4z, bars)
            z = z.permute(2, 0, 1).reshape(bars * b, -1)                    # bars folded into the batch
            out = bar_gen(z)                                                # (bars * B, steps, pitches)
            voices.append(out.view(bars, b, *out.shape[1:]).transpose(0, 1))
        return torch.stack(voices, dim=1)                                   # (B, tracks, bars, steps, pitches)


# ---- the critic --------------------------------------------------------------------------------------------

class VoiceFrontEnd(nn.Module):
    """Hears each voice along time before voices mix: (B, tracks, streams, T, pitches) -> features to add to
    the critic's hidden layer.

    Per voice (a grouped convolution: each voice its own weights), the pitches of its roll (and its onsets)
    are the channels of two convolutions over the 16ths, so that a held note, a repeated or
    jittering pitch, a step, a leap and a rest are each a pattern of three 16ths. Then two strided
    convolutions over time mix the voices, and a linear projection adds the result to the critic's hidden
    layer. The projection starts at zero, so a critic that gains this front end computes what it did before."""

    def __init__(self, n_tracks: int, streams: int, n_pitches: int, channels: int, steps: int, hidden: int):
        super().__init__()
        t, v = n_tracks, channels
        self.per_voice = nn.Sequential(
            nn.Conv1d(t * streams * n_pitches, t * v, 3, padding=1, groups=t), nn.LeakyReLU(0.3),
            nn.Conv1d(t * v, t * v, 3, padding=1, groups=t), nn.LeakyReLU(0.3))
        self.mix = nn.Sequential(
            nn.Conv1d(t * v, 4 * v, 4, stride=2, padding=1), nn.LeakyReLU(0.3),
            nn.Conv1d(4 * v, 4 * v, 4, stride=2, padding=1), nn.LeakyReLU(0.3))
        self.project = nn.Linear(4 * v * voice_steps_out(steps), hidden, bias=False)
        self._register_load_state_dict_pre_hook(self._keep_own_init_when_absent)

    def forward(self, voices: torch.Tensor) -> torch.Tensor:
        b, t, streams, steps, pitches = voices.shape
        x = voices.permute(0, 1, 2, 4, 3).reshape(b, t * streams * pitches, steps)   # voice-major channels
        return self.project(self.mix(self.per_voice(x)).flatten(1))

    def _keep_own_init_when_absent(self, state_dict, prefix, *args):
        """Branching a critic that had no front end (init=an older model): the front end starts from its own
        init, its projection zero, instead of the load failing on missing keys."""
        if not any(k.startswith(prefix) for k in state_dict):
            for name, value in self.state_dict().items():
                state_dict[prefix + name] = value


class MuseCritic(nn.Module):
    """Piano rolls (B, tracks, bars, steps, pitches) -> a score (B, 1). LeakyReLU(0.3), no normalisation.

    Convolutions over the bars, then the 12 pitches of an octave, then the octaves, then the steps, then two
    linear layers. With critic_onsets it reads, beside each voice's roll, where its notes start; with
    critic_voice_channels a VoiceFrontEnd hears each voice along time first."""

    def __init__(self, config: MuseGANConfig):
        super().__init__()
        c, h = config, config.critic_hidden
        octaves = c.n_pitches // 12
        self.onsets = c.critic_onsets
        layers = [  # (in, out, kernel, stride, padding), all on (bars, steps, pitches)
            (c.n_tracks * c.critic_streams, h, (2, 1, 1), 1, 0),
            (h, h, (c.n_bars - 1, 1, 1), 1, 0),
            (h, h, (1, 1, 12), (1, 1, 12), 0),
            (h, h, (1, 1, octaves), (1, 1, octaves), 0),
            (h, h, (1, 2, 1), (1, 2, 1), 0),
            (h, h, (1, 2, 1), (1, 2, 1), 0),
            (h, 2 * h, (1, 4, 1), (1, 2, 1), (0, 1, 0)),
            (2 * h, 4 * h, (1, 3, 1), (1, 2, 1), (0, 1, 0)),
        ]
        self.convs = nn.ModuleList(PatchConv3d(i, o, k, stride=s, padding=p) for i, o, k, s, p in layers)
        self.linear1 = nn.Linear(4 * h, c.critic_hidden_features)
        self.linear2 = nn.Linear(c.critic_hidden_features, 1)
        self.voices = None
        if c.critic_voice_channels:
            self.voices = VoiceFrontEnd(c.n_tracks, c.critic_streams, c.n_pitches, c.critic_voice_channels,
                                        c.n_bars * c.steps_per_bar, c.critic_hidden_features)

    def forward(self, roll: torch.Tensor) -> torch.Tensor:
        streams = [roll]
        if self.onsets:
            streams.append(onset_roll(roll))
        x = torch.cat(streams, dim=1)                          # (B, streams * tracks, bars, steps, pitches)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.3)
        hidden = self.linear1(x.flatten(1))
        if self.voices is not None:
            b, t, bars, steps, pitches = roll.shape
            voices = torch.stack(streams, dim=2).reshape(b, t, len(streams), bars * steps, pitches)
            hidden = hidden + self.voices(voices)
        return self.linear2(F.leaky_relu(hidden, 0.3))


def onset_roll(roll: torch.Tensor) -> torch.Tensor:
    """A +1/-1 roll (B, tracks, bars, steps, pitches) -> +1 where a note starts (on now, off the 16th before), else -1.

    The critic folds the pitch axis before it looks along time, so from the roll alone it can hardly tell a
    held note from a pitch struck again and again nearby; the onsets make that difference a sum it can read. The
    formula is smooth, so it also takes the gradient penalty's blends of real and fake rolls."""
    b, tracks, bars, steps, pitches = roll.shape
    on = ((roll + 1) / 2).reshape(b, tracks, bars * steps, pitches)
    before = F.pad(on, (0, 0, 1, 0))[:, :, :-1]            # nothing sounds before the first 16th
    return (2 * on * (1 - before) - 1).reshape(roll.shape)


# ---- the model ---------------------------------------------------------------------------------------------

class MuseGAN(Model):
    """MuseGAN (Dong et al. 2018) as in the book: four-voice, two-bar piano rolls from four noise inputs."""

    arch = "musegan"
    # 2: config.output (onehot, gumbel); 3: config.sample_temperature; 4: config.critic_onsets (and hold,
    # critic_rests, removed since); 5: critic_voice_channels and generator.safetensors (the trained weights;
    # model.safetensors is their moving average). Older folders load unchanged; an older plugin refuses a newer
    # folder with "upgrade the plugin".
    arch_version = 5
    min_arch_version = 1
    config_class = MuseGANConfig
    tokenizer_name = "pianoroll"
    card_metadata = {"license": "mit", "tags": ["musegan", "gan"]}
    # the critic and the trained (not averaged) generator ride along for resuming and fine-tuning
    optional_state_files = ("critic", "generator")
    generate_options = ()
    # sheet music of the four voices: SATB staves with their clefs, or a two-staff short score
    score_layouts = {
        "4": (("Soprano", "treble", (0,)), ("Alto", "treble", (1,)), ("Tenor", "treble8vb", (2,)),
              ("Bass", "bass", (3,))),
        "2": (("S A", "treble", (0, 1)), ("T B", "bass", (2, 3))),
    }

    def __init__(self, config: MuseGANConfig | None = None, tokenizer=None):
        if tokenizer is None:   # built directly (tests, notebooks): the plugin's own tokenizer, no registry
            from .tokenizer import PianoRollTokenizer

            tokenizer = PianoRollTokenizer()
        super().__init__(config or MuseGANConfig(), tokenizer)
        self.generator = MuseGenerator(self.config)
        self.critic = MuseCritic(self.config)
        # built on the meta device (zoo.load does, then assigns the saved weights) there is nothing to initialise,
        # and torch's meta normal_ took 0.9 s of a 1.2 s load
        if not torch.empty(0).is_meta:
            self.generator.apply(book_init)
            self.critic.apply(book_init)
            if self.config.output != "linear":
                self._unit_bn_scales()
            if self.critic.voices is not None:
                nn.init.zeros_(self.critic.voices.project.weight)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    def _unit_bn_scales(self):
        """One-hot outputs start from unit batch-norm scales instead of the book's N(0, 0.02) ones: with scales
        near 0.02 the generator's output hardly depends on its noise at first, so the largest logit was the same
        for every noise vector (measured: every pair of 256 pieces a near-duplicate for the first 300 steps)."""
        for m in self.generator.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)

    def state_files(self) -> dict[str, nn.Module]:
        """model.safetensors is the generator that plays (the moving average of the trained weights); the
        critic and the trained generator ride along for resuming and fine-tuning."""
        return {"model": self.generator_ema, "critic": self.critic, "generator": self.generator}

    def num_parameters(self) -> int:
        """The trained networks' parameters: the moving average is a copy, not more model."""
        return sum(p.numel() for m in (self.generator, self.critic) for p in m.parameters())

    @torch.no_grad()
    def update_average(self, decay: float) -> None:
        """generator_ema <- decay * generator_ema + (1 - decay) * generator, parameters and batch-norm statistics
        alike (as timm's ModelEmaV2 does); decay 0 copies. Under fsdp the trained weights are gathered first."""
        pairs = zip(self.generator_ema.state_dict().values(), self.generator.state_dict().values())
        for average, trained in pairs:
            trained = trained.full_tensor() if hasattr(trained, "full_tensor") else trained
            if average.is_floating_point() and decay > 0:
                average.lerp_(trained.to(average.dtype), 1 - decay)
            else:
                average.copy_(trained)

    def sample_noise(self, num: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """chords, style, melody, groove ~ N(0, 1) (the book used U[0,1) at inference, unlike training)."""
        c = self.config
        shapes = [(num, c.z_dim), (num, c.z_dim), (num, c.n_tracks, c.z_dim), (num, c.n_tracks, c.z_dim)]
        if generator is None:   # training: the global RNG, which the trainer seeds and checkpoints
            return tuple(torch.randn(s, device=self.device) for s in shapes)
        # a seeded draw happens on the CPU, so that a seed gives the same music on every device
        return tuple(torch.randn(s, generator=generator).to(self.device) for s in shapes)

    def forward(self, chords, style, melody, groove) -> torch.Tensor:
        """The playing generator's raw output (B, tracks, bars, steps, pitches), unbounded; positive means 'on'.
        With output="onehot" or "gumbel" these are logits (B, tracks, bars, steps, pitches + 1), the last a rest."""
        return self.generator_ema(chords, style, melody, groove)

    def fake_rolls(self, *noise) -> torch.Tensor:
        """What the critic judges in training: the trained generator's linear output as is, or the
        straight-through one-hot the decoder plays."""
        out = self.generator(*noise)
        if self.config.output != "linear":
            return categorical_roll(out, self.config.gumbel_tau, straight_through=True,
                                    sample=self.config.output == "gumbel", temperature=self.config.sample_temperature)
        return out

    @torch.no_grad()
    def sample(self, num: int = 1, seed: int | None = None, averaged: bool = True) -> torch.Tensor:
        """Rolls (num, tracks, bars, steps, pitches) of the playing generator (averaged=False: the trained one) in
        eval mode (running BN
        statistics): the linear output, or a +1/-1 one-hot of the logits: their largest (output="onehot") or a
        sample (output="gumbel").

        Piece k draws its noise from a CPU generator seeded seed + k, so it is the same piece whatever the batch
        and the device: `--seed 7 --num 4`'s third piece is `--seed 9 --num 1`."""
        if seed is None:
            seed = int(torch.seed() % 2**62)
        gens = [torch.Generator().manual_seed(int(seed) + k) for k in range(num)]
        player = self.generator_ema if averaged else self.generator
        was_training = player.training
        player.eval()
        try:
            dtype = next(player.parameters()).dtype
            pieces = [self.sample_noise(1, g) for g in gens]
            noise = [torch.cat(parts).to(dtype=dtype) for parts in zip(*pieces)]
            out = player(*noise).float()
            if self.config.output == "onehot":
                out = categorical_roll(out, sample=False)
            elif self.config.output == "gumbel":
                out = torch.cat([categorical_roll(out[k:k + 1], generator=g, temperature=self.config.sample_temperature)
                                 for k, g in enumerate(gens)])
            return out
        finally:
            player.train(was_training)

    def music_metrics(self, pieces) -> dict[str, float]:
        """`zoo eval`'s chorale rows: the grid metrics and the chorale table (metrics.all_metrics) on 16th grids."""
        from zoo_chorales.metrics import REST, all_metrics

        grids = [self.tokenizer.midi_to_grid(m) for m in pieces]
        if not grids:
            return {}
        # a piece that ends in rests decodes shorter than its window: pad every piece with rests to a whole window
        steps = max([self.config.n_bars * self.config.steps_per_bar] + [g.shape[1] for g in grids])
        padded = np.full((len(grids), self.config.n_tracks, steps), REST, dtype=np.int16)
        for i, g in enumerate(grids):
            padded[i, :, :g.shape[1]] = g
        return all_metrics(padded, self.config.steps_per_bar)

    def generate(self, num: int = 1, seed: int | None = None, **options):
        """`num` 2-bar, 4-voice pieces: a list of one PrettyMIDI each."""
        if options:
            raise ConfigError(f"musegan generate takes no options, got {', '.join(sorted(options))}")
        rolls = self.sample(num, seed).cpu()
        return [self.tokenizer.decode(roll) for roll in rolls]
