"""Event messages: what subscribers receive for each recognised utterance.

The JSON carries a schema version, a sequence number that increases across restarts
and a unique id, so consumers can de-duplicate the rare repeat that at-least-once
delivery allows. ``event_type`` duplicates ``emotion`` for Home Assistant's event entity.
``delayed_s`` (stamped as the message goes out, so a resent one carries its own) says how
long after the utterance's end it was published: after an outage the spooled backlog
arrives minutes late, and a subscriber that acts on emotions as they happen drops what is
older than it cares for (deploy/examples/).

``arousal`` and ``valence`` (recognition.affect) ride on the event and on the state, in
both its forms: under the threshold the emotion is in doubt, but a voice torn between
angry and fearful is still clearly agitated. A model whose labels have no place on the
plane leaves both keys out rather than sending null: its messages stay exactly what they
were. Added keys do not break a reader of schema 1 (it reads the keys it knows), so the
schema version stays 1.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from ser_edge.recognition.decision import Recognition

SCHEMA_VERSION = 1


def iso_utc(t: float) -> str:
    """UNIX time as ISO 8601 UTC with milliseconds, e.g. 2026-11-24T04:00:00.123Z."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def affect_fields(r: Recognition) -> dict[str, float]:
    """``arousal`` and ``valence`` for the JSON, or nothing for a model without them."""
    return {} if r.arousal is None or r.valence is None else {"arousal": r.arousal, "valence": r.valence}


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
        **affect_fields(r),
        "start": iso_utc(r.start),
        "end": iso_utc(r.end),
        "duration_s": round(r.seconds, 3),
        "model": {"name": model_name, "version": model_version},
    }, separators=(",", ":"))  # fmt: skip


def state_payload(r: Recognition, seq: int | None) -> str:
    """The retained state's JSON: the answer and its event's ``seq``; under the threshold
    (no event, ``seq`` None) ``uncertain``, with the top emotion as ``best``."""
    state: dict = {"emotion": r.state, "confidence": r.confidence}
    if not r.emitted:
        state["best"] = r.emotion
    return json.dumps({**state, **affect_fields(r), "time": iso_utc(r.end), "seq": seq})


def stamped(payload: str, now: float, since: float | None = None) -> str:
    """An event's JSON with ``delayed_s``: seconds from its speech's end to its publication,
    ``since`` when the running process measured it on the monotonic clock (a wall-clock
    step cannot fake a backlog), else ``now`` minus its ``end`` (an event from an earlier
    run). A spooled payload without a readable ``end`` (written by another version) goes
    out as it is: delivery never stops on one message."""
    try:
        event = json.loads(payload)
        end = datetime.fromisoformat(event["end"].replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, OSError):
        return payload
    event["delayed_s"] = round(max(0.0, now - end if since is None else since), 1)
    return json.dumps(event, separators=(",", ":"))
