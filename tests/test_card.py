"""zoo.card: the one builder of model cards. Real YAML metadata, the standard sections, a plugin's own sections
where it says, and metric tables that `zoo info` reads back."""

from __future__ import annotations

from huggingface_hub import ModelCard

from zoo.card import build_card
from zoo.modelinfo import card_metrics

SUMMARY = {"arch": "tiny-lm", "steps": 40, "model_config": {"n_embd": 16, "context": 4},
           "train_config": {"batch_size": 8, "lr": 0.01}, "data": "embedded default",
           "last": {"loss": 0.5, "lr": 0.001, "valid_loss": 0.75},
           "test_metrics": {"loss": 0.625, "gen_pitch_range": 12.0, "data_pitch_range": 14.5},
           "hardware": "CPU test", "world_size": 1, "train_time_s": 3.5, "precision": "fp32 (amp off)"}


def test_a_trained_card_has_metadata_standard_sections_and_the_plugins_own(tiny_model):
    sections = {"Data": "Scales in every octave.", "How it sounds": "Like scales.", "Limitations": "Only scales."}
    text = build_card(tiny_model, SUMMARY, sections, {"license": "mit", "tags": ["tiny"]}, notes="## Notes\n\nBy hand.")
    card = ModelCard(text)   # parses as a Hub card
    assert card.data.library_name == "musezoo" and card.data.license == "mit"
    assert {"music-generation", "tiny-lm", "tiny"} <= set(card.data.tags)
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == [("test_loss", 0.625)]
    headings = [line for line in card.text.splitlines() if line.startswith("#")]
    assert headings == ["# tiny-lm trained with musezoo", "## Data", "## Training", "## Metrics", "## How it sounds",
                        "## Limitations", "## Config", "## Notes"]
    data = card.text.split("## Data")[1].split("## Training")[0]
    assert "embedded default data" in data and "Scales in every octave." in data      # added to, not replaced
    assert "Only scales." in card.text.split("## Limitations")[1].split("## Config")[0]
    assert "- Steps: 40 (batch 8, 1 process(es))" in card.text and "- Precision: fp32 (amp off)" in card.text
    metrics = card_metrics(text)["Metrics"]                                                # what `zoo info` shows
    assert metrics["pitch_range"] == {"generated": "12", "test data": "14.5000"}
    assert metrics["train_loss"] == {"value": "0.5000"} and metrics["valid_loss"] == {"value": "0.7500"}
    assert metrics["test_loss"] == {"value": "0.6250"} and "train_lr" not in metrics
    assert text.rstrip().endswith("By hand.")


def test_a_license_is_claimed_only_for_the_plugins_own_data(tiny_model):
    mine = build_card(tiny_model, {**SUMMARY, "data": "my-midi"}, meta={"license": "mit"})
    assert ModelCard(mine).data.license is None and "`my-midi`" in mine


def test_a_card_without_training_says_so(tiny_model):
    card = ModelCard(build_card(tiny_model))
    assert card.text.lstrip().startswith("# tiny-lm model") and "No training details were recorded" in card.text
    assert card.data.library_name == "musezoo" and not card.data.eval_results
    assert "Nothing was measured." in card.text and '"n_embd": 16' in card.text


def test_zoo_info_reads_a_bounded_prefix_of_a_huge_card(tiny, tiny_model, tmp_path):
    """A README.md larger than memory (sparse, 64 GiB) is not read whole: the metrics come from its first MiB,
    in a process whose address space is capped far below the card's size."""
    import json
    import os
    import resource
    import subprocess
    import sys

    folder = tiny_model.save_pretrained(tmp_path / "m")
    card = folder / "README.md"
    card.write_text("# tiny\n\n## Metrics\n\n| metric | value |\n| --- | --- |\n| test_loss | 0.5 |\n\n")
    os.truncate(card, 64 * 2 ** 30)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (12 * 2 ** 30, 12 * 2 ** 30))

    done = subprocess.run([sys.executable, "-c", "import json, sys, zoo; print(json.dumps(zoo.info(sys.argv[1])))",
                           str(folder)], capture_output=True, text=True, timeout=120, preexec_fn=cap)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["metrics"]["Metrics"]["test_loss"] == {"value": "0.5"}
