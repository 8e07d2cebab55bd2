"""MuseGAN: the generator and critic of the book, same math, faster layers.

The default config reproduces the book's network exactly (6,576,612 generator and
1,446,401 critic parameters). Two things differ from a literal transcription, and
neither changes the math (the plugin's tests/musegan_reference.py proves it weight for weight):

* every transposed convolution of the bar generator and every convolution of the
  critic has stride == kernel (or a tiny kernel over the bar axis), so each one is
  a single matrix multiply on channels-last activations instead of a Conv kernel;
* a bar generator runs all bars in one pass, but keeps the book's batch-norm
  statistics per bar (the book called it once per bar), so training is unchanged.

Parameters keep the shapes of the book's nn.ConvTranspose2d / nn.Conv3d layers, so
weights move between the two implementations unchanged.

`output="onehot"` (not the book's) makes each voice at each 16th one choice among its pitches and
a rest: the generator emits logits, and the critic sees exactly what the decoder plays, the
one-hot of the largest logit, with a straight-through softmax gradient (the "deterministic binary
neurons" of Dong & Yang, "Convolutional GANs with binary neurons for polyphonic music
generation", ISMIR 2018). The book's linear output is scored against exact one-hot rolls, so a
critic can tell real from fake by "one-hotness" alone; here fake and real rolls have the same form,
and only the music is left to judge. The generator stays a deterministic function of its noise,
as in any GAN. `output="gumbel"` samples the one-hot instead (Gumbel-max, straight-through
Gumbel-softmax, Jang et al. 2017); it trained far slower: after 500 steps its per-cell
distributions were still nearly flat (mean top probability 0.09), so every 16th was a new note.

`gumbel_noise="voice"` draws one Gumbel vector per piece and voice instead of one per 16th. Each
cell is still an exact sample of its own categorical (Gumbel-max with any one standard Gumbel
draw), but neighbouring cells share their randomness: a voice holds its pitch for as long as its
logits keep their order, and moves when the generator moves them. Fresh noise per 16th makes a
held note a run of independent draws that all agree, which a near-flat distribution almost never
gives; shared noise makes held notes the default and leaves the generator to write the motion.
Measured, it did not train better: branched from a per-cell run at step 2,200, notes grew from 1.2
to 6 16ths within 400 steps, but the logits went flatter (mean top probability 0.36 -> 0.12 in the
upper voices), so each voice held one random pitch: SATB order fell from 0.97 to 0.08 of pieces and
octave leaps rose from 0.08 to 0.45. "cell" stays the default.

`sample_temperature` T < 1 draws each cell from softmax(logits / T) in training and in sampling
alike, so the critic still judges exactly what is played. It only reparametrises the logits (the
generator could scale them itself), but the critic-generator game had left the per-cell
distributions flat (mean top probability about 0.4 after 2,400 steps), so every 16th was close to a
fresh draw; at T = 0.5 the same logits are sharper from the first step.

`hold` adds a third kind of choice per voice and 16th, after the pitches and the rest: "play what the 16th
before played". A held note is then one likely choice per 16th instead of the same pitch winning a fresh
draw at each of them. `critic_onsets` hands the critic, beside each voice's roll, where its notes start: the
critic folds the pitch axis (12 pitch classes, then octaves) before any layer looks along time, so from the
roll alone it can hardly tell a held note from a pitch jittering around it (the onset stream of Dong & Yang's
MuseGAN code). `critic_rests` hands it where each voice rests, +1 across the pitch axis: in the +1/-1 roll
a rest differs from a note by one cell in 84, which hardly shows once the pitches are folded. New input
channels of a widened critic can start at zero, so it computes what it did before.
Measured, each branched from one run at step 2,800 (validation distance to Bach 0.386): critic_onsets
brought it to 0.353 in 300 steps (a replicate with fresh randomness: 0.358), with in-scale 0.89 -> 0.94,
voice crossing 0.045 -> 0.022 and notes 1.4 -> 1.8 16ths, but the bass took to resting (15 % -> 28 % of
its 16ths), and after that the run drifted away; at lr 3e-5 it moved more slowly and reached 0.348 at step
3,700 (musegan-bach uses it). hold (with the onsets) made notes longest (2.9-3.1 16ths
within 500 steps), but the pitch a voice moves to became close to random (octave leaps 0.015 -> 0.03-0.13),
so the distance stayed at or above 0.415. critic_rests did not stop the bass from resting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError, DataError
from zoo.model import Model


MAX_TRACKS, MAX_BARS = 16, 64   # as the piano-roll tokenizer allows


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
    gumbel_noise: str = "cell"        # gumbel: a fresh draw per voice and 16th ("cell") or one per piece and voice ("voice")
    sample_temperature: float = 1.0   # gumbel only: draw each cell from softmax(logits / T); the critic sees the same draws
    hold: bool = False                # onehot/gumbel: one more choice per voice and 16th, "hold" (play what the 16th before played)
    critic_onsets: bool = False       # the critic also sees where each note starts (Dong & Yang's onset stream)
    critic_rests: bool = False        # the critic also sees, per voice and 16th, whether the voice rests

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
        if self.gumbel_noise not in ("cell", "voice"):
            raise ConfigError(f"musegan config gumbel_noise must be 'cell' or 'voice', got {self.gumbel_noise!r}")
        if not isinstance(self.gumbel_tau, (int, float)) or isinstance(self.gumbel_tau, bool) or not 0.05 <= self.gumbel_tau <= 10:
            raise ConfigError(f"musegan config gumbel_tau must be a number in [0.05, 10], got {self.gumbel_tau!r}")
        t = self.sample_temperature
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.05 <= t <= 10:
            raise ConfigError(f"musegan config sample_temperature must be a number in [0.05, 10], got {t!r}")
        if t != 1.0 and self.output != "gumbel":
            raise ConfigError(f"musegan config sample_temperature applies to output='gumbel' only (got output="
                              f"{self.output!r}); drop it or set output=gumbel")
        for name in ("hold", "critic_onsets", "critic_rests"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"musegan config {name} must be true or false, got {getattr(self, name)!r}")
        if self.hold and self.output == "linear":
            raise ConfigError("musegan config hold needs a categorical output; set output=gumbel or output=onehot")
        if self.hold and self.gumbel_noise != "cell":
            raise ConfigError("musegan config hold works with gumbel_noise='cell' only; drop one of the two")
        if _critic_steps_out(self.steps_per_bar) != 1:
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
        """Parameters and buffers of the generator and the critic, from arithmetic on the sizes (nothing built)."""
        z, h, nb, f, c = self.z_dim, self.temporal_hidden, self.n_bars, self.bar_hidden_features, self.bar_hidden_channels
        half, octaves = c // 2, self.n_pitches // 12

        def batch_norm(n):   # weight, bias, running mean and variance, and the batch count
            return 4 * n + 1

        temporal = 2 * z * h + h + batch_norm(h) + h * z * (nb - 1) + z + batch_norm(z)
        convs = [(c, c, 2), (c, half, 2), (half, half, 2), (half, half, octaves), (half, 1, 12)]
        heads = (self.output != "linear") + self.hold
        bar = (4 * z * f + f + batch_norm(f) + sum(i * o * k + o for i, o, k in convs)
               + sum(batch_norm(o) for _, o, _ in convs[:-1]) + heads * (half + 1))
        generator = temporal + self.n_tracks * (temporal + bar)
        k = self.critic_hidden
        layers = [(self.n_tracks * (1 + self.critic_onsets + self.critic_rests), k, 2), (k, k, nb - 1), (k, k, 12),
                  (k, k, octaves), (k, k, 2), (k, k, 2), (k, 2 * k, 4), (2 * k, 4 * k, 3)]
        g = self.critic_hidden_features
        critic = sum(i * o * kk + o for i, o, kk in layers) + 4 * k * g + g + g + 1
        return generator + critic


def _critic_steps_out(steps: int) -> int:
    """Length of the step axis after the critic's convolutions (must be 1)."""
    for _ in range(2):
        steps //= 2
    steps = (steps + 2 - 4) // 2 + 1
    return (steps + 2 - 3) // 2 + 1


