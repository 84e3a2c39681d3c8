"""What the benchmark is asked for, what memory its batches need, and the exported files it times besides
the model as trained.

The rows are placed on Ray workers by tuner.run.benchmark; this module holds no Ray.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from tuner.core.constants import IN_SHAPE
from tuner.core.errors import ExportError, SettingsError, TunerError
from tuner.inference.export import export_model, max_abs_diff
from tuner.inference.formats import FORMATS, format_of, load_exported
from tuner.learn.checkpoints import load_model_file

log = logging.getLogger(__name__)

BATCH_SIZES = {"cpu": (1, 32, 128, 512, 2048), "cuda": (1, 32, 128, 512, 2048, 8192)}
DEVICES = ("cpu", "gpu", "all")
QUICK = ("eager",)  # the benchmark at the end of a sweep: the teacher and the model as trained
# An --artifact must reproduce the checkpoint's outputs this closely. Looser than a format's own tolerance:
# the file may have been exported elsewhere, by another build of its runtime; another model is far off.
SAME_MODEL_ATOL = 1e-3
GIB = 2**30


@dataclass(frozen=True)
class BenchmarkOptions:
    """What `tuner benchmark` was asked for; the defaults are the quick benchmark at the end of a sweep."""

    device: str = "all"  # one of DEVICES
    batch_sizes: tuple[int, ...] | None = None  # None: BATCH_SIZES of each device
    min_run_time: float = 0.5  # seconds of timing per row, after warm-up
    cpus: int | None = None  # the CPU worker's; None: all of the largest node's
    kinds: tuple[str, ...] = QUICK  # any of variants.KINDS
    artifacts: tuple[str, ...] = ()  # exported files given with --artifact, timed instead of fresh exports

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise SettingsError(f"unknown device {self.device!r}; use one of: {', '.join(DEVICES)}")
        if self.artifacts and "artifacts" not in self.kinds:
            raise SettingsError("--artifact files are timed with the exports, which --quick leaves out; drop --quick")

    def sizes(self, device: str) -> list[int]:
        """The batch sizes to time on `device` ("cpu" or "cuda")."""
        return list(self.batch_sizes or BATCH_SIZES[device])


def bytes_per_image(model: torch.nn.Module) -> int:
    """Memory one image takes in a forward pass: its float input, the output of every layer and the model's
    output, counted as if all held at once (eager frees activations as it goes: this bounds it from above)."""
    sizes: list[int] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [
        m.register_forward_hook(lambda _m, _in, out: sizes.append(out.nelement() * out.element_size())) for m in leaves
    ]
    x = torch.zeros(1, *IN_SHAPE, device=next(model.parameters()).device)
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return x.nelement() * x.element_size() + sum(sizes) + out.nelement() * out.element_size()


def check_memory(sizes: Iterable[int], per_image: int, fixed: int, available: float, where: str) -> None:
    """Refuse, in one line and before anything is timed, batch sizes whose batch does not fit in `available`
    bytes besides `fixed` ones (the image set on the device): Ray's OOM killer would end the worker instead."""
    too_big = sorted(b for b in sizes if fixed + b * per_image > available)
    if not too_big:
        return
    need = fixed + too_big[-1] * per_image
    fits = int(max(0, available - fixed) // per_image)
    raise SettingsError(
        f"batch size {too_big[-1]:,} needs {need / GIB:,.1f} GiB on {where} (input, activations and output at "
        f"{per_image / 1024:,.0f} KiB an image), more than the {available / GIB:,.1f} GiB available there; "
        + (f"pass --batch-sizes of at most {fits:,}" if fits else "free memory there, or time fewer --size images")
    )


def free_gpu_memory() -> int:
    """Bytes free on this worker's GPU now."""
    return torch.cuda.mem_get_info()[0]


def artifacts_of(checkpoint: Path, images: torch.Tensor, given: Iterable[str]) -> dict[str, bytes]:
    """Every format the benchmark times (FORMATS with a variant), exported from the checkpoint and verified as
    `tuner export` does, as bytes; an exported file the user gave (`--artifact`) replaces the one of its
    format, once shown to be this model."""
    timed = [f for f in FORMATS.values() if f.variant]
    found: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as out:
        for fmt in timed:
            try:
                found[fmt.name] = export_model(checkpoint, fmt.name, Path(out), images[:64]).path.read_bytes()
            except ExportError as exc:
                log.info(f"benchmark: no {fmt.name} rows: {exc}")
    model = load_model_file(checkpoint)
    for path in map(Path, given):
        fmt = format_of(path)
        if fmt.variant is None:
            suffixes = " or ".join(f.suffix for f in timed)
            raise TunerError(f"--artifact {path} is not a {suffixes} file; export one with `tuner export`")
        # load_exported: one line for a missing or corrupt file, or a model of other shapes
        diff = max_abs_diff(load_exported(path), model, images[:64])
        if diff > SAME_MODEL_ATOL:
            raise TunerError(
                f"{path} is not an export of this experiment's best model (outputs differ by up to {diff:.2g}); "
                "benchmark it with the experiment and trial it was exported from"
            )
        found[fmt.name] = path.read_bytes()
    return found
