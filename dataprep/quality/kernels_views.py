"""Array views without a reference count, for the quality kernels' hot loops (numba), and
Arrow results as numpy without pyarrow's `to_numpy`.

WHY: numba counts references to an array with atomic increments and decrements of its
meminfo. A helper inlined at the IR level (`inline="always"`) binds each array argument
to a new variable, and in a loop with branches LLVM's reference-count pruning keeps those
operations: `kernels.scan` spent a third of its time (perf, 45 MB, spaCy words) in NRT_incref
and NRT_decref, some 16 atomic operations per token for `_add` alone. A view whose meminfo
is NULL has nothing to count, and the compiler drops the operations. Such a view must not
outlive the array it was made from: take it inside the function that holds the owner, and
never return it or store it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array


@intrinsic
def borrowed(typingctx, arr):
    """The same array (data, shape, strides) without a meminfo or parent: not counted."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        out = context.make_array(signature.return_type)(context, builder)
        populate_array(
            out,
            data=src.data,
            shape=src.shape,
            strides=src.strides,
            itemsize=src.itemsize,
            meminfo=None,
            parent=None,
        )
        return out._getvalue()

    return arr(arr), codegen


def bools(mask: pa.BooleanArray) -> np.ndarray:
    """A boolean Arrow array without nulls as a numpy bool array.

    WHY not `mask.to_numpy()`: pyarrow imports pandas on its first conversion (~0.2 s of CPU
    in every `score` worker process, which needs nothing else of it)."""
    _, bits = mask.buffers()
    if bits is None or len(mask) == 0:
        return np.zeros(len(mask), np.bool_)
    raw = np.frombuffer(bits, np.uint8)
    every = np.unpackbits(raw, count=mask.offset + len(mask), bitorder="little")
    return every[mask.offset :].astype(np.bool_)