def book_init(module: nn.Module) -> None:
    """The book's init: conv and linear weights ~ N(0, 0.02); linear and BN2d biases 0, BN2d weights ~ N(0, 0.02)."""
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.Linear, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.constant_(module.bias, 0.0)


def batch_norm_per_bar(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Batch norm of channels-last x (bars, batch, ..., C) with statistics per bar, as if called once per bar.

    In training the running statistics are updated once per bar, in bar order, exactly like
    the book's one-call-per-bar loop; in eval the running statistics are used.
    """
    if not bn.training:
        return (x - bn.running_mean) * torch.rsqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    dims = tuple(range(1, x.dim() - 1))
    var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)   # one pass over x, not two
    y = (x - mean) * torch.rsqrt(var + bn.eps) * bn.weight + bn.bias
    if bn.track_running_stats:
        n = math.prod(x.shape[1:-1])
        with torch.no_grad():
            m = bn.momentum
            for bar in range(x.shape[0]):
                bn.running_mean.mul_(1 - m).add_(mean[bar].reshape(-1), alpha=m)
                bn.running_var.mul_(1 - m).add_(var[bar].reshape(-1) * (n / max(n - 1, 1)), alpha=m)
                bn.num_batches_tracked.add_(1)
    return y


def conv_transpose_cl(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """ConvTranspose2d with stride == kernel on channels-last x (N, H, W, Cin) -> (N, H*kh, W*kw, Cout), as one matmul."""
    cin, cout, kh, kw = conv.weight.shape
    n, h, w, _ = x.shape
    weight = conv.weight.permute(0, 2, 3, 1).reshape(cin, kh * kw * cout)
    y = (x.reshape(-1, cin) @ weight).view(n, h, w, kh, kw, cout)
    if kh > 1 and w > 1:   # interleave the kernel rows with the input rows
        y = y.permute(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h * kh, w * kw, cout) + conv.bias


class TemporalNetwork(nn.Module):
    """Noise (B, z) -> one noise vector per bar (B, z, n_bars); two transposed convolutions over the bar axis."""

    def __init__(self, z_dim: int = 32, hidden: int = 1024, n_bars: int = 2):
        super().__init__()
        self.z_dim, self.n_bars = z_dim, n_bars
        self.conv1 = nn.ConvTranspose2d(z_dim, hidden, kernel_size=(2, 1))
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.ConvTranspose2d(hidden, z_dim, kernel_size=(n_bars - 1, 1))
        self.bn2 = nn.BatchNorm2d(z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.view(z.shape[0], self.z_dim, 1, 1)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return x.view(z.shape[0], self.z_dim, self.n_bars)


class BarGenerator(nn.Module):
    """One bar of one voice: (bars, B, 4z) -> (bars, B, steps, pitches), all bars in one pass."""

    def __init__(self, z_dim: int = 32, hidden_features: int = 1024, hidden_channels: int = 512, n_pitches: int = 84,
                 rest_logit: bool = False, hold_logit: bool = False):
        super().__init__()
        c, half = hidden_channels, hidden_channels // 2
        self.rows = hidden_features // hidden_channels   # the reshape (c, rows, 1) after the linear layer
        self.linear = nn.Linear(4 * z_dim, hidden_features)
        self.bn0 = nn.BatchNorm1d(hidden_features)
        shapes = [(c, c, (2, 1)), (c, half, (2, 1)), (half, half, (2, 1)), (half, half, (1, n_pitches // 12)), (half, 1, (1, 12))]
        self.convs = nn.ModuleList(nn.ConvTranspose2d(i, o, k, stride=k) for i, o, k in shapes)
        self.bns = nn.ModuleList(nn.BatchNorm2d(o) for _, o, _ in shapes[:-1])
        # categorical output: one more logit per step, "rest", from the features of all octaves
        self.rest = nn.Linear(half, 1) if rest_logit else None
        # and with hold, one more after it, "hold", from the same features
        self.hold = nn.Linear(half, 1) if hold_logit else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        bars, b, _ = z.shape
        x = F.relu(batch_norm_per_bar(self.linear(z), self.bn0))
        # the book's Reshape((c, rows, 1)) is channel-major; go channels-last from there on
        x = x.view(bars * b, -1, self.rows, 1).permute(0, 2, 3, 1)
        for conv, bn in zip(self.convs[:-1], self.bns):
            x = conv_transpose_cl(x, conv)
            x = F.relu(batch_norm_per_bar(x.view(bars, b, *x.shape[1:]), bn)).view(bars * b, *x.shape[1:])
        pooled = x.mean(dim=2) if self.rest is not None else None   # all octaves' features, per step
        x = conv_transpose_cl(x, self.convs[-1])          # (bars*B, steps, pitches, 1), no activation
        x = x.view(bars, b, x.shape[1], x.shape[2])
        # the categorical's extra logits after the pitches: rest, then (with hold) hold
        extra = [head(pooled).view(bars, b, -1, 1) for head in (self.rest, self.hold) if head is not None]
        return torch.cat([x, *extra], dim=-1) if extra else x


class MuseGenerator(nn.Module):
    """Four noise inputs -> piano rolls (B, tracks, bars, steps, pitches)."""

    def __init__(self, config: MuseGANConfig):
        super().__init__()
        c = config
        self.n_tracks, self.n_bars = c.n_tracks, c.n_bars
        self.chords_network = TemporalNetwork(c.z_dim, c.temporal_hidden, c.n_bars)
        self.melody_networks = nn.ModuleList(TemporalNetwork(c.z_dim, c.temporal_hidden, c.n_bars) for _ in range(c.n_tracks))
        self.bar_generators = nn.ModuleList(
            BarGenerator(c.z_dim, c.bar_hidden_features, c.bar_hidden_channels, c.n_pitches,
                         rest_logit=c.output != "linear", hold_logit=c.hold) for _ in range(c.n_tracks))

    def forward(self, chords, style, melody, groove) -> torch.Tensor:
        """chords, style: (B, z); melody, groove: (B, tracks, z)."""
        b, z = style.shape
        # (bars, B, z): chords and melody change per bar, style and groove are shared by all bars
        chords_t = self.chords_network(chords).permute(2, 0, 1)
        style_t = style.expand(self.n_bars, b, z)
        outs = []
        for t, (melody_net, bar_gen) in enumerate(zip(self.melody_networks, self.bar_generators)):
            melody_t = melody_net(melody[:, t]).permute(2, 0, 1)
            groove_t = groove[:, t].expand(self.n_bars, b, z)
            outs.append(bar_gen(torch.cat([chords_t, style_t, melody_t, groove_t], dim=-1)))
        return torch.stack(outs, dim=0).permute(2, 0, 1, 3, 4)   # (tracks, bars, B, S, P) -> (B, tracks, bars, S, P)


def _conv_cl(x: torch.Tensor, conv: nn.Conv3d, dim: int) -> torch.Tensor:
    """A Conv3d whose kernel spans one axis `dim` of channels-last x (B, D, H, W, C), as one matmul."""
    cout, cin = conv.weight.shape[:2]
    k = conv.weight.shape[2 + dim - 1]
    stride = conv.stride[dim - 1]
    pad = conv.padding[dim - 1]
    if stride == k and pad == 0 and x.shape[dim] % k == 0:
        # non-overlapping windows: a view, window-major then channel, so reorder the (small) weight to match
        shape = list(x.shape)
        x = x.reshape(*shape[:dim], shape[dim] // k, k, *shape[dim + 1:])
        x = x.movedim(dim + 1, -2) if dim + 1 != x.dim() - 2 else x
        x = x.flatten(-2)
        weight = conv.weight.reshape(cout, cin, k).permute(0, 2, 1).reshape(cout, k * cin)
    else:
        if pad:
            padding = [0, 0] * (x.dim() - 1 - dim) + [pad, pad]   # F.pad counts from the last axis
            x = F.pad(x, padding)
        x = x.unfold(dim, k, stride).flatten(-2)                # (..., C, k) channel-major like the weight
        weight = conv.weight.reshape(cout, cin * k)
    return F.linear(x, weight, conv.bias)


class MuseCritic(nn.Module):
    """Piano rolls (B, tracks, bars, steps, pitches) -> a score (B, 1). LeakyReLU(0.3), no normalisation."""

    def __init__(self, config: MuseGANConfig):
        super().__init__()
        c, h = config, config.critic_hidden
        octaves = c.n_pitches // 12
        self.onsets, self.rests = c.critic_onsets, c.critic_rests
        layers = [  # (in, out, kernel, stride, padding), all on (bars, steps, pitches)
            (c.n_tracks * (1 + c.critic_onsets + c.critic_rests), h, (2, 1, 1), 1, 0),
            (h, h, (c.n_bars - 1, 1, 1), 1, 0),
            (h, h, (1, 1, 12), (1, 1, 12), 0),
            (h, h, (1, 1, octaves), (1, 1, octaves), 0),
            (h, h, (1, 2, 1), (1, 2, 1), 0),
            (h, h, (1, 2, 1), (1, 2, 1), 0),
            (h, 2 * h, (1, 4, 1), (1, 2, 1), (0, 1, 0)),
            (2 * h, 4 * h, (1, 3, 1), (1, 2, 1), (0, 1, 0)),
        ]
        self.convs = nn.ModuleList(nn.Conv3d(i, o, k, stride=s, padding=p) for i, o, k, s, p in layers)
        # the axis each kernel spans (1 = bars, 2 = steps, 3 = pitches of the channels-last tensor)
        self.axes = [1, 1, 3, 3, 2, 2, 2, 2]
        self.linear1 = nn.Linear(4 * h, c.critic_hidden_features)
        self.linear2 = nn.Linear(c.critic_hidden_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = [x]
        if self.onsets:
            streams.append(onset_roll(x))
        if self.rests:
            streams.append(rest_roll(x))
        x = torch.cat(streams, dim=1) if len(streams) > 1 else x
        x = x.permute(0, 2, 3, 4, 1)   # channels (tracks) last: (B, bars, steps, pitches, tracks)
        for conv, axis in zip(self.convs, self.axes):
            x = F.leaky_relu(_conv_cl(x, conv, axis), 0.3)
        x = F.leaky_relu(self.linear1(x.flatten(1)), 0.3)
        return self.linear2(x)


def onset_roll(roll: torch.Tensor) -> torch.Tensor:
    """A +1/-1 roll (B, tracks, bars, steps, pitches) -> +1 where a note starts (on now, off the 16th before), else -1.

    The critic collapses the pitch axis before it looks along time, so from the roll alone it can hardly tell a
    held note from a pitch struck again and again nearby; the onsets make that difference a sum it can read. The
    formula is smooth, so it also takes the gradient penalty's blends of real and fake rolls."""
    b, tracks, bars, steps, pitches = roll.shape
    on = ((roll + 1) / 2).reshape(b, tracks, bars * steps, pitches)
    before = F.pad(on, (0, 0, 1, 0))[:, :, :-1]            # nothing sounds before the first 16th
    return (2 * on * (1 - before) - 1).reshape(roll.shape)


def rest_roll(roll: torch.Tensor) -> torch.Tensor:
    """A +1/-1 roll (B, tracks, bars, steps, pitches) -> +1 across every pitch of a 16th where the voice rests,
    else -1 (smooth in between, for the gradient penalty's blends).

    In the roll a rest differs from a note by one cell in 84, so after the critic folds the pitch axis it barely
    shows; this is the generator's own rest choice, in the roll's form."""
    on = ((roll + 1) / 2).sum(dim=-1, keepdim=True).clamp(0, 1)
    return (1 - 2 * on).expand_as(roll)


def gumbel_noise(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Standard Gumbel noise -log(-log(U)); seeded draws happen on the CPU (the same music on every device)."""
    if generator is None:
        u = torch.rand(shape, device=device)
    else:
        u = torch.rand(shape, generator=generator).to(device)
    tiny = torch.finfo(u.dtype).tiny
    return -torch.log((-torch.log(u.clamp(tiny, 1.0))).clamp_min(tiny))


def categorical_roll(logits: torch.Tensor, tau: float = 1.0, generator: torch.Generator | None = None,
                     straight_through: bool = False, sample: bool = True, noise: str = "cell",
                     temperature: float = 1.0, hold: bool = False) -> torch.Tensor:
    """Logits (B, tracks, bars, steps, pitches + 1) -> a +1/-1 roll (..., pitches): one pitch or a rest (the
    last logit) per voice and step: the largest logit, or with sample a draw from softmax(logits / temperature)
    by the Gumbel-max trick, with fresh noise per cell or (noise="voice") one noise vector per piece and voice,
    shared by all its steps. With straight_through, the gradient is that of softmax(noisy / tau), noisy being
    the tempered logits plus the noise (so tau acts on logits / temperature); the forward value is the hard
    one-hot either way.

    With hold, the logits have one more column after the rest, "hold": the voice plays at that 16th what it
    played at the 16th before (a held note, or a rest that goes on); the piece's first 16th cannot hold. The
    straight-through gradient then follows the same recurrence on the soft choices."""
    noisy = logits.float()
    if sample:
        noisy = noisy / temperature
        shape = logits.shape if noise == "cell" else (*logits.shape[:2], *[1] * (logits.dim() - 3), logits.shape[-1])
        noisy = noisy + gumbel_noise(shape, generator, logits.device)
    if hold:
        first = torch.zeros(noisy.shape[-3:], dtype=torch.bool, device=noisy.device)
        first[0, 0, -1] = True
        noisy = noisy.masked_fill(first, float("-inf"))
    choice = noisy.argmax(dim=-1)
    if hold:
        choice = resolve_holds(choice, logits.shape[-1] - 1)
    hard = F.one_hot(choice, logits.shape[-1] - int(hold)).to(logits.dtype)
    if straight_through:
        soft = torch.softmax(noisy / tau, dim=-1)
        soft = resolve_soft_holds(soft).to(logits.dtype) if hold else soft.to(logits.dtype)
        hard = hard - soft.detach() + soft
    return 2 * hard[..., :-1] - 1                          # the rest column is dropped: a rest is all -1


def resolve_holds(choice: torch.Tensor, hold_index: int) -> torch.Tensor:
    """Choices (B, tracks, bars, steps) with hold_index meaning "as before" -> the pitch or rest each 16th plays."""
    flat = choice.flatten(-2)
    t = torch.arange(flat.shape[-1], device=flat.device)
    latest = torch.where(flat != hold_index, t, 0).cummax(dim=-1).values   # the last 16th that chose for itself
    return flat.gather(-1, latest).view(choice.shape)


def resolve_soft_holds(soft: torch.Tensor) -> torch.Tensor:
    """Probabilities (B, tracks, bars, steps, pitches + 2) -> (..., pitches + 1): what each 16th plays if hold
    (the last column) passes on the 16th before, p_t = q_t + hold_t * p_(t-1); 32 small steps, cheap."""
    flat = soft.flatten(2, 3)
    played = [flat[:, :, 0, :-1]]
    for t in range(1, flat.shape[2]):
        played.append(flat[:, :, t, :-1] + flat[:, :, t, -1:] * played[-1])
    return torch.stack(played, dim=2).view(*soft.shape[:-1], soft.shape[-1] - 1)


class MuseGAN(Model):
    """MuseGAN (Dong et al. 2018) as in the book: four-voice, two-bar piano rolls from four noise inputs."""

    arch = "musegan"
    # 2: config.output (onehot, gumbel); 3: config.sample_temperature; 4: config.hold, critic_onsets, critic_rests. Older
    # folders load unchanged (linear output, temperature 1, no hold, no onsets); an older plugin refuses a newer
    # folder with "upgrade the plugin".
    arch_version = 4
    min_arch_version = 1
    config_class = MuseGANConfig
    tokenizer_name = "pianoroll"
    optional_state_files = ("critic",)
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

    def _unit_bn_scales(self):
        """One-hot outputs start from unit batch-norm scales instead of the book's N(0, 0.02) ones: with scales
        near 0.02 the generator's output hardly depends on its noise at first, so the largest logit was the same
        for every noise vector (measured: every pair of 256 pieces a near-duplicate for the first 300 steps)."""
        for m in self.generator.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)

    def state_files(self) -> dict[str, nn.Module]:
        """The generator is model.safetensors; the critic rides along for resuming and fine-tuning."""
        return {"model": self.generator, "critic": self.critic}

    def sample_noise(self, num: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """chords, style, melody, groove ~ N(0, 1) (the book used U[0,1) at inference, unlike training)."""
        c = self.config
        shapes = [(num, c.z_dim), (num, c.z_dim), (num, c.n_tracks, c.z_dim), (num, c.n_tracks, c.z_dim)]
        if generator is None:   # training: the global RNG, which the trainer seeds and checkpoints
            return tuple(torch.randn(s, device=self.device) for s in shapes)
        # a seeded draw happens on the CPU, so that a seed gives the same music on every device
        return tuple(torch.randn(s, generator=generator).to(self.device) for s in shapes)

    def forward(self, chords, style, melody, groove) -> torch.Tensor:
        """Raw generator output (B, tracks, bars, steps, pitches), unbounded; positive means 'on'.
        With output="onehot" or "gumbel" these are logits (B, tracks, bars, steps, pitches + 1), the last a rest
        (pitches + 2 with hold: the rest, then hold)."""
        return self.generator(chords, style, melody, groove)

    def fake_rolls(self, *noise) -> torch.Tensor:
        """What the critic judges in training: the linear output as is, or the straight-through one-hot the decoder plays."""
        out = self.generator(*noise)
        if self.config.output != "linear":
            return categorical_roll(out, self.config.gumbel_tau, straight_through=True,
                                    sample=self.config.output == "gumbel", noise=self.config.gumbel_noise,
                                    temperature=self.config.sample_temperature, hold=self.config.hold)
        return out

    @torch.no_grad()
    def sample(self, num: int = 1, seed: int | None = None) -> torch.Tensor:
        """Rolls (num, tracks, bars, steps, pitches) in eval mode (running BN statistics): the linear output, or a
        +1/-1 one-hot of the logits: their largest (output="onehot") or a sample (output="gumbel").

        Piece k draws its noise from a CPU generator seeded seed + k, so it is the same piece whatever the batch
        and the device: `--seed 7 --num 4`'s third piece is `--seed 9 --num 1`."""
        if seed is None:
            seed = int(torch.seed() % 2**62)
        gens = [torch.Generator().manual_seed(int(seed) + k) for k in range(num)]
        was_training = self.generator.training
        self.generator.eval()
        try:
            dtype = next(self.generator.parameters()).dtype
            pieces = [self.sample_noise(1, g) for g in gens]
            noise = [torch.cat(parts).to(dtype=dtype) for parts in zip(*pieces)]
            out = self.generator(*noise).float()
            if self.config.output == "onehot":
                out = categorical_roll(out, sample=False, hold=self.config.hold)
            elif self.config.output == "gumbel":
                out = torch.cat([categorical_roll(out[k:k + 1], generator=g, noise=self.config.gumbel_noise,
                                                  temperature=self.config.sample_temperature, hold=self.config.hold)
                                 for k, g in enumerate(gens)])
            return out
        finally:
            self.generator.train(was_training)

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

    def test_split(self, source):
        """The test windows of `source` (None: the Bach chorales), unaugmented, for `zoo eval`."""
        from .data import WindowDataset, load_data

        c = self.config
        data = load_data(source, n_bars=c.n_bars, steps_per_bar=c.steps_per_bar, n_pitches=c.n_pitches)
        if len(data.splits["test"]) == 0:
            raise DataError(f"no test windows in {data.stats.get('source', source)}; {data.summary()}")
        return WindowDataset(data.splits["test"], c.n_bars, c.steps_per_bar, c.n_pitches)

    def generate(self, num: int = 1, seed: int | None = None, **options):
        """`num` 2-bar, 4-voice pieces: a list of one PrettyMIDI each."""
        if options:
            raise ConfigError(f"musegan generate takes no options, got {', '.join(sorted(options))}")
        rolls = self.sample(num, seed).cpu()
        return [self.tokenizer.decode(roll) for roll in rolls]
