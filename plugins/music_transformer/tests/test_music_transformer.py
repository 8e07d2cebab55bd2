"""Music Transformer plugin: tokenizer, model, sampling, data pipeline (fast, hermetic)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.errors import ConfigError, MidiError
from zoo_music_transformer import data as D
from zoo_music_transformer import tokenizer as T
from zoo_music_transformer.model import KVCache, MusicTransformer, MusicTransformerConfig, sample
from zoo_music_transformer.tokenizer import PerformanceTokenizer

MUSIC21 = Path(__import__("music21").__file__).parent
REAL_MIDI = [MUSIC21 / "omr" / "k525short.mid", MUSIC21 / "midi" / "testPrimitive" / "test03.mid",
             MUSIC21 / "midi" / "testPrimitive" / "test07.mid"]
TINY = dict(block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_midi(notes, drums=(), pedal=()):
    """PrettyMIDI with a piano track of (start, end, pitch, vel), optional drum notes and CC64 (time, value)."""
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for s, e, p, v in notes]
    piano.control_changes = [pretty_midi.ControlChange(64, v, t) for t, v in pedal]
    midi.instruments.append(piano)
    if drums:
        kit = pretty_midi.Instrument(0, is_drum=True)
        kit.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for s, e, p, v in drums]
        midi.instruments.append(kit)
    return midi


# --------------------------------------------------------------------------- tokenizer


def test_vocabulary_matches_the_book():
    tok = PerformanceTokenizer()
    assert tok.vocab_size == 390 and T.EOS == 388 and T.PAD == 389
    ids = tok.encode(make_midi([(0.0, 0.5, 60, 100)])).tolist()
    # velocity bin 25 (100 // 4), note-on 60, 50 x 10 ms, note-off 60
    assert ids == [356 + 25, 60, 256 + 49, 128 + 60]


def test_long_gap_is_a_run_of_maximum_shifts_and_velocity_only_on_change():
    ids = PerformanceTokenizer().encode(make_midi([(0.0, 0.1, 60, 80), (2.55, 2.6, 62, 81),
                                                   (2.6, 2.7, 64, 100)])).tolist()
    vel = [i for i in ids if 356 <= i < 388]
    assert vel == [356 + 20, 356 + 25]  # 80 and 81 share bin 20: no second token
    i = ids.index(128 + 60)
    assert ids[i + 1:i + 4] == [355, 355, 256 + 44]  # 2.45 s = 1 s + 1 s + 0.45 s


def test_drums_dropped_and_sustain_extends_notes():
    midi = make_midi([(0.0, 0.2, 60, 64), (1.0, 1.2, 62, 64)], drums=[(0.0, 0.1, 36, 100)],
                     pedal=[(0.1, 127), (0.8, 0)])
    notes = T.tokens_to_notes(PerformanceTokenizer().encode(midi).numpy())
    assert sorted(notes[:, 2].astype(int).tolist()) == [60, 62]  # no kick drum
    c4 = notes[notes[:, 2] == 60][0]
    assert c4[1] == pytest.approx(0.8)  # held by the pedal until it lifts
    d4 = notes[notes[:, 2] == 62][0]
    assert d4[1] == pytest.approx(1.2)  # struck after the pedal lifted: unchanged


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=389), max_size=300))
def test_decoding_any_in_range_ids_never_crashes(ids):
    midi = PerformanceTokenizer().decode(torch.tensor(ids, dtype=torch.long))
    for note in midi.instruments[0].notes:
        assert 0 <= note.pitch < 128 and 1 <= note.velocity < 128 and note.end > note.start >= 0


def test_decoding_handles_unmatched_offs_open_notes_pad_and_eos():
    ids = [128 + 70, 356 + 10, 60, 256 + 9, 389, 64, 256 + 19, 388, 67]
    notes = T.tokens_to_notes(ids)
    assert [(int(p), round(s, 2), round(e, 2)) for s, e, p, _ in notes] == [(60, 0.0, 0.3), (64, 0.1, 0.3)]
    assert set(notes[:, 3].astype(int)) == {42}
    with pytest.raises(MidiError):
        T.tokens_to_notes([390])


@pytest.mark.parametrize("path", REAL_MIDI, ids=lambda p: p.name)
def test_round_trip_on_real_midi_within_10ms_and_same_velocity_bin(path):
    src = T.read_midi_notes(path)
    back = T.tokens_to_notes(T.notes_to_tokens(src))
    # notes of one pitch that overlap cannot be told apart in this vocabulary: compare the others
    checked = 0
    decoded = {(int(p), round(s * 100)): (e, v) for s, e, p, v in back}
    for s, e, p, v in src:
        key = (int(p), round(s * 100))
        assert key in decoded, f"note {p} at {s:.3f}s lost"  # every onset survives
        overlapping = src[(src[:, 2] == p) & (src[:, 0] < e) & (src[:, 1] > s)]
        if len(overlapping) > 1:  # doubled in another part: one merged note, offset may differ
            continue
        end, vel = decoded[key]
        assert abs(end - e) <= 0.010 + 1e-9
        assert int(vel) // 4 == int(v) // 4
        checked += 1
    assert checked > 0.7 * len(src)


def test_encode_accepts_a_path_and_unreadable_files_raise_midi_error(tmp_path):
    tok = PerformanceTokenizer()
    assert torch.equal(tok.encode(REAL_MIDI[0]), tok.encode(pretty_midi.PrettyMIDI(str(REAL_MIDI[0]))))
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(MidiError):
        tok.encode(bad)


def test_tokenizer_saves_as_json(tmp_path):
    PerformanceTokenizer().save(tmp_path / "tokenizer.json")
    assert json.loads((tmp_path / "tokenizer.json").read_text()) == {"tokenizer": "performance", "params": {}}


# --------------------------------------------------------------------------- model


def test_book_config_has_about_20_4_million_parameters():
    model = MusicTransformer(MusicTransformerConfig())
    assert model.num_parameters() == 20_363_264
    assert model.lm_head.bias is None and model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr()


@pytest.mark.parametrize("bad", [dict(n_embd=30, n_head=4), dict(dropout=1.0), dict(n_layer=0), dict(block_size=1),
                                 dict(pad_id=400), dict(n_head=2.5)])
def test_config_is_validated(bad):
    with pytest.raises(ConfigError):
        MusicTransformerConfig(**bad)


def test_sizes_out_of_range_are_refused_at_once():
    """10**5 thin layers built for minutes on the meta device before the size check could stop them."""
    import time

    import zoo
    from zoo_music_transformer.train import MusicTransformerTrainConfig

    with pytest.raises(ConfigError, match="n_layer must be 1..1,024"):
        MusicTransformerConfig(n_layer=10 ** 5, n_embd=8, n_head=1)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="n_layer must be 1..1,024"):
        zoo.create("music-transformer", n_layer=10 ** 5, n_embd=8, n_head=1)
    assert time.monotonic() - t0 < 5
    for bad, says in (({"eval_batch_size": 10 ** 9}, "eval_batch_size must be 1..4,096"),
                      ({"transpose": 10 ** 9}, "transpose must be 0..12"),
                      ({"max_pieces": 10 ** 12}, "max_pieces must be a whole number of at most 1,000,000,000")):
        with pytest.raises(ConfigError, match=says):
            MusicTransformerTrainConfig(**bad)


def test_kv_cache_gives_the_same_logits_as_a_full_forward():
    torch.manual_seed(0)
    cfg = MusicTransformerConfig(**TINY)
    model = MusicTransformer(cfg).eval()
    x = torch.randint(0, 388, (3, 24))
    with torch.no_grad():
        full = model(x)
        cache = KVCache(cfg, 3, "cpu", torch.float32)
        parts = [model(x[:, :9], cache), model(x[:, 9:14], cache)]  # a prompt, then a block
        parts += [model(x[:, i:i + 1], cache) for i in range(14, 24)]  # then one token at a time
    # the same fp32 math in other shapes (and so other kernel blockings on each CPU): rounding of
    # ~sqrt(n_embd) * 2**-24 of the logits' scale; 1e-4 of the scale leaves >100x room, while a wrong
    # position, mask or cache slot moves logits by O(1)
    scale = float(full.abs().max())
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=0, atol=1e-4 * scale)


def test_relative_logits_by_skewing_equal_the_naive_definition():
    from zoo_music_transformer.model import relative_logits_naive, skew

    torch.manual_seed(0)
    model = MusicTransformer(MusicTransformerConfig(**{**TINY, "attention": "relative"}))
    attn = model.transformer.h[0].attn
    q = torch.randn(3, 2, 20, 16)
    causal = torch.ones(20, 20).tril().bool()
    naive = relative_logits_naive(q, attn.rel).detach()  # O(L^2 D): one embedding per query/key pair
    fast = attn.relative_bias(q, past=0).detach()        # the paper's skewing
    scale = float(naive.abs().max())
    # the same products summed over D = 16 terms in another order: rounding ~4 * 2**-24 of the scale
    torch.testing.assert_close(fast[..., causal], naive[..., causal], rtol=0, atol=1e-5 * scale)
    rows = attn.relative_bias(q[:, :, 12:], past=12).detach()  # a cached prefix: gathered, not skewed
    torch.testing.assert_close(rows[..., causal[12:]], naive[:, :, 12:][..., causal[12:]], rtol=0, atol=1e-5 * scale)
    # and the skew is not the identity: without it the logits are another matrix
    assert not torch.allclose(q @ attn.rel[:, -20:].transpose(1, 2), naive)
    assert skew(torch.arange(9.0).view(3, 3))[2, 0] == 6.0 and skew(torch.arange(9.0).view(3, 3))[1, 0] == 4.0


def test_relative_attention_kv_cache_and_generation_past_block_size():
    torch.manual_seed(0)
    cfg = MusicTransformerConfig(**{**TINY, "attention": "relative"})
    model = MusicTransformer(cfg).eval()
    assert "wpe" not in model.transformer                 # no absolute positions
    x = torch.randint(0, 388, (2, 24))
    with torch.no_grad():
        full = model(x)
        cache = KVCache(cfg, 2, "cpu", torch.float32)
        parts = [model(x[:, :9], cache)] + [model(x[:, i:i + 1], cache) for i in range(9, 24)]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=0, atol=1e-4 * float(full.abs().max()))
    out = model.generate_tokens(torch.randint(0, 388, (2, 5)), 3 * cfg.block_size,
                                generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3 * cfg.block_size) and (out != cfg.pad_id).all()


def test_attention_choice_is_validated_and_the_book_stays_absolute():
    with pytest.raises(ConfigError, match="attention"):
        MusicTransformerConfig(attention="rotary")
    assert MusicTransformerConfig().attention == "absolute"


def test_cached_sampling_equals_the_books_full_prefix_recompute():
    torch.manual_seed(0)
    model = MusicTransformer(MusicTransformerConfig(**TINY)).eval()
    prompt = torch.randint(0, 388, (2, 5))
    kw = dict(length=20, temperature=1.0, top_k=50)
    a = model.generate_tokens(prompt, generator=torch.Generator().manual_seed(3), **kw)
    b = model.generate_tokens(prompt, generator=torch.Generator().manual_seed(3), use_cache=False, **kw)
    # logits differ by fp32 rounding only (previous test); a draw changes only if its uniform number
    # falls within ~1e-6 of a boundary of the cumulative distribution: about 1 run in 10^4
    assert torch.equal(a, b)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return MusicTransformer(MusicTransformerConfig(**TINY)).eval()


def test_generate_is_deterministic_batched_and_slides_past_block_size(tiny_model):
    a = tiny_model.generate(num=3, seed=5, length=100, top_p=0.95)  # 100 > block_size 32
    b = tiny_model.generate(num=3, seed=5, length=100, top_p=0.95)
    assert isinstance(a, list) and len(a) == 3
    notes = lambda m: [(n.pitch, n.start, n.end, n.velocity) for n in m.instruments[0].notes]
    assert [notes(m) for m in a] == [notes(m) for m in b]
    assert notes(a[0]) != notes(a[1])  # different rows of the batch differ
    one = tiny_model.generate(seed=1, length=10)   # num=1 is a list too: one return type
    assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], pretty_midi.PrettyMIDI)


def test_the_eager_cache_holds_only_the_positions_a_generation_needs(tiny_model, monkeypatch):
    """Zeroing a whole block_size cache per generate() cost the book config more than a decoding step."""
    from zoo_music_transformer import model as M

    sizes = []
    real = M.KVCache.__init__

    def recording(self, config, batch, device, dtype, size=None):
        real(self, config, batch, device, dtype, size)
        sizes.append(self.size)

    monkeypatch.setattr(M.KVCache, "__init__", recording)
    prompt = torch.randint(0, 356, (2, 10))
    tiny_model.generate_tokens(prompt, 5, generator=torch.Generator().manual_seed(0))
    assert sizes == [14]                                 # 10 prompt tokens + 4 fed back (the 5th never is)
    sizes.clear()
    tiny_model.generate_tokens(prompt, 40, generator=torch.Generator().manual_seed(0))
    assert sizes and set(sizes) == {32}                  # past block_size: the window slides in a full block


def test_pad_never_sampled_and_eos_only_when_allowed():
    model = MusicTransformer(MusicTransformerConfig(**TINY)).eval()
    with torch.no_grad():  # a model whose favourite tokens are PAD, then EOS
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[389] = 3.0
        model.lm_head.weight[388] = 2.0
    g = lambda: torch.Generator().manual_seed(0)
    out = model.generate_tokens(torch.tensor([[60]]), 50, generator=g())
    assert not ((out == 388) | (out == 389)).any()
    out = model.generate_tokens(torch.tensor([[60], [61]]), 50, generator=g(), allow_eos=True, temperature=0)
    assert out[:, 0].tolist() == [388, 388] and (out[:, 1:] == 389).all()  # ended, padded, never continued
    assert len(model.generate(length=20, allow_eos=True, temperature=0, include_prompt=False)[0].instruments[0].notes) == 0


def test_stuck_notes_are_cut_unless_asked_not_to():
    model = MusicTransformer(MusicTransformerConfig(**TINY)).eval()
    prompt = [356 + 20, 60] + [355] * 9  # C4 on, then 9 s of silence and never an off
    long = model.generate(prompt=prompt, length=1, temperature=0, max_note_s=None)[0].instruments[0].notes
    cut = model.generate(prompt=prompt, length=1, temperature=0)[0].instruments[0].notes
    c4 = lambda notes: next(n for n in notes if n.pitch == 60 and n.start == 0)
    assert c4(long).end >= 9.0 and c4(cut).end == pytest.approx(5.0)


def test_prompt_from_midi_file_or_token_ids(tiny_model):
    prompt_ids = PerformanceTokenizer().encode(REAL_MIDI[0])[:40]
    (from_ids,) = tiny_model.generate(seed=2, prompt=prompt_ids.tolist(), length=16)
    n_prompt = len(T.tokens_to_notes(prompt_ids.numpy()))
    assert len(from_ids.instruments[0].notes) >= n_prompt - 5  # the prompt is in the output
    (cont,) = tiny_model.generate(seed=2, prompt=str(REAL_MIDI[0]), length=16, include_prompt=False)
    assert isinstance(cont, pretty_midi.PrettyMIDI)
    # a prompt longer than block_size is kept whole in the output; the model sees its end
    (whole,) = tiny_model.generate(seed=2, prompt=str(REAL_MIDI[0]), length=16)
    assert len(whole.instruments[0].notes) >= len(T.read_midi_notes(REAL_MIDI[0])) - 50
    with pytest.raises(ConfigError):
        tiny_model.generate(prompt=[388, 389])
    for bad in (dict(temperature=-1), dict(temperature=float("nan")), dict(top_p=float("nan")), dict(top_k=0),
                dict(length=0), dict(num=0)):
        with pytest.raises(ConfigError):
            tiny_model.generate(**bad)


def test_generate_refuses_what_it_cannot_use_with_the_same_error_as_every_plugin(tiny_model):
    """Issue 26: generate(bogus=1) was a TypeError here and a ConfigError in MuseGAN; a float prompt tensor
    was cut to integers, max_note_s=nan and allow_eos="x" were taken silently."""
    for bad, says in ((dict(bogus=1), "unexpected keyword argument 'bogus'.*it takes num, seed, prompt, length"),
                      (dict(prompt=torch.tensor([60.7, 61.2])), "integer token ids, got Tensor of torch.float32"),
                      (dict(prompt=[60.5, 61.0]), "integer token ids"),
                      (dict(prompt=torch.tensor([True, False])), "integer token ids"),
                      (dict(prompt=["a", "b"]), "integer token ids"),
                      (dict(max_note_s=float("nan")), "max_note_s must be a positive number"),
                      (dict(max_note_s=0), "max_note_s must be a positive number"),
                      (dict(allow_eos="x"), "allow_eos must be True or False"),
                      (dict(include_prompt=1), "include_prompt must be True or False")):
        with pytest.raises(ConfigError, match=says):
            tiny_model.generate(length=2, **bad)
    (piece,) = tiny_model.generate(seed=1, length=2, prompt=torch.tensor([376, 60]), max_note_s=2)  # ints are fine
    assert isinstance(piece, pretty_midi.PrettyMIDI)


def test_top_k_and_top_p_restrict_the_choice():
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0, -2.0]]).repeat(200, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample(logits, top_k=2, generator=g).tolist()) <= {0, 1}
    assert set(sample(logits, top_p=0.5, generator=g).tolist()) == {0}
    assert set(sample(logits, temperature=0).tolist()) == {0}


# --------------------------------------------------------------------------- data


def test_split_by_piece_is_deterministic_and_roughly_90_5_5():
    names = [f"piece{i}" for i in range(2000)]
    splits = [D.split_of(n) for n in names]
    assert splits == [D.split_of(n) for n in names]
    assert 0.03 < splits.count("test") / 2000 < 0.07 and 0.03 < splits.count("valid") / 2000 < 0.07
    assert D.assign_splits(names) == splits
    small = D.assign_splits(["a", "b", "c"])
    assert sorted(small) == ["test", "train", "valid"] and small == D.assign_splits(["a", "b", "c"])


def test_music21_score_renders_with_tempo_and_dynamics():
    from music21 import converter, dynamics, note, stream, tempo

    s = stream.Score()
    p = stream.Part()
    p.insert(0, tempo.MetronomeMark(number=60))
    p.insert(0, dynamics.Dynamic("p"))
    p.append([note.Note("C4", quarterLength=1), note.Note("E4", quarterLength=1)])
    p.insert(2, dynamics.Dynamic("ff"))
    p.insert(2, tempo.MetronomeMark(number=120))
    n1, n2 = note.Note("G4", quarterLength=1), note.Note("G4", quarterLength=1)
    n1.tie, n2.tie = __import__("music21").tie.Tie("start"), __import__("music21").tie.Tie("stop")
    p.append([n1, n2])
    s.insert(0, p)
    notes = D.render_score(s)
    assert notes.tolist() == [[0.0, 1.0, 60, 52], [1.0, 2.0, 64, 52], [2.0, 3.0, 67, 110]]  # tie merged
    chorale = converter.parse(MUSIC21 / "corpus" / "bach" / "bwv66.6.mxl")
    rendered = D.render_score(chorale)
    assert len(rendered) > 100 and rendered[:, 3].min() == D.DEFAULT_VELOCITY
    assert rendered[:, 1].max() == pytest.approx(D._to_seconds(chorale.highestTime, *D._tempo_map(chorale)))


def test_music21_corpus_cache_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    paths = [it for it in D.corpus_paths(("bach",)) if it[0].endswith(("bwv66.6.mxl", "bwv269.mxl"))]
    monkeypatch.setattr(D, "corpus_paths", lambda composers=D.COMPOSERS: paths)
    first = D.music21_corpus(workers=1)
    assert len(first.names) == 2 and not first.skipped
    monkeypatch.setattr(D, "_parse_piece", lambda item: pytest.fail("cache not used"))
    again = D.music21_corpus(workers=1)
    assert again.names == first.names and all(np.array_equal(a, b) for a, b in zip(again.tokens, first.tokens))


def test_midi_folder_skips_and_counts_unreadable_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "midi"
    (folder / "sub").mkdir(parents=True)
    for i, src in enumerate(REAL_MIDI):
        (folder / "sub" / f"{i}.mid").write_bytes(src.read_bytes())
    (folder / "broken.mid").write_bytes(b"MThd\x00garbage")
    (folder / "empty.midi").write_bytes(b"")
    corpus = D.midi_folder_corpus(folder)
    assert sorted(corpus.names) == ["sub/0.mid", "sub/1.mid", "sub/2.mid"]
    assert sorted(corpus.skipped) == ["broken.mid", "empty.midi"] and corpus.stats()["skipped"] == 2


def test_random_crops_are_fresh_each_epoch_and_reproducible():
    rng = np.random.default_rng(0)
    pieces = [np.concatenate([[356 + 20], rng.integers(40, 90, 300), rng.integers(256, 300, 300)]) for _ in range(4)]
    ds = D.CropDataset(pieces, block_size=64, seed=1)
    assert len(ds) == 4 * (601 // 64)
    ds.set_epoch(0)
    e0 = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (65,) for x in e0)
    assert all(torch.equal(a, ds[i]) for i, a in enumerate(e0))  # a function of (seed, epoch, index)
    ds.set_epoch(1)
    assert not all(torch.equal(a, ds[i]) for i, a in enumerate(e0))
    plain = D.CropDataset(pieces, block_size=64, seed=1, augment=False)
    x = plain[0].numpy()
    assert any(np.array_equal(x, p[s:s + 65]) for p in pieces for s in range(len(p) - 64))


def test_augmentation_transposes_in_range_and_stretches_time():
    toks = T.notes_to_tokens(np.array([[0.0, 0.5, 60, 64], [0.5, 2.0, 127, 64]]))
    up = D.transpose_tokens(toks, -2)
    assert sorted(T.tokens_to_notes(up)[:, 2].tolist()) == [58, 125]
    slow = D.stretch_tokens(toks, 1.1)
    assert T.tokens_to_notes(slow)[:, 1].max() == pytest.approx(2.2)
    ds = D.CropDataset([toks], block_size=16, seed=0, transpose=3, stretch=0.05)
    for epoch in range(30):
        ds.set_epoch(epoch)
        notes = T.tokens_to_notes(ds[0].numpy())
        assert notes[:, 2].max() <= 127 and notes[:, 2].min() >= 57


def test_eval_dataset_scores_every_token_once():
    pieces = [np.arange(100) % 388, np.arange(10) % 388]
    ds = D.EvalDataset(pieces, block_size=32)
    targets = sum(int((w[1:] != T.PAD).sum()) for w in ds.windows)
    assert targets == (101 - 1) + (11 - 1)  # every token after the first, EOS included


def test_plugin_module_does_not_import_torch():
    code = "import sys, zoo_music_transformer.plugin; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- continuation metrics on hand-made notes -------------------------------------------------------

def _notes(*rows):
    """Note array (start_s, end_s, pitch, velocity) from (start, end, pitch) rows."""
    return np.array([(s, e, p, 64) for s, e, p in rows], dtype=float)


def test_continuation_metrics_on_hand_made_notes():
    from zoo_music_transformer import metrics as CM

    chord = _notes((0, 1, 60), (0, 1, 64), (0, 1, 67), (1, 2, 62))     # a C major triad, then one D
    assert CM.polyphony(chord) == pytest.approx((3 * 1 + 1 * 1) / 2)
    assert CM.notes_per_second(chord) == pytest.approx(4 / 2)
    stuck = _notes((0, 10, 60), (0, 1, 64), (1, 2, 65), (2, 3, 67))    # one note held 10 s
    assert CM.long_note_rate(stuck) == pytest.approx(1 / 4)
    c_major = CM.key_of(chord)
    assert {0, 2, 4, 5, 7, 9, 11} == set(c_major)
    assert CM.in_key_rate(_notes((0, 1, 60), (1, 2, 61)), c_major) == pytest.approx(0.5)
    assert CM.total_variation(CM.pitch_class_histogram(chord), CM.pitch_class_histogram(chord)) == 0.0
    assert CM.total_variation(CM.pitch_class_histogram(_notes((0, 1, 60))),
                              CM.pitch_class_histogram(_notes((0, 1, 61)))) == 1.0
    even = _notes(*[(0.5 * i, 0.5 * i + 0.4, 60) for i in range(5)])
    hist = CM.ioi_histogram(even)
    assert hist.sum() == pytest.approx(1.0) and hist[np.searchsorted(CM.IOI_BINS, 0.5, side="right") - 1] == 1.0
    assert len(CM.continuation(chord, 1.0)) == 1                          # only the D starts after the prompt


def test_continuation_metrics_of_a_tiny_model_run_without_the_guard(tiny_model):
    from zoo.config import config_from_dict
    from zoo_music_transformer.train import MusicTransformerTrainConfig, MusicTransformerTrainer

    rng = np.random.default_rng(0)
    pieces = [T.notes_to_tokens(np.array([(0.25 * i, 0.25 * i + 0.2, 60 + int(rng.integers(0, 12)), 64)
                                          for i in range(80)]))]
    config = config_from_dict(MusicTransformerTrainConfig, {"eval_samples": 3, "eval_prompt": 40, "eval_new": 30})
    out = MusicTransformerTrainer(tiny_model, config, device="cpu").continuation_metrics(pieces)
    assert out["continuations"] == 3.0
    assert {"gen_cont_long_notes", "data_cont_long_notes", "gen_cont_polyphony", "gen_cont_in_key",
            "cont_pitch_class_tv", "cont_ioi_tv"} <= set(out)
    assert out["data_cont_long_notes"] == 0.0 and 0.0 <= out["cont_pitch_class_tv"] <= 1.0


def test_piece_k_of_a_batch_is_seed_plus_k_alone(tiny_model):
    batch = tiny_model.generate(num=3, seed=11, length=24, max_note_s=None)
    (alone,) = tiny_model.generate(num=1, seed=13, length=24, max_note_s=None)
    notes = lambda m: [(n.pitch, round(n.start, 4)) for n in m.instruments[0].notes]
    assert notes(batch[2]) == notes(alone) and notes(batch[0]) != notes(batch[1])


def test_the_split_of_every_piece_is_what_the_shipped_model_was_trained_with():
    """zoo.data.split_of with this plugin's arguments gives exactly the sha1 split the plugin had its own copy of
    when music-transformer-classical was trained, so the same pieces stay held out."""
    import hashlib

    def before(name):   # the plugin's split_of until it moved to zoo.data
        h = int(hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) % 100
        return "test" if h < 5 else "valid" if h < 10 else "train"

    names = [f"bach/bwv{n}.mxl#{k}" for n in range(1, 600) for k in range(2)] + ["a/b.mid", "caf\udce9.mid", ""]
    assert [D.split_of(n) for n in names] == [before(n) for n in names]
    assert D.assign_splits(["x.mid", "y.mid", "z.mid"]).count("train") == 1   # small sets still get all three


def chorale_prompt(path=None) -> pretty_midi.PrettyMIDI:
    """A 66 bpm prompt in 3/4 with two pitched tracks and a drum track (written to `path` if given)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=66, resolution=480)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0))
    midi.key_signature_changes.append(pretty_midi.KeySignature(7, 0))   # G major
    for program, base in ((0, 60), (40, 72)):
        inst = pretty_midi.Instrument(program)
        inst.notes = [pretty_midi.Note(80, base + k % 5, k * 0.9, k * 0.9 + 0.8) for k in range(6)]
        midi.instruments.append(inst)
    kit = pretty_midi.Instrument(0, is_drum=True)
    kit.notes = [pretty_midi.Note(80, 36, 0, 0.2)]
    midi.instruments.append(kit)
    if path is not None:
        midi.write(str(path))
    return midi


