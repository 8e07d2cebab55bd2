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


# ---- hostile runs (issue 26): one line and exit 2, never a traceback; --out never destroys the run --------

import shutil  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from zoo.cli import main  # noqa: E402

_TRAINED: dict = {}


@pytest.fixture
def run(tiny, tmp_path, one_torch_thread):
    """A copy of one 2-step tiny-lm run (checkpoints at steps 1 and 2), trained once for the module."""
    if "run" not in _TRAINED:
        import tempfile

        root = tempfile.mkdtemp(prefix="zoo-release-run-")
        assert main(["train", "tiny-lm", "--out", f"{root}/run", "--steps", "2", "--seed", "3", "--device", "cpu",
                     "--set", "ckpt_every=1", "--set", "eval_every=1"]) == 0
        _TRAINED["run"] = f"{root}/run"
    shutil.copytree(_TRAINED["run"], tmp_path / "run")
    return tmp_path / "run"


from zoo.testing import cli_in_process as _cli, one_error_line as _one_line  # noqa: E402


def _listing(folder) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_release_out_never_replaces_the_run_or_a_folder_it_did_not_write(run, tmp_path, capsys):
    before = _listing(run)
    for out, says in ((run, "is the run being read"), (tmp_path, "holding the run being read"),
                      (run / "checkpoints" / "step-000002", "lies inside the run being read"),
                      (run / "final", "lies inside the run being read")):
        for extra in ((), ("--overwrite",)):
            assert says in _one_line(*_cli(capsys, "release", run, "--out", out, *extra))
    assert _listing(run) == before                                   # checkpoints and logs all there
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert "'notes.txt'" in _one_line(*_cli(capsys, "release", run, "--out", mine, "--overwrite"))
    (tmp_path / "file").write_text("text")
    assert "is a file, not a folder" in _one_line(*_cli(capsys, "release", run, "--out", tmp_path / "file"))
    assert (mine / "notes.txt").read_text() == "mine" and (tmp_path / "file").read_text() == "text"
    for _ in range(2):                                                # a release replaces its own earlier release
        code, err = _cli(capsys, "release", run, "--out", tmp_path / "rel")
        assert code == 0, err


def test_release_ignores_stray_checkpoint_names(run, tmp_path, capsys):
    ckpts = run / "checkpoints"
    shutil.copytree(ckpts / "step-000001", ckpts / "step-000001.bak")
    shutil.copytree(ckpts / "step-000001", ckpts / "step-latest")
    shutil.copytree(ckpts / "step-000001", ckpts / "step-99")
    (ckpts / "step-000009").write_text("not a folder")
    (ckpts / "step-000008").symlink_to(ckpts / "step-000001")
    code, err = _cli(capsys, "release", run, "--out", tmp_path / "rel", "--step", 2)
    assert code == 0, err
    line = _one_line(*_cli(capsys, "release", run, "--out", tmp_path / "rel9", "--step", 9))
    assert "no checkpoint at step 9; it has 1, 2" in line


def test_checkpoints_are_ordered_by_step_past_six_digits(tmp_path):
    from zoo.train import checkpoint_dirs

    for name in ("step-999999", "step-1000000", "step-000010"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-000010", "step-999999", "step-1000000"]


def test_release_skips_metrics_lines_that_are_not_log_lines(run, tmp_path, capsys):
    with open(run / "metrics.jsonl", "a") as f:
        f.write('5\n"x"\n[1, 2]\nnull\n{"valid_loss": 0.01}\n{"step": "2", "valid_loss": 0.01}\n'
                '{"step": true, "valid_loss": 0.01}\n{"step": 1, "valid_loss": "low"}\n')
    code, err = _cli(capsys, "release", run, "--out", tmp_path / "rel")
    assert code == 0, err


@pytest.mark.parametrize("text, says", [
    ("[]", "must be a JSON object with arch, model_config and train_config (not list)"),
    ('{"arch": 5, "model_config": {}, "train_config": {}}', "'arch' must be a string"),
    ('{"arch": "tiny-lm", "model_config": [], "train_config": {}}', "'model_config' must be an object"),
    ('{"arch": "tiny-lm", "model_config": {}}', "'train_config' must be an object"),
    ('{"arch": "tiny-lm", "model_config": {}, "train_config": {}, "data": 5}', "'data' must be a string"),
    ('{"arch": "tiny-lm", "model_config": {}, "train_config": {}, "world_size": 0}', "'world_size' must be a whole"),
])
def test_release_of_a_malformed_run_json_is_one_line(run, tmp_path, capsys, text, says):
    (run / "run.json").write_text(text)
    line = _one_line(*_cli(capsys, "release", run, "--out", tmp_path / "rel"))
    assert "run.json" in line and says in line, line
    assert not (tmp_path / "rel").exists()


def test_release_with_a_damaged_trainer_state_is_one_line(run, tmp_path, capsys):
    from zoo.checkpoint import write_manifest

    ckpt = run / "checkpoints" / "step-000002"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    (ckpt / "trainer_state.json").write_text(json.dumps({**state, "elapsed_s": "x"}))
    write_manifest(ckpt)
    line = _one_line(*_cli(capsys, "release", run, "--out", tmp_path / "rel", "--step", 2))
    assert "'elapsed_s' must be a finite number" in line


def test_release_checks_run_json_against_the_checkpoint_before_building(run, tmp_path, capsys):
    info = json.loads((run / "run.json").read_text())
    info["model_config"]["n_embd"] = 200_000                          # ~0.5 GB of fp32 if it were built
    (run / "run.json").write_text(json.dumps(info))
    t0 = time.monotonic()
    line = _one_line(*_cli(capsys, "release", run, "--out", tmp_path / "rel"))
    assert "does not match the weights" in line and time.monotonic() - t0 < 30, line
    info["model_config"]["n_embd"] = 16
    (run / "run.json").write_text(json.dumps(info))
    line = _one_line(*_cli(capsys, "release", run, "--out", tmp_path / "rel", "--set", "context=8"))
    assert "model.safetensors does not fit the model" in line       # same size class: the tensors are named
    assert not (tmp_path / "rel").exists()


def test_release_reads_the_test_split_from_the_registered_builder_only_to_evaluate(run, tmp_path, capsys, monkeypatch):
    """The test split comes through the trainer's build_dataset, by default the registered builder; a trainer
    without its own evaluate() has nothing to measure, and the test split is not read."""
    from zoo.registry import Registry
    from zoo.train import Trainer
    from zoo_tiny.model import TinyTrainer

    calls, real = [], Registry.dataset_builder

    def spying(self, arch):
        builder = real(self, arch)
        return lambda source, split, model: calls.append((split, model.arch)) or builder(source, split, model)

    monkeypatch.setattr(Registry, "dataset_builder", spying)
    code, err = _cli(capsys, "release", run, "--out", tmp_path / "rel")
    assert code == 0 and calls == [("test", "tiny-lm")] and "measuring it on the test split" in err, err
    calls.clear()
    monkeypatch.setattr(TinyTrainer, "evaluate", Trainer.evaluate)
    code, err = _cli(capsys, "release", run, "--out", tmp_path / "rel2")
    assert code == 0 and calls == [] and "measuring" not in err, err
    assert (tmp_path / "rel2" / "model.safetensors").is_file()
