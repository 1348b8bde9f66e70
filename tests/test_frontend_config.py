"""The front-end config: validation, round trip and a hash that bundles can rely on."""

from __future__ import annotations

import dataclasses

import pytest

from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig
from ser_edge.frontend.config import NORMALISATION_FIELDS
from tests.conftest import PLAIN


def test_default_hash_is_pinned() -> None:
    # A change here means every model bundle made so far would be refused.
    assert FrontendConfig().hash == "50ef837fe42c"
    assert FrontendConfig(**PLAIN).hash == "f2a44641c768"


def test_hash_is_short_hex_and_changes_with_every_field() -> None:
    base = FrontendConfig()
    assert len(base.hash) == 12 and int(base.hash, 16) >= 0
    changed = {
        "sample_rate": 22050, "window_samples": 400, "hop_samples": 160, "n_fft": 1024,
        "preemphasis": 0.95, "n_mels": 32, "fmin_hz": 20.0, "fmax_hz": 8000.0, "n_mfcc": 20,
        "channels": ("logmel",), "log_floor": -30, "logmel_step_shift": 3,
        "mfcc_step_shift": 2, "c0_step_shift": 1, "noise_reduction": False, "agc_strength": 0.5,
    }  # fmt: skip
    # With a stage on, each of its settings counts too.
    on = dataclasses.replace(base, noise_reduction=True, agc_strength=0.9)
    stages = {
        "noise_rise_ms": 2000,
        "noise_keep": 0.25,
        "noise_bias": 2.0,
        "agc_time_ms": 200,
        "agc_offset": -20.0,
        "agc_floor": -10,
    }
    assert set(changed) | set(stages) == {f.name for f in dataclasses.fields(FrontendConfig)}
    hashes = {dataclasses.replace(base, **{k: v}).hash for k, v in changed.items()}
    hashes |= {dataclasses.replace(on, **{k: v}).hash for k, v in stages.items()} | {on.hash}
    assert len(hashes) == len(changed) + len(stages) + 1 and base.hash not in hashes


def test_stages_that_are_off_leave_the_hash_alone() -> None:
    # Their settings change nothing while both are off, so bundles made before they existed stay valid.
    quiet = FrontendConfig(noise_rise_ms=1000, agc_time_ms=100, agc_offset=-10.0, **PLAIN)
    assert quiet.hash == FrontendConfig(**PLAIN).hash == "f2a44641c768"


def test_a_dict_from_before_the_stages_reads_as_them_off() -> None:
    # A manifest written by 0.1 has no noise or gain-control keys: it meant them off.
    old = {k: v for k, v in FrontendConfig(**PLAIN).to_dict().items() if k not in NORMALISATION_FIELDS}
    assert FrontendConfig.from_dict(old) == FrontendConfig(**PLAIN)
    assert FrontendConfig.from_dict(FrontendConfig().to_dict()) == FrontendConfig()


def test_round_trip_through_dict() -> None:
    cfg = FrontendConfig(channels=("logmel", "zcr"), n_mels=32)
    again = FrontendConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.hash == cfg.hash


def test_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_CONFIG.n_mels = 20  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_fft": 500}, "n_fft must be a power of two"),
        ({"window_samples": 1024}, "window_samples (1024) must not exceed n_fft (512)"),
        ({"hop_samples": 0}, "hop_samples must be positive"),
        ({"n_mels": "40"}, "n_mels must be an integer"),
        ({"fmax_hz": 9000.0}, "fmax_hz <= sample_rate/2"),
        ({"n_mfcc": 50}, "n_mfcc (50) must not exceed n_mels (40)"),
        ({"channels": ("mfcc", "pitch")}, "unknown channel(s) ['pitch']"),
        ({"channels": ("mfcc", "mfcc")}, "channels must not repeat"),
        ({"preemphasis": 1.5}, "preemphasis must be in [0, 1)"),
        ({"log_floor": 3}, "log_floor must be between -40 and 0"),
        ({"noise_keep": 0.0}, "noise_keep must be in (0, 1]"),
        ({"agc_strength": 1.5}, "agc_strength must be between 0 and 1"),
        ({"agc_strength": float("nan")}, "agc_strength must be a finite number"),
        ({"agc_floor": 0}, "agc_floor must be between -40 and -1"),
        ({"noise_reduction": 1}, "noise_reduction must be true or false"),
    ],
)
def test_invalid_values_are_named(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match="invalid front-end config") as err:
        FrontendConfig(**change)
    assert message in str(err.value)


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown front-end config key.*n_mel\b"):
        FrontendConfig.from_dict({"n_mel": 40})


def test_too_many_mels_for_the_fft_is_refused_when_tables_are_built() -> None:
    from ser_edge.frontend.tables import tables_for

    with pytest.raises(ValueError, match="cover no FFT bin"):
        tables_for(FrontendConfig(n_mels=128, n_fft=256, window_samples=256, hop_samples=128))
