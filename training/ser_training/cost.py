"""What one window of an int8 model costs: multiply-accumulates from the graph's shapes,
and the instructions (and, at a stated cycles-per-instruction margin, the cycles) it takes
on the Arduino node's 64 MHz Cortex-M4F.

The M4 figures are an estimate, not a run here. Each op's cost is a function of its
layer's shape, with the kernel chosen as CMSIS-NN's wrappers choose it (a 1 x 1 stride-1
convolution takes the 1 x 1 fast path, any other convolution im2col; a 3 x 3 depthwise
convolution its own kernel, any other depthwise the generic one), and coefficients
calibrated at ``-Os`` under **Chirale_TensorFlowLite 2.0.0** (the library the sketch's
build steps install; it bundles the 2022 CMSIS-NN) against what an independent build of
the node measured (issue 28; shared/docs/field-notes.md, "The node under the real TFLite
Micro library"): tflite-micro 90b983c + CMSIS-NN and Chirale 2.0.0 at the Arduino core's
flags (``-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=softfp -Os``), instructions counted
by ``qemu-system-arm -M mps2-an386 -icount shift=10``:

==========================================  =============  ========================
op (ser-tiny 0.3.0 / speech gate 0.5.0)     measured       this model
==========================================  =============  ========================
first CONV_2D 10x4 s6x2, 1 -> 64            2.16 M         fitted (with the gate's)
each DEPTHWISE 3x3, 64 channels             1.07 M         fitted
each CONV_2D 1x1 64 -> 64                   1.83 M         fitted
classifier CONV_2D 1x1 64 -> 8              0.23 M         predicted (0.230 M)
AVERAGE_POOL_2D 25x7x8                      22 k           fitted
SUB (149 x 13, broadcast)                   0.38 M         fitted
emotion window                              14.51 M        fits MUL and the window
gate first CONV_2D 5x3, 1 -> 24             9.2 per MAC    fitted (with the emotion's)
gate DEPTHWISE 5x3 (three layers)           ~14 per MAC    fitted
gate small 1x1 (24/32 -> 32, 32 -> 2)       3.3-4.6/MAC    32 -> 32 at 3.3 fitted;
                                                           the others predicted
gate window                                 1.87 M         fits MUL and the window
==========================================  =============  ========================

A figure that fits a coefficient is reproduced by construction; the predicted ones, and
the split of a kernel's cost between MACs and outputs where one shape was measured, are
the model's (``tests/test_m4_cost.py`` checks all of them, ±5 % per op, ±3 % per window).
MUL was not measured on its own: its per-element cost and the per-window constant are
what the two window totals leave after the measured ops. Ops the two models do not have
(MEAN, FULLY_CONNECTED, MAX_POOL_2D) are priced by analogy, said where they are.

Chirale 2.0.0's sources are obtainable (the public ``spaziochirale/Chirale_TensorFlowLite``
repository, tag v2.0.0, which is where the kernel dispatch above was read), but this
repository does not build TensorFlow Lite Micro into its M4 image, so nothing here
re-measures the model: ``deploy/arduino/m4`` counts the node's own C core and adds these
figures for each window.

Instructions are not cycles: ``M4_CPI_MARGIN`` says what the node budgets per instruction.
"""

from __future__ import annotations

import numpy as np

from .int8 import interpreter

M4_CLOCK_HZ = 64_000_000
M4_CPI_MARGIN = 1.4
"""Cycles per instruction the node's budgets assume (``m4_cycles``, the sketch's ring).
A Cortex-M4's cycle table (single-cycle ALU and MAC, 2 cycles for a load, 1 more for
each further load of a burst, 2-4 for a taken branch) gives 1.20-1.29 cycles per
instruction on these kernels with memory that never waits (issue 28's replay). The
nRF52840 reads code from flash, which needs wait states at 64 MHz; its instruction cache
(on in Mbed OS's start-up) hides them for loops that fit it, and a window's time goes to
a handful of small kernel loops, but misses between ops, the interpreter's dispatch and
the front end's tables (158 KB, read from flash as data, which the instruction cache
does not serve) stall. 1.4 leaves 9-17 % above the zero-wait-state figure for that; it
is a margin, not a measurement."""

