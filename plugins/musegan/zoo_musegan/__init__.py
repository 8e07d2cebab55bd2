"""MuseGAN for musezoo: the book's generator and critic, Bach chorale data, WGAN-GP training."""

__version__ = "0.2.0"
