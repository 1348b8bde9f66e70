"""A stand-in for a system clock that steps (NTP after boot, a user's `date -s`), which a
test may not do to the machine's own: ``time.time`` jumps by FAKE_CLOCK_STEP_S once
FAKE_CLOCK_STEP_AFTER seconds have passed since the interpreter started. The monotonic
clock is untouched, as on a real machine."""

import os
import time

_after = float(os.environ.get("FAKE_CLOCK_STEP_AFTER", "0"))
_step = float(os.environ.get("FAKE_CLOCK_STEP_S", "0"))
_start = time.monotonic()
_real = time.time


def _stepped() -> float:
    return _real() + (_step if time.monotonic() - _start >= _after else 0.0)


time.time = _stepped