OP_OVERHEAD = 1_000
"""Instructions of every op's invocation (TFLite Micro's dispatch, the kernel's setup):
an allowance, not measured on its own; each op's fitted coefficients are net of it."""
REQUANTISE = 46.69
"""Per output element of a CMSIS-NN kernel that requantises per channel (bias, the
64-bit multiply-and-shift, clamp, store), fitted with ``CONV_1X1_MAC`` on the 1 x 1
convolutions: 64 -> 64 on 25 x 7 at 1.83 M and the gate's 32 -> 32 on 13 x 4 at
3.3 per MAC; the depthwise kernels share it."""
CONV_1X1_MAC = 1.822
"""1 x 1 fast path (arm_convolve_1x1_s8_fast: a matrix product, four inputs per SMLAD pair)."""
CONV_IM2COL_MAC, CONV_IM2COL_OUTPUT = 2.2002, 104.76
"""Any other convolution (arm_convolve_s8: im2col to int16, then 2 x 2 output blocks):
per MAC and per output element, fitted on both first convolutions (10 x 4 taps, 64
out at 2.16 M; 5 x 3 taps, 24 out at 9.2 per MAC). With one input channel the im2col
and the blocks' set-up and requantisation weigh per output, which is why few taps cost
more per MAC."""
DEPTHWISE_3X3_MAC = 5.417
"""arm_depthwise_conv_3x3_s8 (3 x 3, padding <= 1), per MAC beyond ``REQUANTISE`` per
output: fitted on 64 channels on 25 x 7 at 1.07 M."""
DEPTHWISE_MAC = 10.83
"""arm_depthwise_conv_s8_opt (any other depthwise: im2col of the window, then four
channels at a time), per MAC beyond ``REQUANTISE`` per output: fitted on the gate's
three 5 x 3 layers together at 14 per MAC."""
POOL_INPUT = 15.0
"""arm_avgpool_s8 per input element: 22 k for 25 x 7 x 8. MAX_POOL_2D (arm_max_pool_s8,
the same loop shape) is priced the same, not measured."""
SUB_ELEMENT = 195.66
"""TFLite Micro's reference SUB with broadcasting (a (1, 1, 13) operand), per output
element: 0.38 M for 149 x 13. Index arithmetic and three requantisations per element."""
MUL_ELEMENT = 33.29
"""MUL with broadcasting, per output element: not measured alone; with ``WINDOW_BASE``,
what the emotion (14.51 M) and gate (1.87 M) windows leave after the measured ops."""
WINDOW_BASE = 50_300
"""Per window: MicroInterpreter::Invoke's own work, RESHAPE, SOFTMAX (see ``MUL_ELEMENT``)."""
MEAN_INPUT = 188.0
"""TFLite Micro's reference MEAN per input element: 145.5 measured at -O2 on the 0.2
model (issue 14), times 1.29, the whole emotion window's -Os / -O2 ratio (14.51 / 11.24).
Not measured at -Os; bundles since 0.3.0 have no MEAN."""
FC_MAC = CONV_1X1_MAC
"""FULLY_CONNECTED (arm_fully_connected_s8: a vector-matrix product, the 1 x 1 path's
inner loop), priced as a 1 x 1 convolution; not measured at -Os."""

