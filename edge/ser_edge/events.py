"""Event messages: what subscribers receive for each recognised utterance.

The JSON carries a schema version, a sequence number that increases across restarts
and a unique id, so consumers can de-duplicate the rare repeat that at-least-once
delivery allows. ``event_type`` duplicates ``emotion`` for Home Assistant's event entity.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from .decision import Recognition

SCHEMA_VERSION = 1


def iso_utc(t: float) -> str:
    """UNIX time as ISO 8601 UTC with milliseconds, e.g. 2026-11-24T04:00:00.123Z."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(r: Recognition, seq: int, device_id: str, model_name: str, model_version: str) -> str:
    """The JSON text of one event."""
    return json.dumps({
        "schema": SCHEMA_VERSION,
        "id": str(uuid.uuid4()),
        "seq": seq,
        "device": device_id,
        "event_type": r.emotion,
        "emotion": r.emotion,
        "confidence": r.confidence,
        "scores": r.scores,
        "start": iso_utc(r.start),
        "end": iso_utc(r.end),
        "duration_s": round(r.seconds, 3),
        "model": {"name": model_name, "version": model_version},
    }, separators=(",", ":"))  # fmt: skip
