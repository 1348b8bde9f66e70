"""Model bundles: a folder with model.tflite and manifest.json, checked before use.

A bundle is refused, with the reason, when its manifest is unreadable or incomplete,
when the model file's SHA-256 differs from the manifest's (corrupt or swapped), or when
it was made for another front end than the one running here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .frontend import DEFAULT_CONFIG, FrontendConfig

SUPPORTED_SCHEMAS = (1,)


class BundleError(ValueError):
    """A model bundle that must not be used; the message says why."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    name: str
    version: str
    labels: tuple[str, ...]
    frontend: FrontendConfig
    window_frames: int
    hop_frames: int
    model: bytes
    sha256: str


def load_bundle(path: Path, frontend: FrontendConfig | None = DEFAULT_CONFIG) -> Bundle:
    """The bundle at ``path``, checked; made for ``frontend`` (None: whichever front end its
    manifest names, as evaluation tools that run any front end need)."""
    path = Path(path)
    manifest_path, model_path = path / "manifest.json", path / "model.tflite"
    if not manifest_path.is_file() or not model_path.is_file():
        raise BundleError(f"{path}: not a model bundle (needs manifest.json and model.tflite)")
    try:
        manifest = json.loads(manifest_path.read_text())
        schema = manifest["schema_version"]
        if schema not in SUPPORTED_SCHEMAS:
            raise BundleError(f"{manifest_path}: schema version {schema} is not supported (need {SUPPORTED_SCHEMAS})")
        expected_sha = manifest["model"]["sha256"]
        bundle_frontend = FrontendConfig.from_dict(manifest["frontend"]["config"])
        recorded_hash = manifest["frontend"]["hash"]
        scoring = manifest["scoring"]
        labels = tuple(manifest["labels"])
        name, version = manifest["name"], manifest["version"]
        window, hop = int(scoring["window_frames"]), int(scoring["hop_frames"])
    except json.JSONDecodeError as e:
        raise BundleError(f"{manifest_path}: not valid JSON ({e})") from None
    except KeyError as e:
        raise BundleError(f"{manifest_path}: missing key {e}") from None
    except (TypeError, ValueError) as e:
        raise BundleError(f"{manifest_path}: {e}") from None
    model = model_path.read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    if sha != expected_sha:
        raise BundleError(f"{model_path}: SHA-256 {sha[:12]}... does not match the manifest's {expected_sha[:12]}...")
    if bundle_frontend.hash != recorded_hash:
        raise BundleError(f"{manifest_path}: front-end config does not match its recorded hash {recorded_hash}")
    if frontend is not None and recorded_hash != frontend.hash:
        raise BundleError(
            f"{path}: made for front end {recorded_hash}, but this front end is {frontend.hash}; "
            f"use a bundle exported for this version of ser-edge"
        )
    return Bundle(path, name, version, labels, bundle_frontend, window, hop, model, sha)
