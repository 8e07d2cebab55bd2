"""`zoo release`: a run becomes a shippable folder, from its best checkpoint, with a full card."""

from __future__ import annotations

import json

import zoo


def test_release_picks_the_best_checkpoint_by_the_validation_metric(tiny, zoo_cli, tmp_path):
    run = tmp_path / "run"
    done = zoo_cli("train", "tiny-lm", "--out", run, "--steps", 30, "--seed", 3, "--set", "ckpt_every=5",
                   "--set", "eval_every=5", "--set", "keep_checkpoints=10", timeout=600)
    assert done.returncode == 0, done.stderr
    logged = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    curve = {l["step"]: l["valid_loss"] for l in logged if "valid_loss" in l}
    best = min(curve, key=curve.get)
    (tmp_path / "notes.md").write_text("## Notes\n\nTrained as a test.\n")
    done = zoo_cli("release", run, "--out", tmp_path / "rel", "--notes", tmp_path / "notes.md")
    assert done.returncode == 0, done.stderr
    card = (tmp_path / "rel" / "README.md").read_text()
    assert f"The released checkpoint is step {best}" in card and "Trained as a test." in card
    assert f"Steps: {best}" in card and str(run) not in card          # no local path in what gets published
    assert card.index("## Checkpoint selection") < card.index("Trained as a test.")   # the notes come last
    # the plugin's own sections (Trainer.card_sections), inside the core's card: one added to Data, one of its own
    assert card.index("## Data") < card.index("Rising C-major scales") < card.index("## Training")
    assert "## How it sounds\n\nLike a scale, step by step." in card and "- tiny\n" in card.split("---")[1]
    assert "test_loss" in zoo.info(str(tmp_path / "rel"))["metrics"]["Metrics"]       # zoo info reads the card
    model = zoo.load(str(tmp_path / "rel"), device="cpu")
    assert model.arch == "tiny-lm"
    # a named step instead, and a clear error for one that is not there
    done = zoo_cli("release", run, "--out", tmp_path / "rel5", "--step", 5)
    assert done.returncode == 0 and "Steps: 5" in (tmp_path / "rel5" / "README.md").read_text()
    done = zoo_cli("release", run, "--out", tmp_path / "rel7", "--step", 7)
    assert done.returncode == 2 and "no checkpoint at step 7" in done.stderr
