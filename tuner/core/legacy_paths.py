"""Old module paths, kept importable: experiments saved before tuner was split into subpackages still resume.

Ray pickles the classes of a sweep's callbacks, stopper, scheduler and searcher by their module path into the
experiment's `tuner.pkl` (tuner 0.1 wrote `tuner.asha.PromotingASHA`, `tuner.progress.SweepMonitor`, ...).
Unpickling imports those paths, so each old path stays an alias of the module that now holds its names. The
finder is installed by `import tuner` and imports nothing until an old path is asked for. Never remove an
entry: an experiment on someone's disk may still name it (tests/test_legacy_paths.py resumes one).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

# Old module -> the modules that now hold its names, searched in order.
LEGACY_MODULES: dict[str, tuple[str, ...]] = {
    "tuner.asha": ("tuner.run.schedulers.asha",),
    "tuner.stoppers": ("tuner.run.stoppers.plateau", "tuner.run.schedulers.hyperband"),
    "tuner.progress": ("tuner.run.progress",),
    "tuner.sweep": ("tuner.run.sweep",),
    "tuner.trainable": ("tuner.run.trainable",),
    "tuner.search_methods": ("tuner.run.methods",),
    "tuner.configs": ("tuner.core.configs",),
    "tuner.settings": ("tuner.search.settings",),
}


class _Alias(types.ModuleType):
    """A module whose attributes are looked up in the modules that now hold them."""

    def __init__(self, name: str, homes: Sequence[str]) -> None:
        super().__init__(name, f"alias of {', '.join(homes)} (see tuner.core.legacy_paths)")
        self._homes = tuple(homes)

    def __getattr__(self, attr: str) -> object:
        for home in self._homes:
            module = importlib.import_module(home)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} (now {', '.join(self._homes)}) has no attribute {attr!r}")


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec:
        if fullname not in LEGACY_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _Alias(spec.name, LEGACY_MODULES[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Put the alias finder on sys.meta_path once; new paths are found as usual before it is asked."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
