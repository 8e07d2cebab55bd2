"""The Music Transformer's training step for the core loop (`zoo train music-transformer`).

Next-token cross-entropy that ignores PAD, AdamW (decay on matrices only), the core's
warmup + cosine schedule and clipping at 1.0. `evaluate` gives the held-out NLL per
token in nats and its perplexity, over every token of the split. The book's recipe
(Adam, lr 1e-4, batch 2, no schedule) is the preset configs/music_transformer_book.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from zoo.errors import ConfigError
from zoo.limits import MAX_BATCH
from zoo.metrics import Metrics
from zoo.train import TrainConfig, Trainer

from . import data
from .tokenizer import PAD


@dataclass(frozen=True)
class MusicTransformerTrainConfig(TrainConfig):
    """TrainConfig plus the data, augmentation and optimizer settings of this plugin."""

    optimizer: str = "adamw"         # "adamw", or "adam" (the book: no weight decay)
    weight_decay: float = 0.1        # AdamW decay on weight matrices and embeddings only
    beta2: float = 0.95
    augment: bool = True             # transposition and time stretch of training crops
    transpose: int = 3               # +- semitones
    stretch: float = 0.05            # +- fraction of tempo
    crop: str = "random"             # "random" crops every epoch, or "first" (the book: first block of each piece)
    max_pieces: int = 0              # cap on music21 pieces parsed (0 = all)
    eval_windows: int = 0            # evaluate on the first N windows of a split (0 = every token)
    eval_batch_size: int = 8
    eval_samples: int = 0            # continuations of held-out prompts to measure (zoo eval sets --num; 0 = NLL only)
    eval_prompt: int = 256           # prompt tokens (the opening of a held-out piece)
    eval_new: int = 512              # new tokens per continuation, compared with the piece's next eval_new tokens

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer not in ("adamw", "adam"):
            raise ConfigError(f"optimizer must be 'adamw' or 'adam', got {self.optimizer!r}")
        if self.crop not in ("random", "first"):
            raise ConfigError(f"crop must be 'random' or 'first', got {self.crop!r}")
        if self.weight_decay < 0 or not 0 < self.beta2 < 1:
            raise ConfigError("weight_decay must be >= 0 and beta2 in (0, 1)")
        if not 0 <= self.transpose <= 12 or not 0 <= self.stretch < 0.5:
            raise ConfigError("transpose must be 0..12 semitones and stretch in [0, 0.5)")
        for name in ("max_pieces", "eval_windows"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 = no limit)")
        if not 1 <= self.eval_batch_size <= MAX_BATCH:
            raise ConfigError(f"eval_batch_size must be 1..{MAX_BATCH:,}, got {self.eval_batch_size}")
        if not 0 <= self.eval_samples <= 100_000 or not 1 <= self.eval_prompt <= 100_000 or not 1 <= self.eval_new <= 100_000:
            raise ConfigError("eval_samples must be 0..100000, eval_prompt and eval_new 1..100000")


class MusicTransformerTrainer(Trainer):
    """Language-model step: predict every next event of a crop."""

    config_class = MusicTransformerTrainConfig
    select_by = ("valid_nll", "min")   # zoo release picks the checkpoint with the lowest validation NLL
    defaults = {"lr": 3e-4, "batch_size": 8, "warmup_steps": 100, "schedule": "cosine", "grad_clip": 1.0}

    def build_dataset(self, source, split):
        """Random (augmented) crops for 'train'; every token once, unaugmented, for 'valid'/'test' (the registered
        data.build_dataset's windows, with this run's max_pieces and eval_windows caps)."""
        corpus = data.cached_corpus(None if source is None else str(source), self.config.max_pieces)
        pieces = corpus.split(split)
        block = self.model.config.block_size
        if split == "train":
            return data.CropDataset(pieces, block, seed=self.config.seed, augment=self.config.augment,
                                    transpose=self.config.transpose, stretch=self.config.stretch,
                                    first=self.config.crop == "first")
        ds = data.EvalDataset(pieces, block)
        if self.config.eval_windows:
            ds.windows = ds.windows[:self.config.eval_windows]
        return ds

    def configure_optimizers(self):
        """AdamW with decay on 2-D weights (matrices, embeddings) only, or the book's plain Adam."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.config.optimizer == "adam":
            return {"main": torch.optim.Adam(params, lr=self.config.lr, betas=(0.9, self.config.beta2))}
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": self.config.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return {"main": torch.optim.AdamW(groups, lr=self.config.lr, betas=(0.9, self.config.beta2))}

    def parallelize(self, module, mesh):
        """Under fsdp each transformer block is its own unit, then the rest (embeddings, head) one more: only one
        block's weights are gathered at a time. Under ddp, the core's default."""
        if self.config.distributed != "fsdp":
            return super().parallelize(module, mesh)
        from torch.distributed.fsdp import fully_shard

        for block in module.transformer.h:
            fully_shard(block, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module

    def training_step(self, batch, step):
        """Cross-entropy of next-token prediction, PAD positions ignored: the sum over the tokens and their count,
        so that the core divides by the tokens of all processes (a crop with padding weighs by its tokens)."""
        x, y = batch[:, :-1], batch[:, 1:]
        logits = self.model(x)
        loss_sum = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=PAD,
                                   reduction="sum")
        return {"loss_sum": loss_sum, "count": (y != PAD).sum()}

    @torch.no_grad()
    def evaluate(self, dataset):
        """Held-out NLL per token (nats), perplexity and the number of tokens scored (under torchrun each
        process scores its share of the windows and the sums are added up)."""
        total, count = 0.0, 0
        for batch in self.eval_batches(dataset, self.config.eval_batch_size):
            x, y = batch[:, :-1], batch[:, 1:]
            with self.autocast():
                logits = self.model(x)
            total += float(F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                           ignore_index=PAD, reduction="sum"))
            count += int((y != PAD).sum())
        total, count = self.reduce_sum(total, count)
        nll = total / max(count, 1)
        out = Metrics(nll=nll, scores={"ppl": math.exp(min(nll, 50.0)), "tokens": float(count)})
        if self.config.eval_samples:
            out = out | self.continuation_metrics(dataset.pieces)
        return out

    # the sampling settings of every continuation measurement, fixed before measuring
    CONTINUATION_SAMPLING = {"temperature": 0.9, "top_p": 0.95}

    @torch.no_grad()
    def continuation_metrics(self, pieces) -> Metrics:
        """Continue the opening eval_prompt tokens of held-out pieces (T 0.9, top-p 0.95, no stuck-note guard)
        and compare eval_new new tokens with the real next eval_new: metrics.compare, averaged over samples.
        Samples go round the pieces long enough for both parts, 4 per piece in one batch."""
        import numpy as np

        from . import metrics as CM
        from .tokenizer import tokens_to_notes

        c = self.config
        # decoded as `zoo eval --quantize` asks, else as generate() decodes; fp32 for sharded weights (torchrun)
        quantize = self.generate_options.get("quantize", "auto" if self.world_size == 1 else "none")
        usable = [p for p in pieces if len(p) >= c.eval_prompt + c.eval_new]
        if not usable:
            return Metrics()
        per_piece = 4
        rows, done, k = [], 0, 0
        while done < c.eval_samples:
            piece = usable[k % len(usable)]
            n = min(per_piece, c.eval_samples - done)
            prompt = torch.as_tensor(piece[:c.eval_prompt].astype(np.int64))
            g = torch.Generator(device=self.model.device).manual_seed(c.seed + k)
            new = self.model.generate_tokens(prompt[None].expand(n, -1), c.eval_new, generator=g, quantize=quantize,
                                             **self.CONTINUATION_SAMPLING).cpu()
            real_notes = tokens_to_notes(piece[:c.eval_prompt + c.eval_new])
            prompt_notes = tokens_to_notes(piece[:c.eval_prompt])
            end = float(prompt_notes[:, 0].max()) if len(prompt_notes) else 0.0   # the last onset of the prompt
            key = CM.key_of(prompt_notes) if len(prompt_notes) else frozenset()
            real = CM.continuation(real_notes, end + 1e-9)
            for row in new:
                gen = CM.continuation(tokens_to_notes(np.concatenate([piece[:c.eval_prompt], row.numpy()])), end + 1e-9)
                rows.append(CM.compare(gen, real, key))
            done, k = done + n, k + 1
        out = {key: float(np.nanmean([r[key] for r in rows])) for key in rows[0]}
        out["continuations"] = float(len(rows))
        return Metrics.from_flat(out)   # compare's gen_cont_X / data_cont_X: the pair cont_X

    def release_files(self) -> dict:
        """prompt.mid and sample.mid for the card: the opening 256 tokens of a test-split piece (a Bach chorale
        when there is one) and the model's continuation (512 new tokens, T 0.9, top-p 0.95, seed 0)."""
        import io

        import numpy as np

        corpus = data.cached_corpus(None if self.source is None else str(self.source), self.config.max_pieces)
        names = [n for n, s in zip(corpus.names, data.assign_splits(corpus.names)) if s == "test"]
        if not names:
            return {}
        name = next((n for n in names if n.startswith("bach/")), names[0])
        ids = torch.as_tensor(corpus.tokens[corpus.names.index(name)][:256].astype(np.int64))
        files = {}
        for fname, midi in (("prompt.mid", self.model.tokenizer.decode(ids)),
                            ("sample.mid", self.model.generate(prompt=ids.tolist(), length=512, seed=0,
                                                               **self.CONTINUATION_SAMPLING)[0])):
            buf = io.BytesIO()
            midi.write(buf)
            files[fname] = buf.getvalue()
        return files

    def card_sections(self, summary: dict) -> dict[str, str]:
        """The card's language-model numbers (NLL per token, tokens seen), what the continuation rows are, and
        the differences from the book; zoo.card builds the rest."""
        cfg, mc = summary["train_config"], summary["model_config"]
        last, test = summary["last"], summary["test_metrics"]
        tokens = summary["steps"] * cfg["batch_size"] * mc["block_size"]
        book = {"n_layer": 6, "n_head": 8, "n_embd": 512, "block_size": 2048, "dropout": 0.1, "attention": "absolute"}
        diffs = [f"`{k}` = {mc.get(k)!r} (book: {v!r})" for k, v in book.items() if mc.get(k) != v]
        lines = [f"- Token positions trained on: {tokens:,} (steps x batch x block_size; PAD ignored in the loss)",
                 f"- Train NLL per token (last step): {last.get('loss', float('nan')):.4f} nats"]
        if "valid_nll" in last:
            lines.append(f"- Validation NLL per token: {last['valid_nll']:.4f} nats")
        if "nll" in test:
            lines.append(f"- Test NLL per token: {test['nll']:.4f} nats (perplexity {test['ppl']:.2f}, "
                         f"{int(test['tokens']):,} tokens)")
        if any(k.startswith("gen_cont_") for k in test):
            lines += ["", f"The `cont_` rows: {int(test.get('continuations', 0))} continuations of the opening "
                      f"{cfg.get('eval_prompt', 256)} tokens of test-split pieces, {cfg.get('eval_new', 512)} new "
                      "tokens each at temperature 0.9, top-p 0.95, without the stuck-note guard; the test data "
                      "column is each piece's real next tokens. `cont_pitch_class_tv` and `cont_ioi_tv` compare "
                      "the two (0 = same, 1 = disjoint)."]
        return {"Metrics": "\n".join(lines), "Differences from the book": "\n".join([
            *(f"- {d}" for d in diffs or ["none in the model: this is the book's configuration"]),
            "- training: AdamW with warmup and cosine, clipping, random crops with transposition and time "
            "stretch (the book: Adam at 1e-4, no schedule, the first block of each piece; preset "
            "configs/music_transformer_book.json)"])}
