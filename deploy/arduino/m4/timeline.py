"""Does the sketch keep up with the microphone? A replay of its loop against the PDM
interrupt, from the instructions each step took on the M4 image.

The sketch (ser_node.ino): the PDM interrupt delivers 256 samples every 16 ms into a ring
of kRingFrames 20 ms frames; a sample that finds every frame full and unread is dropped
(an overrun). loop() hands each complete frame to ser_node_audio, which takes what the
image measured for that frame, plus the model's instructions for each window it scored;
the frame's slot is free once the call returns. Instructions become time at the node's
cycles-per-instruction margin (ser_training.cost.M4_CPI_MARGIN, 1.4) on a 64 MHz clock;
``cpi=1`` is the optimistic one instruction per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser_training.cost import M4_CPI_MARGIN

CLOCK_HZ = 64_000_000
FRAME = 320
PDM_BLOCK, PDM_PERIOD_S = 256, 0.016
PDM_ISR_INSTRUCTIONS = 3_000
"""The interrupt's own cost per block (copy 256 samples into the ring; the nRF52840's PDM
peripheral decimates in hardware): an allowance, not a measurement."""


@dataclass(frozen=True)
class Timeline:
    overruns: int  # PDM blocks that lost samples
    max_backlog_frames: int  # most complete frames waiting while loop() was busy
    worst_step_ms: float  # the longest single call of ser_node_audio
    cpu_share: float  # of the 64 MHz core's cycles, interrupt included, over the whole stream
    cpi: float  # cycles per instruction the replay assumed

    @property
    def ring_needed(self) -> int:
        """The smallest ring (frames) that this replay does not overrun."""
        return self.max_backlog_frames + 1

    def __str__(self) -> str:
        return (f"{self.overruns} overruns, at most {self.max_backlog_frames} frames waiting (a ring of "
                f"{self.ring_needed} needed), longest step {self.worst_step_ms:.1f} ms, "
                f"CPU {100 * self.cpu_share:.0f} % of 64 MHz at {self.cpi:g} cycles per instruction")  # fmt: skip


def step_instructions(cost: np.ndarray, classified: np.ndarray, model_instructions: float) -> np.ndarray:
    """Each frame's call: what the image counted, plus the model for every window it scored."""
    return cost.astype(np.float64) + classified * model_instructions


def simulate(steps: np.ndarray, ring_frames: int, clock_hz: float = CLOCK_HZ, cpi: float = M4_CPI_MARGIN) -> Timeline:
    """Replay the loop over len(steps) frames of audio (steps in instructions, each taking
    cpi cycles). A block that leaves ring_frames complete frames unread counts as an
    overrun (conservative: the sketch drops only the samples after that point, if the loop
    has not freed a slot by then)."""
    n = len(steps)
    isr_share = PDM_ISR_INSTRUCTIONS * cpi / clock_hz / PDM_PERIOD_S
    durations = steps * cpi / clock_hz / (1 - isr_share)  # the interrupt takes its share of every step
    last_block = (np.arange(1, n + 1) * FRAME - 1) // PDM_BLOCK  # the block with each frame's last sample
    ready = last_block * PDM_PERIOD_S
    returned = np.empty(n)
    t = 0.0
    for i in range(n):
        t = max(t, ready[i]) + durations[i]
        returned[i] = t
    blocks = np.arange(last_block[-1] + 1)
    complete = np.searchsorted(last_block, blocks, side="right")  # frames complete once block b is in
    done = np.searchsorted(returned, blocks * PDM_PERIOD_S, side="right")  # frames whose call returned by then
    backlog = complete - done
    seconds = n * FRAME / 16_000
    return Timeline(
        overruns=int((backlog >= ring_frames).sum()),
        max_backlog_frames=int(backlog.max()),
        worst_step_ms=float(durations.max() * 1000),
        cpu_share=float((steps.sum() + len(blocks) * PDM_ISR_INSTRUCTIONS) * cpi / clock_hz / seconds),
        cpi=cpi,
    )
