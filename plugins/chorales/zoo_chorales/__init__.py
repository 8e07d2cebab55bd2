"""Four-voice chorale data and metrics shared by musezoo's chorale plugins (MuseGAN, Coconet, yours).

A library, not an architecture: it registers nothing. A plugin that models four-part chorales depends
on `musezoo-chorales` and uses `zoo_chorales.metrics` (the chorale table of `zoo eval`) so that its
numbers compare with every other chorale model's.
"""

__version__ = "0.1.0"
