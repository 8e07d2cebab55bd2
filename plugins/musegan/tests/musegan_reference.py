"""A literal transcription of the book's MuseGAN layers (issue 4), kept only to test against.

Plain nn.Sequential stacks of nn.Conv3d / nn.ConvTranspose2d (torch's own kernels), one bar-generator call
per (bar, track): slow, obviously right. zoo_musegan.model must compute the same function; the tests load
the same weights into both (`copy_weights`) and compare outputs and gradients.

Beyond the book, written as plainly, for every option zoo_musegan.model has: the rest logit of a
categorical output (a linear layer on the mean over octaves of the last hidden features), the onset stream
of the critic (a loop over 16ths), and the per-voice front end (one ordinary Conv1d stack per voice, where
the model uses one grouped convolution). `fold_bars=True` calls each bar generator once on
all bars stacked along the batch, as zoo_musegan.model does for its batch-norm statistics; False is the
book's call per bar.
"""

import torch
from torch import nn


class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.size(0), *self.shape)


def init_weights(layer, mean=0.0, std=0.02):
    if isinstance(layer, (nn.Conv3d, nn.ConvTranspose2d)):
        nn.init.normal_(layer.weight, mean, std)
    elif isinstance(layer, (nn.Linear, nn.BatchNorm2d)):
        nn.init.normal_(layer.weight, mean, std)
        nn.init.constant_(layer.bias, 0)


class TemporalNetwork(nn.Module):
    def __init__(self, z_dimension=32, hid_channels=1024, n_bars=2):
        super().__init__()
        self.n_bars = n_bars
        self.net = nn.Sequential(
            Reshape(shape=[z_dimension, 1, 1]),
            nn.ConvTranspose2d(z_dimension, hid_channels, kernel_size=(2, 1), stride=(1, 1), padding=0),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hid_channels, z_dimension, kernel_size=(self.n_bars - 1, 1), stride=(1, 1), padding=0),
            nn.BatchNorm2d(z_dimension),
            nn.ReLU(inplace=True),
            Reshape(shape=[z_dimension, self.n_bars]),
        )

    def forward(self, x):
        return self.net(x)


