"""The TFLite interpreter every model stage runs on: LiteRT where it has wheels (64-bit),
tflite-runtime on 32-bit Pi OS (shared/docs/field-notes.md)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null: the runtime's C++ logging writes there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tflite_interpreter(model: bytes, reference_kernels: bool = False, threads: int = 1):
    """An interpreter of ``model``. With ``reference_kernels``, TFLite's built-in int8
    kernels and no XNNPACK delegate: the same outputs as TFLite Micro on the Arduino node,
    bit for bit (XNNPACK rounds differently: up to 6 int8 steps on ser-tiny), so an
    utterance scores the same wherever it is scored. Without, the XNNPACK delegate: float
    and dynamic-range int8 several times faster (ser-base's encoder). Its tensors are
    allocated here, with the runtime's INFO line about the delegate kept off stderr (the
    daemon's log is for news; an allocation that fails still raises)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    if reference_kernels:
        kernels = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = Interpreter(model_content=model, experimental_op_resolver_type=kernels, num_threads=threads)
        interpreter.allocate_tensors()
        return interpreter
    interpreter = Interpreter(model_content=model, num_threads=threads)
    with _native_stderr_silenced():
        interpreter.allocate_tensors()
    return interpreter
