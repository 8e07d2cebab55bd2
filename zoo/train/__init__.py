"""The training engine: one loop for every plugin (`zoo train`); its modules are listed in docs/training.md.

A plugin's Trainer subclass supplies its data, optimizers, step and (for FSDP) parallelize; the core owns device
placement, bf16 autocast, the LR schedule, clipping, accumulation, seeding, evaluation, atomic checkpoints,
--resume, torchrun (DDP or FSDP), progress and logs.
"""

from .base import Trainer, check_loss
from .ckpt import check_trainer_state, checkpoint_dirs, load_checkpoint, save_checkpoint
from .config import TrainConfig, lr_factor, read_config_file, split_overrides
from .data import DataLoop, GlobalBatches
from .launch import train, train_from_args
from .loop import check_protocol, evaluate_split, fit, train_step
from .run import data_name, hardware, read_metrics, read_run_json, truncate_metrics

__all__ = ["Trainer", "TrainConfig", "DataLoop", "GlobalBatches", "train", "train_from_args", "fit", "train_step",
           "check_protocol", "check_loss", "evaluate_split", "checkpoint_dirs", "save_checkpoint", "load_checkpoint",
           "check_trainer_state", "lr_factor", "read_config_file", "split_overrides", "hardware", "data_name",
           "read_metrics", "read_run_json", "truncate_metrics"]
