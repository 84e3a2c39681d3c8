"""tuner: hyperparameter sweeps, on Ray Tune, of a CNN that imitates a fixed torchvision pipeline.

Python API (no Ray needed to read results):

    import tuner
    exp = tuner.load_experiment("demo")            # name under results/, or a path
    exp.trials, exp.history, exp.best              # pandas DataFrames and a dict
    model = tuner.load_model("exported/model.pt")  # rebuilt from the file alone
"""

from tuner.checkpoints import load_model
from tuner.experiments import Experiment, load_experiment

__all__ = ["Experiment", "load_experiment", "load_model"]
__version__ = "0.1.0"
