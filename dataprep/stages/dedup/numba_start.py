"""numba's start without its eager BLAS probe (~0.15 s of CPU per process, out of ~0.5 s).

WHY: loading any cached numba function loads numba's registries, and `numba.np.arraymath`
then imports `scipy.linalg` (numpy.f2py, scipy's array-API layer, ...) only to set one flag,
`_HAVE_BLAS`, which picks BLAS or a plain loop for `np.dot` of 1-D arrays. Our kernels use no
BLAS. So `numba.np.arraymath` is imported once here with `scipy.linalg` hidden (this thread
only), and the flag is then set to what the probe would have said (is scipy's `cython_blas`
installed?) without importing it; numba's linear algebra imports scipy itself when a kernel
that uses it is compiled, as before. Nothing changes where scipy.linalg is already loaded or
numba's layout differs: then numba starts as usual.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any


class _HideScipyLinalg(importlib.abc.MetaPathFinder):
    """Makes `import scipy.linalg...` fail, in the thread that installed it only."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        if threading.get_ident() == self.thread and name.split(".")[:2] == ["scipy", "linalg"]:
            raise ImportError(f"{name} is not loaded for numba's BLAS probe")
        return None


def blas_installed() -> bool:
    """What numba's probe answers (can `scipy.linalg.cython_blas` be imported?), from the
    file system: scipy's package folder holds the compiled `cython_blas` module."""
    try:
        spec = importlib.util.find_spec("scipy")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(
        (Path(folder) / "linalg" / f"cython_blas{suffix}").is_file()
        for folder in spec.submodule_search_locations
        for suffix in suffixes
    )


def load_arraymath() -> None:
    """Import numba.np.arraymath without the scipy.linalg import (see the module doc)."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    finder = _HideScipyLinalg()
    sys.meta_path.insert(0, finder)
    try:
        import numba.np.arraymath as arraymath
    finally:
        sys.meta_path.remove(finder)
    if hasattr(arraymath, "_HAVE_BLAS"):
        arraymath._HAVE_BLAS = blas_installed()
