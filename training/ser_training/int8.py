"""Full-integer conversion, and running the result under TFLite and TFLite Micro."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np


class ConversionError(RuntimeError):
    """The converter's output is not the int8 model the device needs."""


def anchor_range(windows: np.ndarray) -> np.ndarray:
    """A copy of the first window holding -128 and 127, so calibration gives the input
    tensor exactly the front end's int8 scale (1.0) and zero point (0)."""
    anchor = windows[0].copy()
    anchor[0, 0], anchor[-1, -1] = -128, 127
    return np.concatenate([anchor[None], windows])


def convert(model, representative: np.ndarray) -> bytes:
    """int8-in, int8-out TFLite flatbuffer, names stripped, calibrated on training windows."""
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    samples = anchor_range(representative).astype(np.float32)

    def dataset():
        for x in samples:
            yield [x[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    flat = flatbuffer_utils.convert_bytearray_to_object(converter.convert())
    flatbuffer_utils.strip_strings(flat)
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
    scale, zero = input_quantisation(data)
    if (scale, zero) != (1.0, 0):
        raise ConversionError(f"input quantisation is scale {scale}, zero point {zero}; need 1.0 and 0")
    return data


def per_channel_fully_connected(model: bytes) -> int:
    """How many FULLY_CONNECTED ops carry per-channel weight scales (must be none)."""
    interp = interpreter(model)
    scales = {t["index"]: len(t["quantization_parameters"]["scales"]) for t in interp.get_tensor_details()}
    return sum(
        1 for op in interp._get_ops_details() if op["op_name"] == "FULLY_CONNECTED" and scales[op["inputs"][1]] > 1
    )


def interpreter(model: bytes, reference: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interp = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def input_quantisation(model: bytes) -> tuple[float, int]:
    scale, zero = interpreter(model).get_input_details()[0]["quantization"]
    return float(scale), int(zero)


def ops(model: bytes) -> list[str]:
    interp = interpreter(model)
    return sorted({op["op_name"] for op in interp._get_ops_details()})


def tflite_outputs(model: bytes, windows: np.ndarray, reference: bool = False) -> np.ndarray:
    """Raw int8 outputs, one row per window; state (LSTM) is reset before each."""
    interp = interpreter(model, reference)
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    rows = []
    for w in windows:
        interp.reset_all_variables()
        interp.set_tensor(inp, w[None].astype(np.int8))
        interp.invoke()
        rows.append(interp.get_tensor(out)[0].copy())
    return np.array(rows)


def dequantise_scores(model: bytes, raw: np.ndarray) -> np.ndarray:
    scale, zero = interpreter(model).get_output_details()[0]["quantization"]
    return (raw.astype(np.float64) - zero) * scale


def tflm_outputs(model: bytes, windows: np.ndarray, arena: int) -> np.ndarray:
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
    rows = []
    for w in windows:
        interp.reset()
        interp.set_input(w[None].astype(np.int8), 0)
        interp.invoke()
        rows.append(interp.get_output(0)[0].copy())
    return np.array(rows)


@contextmanager
def c_stderr_to(target: BinaryIO) -> Iterator[None]:
    """Send file descriptor 2, where TFLite Micro's C++ prints, to target for a while."""
    saved = os.dup(2)
    os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tflm_min_arena(model: bytes, high: int = 1 << 20) -> int:
    """TFLite Micro's own count of the arena the model uses ("Arena allocation total",
    from print_allocations), confirmed by allocating exactly that much.

    Probing smaller arenas is not safe: below a few kilobytes TFLite Micro crashes
    instead of reporting the failure.
    """
    import re
    import tempfile

    from tflite_micro import runtime

    try:
        interp = runtime.Interpreter.from_bytes(model, arena_size=high)
    except RuntimeError:
        raise ConversionError(f"the model does not fit a {high}-byte TFLite Micro arena") from None
    with tempfile.TemporaryFile() as log:
        with c_stderr_to(log):
            interp.print_allocations()
        log.seek(0)
        found = re.search(rb"Arena allocation total (\d+) bytes", log.read())
    if not found:
        raise ConversionError("TFLite Micro did not report its arena allocation")
    total = int(found.group(1))
    runtime.Interpreter.from_bytes(model, arena_size=total)  # raises if the count were short
    return total
