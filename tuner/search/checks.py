"""What a new sweep cannot be, refused in one line before Ray starts: a name that is no plain directory name,
and combinations of searcher, scheduler and space that cannot work."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tuner.core.configs import ModelConfig, TrainConfig
from tuner.core.errors import SettingsError
from tuner.core.memory import check_batches_fit, training_bytes_per_image
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS

if TYPE_CHECKING:
    from tuner.search.spaces import SearchSpace

# What PBT perturbs: never a model-shape parameter, whose weights come with the copied checkpoint.
PBT_MUTABLE = ("lr", "weight_decay")
# A new experiment's name: safe unquoted in a shell, visible to `ls`, never taken for a flag or a glob.
# Folders made by older versions, or renamed by hand, are still read and resumed under any name.
PLAIN_NAME = re.compile(r"\w[\w.-]*")


def check_new_name(name: str) -> None:
    """A new sweep's --name is letters, digits, '.', '-' and '_', starting with a letter or digit."""
    if not PLAIN_NAME.fullmatch(name):
        raise SettingsError(
            f"--name {name!r} is not a plain name; use letters, digits, '.', '-' or '_', starting with a letter "
            "or digit"
        )


def check(searcher: str, scheduler: str, space: SearchSpace, pareto: bool = False) -> None:
    """One line, before anything starts, for a searcher or scheduler that cannot run this space (or, with
    `pareto`, two objectives)."""
    if pareto and not SEARCHERS[searcher].multi_objective:
        raise SettingsError(
            f"--searcher {searcher} searches one objective, and --pareto asks for two; use --searcher tpe or nsga2"
        )
    if pareto and SCHEDULERS[scheduler].pbt_like:
        raise SettingsError(
            f"--scheduler {scheduler} proposes configurations itself and cannot search --pareto's two objectives; "
            "use --scheduler asha"
        )
    # The names themselves were checked with the flags (settings) or the space file (spaces).
    choices = [p.name for p in space.params if p.type == "choice"]
    if SEARCHERS[searcher].numeric_only and choices:
        raise SettingsError(
            f"--searcher {searcher} cannot search choice parameters ({', '.join(choices)}); "
            "fix them in the space's 'fixed:', or use --searcher tpe"
        )
    if SCHEDULERS[scheduler].pbt_like:
        if searcher != "random":
            raise SettingsError(
                f"--scheduler {scheduler} proposes configurations itself and cannot be combined with "
                f"--searcher {searcher}; use --searcher random"
            )
        if not any(p.name in PBT_MUTABLE for p in space.params):
            raise SettingsError(
                f"--scheduler {scheduler} mutates {' and '.join(PBT_MUTABLE)}, and the space searches neither; "
                "search lr, or use --scheduler asha"
            )


def check_population(scheduler: str, num_samples: int, concurrency: int | None) -> None:
    """PBT compares the trials that run at once (with --concurrency N, N of them): one alone copies nothing."""
    if not SCHEDULERS[scheduler].pbt_like:
        return
    if num_samples < 2 or concurrency == 1:
        flag = "--num-samples" if num_samples < 2 else "--concurrency"
        raise SettingsError(
            f"--scheduler {scheduler} compares trials that run at once, and {flag} 1 leaves one; "
            f"pass {flag} 2 or more{', or leave --concurrency out' if flag == '--concurrency' else ''}"
        )


def check_training_memory(space: SearchSpace, train_size: int, trials: int, available: int | None = None) -> None:
    """Refuse, before any image is made, a space whose largest batch (capped by the training images there
    are) of its widest model would not fit `trials` times in this machine's memory (`available` bytes:
    what the system reports, by default)."""
    model, train = ModelConfig(), TrainConfig()
    widths = [int(_largest(space, key, getattr(model, key))) for key in ("conv1_channels", "conv2_channels", "hidden")]
    batch = min(train_size, int(_largest(space, "batch_size", train.batch_size)))
    per_image = training_bytes_per_image(*widths)
    check_batches_fit(batch, per_image, trials, f"batch_size in {space.path.name}", available)


def _largest(space: SearchSpace, key: str, default: float) -> float:
    """The largest value a trial of `space` can give `key`: the fixed one, a range's top or the largest choice."""
    if key in space.fixed:
        return space.fixed[key]
    for param in space.params:
        if param.name == key:
            return max(param.values) if param.type == "choice" else param.high
    return default
