"""Musical metrics for four-voice pitch grids (pieces, voices, steps; -1 = rest).

The definitions live in the core's zoo.metrics (shared with `zoo eval` and other plugins);
this module keeps the names the plugin used first.
"""

from zoo.metrics import (  # noqa: F401
    HARMONIC_MINOR, MAJOR, REST, VOICE_LETTERS, VOICE_RANGES, grid_metrics, in_range_rate, in_scale_rate,
    mean_note_length, rest_rate, scale_sets, tonal_distance, tonal_matrix, used_pitch_classes, voice_crossing_rate,
)

all_metrics = grid_metrics
