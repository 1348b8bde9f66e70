"""Process-wide allocator policy for the ser-edge and ser-train commands.

The front end allocates and frees megabyte-sized NumPy temporaries on every call.
glibc hands blocks that large back to the kernel at once (mmap/trim), so each call
page-faults them in again: measured, that costs more than the arithmetic (5.4 ms vs
3.5 ms per 3 s clip). Keeping freed memory in the heap removes it. Libraries must not
change this for their host program, so only command entry points call this.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGEST_HEAP_BLOCK = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit


def keep_freed_memory() -> bool:
    """Serve blocks up to 32 MB from the heap and keep freed memory; False if not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST_HEAP_BLOCK)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * _LARGEST_HEAP_BLOCK)
    )
