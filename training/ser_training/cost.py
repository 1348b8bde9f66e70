"""What one window of an int8 model costs: multiply-accumulates from the graph's shapes,
and the instructions it takes on the Arduino node's 64 MHz Cortex-M4F.

The M4 figures are an estimate, not a run: per-op costs per MAC (or per element) measured
for the 0.2 model under TensorFlow Lite Micro with CMSIS-NN int8 kernels at -O2, counted
with qemu's -icount on an mps2-an386 (issue 14), applied to this graph's shapes.
"""

from __future__ import annotations

import numpy as np

from .int8 import interpreter

# Instructions per MAC (convolutions) or per input element (pooling, MEAN) on the M4,
# measured on the 0.2 model: first conv 3.76 M for 896,000 MACs, each 64->64 pointwise
# conv 2.75 M for 1,433,600, each depthwise 3x3 1.81 M for 201,600, MEAN (TFLM's
# reference kernel) 3.26 M for 22,400 inputs. AVERAGE_POOL_2D and MAX_POOL_2D run
# CMSIS-NN's s8 pooling (a load and an add per input, unrolled): 4 is an assumption.
M4_INSTRUCTIONS = {
    "CONV_2D_first": 4.20,
    "CONV_2D": 1.92,
    "DEPTHWISE_CONV_2D": 8.98,
    "FULLY_CONNECTED": 2.0,
    "MEAN": 145.5,
    "AVERAGE_POOL_2D": 4.0,
    "MAX_POOL_2D": 4.0,
}
POOLING = ("MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "REDUCE_MAX")
"""Ops whose work is counted per input element, not in MACs."""
M4_OTHER_OPS = 340_000
"""The rest of the 0.2 model's 25.6 M (normalisation SUB/MUL, reshapes, softmax,
interpreter overhead), charged as a constant."""


def _op_work(interp) -> list[tuple[str, int]]:
    """(cost key, MACs or input elements) for every op that does arithmetic."""
    shapes = {t["index"]: tuple(t["shape"]) for t in interp.get_tensor_details()}
    work = []
    for op in interp._get_ops_details():  # the public API has no graph walk
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        out = int(np.prod(shapes[outs[0]])) if len(outs) else 0
        if name == "CONV_2D":
            _, kh, kw, cin = shapes[ins[1]]
            work.append(("CONV_2D_first" if cin == 1 else "CONV_2D", out * kh * kw * cin))
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = shapes[ins[1]]
            work.append((name, out * kh * kw))
        elif name == "FULLY_CONNECTED":
            work.append((name, out * shapes[ins[1]][-1]))
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            steps, units = shapes[outs[0]][-2], shapes[outs[0]][-1]
            work.append((name, steps * 4 * units * (shapes[ins[0]][-1] + units)))
        elif name in POOLING:
            work.append((name, int(np.prod(shapes[ins[0]]))))
    return work


def macs_per_inference(model: bytes) -> tuple[int, dict[str, int]]:
    """Multiply-accumulates of one window, from the graph's layer shapes (convolutions,
    depthwise convolutions, fully connected and LSTM layers; element-wise ops not counted)."""
    per_op: dict[str, int] = {}
    for key, n in _op_work(interpreter(model)):
        if key in POOLING:
            continue
        name = key.removesuffix("_first")
        per_op[name] = per_op.get(name, 0) + n
    return sum(per_op.values()), per_op


def m4_instructions(model: bytes) -> tuple[int, dict[str, int]]:
    """Estimated Cortex-M4 instructions per window, in total and per op; ops without a
    measured cost (LSTM, REDUCE_MAX) are an error rather than a silent zero."""
    per_op: dict[str, int] = {"other ops": M4_OTHER_OPS}
    for key, n in _op_work(interpreter(model)):
        if key not in M4_INSTRUCTIONS:
            raise ValueError(f"no measured Cortex-M4 cost for {key}")
        name = key.removesuffix("_first")
        per_op[name] = per_op.get(name, 0) + round(n * M4_INSTRUCTIONS[key])
    return sum(per_op.values()), per_op
