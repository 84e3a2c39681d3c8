"""tuner: hyperparameter sweeps, on Ray Tune, of a CNN that imitates a fixed torchvision pipeline."""

__version__ = "0.1.0"
