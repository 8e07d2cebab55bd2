"""Coconet (Huang et al., "Counterpoint by Convolution", ISMIR 2017): a convolutional orderless NADE.

The model sees four voices on a (time x pitch) grid at 16th notes, some of them erased, and predicts
for every voice and 16th a distribution over that voice's pitches (plus a rest). Training erases
random parts of Bach chorales (`random_mask`); generation fills erased parts by blocked Gibbs
sampling (`zoo_coconet.sampling`). One model serves harmonization, inpainting and generation from
scratch, and it is fully convolutional along time, so it writes 2 bars or 16.

Input: per voice a one-hot roll zeroed where erased, plus the voice's mask (1 = erased): 2 * voices
channels. Output: per voice logits over n_pitches + 1 classes, the last class being the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo import Model
from zoo.errors import ConfigError
from zoo.model import GenerateOption

from .sampling import gibbs

MAX_BARS = 64   # one call writes at most this many 4/4 bars (1,024 16ths): memory grows with the length


@dataclass(frozen=True)
class CoconetConfig:
    n_voices: int = 4
    lowest_pitch: int = 36          # MIDI number of the lowest pitch row (the paper's range: 36..81)
    n_pitches: int = 46
    channels: int = 64
    n_layers: int = 16              # convolutions between the input and output convolutions
    # full 3x3 convolutions (the paper's), or depthwise 3x3 + pointwise 1x1 (the Bach Doodle's, for small
    # downloads): on a CPU, PyTorch's depthwise kernels measured 3-5x slower per step at the same width
    separable: bool = False
    dilation_cycle: int = 5         # layers dilate 1, 2, 4, ... 2**(cycle-1) along time and pitch, repeating (1: none)
    steps_per_bar: int = 16
    tempo: float = 66.0             # bpm of pieces written from scratch

    def __post_init__(self):
        checks = (("n_voices", 1, 8), ("lowest_pitch", 0, 127), ("n_pitches", 2, 128), ("channels", 4, 1024),
                  ("n_layers", 2, 256), ("dilation_cycle", 1, 8), ("steps_per_bar", 4, 96))
        for name, lo, hi in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"coconet {name} must be a whole number from {lo} to {hi}, got {value!r}")
        if self.lowest_pitch + self.n_pitches > 128:
            raise ConfigError("coconet lowest_pitch + n_pitches must be at most 128 (MIDI pitches end at 127)")
        if self.n_layers % 2:
            raise ConfigError(f"coconet n_layers must be even (residual blocks of two layers), got {self.n_layers}")
        if not isinstance(self.separable, bool):
            raise ConfigError(f"coconet separable must be true or false, got {self.separable!r}")
        if isinstance(self.tempo, bool) or not isinstance(self.tempo, (int, float)) or not 20 <= self.tempo <= 300:
            raise ConfigError(f"coconet tempo must be a number of bpm from 20 to 300, got {self.tempo!r}")

    @classmethod
    def paper(cls) -> "CoconetConfig":
        """The paper's network: 64 layers of full 3x3 convolutions with 128 channels, batch norm, a
        residual connection every two layers (62 inner layers plus the input and output layers)."""
        return cls(channels=128, n_layers=62, separable=False, dilation_cycle=1)

    @property
    def n_classes(self) -> int:
        """Pitches plus the rest class."""
        return self.n_pitches + 1


class ConvLayer(nn.Module):
    """Batch norm, ReLU, then a dilated 3x3 convolution: full, or depthwise-separable."""

    def __init__(self, channels: int, separable: bool, dilation: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        if separable:
            self.conv = nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=False),
                nn.Conv2d(channels, channels, 1))
        else:
            self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x):
        return self.conv(F.relu(self.norm(x)))


class Block(nn.Module):
    """Two layers with a residual connection around them."""

    def __init__(self, channels: int, separable: bool, dilations: tuple[int, int]):
        super().__init__()
        self.layers = nn.Sequential(*(ConvLayer(channels, separable, d) for d in dilations))

    def forward(self, x):
        return x + self.layers(x)


class Coconet(Model):
    """Four voices in, per voice and 16th a distribution over its pitches out."""

    arch = "coconet"
    card_metadata = {"license": "mit", "tags": ["coconet", "orderless-nade", "bach", "harmonization"]}
    config_class = CoconetConfig
    tokenizer_name = "satb-grid"
    generate_options = (
        GenerateOption("length", int, 8, "bars to write from scratch (with --prompt: the prompt's length)",
                       min=1, max=MAX_BARS),
        GenerateOption("prompt", str, None, "a MIDI file to harmonize: one track is the soprano; several tracks "
                       "keep every voice they hold (named soprano/alto/tenor/bass, else placed by pitch)",
                       midi_file=True),
        GenerateOption("rewrite", str, None, "voices to (re)write, e.g. alto,tenor or a,t; default: the voices "
                       "the prompt lacks (all four without a prompt)"),
        GenerateOption("gibbs_steps", int, 32, "blocked Gibbs steps: more polish the music, and take longer",
                       min=1, max=2048),
        GenerateOption("temperature", float, 0.75, "sampling temperature of each draw (lower: safer choices)",
                       min=0.05, max=10),
    )
    prompt_role = "kept"   # a prompt's voices are parts of the harmonized piece, not a beginning it continues
    # `zoo generate --score`: two staves as a hymnal prints a chorale, or one per voice
    score_layouts = {
        "2": (("S A", "treble", (0, 1)), ("T B", "bass", (2, 3))),
        "4": (("Soprano", "treble", (0,)), ("Alto", "treble", (1,)), ("Tenor", "treble8vb", (2,)),
              ("Bass", "bass", (3,))),
    }

    def __init__(self, config: CoconetConfig, tokenizer=None):
        super().__init__(config, tokenizer)
        c = config
        dilations = [2 ** (i % c.dilation_cycle) for i in range(c.n_layers)]
        self.inp = nn.Conv2d(2 * c.n_voices, c.channels, 3, padding=1)
        self.blocks = nn.Sequential(*(Block(c.channels, c.separable, (dilations[i], dilations[i + 1]))
                                      for i in range(0, c.n_layers, 2)))
        self.norm = nn.BatchNorm2d(c.channels)
        self.out = nn.Conv2d(c.channels, c.n_voices, 3, padding=1)

    def forward(self, roll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """roll (B, voices, T, classes) one-hot, mask (B, voices, T) with 1 where erased ->
        logits (B, voices, T, classes). Erased cells are zeroed here, so a caller cannot leak them."""
        keep = (1.0 - mask).unsqueeze(-1)
        x = torch.cat([roll * keep, mask.unsqueeze(-1).expand_as(roll)], dim=1)
        # channels-last lets oneDNN's convolutions skip a layout change per layer: on a CPU, 1.5x faster
        # inference and 1.3x faster training steps, the same numbers (measured; see the plugin README)
        x = self.inp(x.contiguous(memory_format=torch.channels_last))
        x = self.blocks(x)
        return self.out(F.relu(self.norm(x)))

    # --- grids <-> rolls ----------------------------------------------------------------------------

    def grid_to_classes(self, grid: torch.Tensor) -> torch.Tensor:
        """Pitch grid (..., voices, T) of MIDI numbers, -1 = rest -> class indices (rest = n_pitches).
        Pitches outside the model's range raise: the caller transposes or refuses first."""
        c = self.config
        grid = torch.as_tensor(grid, dtype=torch.long)
        rel = grid - c.lowest_pitch
        sounding = grid >= 0
        if bool(((rel < 0) | (rel >= c.n_pitches))[sounding].any()):
            raise ConfigError(f"a pitch lies outside the model's range {c.lowest_pitch}..{c.lowest_pitch + c.n_pitches - 1}")
        return torch.where(sounding, rel, torch.full_like(rel, c.n_pitches))

    def classes_to_grid(self, classes: torch.Tensor) -> torch.Tensor:
        """Class indices -> pitch grid of MIDI numbers with -1 for a rest."""
        c = self.config
        return torch.where(classes == c.n_pitches, torch.full_like(classes, -1), classes + c.lowest_pitch)

    def one_hot(self, classes: torch.Tensor) -> torch.Tensor:
        return F.one_hot(classes, self.config.n_classes).float()

    # --- generation ---------------------------------------------------------------------------------

    def generate(self, num: int = 1, seed: int | None = None, length: int = 8, prompt=None, rewrite=None,
                 gibbs_steps: int = 32, temperature: float = 0.75):
        """`num` four-voice pieces (SATB tracks): from scratch, or harmonizing the voices of `prompt`.
        Given notes come out exactly as given; the tempo and meter are the prompt's."""
        from .prompt import parse_voices, read_prompt

        c = self.config
        tempo, meter, shift, given_notes = c.tempo, (4, 4), 0, {}
        if prompt is not None:
            from zoo.midi import read_midi

            given = read_prompt(read_midi(prompt), max_steps=MAX_BARS * c.steps_per_bar)
            grid, tempo, meter, shift = given.grid, given.tempo, given.time_signature, given.shift
            keep = np.array(given.given)
            given_notes = given.notes
        else:
            grid = np.full((c.n_voices, length * c.steps_per_bar), -1, dtype=np.int64)
            keep = np.zeros(c.n_voices, dtype=bool)
        if rewrite is not None:
            keep[list(parse_voices(rewrite))] = False
        grid = np.where(grid >= 0, grid + shift, grid)
        classes = self.grid_to_classes(torch.from_numpy(grid)).to(self.device)
        redo = torch.from_numpy(~keep)[:, None].expand_as(classes).to(self.device)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(torch.seed() if seed is None else seed)
        was_training = self.training
        self.eval()
        try:
            out = gibbs(self, classes.expand(num, -1, -1), redo.expand(num, -1, -1), gibbs_steps, temperature, generator)
        finally:
            self.train(was_training)
        grids = self.classes_to_grid(out).cpu().numpy()
        grids = np.where(grids >= 0, grids - shift, grids)
        kept = {v: n for v, n in given_notes.items() if keep[v]}   # given voices come out note for note
        return [self.tokenizer.decode(g, tempo=tempo, time_signature=meter, notes=kept) for g in grids]

    # --- evaluation ---------------------------------------------------------------------------------

    def music_metrics(self, pieces) -> dict[str, float]:
        """`zoo eval`'s chorale rows (zoo_chorales.metrics.all_metrics) on the pieces' 16th grids."""
        from zoo_chorales.metrics import all_metrics

        grids = [self.tokenizer.encode(m).numpy() for m in pieces]
        if not grids:
            return {}
        steps = max(g.shape[1] for g in grids)
        voices = self.config.n_voices
        padded = np.full((len(grids), voices, steps), -1, dtype=np.int16)
        for i, g in enumerate(grids):
            padded[i, :, :g.shape[1]] = g[:voices]
        return all_metrics(padded, self.config.steps_per_bar)


def random_mask(batch: int, voices: int, steps: int, generator: torch.Generator | None = None,
                device="cpu") -> torch.Tensor:
    """The orderless-NADE mask distribution (Uria et al. 2014, as Coconet trains): per example, the number
    of erased (voice, 16th) cells is uniform in 1..voices*steps, then which cells is a uniform subset."""
    n = voices * steps
    count = torch.randint(1, n + 1, (batch, 1), generator=generator, device=device)
    order = torch.rand(batch, n, generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    return (order < count).float().view(batch, voices, steps)


def nade_loss(logits: torch.Tensor, classes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per example, the mean negative log-likelihood of the erased cells (the paper's loss rescaled by
    1 / |erased|, so every mask size weighs the same); averaged over the batch. In nats per cell."""
    nll = F.cross_entropy(logits.permute(0, 3, 1, 2), classes, reduction="none")   # (B, voices, T)
    per_example = (nll * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1)
    return per_example.mean()