class BarGenerator(nn.Module):
    def __init__(self, z_dimension=32, hid_features=1024, hid_channels=512, out_channels=1,
                 n_steps_per_bar=16, n_pitches=84, rest_logit=False):
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(hid_channels // 2, 1)] if rest_logit else [])   # a categorical output's rest
        self.n_steps_per_bar = n_steps_per_bar
        self.n_pitches = n_pitches
        self.net = nn.Sequential(
            nn.Linear(4 * z_dimension, hid_features),
            nn.BatchNorm1d(hid_features),
            nn.ReLU(inplace=True),
            Reshape(shape=[hid_channels, hid_features // hid_channels, 1]),
            nn.ConvTranspose2d(hid_channels, hid_channels, kernel_size=(2, 1), stride=(2, 1), padding=0),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hid_channels, hid_channels // 2, kernel_size=(2, 1), stride=(2, 1), padding=0),
            nn.BatchNorm2d(hid_channels // 2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hid_channels // 2, hid_channels // 2, kernel_size=(2, 1), stride=(2, 1), padding=0),
            nn.BatchNorm2d(hid_channels // 2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hid_channels // 2, hid_channels // 2, kernel_size=(1, n_pitches // 12),
                               stride=(1, n_pitches // 12), padding=0),
            nn.BatchNorm2d(hid_channels // 2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hid_channels // 2, out_channels, kernel_size=(1, 12), stride=(1, 12), padding=0),
            Reshape(shape=[1, 1, self.n_steps_per_bar, self.n_pitches]),
        )

    def forward(self, x):
        if not len(self.heads):
            return self.net(x)
        hidden = self.net[:-2](x)                           # (N, C, steps, octaves), after the last ReLU
        pitches = self.net[-2:](hidden)                     # (N, 1, 1, steps, pitches)
        per_step = hidden.mean(dim=3).permute(0, 2, 1)      # (N, steps, C)
        extra = [head(per_step).view(x.size(0), 1, 1, self.n_steps_per_bar, 1) for head in self.heads]
        return torch.cat([pitches, *extra], dim=-1)


class MuseGenerator(nn.Module):
    def __init__(self, z_dimension=32, hid_channels=1024, hid_features=1024, out_channels=1,
                 n_tracks=4, n_bars=2, n_steps_per_bar=16, n_pitches=84, bar_hid_channels=512, rest_logit=False,
                 fold_bars=True):
        super().__init__()
        self.n_tracks, self.n_bars, self.fold_bars = n_tracks, n_bars, fold_bars
        self.chords_network = TemporalNetwork(z_dimension, hid_channels, n_bars=n_bars)
        self.melody_networks = nn.ModuleDict({})
        for n in range(self.n_tracks):
            self.melody_networks.add_module("melodygen_" + str(n), TemporalNetwork(z_dimension, hid_channels, n_bars=n_bars))
        self.bar_generators = nn.ModuleDict({})
        for n in range(self.n_tracks):
            self.bar_generators.add_module(
                "bargen_" + str(n),
                BarGenerator(z_dimension, hid_features, bar_hid_channels, out_channels, n_steps_per_bar, n_pitches,
                             rest_logit))

    def forward(self, chords, style, melody, groove):
        chord_outs = self.chords_network(chords)
        melody_outs = [self.melody_networks["melodygen_" + str(track)](melody[:, track, :]) for track in range(self.n_tracks)]
        if self.fold_bars:
            return self._folded(chord_outs, style, melody_outs, groove)
        bar_outs = []
        for bar in range(self.n_bars):
            track_outs = []
            chord_out = chord_outs[:, :, bar]
            style_out = style
            for track in range(self.n_tracks):
                melody_out = melody_outs[track][:, :, bar]
                groove_out = groove[:, track, :]
                z = torch.cat([chord_out, style_out, melody_out, groove_out], dim=1)
                track_outs.append(self.bar_generators["bargen_" + str(track)](z))
            track_out = torch.cat(track_outs, dim=1)
            bar_outs.append(track_out)
        out = torch.cat(bar_outs, dim=2)
        return out

    def _folded(self, chord_outs, style, melody_outs, groove):
        """Each voice's bar generator called once, on all bars stacked along the batch (bar 0's pieces first)."""
        b = style.size(0)
        track_outs = []
        for track in range(self.n_tracks):
            z = torch.cat([torch.cat([chord_outs[:, :, bar], style, melody_outs[track][:, :, bar], groove[:, track, :]],
                                     dim=1) for bar in range(self.n_bars)], dim=0)
            out = self.bar_generators["bargen_" + str(track)](z)              # (bars * B, 1, 1, steps, P)
            track_outs.append(torch.cat(list(out.split(b, dim=0)), dim=2))    # bars side by side: (B, 1, bars, ...)
        return torch.cat(track_outs, dim=1)


def onsets_by_loop(roll):
    """+1 where a note starts (on now, off the 16th before, across the bar line too), else -1; smooth in between."""
    b, tracks, bars, steps, pitches = roll.shape
    on = ((roll + 1) / 2).reshape(b, tracks, bars * steps, pitches)
    out = []
    for t in range(bars * steps):
        before = on[:, :, t - 1] if t else torch.zeros_like(on[:, :, 0])
        out.append(2 * on[:, :, t] * (1 - before) - 1)
    return torch.stack(out, dim=2).reshape(roll.shape)


class VoiceFrontEnd(nn.Module):
    """One Conv1d stack per voice over its 16ths (pitches of each stream as channels), then the mixing stack."""

    def __init__(self, n_tracks, streams, n_pitches, channels, steps_out, hidden):
        super().__init__()
        v = channels
        self.voices = nn.ModuleList(
            nn.Sequential(nn.Conv1d(streams * n_pitches, v, 3, padding=1), nn.LeakyReLU(0.3),
                          nn.Conv1d(v, v, 3, padding=1), nn.LeakyReLU(0.3)) for _ in range(n_tracks))
        self.mix = nn.Sequential(nn.Conv1d(n_tracks * v, 4 * v, 4, stride=2, padding=1), nn.LeakyReLU(0.3),
                                 nn.Conv1d(4 * v, 4 * v, 4, stride=2, padding=1), nn.LeakyReLU(0.3))
        self.project = nn.Linear(4 * v * steps_out, hidden, bias=False)

    def forward(self, streams):
        """streams: a list of (B, tracks, bars, steps, pitches) rolls (the roll, then its onsets)."""
        b, tracks, bars, steps, pitches = streams[0].shape
        heard = []
        for v, net in enumerate(self.voices):
            x = torch.cat([s[:, v].reshape(b, bars * steps, pitches).transpose(1, 2) for s in streams], dim=1)
            heard.append(net(x))                                   # (B, channels, bars * steps)
        return self.project(self.mix(torch.cat(heard, dim=1)).flatten(1))


class MuseCritic(nn.Module):
    def __init__(self, hid_channels=128, hid_features=1024, out_features=1, n_tracks=4, n_bars=2,
                 n_steps_per_bar=16, n_pitches=84, onsets=False, voice_channels=0, voice_steps_out=0):
        super().__init__()
        self.n_tracks = n_tracks
        self.n_bars = n_bars
        self.onsets = onsets
        streams = 1 + onsets
        self.voice_front = (VoiceFrontEnd(n_tracks, streams, n_pitches, voice_channels, voice_steps_out, hid_features)
                            if voice_channels else None)
        self.seq = nn.Sequential(
            nn.Conv3d(self.n_tracks * streams, hid_channels, (2, 1, 1), (1, 1, 1), padding=0),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Conv3d(hid_channels, hid_channels, (self.n_bars - 1, 1, 1), (1, 1, 1), padding=0),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Conv3d(hid_channels, hid_channels, (1, 1, 12), (1, 1, 12), padding=0),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Conv3d(hid_channels, hid_channels, (1, 1, n_pitches // 12), (1, 1, n_pitches // 12), padding=0),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Conv3d(hid_channels, hid_channels, (1, 2, 1), (1, 2, 1), padding=0),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Conv3d(hid_channels, hid_channels, (1, 2, 1), (1, 2, 1), padding=0),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Conv3d(hid_channels, 2 * hid_channels, (1, 4, 1), (1, 2, 1), padding=(0, 1, 0)),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Conv3d(2 * hid_channels, 4 * hid_channels, (1, 3, 1), (1, 2, 1), padding=(0, 1, 0)),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Flatten(),
            nn.Linear(4 * hid_channels, hid_features),
            nn.LeakyReLU(0.3, inplace=True),
            nn.Linear(hid_features, out_features),
        )

    def forward(self, x):
        streams = [x] + ([onsets_by_loop(x)] if self.onsets else [])
        x = torch.cat(streams, dim=1)
        if self.voice_front is None:
            return self.seq(x)
        hidden = self.seq[:18](x) + self.voice_front(streams)   # added to linear1's output, before its activation
        return self.seq[18:](hidden)


def reference_from_config(config):
    """Reference generator and critic with the widths of a MuseGANConfig."""
    gen = MuseGenerator(z_dimension=config.z_dim, hid_channels=config.temporal_hidden,
                        hid_features=config.bar_hidden_features, n_tracks=config.n_tracks, n_bars=config.n_bars,
                        n_steps_per_bar=config.steps_per_bar, n_pitches=config.n_pitches,
                        bar_hid_channels=config.bar_hidden_channels,
                        rest_logit=config.output != "linear")
    steps = config.n_bars * config.steps_per_bar
    for _ in range(2):   # the front end's two mixing convolutions (kernel 4, stride 2, padding 1)
        steps = (steps + 2 - 4) // 2 + 1
    critic = MuseCritic(hid_channels=config.critic_hidden, hid_features=config.critic_hidden_features,
                        n_tracks=config.n_tracks, n_bars=config.n_bars, n_steps_per_bar=config.steps_per_bar,
                        n_pitches=config.n_pitches, onsets=config.critic_onsets,
                        voice_channels=config.critic_voice_channels, voice_steps_out=steps)
    return gen, critic


def reference_name(name: str) -> str:
    """The reference's name for a zoo_musegan.model parameter or buffer name."""
    parts = name.split(".")
    out = []
    i = 0
    while i < len(parts):
        p = parts[i]
        if p == "melody_networks":
            out += [p, f"melodygen_{parts[i + 1]}"]; i += 2; continue
        if p == "bar_generators":
            out += [p, f"bargen_{parts[i + 1]}"]; i += 2; continue
        table = {"conv1": "net.1", "bn1": "net.2", "conv2": "net.4", "bn2": "net.5",   # temporal network
                 "linear": "net.0", "bn0": "net.1", "rest": "heads.0",                 # bar generator
                 "linear1": "seq.17", "linear2": "seq.19", "voices": "voice_front"}       # critic
        if p in table:
            out.append(table[p]); i += 1; continue
        if p in ("convs", "bns"):
            k = int(parts[i + 1])
            if parts[0] == "bar_generators":
                out.append(f"net.{4 + 3 * k}" if p == "convs" else f"net.{5 + 3 * k}")
            else:
                out.append(f"seq.{2 * k}")
            i += 2; continue
        out.append(p); i += 1
    return ".".join(out)


def split_voices(name: str, value: torch.Tensor, n_tracks: int) -> dict:
    """The model's grouped per-voice convolutions (voices.per_voice.{0,2}) as the reference's one stack per voice."""
    layer = name.split(".")[-2]
    return {f"voice_front.voices.{v}.{layer}.{name.split('.')[-1]}": part
            for v, part in enumerate(value.chunk(n_tracks, dim=0))}


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of a zoo_musegan module into its reference twin, by name."""
    s, d = src.state_dict(), dst.state_dict()
    mapped = {}
    for k, v in s.items():
        if k.startswith("voices.per_voice."):
            mapped.update(split_voices(k, v, src.voices.per_voice[0].groups))
        else:
            mapped[reference_name(k)] = v
    assert set(mapped) == set(d), (sorted(set(mapped) ^ set(d)))[:10]
    with torch.no_grad():
        for k, v in mapped.items():
            assert v.shape == d[k].shape, (k, v.shape, d[k].shape)
            d[k].copy_(v)