POOLING = ("MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "REDUCE_MAX")
"""Ops whose work is counted per input element, not in MACs."""
FREE = ("RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "DELEGATE")
"""Ops charged only ``OP_OVERHEAD`` (their work is in ``WINDOW_BASE``); DELEGATE is the
host interpreter's XNNPACK node, not an op of the model."""


def _ops(interp) -> list[dict]:
    """Each op of the graph with the shapes its cost depends on."""
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interp.get_tensor_details()}
    ops = []
    for op in interp._get_ops_details():  # the public API has no graph walk
        if op["op_name"] == "DELEGATE":
            continue
        ins = [shapes[i] for i in op["inputs"] if i >= 0]
        outs = [shapes[o] for o in op["outputs"]]
        ops.append({"name": op["op_name"], "inputs": ins, "output": outs[0] if outs else ()})
    return ops


def _cost(op: dict) -> tuple[str, str, int, float]:
    """(op name, kernel, MACs or elements, instructions) of one op."""
    name, ins, out = op["name"], op["inputs"], op["output"]
    n_out = int(np.prod(out)) if out else 0
    if name == "CONV_2D":
        _, kh, kw, cin = ins[1]
        macs = n_out * kh * kw * cin
        if kh == kw == 1 and out[1:3] == ins[0][1:3]:  # 1 x 1, stride 1: the fast path
            return name, "1x1", macs, macs * CONV_1X1_MAC + n_out * REQUANTISE
        return name, "im2col", macs, macs * CONV_IM2COL_MAC + n_out * CONV_IM2COL_OUTPUT
    if name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = ins[1]
        macs = n_out * kh * kw
        rate = DEPTHWISE_3X3_MAC if (kh, kw) == (3, 3) else DEPTHWISE_MAC
        return name, "3x3" if (kh, kw) == (3, 3) else "generic", macs, macs * rate + n_out * REQUANTISE
    if name == "FULLY_CONNECTED":
        macs = n_out * ins[1][-1]
        return name, "fc", macs, macs * FC_MAC + n_out * REQUANTISE
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        n = int(np.prod(ins[0]))
        return name, "pool", n, n * POOL_INPUT
    if name == "MEAN":
        n = int(np.prod(ins[0]))
        return name, "reference", n, n * MEAN_INPUT
    if name == "SUB":
        return name, "broadcast", n_out, n_out * SUB_ELEMENT
    if name == "MUL":
        return name, "broadcast", n_out, n_out * MUL_ELEMENT
    if name in FREE:
        return name, "", 0, 0.0
    raise ValueError(f"no measured Cortex-M4 cost for {name}")


def m4_op_instructions(model: bytes) -> list[tuple[str, str, int, int]]:
    """(op, kernel, MACs or elements, instructions) for every op of the graph, in order,
    each with ``OP_OVERHEAD``; ops without a cost (LSTM, REDUCE_MAX) are an error rather
    than a silent zero."""
    return [(n, k, w, round(c + OP_OVERHEAD)) for n, k, w, c in map(_cost, _ops(interpreter(model)))]


def _op_work(interp) -> list[tuple[str, int]]:
    """(cost key, MACs or input elements) for every op that does arithmetic."""
    shapes = {t["index"]: tuple(t["shape"]) for t in interp.get_tensor_details()}
    work = []
    for op in interp._get_ops_details():
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        out = int(np.prod(shapes[outs[0]])) if len(outs) else 0
        if name == "CONV_2D":
            _, kh, kw, cin = shapes[ins[1]]
            work.append((name, out * kh * kw * cin))
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
    for name, n in _op_work(interpreter(model)):
        if name in POOLING:
            continue
        per_op[name] = per_op.get(name, 0) + n
    return sum(per_op.values()), per_op


def m4_instructions(model: bytes) -> tuple[int, dict[str, int]]:
    """Estimated Cortex-M4 instructions per window (Chirale_TensorFlowLite 2.0.0, -Os), in
    total and per op type; "other ops" is the window's constant and the ops without
    arithmetic of their own (RESHAPE, SOFTMAX)."""
    per_op: dict[str, int] = {"other ops": WINDOW_BASE}
    for name, _, _, instructions in m4_op_instructions(model):
        key = "other ops" if name in FREE else name
        per_op[key] = per_op.get(key, 0) + instructions
    return sum(per_op.values()), per_op


def m4_cycles(instructions: float, cpi: float = M4_CPI_MARGIN) -> int:
    """Cycles for this many instructions at the node's cycles-per-instruction margin."""
    return int(np.ceil(instructions * cpi))
