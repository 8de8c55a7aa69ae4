"""The library's entry points; the CLI and job files call these and nothing else.

May import every layer below it (model, run, ops, config, io); the CLI is the only layer above.
"""

from ..config.exec_options import ExecOptions
from .files import evaluate_files, score_files, transform_files
from .frames import read, write
from .train import TrainChunk, train_files

__all__ = ["read", "write", "transform_files", "score_files", "evaluate_files", "train_files",
           "ExecOptions", "TrainChunk"]
