"""Compiled kernels kept as machine code on disk and loaded with llvmlite alone.

WHY: numba's own cache (`cache=True`) still needs numba at run time: importing it and loading
its typing and lowering registries costs a fresh process ~0.35 s of CPU, about what signing
42 MB of text takes. A kernel whose machine code references nothing but LLVM intrinsics
(pointer and integer arguments, no reference counting, no Python API: `check_ir` makes sure)
can be mapped straight into an MCJIT engine: ~0.02 s, and numba is not imported at all.

numba compiles such a kernel once per key (the sources' bytes, numba's and llvmlite's versions,
the target triple, CPU name and features, NUMBA_CPU_NAME/NUMBA_CPU_FEATURES); the object is kept
where numba keeps its cache (`__pycache__` beside the source, or the user's cache directory), so
an edited source, another toolchain or another CPU builds anew instead of loading stale code.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import secrets
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

MAGIC = b"dataprep-native-2\n"
_ENGINES: list[object] = []  # MCJIT engines own the loaded code: kept for the process's life
_LOCK = threading.Lock()
_INTRINSIC = re.compile(r"^declare [^@]*@\"?(llvm\.[\w.]+)\"?\(", re.M)
_DECLARE = re.compile(r"^declare [^@]*@\"?([^\"(]+)\"?\(", re.M)


class NativeError(RuntimeError):
    """The kernel cannot be built or loaded natively (callers fall back to numpy)."""


def _host() -> list[str]:
    """This machine's target as numba's code generation sees it (llvmlite's host detection)."""
    import llvmlite.binding as llvm

    return [
        llvm.get_process_triple(),
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
        os.environ.get("NUMBA_CPU_NAME", ""),
        os.environ.get("NUMBA_CPU_FEATURES", ""),
    ]


def code_key(sources: Sequence[Path]) -> str:
    """The hash of what the machine code is compiled from: the sources' bytes and the Python,
    numba and llvmlite versions (no llvmlite import: a driver can look for a build cheaply)."""
    digest = hashlib.sha256()
    parts = [f"{sys.version_info[0]}.{sys.version_info[1]}"]
    for dist in ("numba", "llvmlite"):
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError as err:
            raise NativeError(f"{dist} is not installed") from err
    for part in parts:
        digest.update(part.encode() + b"\0")
    for source in sources:
        digest.update(Path(source).read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def key(sources: Sequence[Path]) -> str:
    """The name of one build: `code_key` and a hash of this machine's target (`_host`)."""
    host = hashlib.sha256("\0".join(_host()).encode()).hexdigest()[:12]
    return f"{code_key(sources)}-{host}"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def cache_file(name: str, build_key: str, beside: Path) -> Path:
    """Where the build lives: DATAPREP_KERNEL_CACHE, else `__pycache__` beside the source,
    else the user's cache directory (as numba chooses); NativeError if none is writable."""
    for folder in _folders(beside):  # a folder holding a usable build, else a writable one
        path = folder / f"{name}-{build_key}.native"
        if (path.is_file() and read(path) is not None) or _writable(folder):
            return path
    raise NativeError(f"no writable directory for compiled kernels among {_folders(beside)}")


def has_build(name: str, code: str, beside: Path) -> bool:
    """Whether a build of this code is on disk for some CPU (a file name check: no llvmlite)."""
    return any(any(folder.glob(f"{name}-{code}-*.native")) for folder in _folders(beside))


def _folders(beside: Path) -> list[Path]:
    folders = []
    if os.environ.get("DATAPREP_KERNEL_CACHE"):
        folders.append(Path(os.environ["DATAPREP_KERNEL_CACHE"]))
    else:
        folders.append(Path(beside).parent / "__pycache__")
        try:  # no $HOME (some containers): Path.home() raises
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            folders.append(Path(base) / "dataprep" / "kernels")
        except (RuntimeError, KeyError):
            pass
    return folders


def check_ir(ir: str) -> None:
    """Refuse machine code that would need numba (or Python) at run time: every function it
    declares must be an LLVM intrinsic."""
    foreign = sorted(set(_DECLARE.findall(ir)) - set(_INTRINSIC.findall(ir)))
    if foreign:
        raise NativeError(f"the kernel references {foreign}: it cannot be loaded without numba")


def save(path: Path, symbols: dict[str, str], objects: Sequence[bytes]) -> None:
    """Write the build atomically (concurrent first runs each write a whole file), synced
    before the rename, readable as the umask allows (as numba's cache and .pyc files are),
    with the body's sha256 in the header: LLVM aborts the process on damaged object code,
    so `read` must never hand it over."""
    body = b"".join(objects)
    sizes = [len(o) for o in objects]
    header = {"symbols": symbols, "sizes": sizes, "sha256": hashlib.sha256(body).hexdigest()}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(MAGIC + json.dumps(header).encode() + b"\n" + body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read(path: Path) -> tuple[dict[str, str], list[bytes]] | None:
    """(symbols, object codes) of a saved build, or None if it is missing or damaged."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if not raw.startswith(MAGIC) or b"\n" not in raw[len(MAGIC) :]:
        return None
    head, _, body = raw[len(MAGIC) :].partition(b"\n")
    try:
        header = json.loads(head)
        sizes = [int(s) for s in header["sizes"]]
        symbols = {str(k): str(v) for k, v in header["symbols"].items()}
        digest = str(header["sha256"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if sum(sizes) != len(body) or hashlib.sha256(body).hexdigest() != digest:
        return None
    objects, at = [], 0
    for size in sizes:
        objects.append(body[at : at + size])
        at += size
    return symbols, objects


def load(symbols: dict[str, str], objects: Sequence[bytes]) -> dict[str, int]:
    """Map the object codes into a new MCJIT engine: {name: function address}."""
    import llvmlite.binding as llvm

    with _LOCK:
        try:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            target = llvm.Target.from_triple(llvm.get_process_triple())
            machine = target.create_target_machine(reloc="pic", codemodel="default")
            engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
            for obj in objects:
                engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            engine.finalize_object()
            addresses = {name: engine.get_function_address(sym) for name, sym in symbols.items()}
        except RuntimeError as err:
            raise NativeError(f"could not load the compiled kernel: {err}") from err
        if not all(addresses.values()):
            raise NativeError(f"symbols missing from the compiled kernel: {symbols}")
        _ENGINES.append(engine)
    return addresses


def function(address: int, argtypes: Sequence[type]) -> ctypes._CFuncPtr:
    """A ctypes callable for a numba native function (status, retptr, excinfo, args...);
    ctypes releases the GIL for the call."""
    proto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, *argtypes)
    return proto(address)
