"""Random-number state as plain JSON, so that resuming reads data and never unpickles code.

Python's and numpy's generators return tuples and arrays (which `torch.load(weights_only=True)`
refuses); torch's are byte tensors. All of them become lists of ints or base64 text here.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def capture() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": [int(k) for k in numpy_state["state"]["key"]],
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": _encode(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = _encode(torch.cuda.get_rng_state())
    return state


def restore(state: dict[str, Any]) -> None:
    python, numpy_state, torch_state, cuda_state = parse(state)
    random.setstate(python)
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch_state)
    if cuda_state is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_state)


def parse(state: dict[str, Any]) -> tuple[tuple, dict[str, Any], torch.Tensor, torch.Tensor | None]:
    """The generators' own forms, without touching them: raises on a malformed state."""
    version, internal, gauss = state["python"]
    python = (int(version), tuple(int(i) for i in internal), gauss)
    n = state["numpy"]
    key = np.asarray(n["key"], dtype=np.uint32)
    if key.shape != (624,):
        raise ValueError(f"numpy state has {key.size} words, not 624")
    numpy_state = {
        "bit_generator": str(n["bit_generator"]),
        "state": {"key": key, "pos": int(n["pos"])},
        "has_gauss": int(n["has_gauss"]),
        "gauss": float(n["gauss"]),
    }
    cuda = _decode(state["cuda"]) if "cuda" in state else None
    return python, numpy_state, _decode(state["torch"]), cuda


def load_legacy(path: Path) -> dict[str, Any]:
    """An `rng-rankN.pt` of earlier versions, read weights-only: numpy's array is the one
    non-tensor global it needs, allowed here and nowhere else."""
    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(allowed):
        old = torch.load(path, map_location="cpu", weights_only=True)
    name, key, pos, has_gauss, gauss = old["numpy"]
    state = {
        "python": [old["python"][0], list(old["python"][1]), old["python"][2]],
        "numpy": {
            "bit_generator": name,
            "key": [int(k) for k in key],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": _encode(old["torch"]),
    }
    if "cuda" in old:
        state["cuda"] = _encode(old["cuda"])
    return state


def _encode(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
