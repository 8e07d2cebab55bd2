"""A literal transcription of the book's MuseGAN layers (issue 4), kept only to test against.

Plain nn.Sequential stacks, one bar-generator call per (bar, track), Conv3d / ConvTranspose2d
kernels: slow, obviously right. zoo_musegan.model must compute the same function; the
tests load the same weights into both (`copy_weights`) and compare outputs and gradients.
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
                 n_steps_per_bar=16, n_pitches=84):
        super().__init__()
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
        return self.net(x)


class MuseGenerator(nn.Module):
    def __init__(self, z_dimension=32, hid_channels=1024, hid_features=1024, out_channels=1,
                 n_tracks=4, n_bars=2, n_steps_per_bar=16, n_pitches=84, bar_hid_channels=512):
        super().__init__()
        self.n_tracks, self.n_bars = n_tracks, n_bars
        self.chords_network = TemporalNetwork(z_dimension, hid_channels, n_bars=n_bars)
        self.melody_networks = nn.ModuleDict({})
        for n in range(self.n_tracks):
            self.melody_networks.add_module("melodygen_" + str(n), TemporalNetwork(z_dimension, hid_channels, n_bars=n_bars))
        self.bar_generators = nn.ModuleDict({})
        for n in range(self.n_tracks):
            self.bar_generators.add_module(
                "bargen_" + str(n),
                BarGenerator(z_dimension, hid_features, bar_hid_channels, out_channels, n_steps_per_bar, n_pitches))

    def forward(self, chords, style, melody, groove):
        chord_outs = self.chords_network(chords)
        melody_outs = [self.melody_networks["melodygen_" + str(track)](melody[:, track, :]) for track in range(self.n_tracks)]
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


class MuseCritic(nn.Module):
    def __init__(self, hid_channels=128, hid_features=1024, out_features=1, n_tracks=4, n_bars=2,
                 n_steps_per_bar=16, n_pitches=84):
        super().__init__()
        self.n_tracks = n_tracks
        self.n_bars = n_bars
        in_features = 4 * hid_channels if n_bars == 2 else 12 * hid_channels
        self.seq = nn.Sequential(
            nn.Conv3d(self.n_tracks, hid_channels, (2, 1, 1), (1, 1, 1), padding=0),
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
        return self.seq(x)


def reference_from_config(config):
    """Reference generator and critic with the widths of a MuseGANConfig."""
    gen = MuseGenerator(z_dimension=config.z_dim, hid_channels=config.temporal_hidden,
                        hid_features=config.bar_hidden_features, n_tracks=config.n_tracks, n_bars=config.n_bars,
                        n_steps_per_bar=config.steps_per_bar, n_pitches=config.n_pitches,
                        bar_hid_channels=config.bar_hidden_channels)
    critic = MuseCritic(hid_channels=config.critic_hidden, hid_features=config.critic_hidden_features,
                        n_tracks=config.n_tracks, n_bars=config.n_bars, n_steps_per_bar=config.steps_per_bar,
                        n_pitches=config.n_pitches)
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
                 "linear": "net.0", "bn0": "net.1",                                    # bar generator
                 "linear1": "seq.17", "linear2": "seq.19"}                             # critic
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


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of a zoo_musegan module into its reference twin, by name."""
    s, d = src.state_dict(), dst.state_dict()
    mapped = {reference_name(k): v for k, v in s.items()}
    assert set(mapped) == set(d), (sorted(set(mapped) ^ set(d)))[:10]
    with torch.no_grad():
        for k, v in mapped.items():
            assert v.shape == d[k].shape, (k, v.shape, d[k].shape)
            d[k].copy_(v)