def test_a_continuation_keeps_the_tempo_and_metre_of_its_prompt(tiny_model, tmp_path, capsys):
    """(Every continuation was written at 120 bpm in 4/4: a 66 bpm chorale's went on at another tempo in a
    notation program, its bars in the wrong places.) The file written, read back, has the prompt's timing."""
    path = tmp_path / "prompt.mid"
    chorale_prompt(path)
    for include_prompt in (True, False):
        (piece,) = tiny_model.generate(seed=0, prompt=str(path), length=24, include_prompt=include_prompt)
        piece.write(str(tmp_path / "out.mid"))
        back = pretty_midi.PrettyMIDI(str(tmp_path / "out.mid"))
        assert back.get_tempo_changes()[1] == pytest.approx([66.0], abs=1e-3)
        assert [(t.numerator, t.denominator) for t in back.time_signature_changes] == [(3, 4)]
        assert [k.key_number for k in back.key_signature_changes] == [7]
    # the prompt's notes stay where they were in seconds (their first beat, too: 66 bpm, not 120)
    (piece,) = tiny_model.generate(seed=0, prompt=chorale_prompt(), length=4)
    starts = sorted({round(n.start, 2) for n in piece.instruments[0].notes})
    assert starts[:3] == [0.0, 0.9, 1.8]
    assert piece.get_beats()[1] == pytest.approx(60 / 66)


def test_a_multitrack_prompt_is_merged_and_says_so_in_one_line(tiny_model, capsys):
    tiny_model.generate(seed=0, prompt=chorale_prompt(), length=4)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 tracks" in err[0] and "merged into one piano track" in err[0] \
        and "1 drum track dropped" in err[0], err
    tiny_model.generate(seed=0, prompt=make_midi([(0, 1, 60, 80)]), length=4)   # one piano track: nothing to say
    assert capsys.readouterr().err == ""
