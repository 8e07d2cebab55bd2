"""The training step. The core's Trainer owns the loop (device, AMP, LR schedule,
clipping, checkpoints, --resume, torchrun, logs); this file supplies the loss (data.py the data)."""

from __future__ import annotations

from torch.nn import functional as F

from zoo.train import Trainer


class MelodyTrainer(Trainer):
    defaults = {"lr": 3e-3, "batch_size": 32, "steps": 300, "ckpt_every": 100}

    # build_dataset(source, split) is inherited: the data.py function plugin.py registers, given self.model.
    # configure_optimizers() is inherited: one AdamW over all parameters, named "main".

    def training_step(self, batch, step):
        # Returning {"loss": tensor} lets the core do backward, accumulation, clipping and step. (A GAN
        # sets manual_optimization = True and calls self.optimize(name, loss) instead: docs/plugins.md.)
        logits = self.model(batch[:, :-1])
        return {"loss": F.cross_entropy(logits.float(), batch[:, -1])}

    def evaluate(self, dataset):
        # under torchrun each process scores its share of the batches; reduce_sum adds the sums up
        loss = correct = count = 0.0
        for batch in self.eval_batches(dataset, batch_size=256):
            logits = self.model(batch[:, :-1]).float()
            loss += F.cross_entropy(logits, batch[:, -1], reduction="sum").item()
            correct += (logits.argmax(-1) == batch[:, -1]).sum().item()
            count += len(batch)
        loss, correct, count = self.reduce_sum(loss, correct, count)
        if count == 0:
            return {}
        return {"loss": loss / count, "accuracy": correct / count}

    def card_sections(self, summary):
        # The model card (README.md) is built by the core (zoo.card): metadata, data, training, metric tables,
        # limitations, config. Add what only this plugin knows; a title such as "Data" adds to that section.
        if summary["data"] == "embedded default":
            return {"Data": "Rising and falling scales and arpeggios in every key (keys 0-9 train, "
                            "10 valid, 11 test), embedded in zoo_yourarch/data.py."}
        return {}
