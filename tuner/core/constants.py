"""Names shared across tuner's modules, each defined once; importing this loads nothing heavy.

The CLI builds its help from these without importing torch, Ray or pandas.
"""

from __future__ import annotations

# What the sweep optimises, and in which direction: any metric of tuner.core.metrics, with its registered
# direction (tests/test_metrics.py checks they agree, and that changing both changes every reader).
METRIC, MODE = "val_loss", "min"

# Where experiments live when no --storage is given.
RESULTS_DIR = "results"

# The best trial's model, rebuilt from this file alone, in every finished experiment.
BEST_MODEL_FILE = "best_model.pt"
CHECKPOINT_FILE = "checkpoint.pt"  # in each of a trial's checkpoint folders

# The sweep's Optuna study (SQLite), beside its results: optuna-dashboard reads it live.
OPTUNA_DB = "optuna.db"

# Dataset specs: `folder:PATH` takes any folder of images.
DATASETS = ("auto", "synthetic", "cifar10", "folder:PATH")

# How tables are printed (`tuner results --format`, `tuner list --format`).
TABLE_FORMATS = ("table", "csv", "json", "markdown")

# Image shapes: CIFAR-10 in, the teacher's output out.
IN_SHAPE = (3, 32, 32)
OUT_SHAPE = (1, 28, 28)
