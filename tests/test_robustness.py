"""The robustness harness's parts: the noise split, seeded rooms and mixtures, the device
path it scores through, and the device report's figures."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.settings import GateSettings
from ser_training import robustness as rb
from ser_training.acoustics import active_power, room_bank
from ser_training.metrics import device_report, expected_calibration_error
from ser_training.noise import NoisePool, key_rng, noise_split, synth_noise

from .conftest import REPO, SAMPLES

SHIPPED = REPO / "deploy" / "models" / "ser-tiny"


def test_noise_split_holds_out_whole_files_of_every_kind(datasets: Path) -> None:
    split = noise_split(datasets / "noise")
    assert set(split.train).isdisjoint(split.test)
    everything = {p for p in (datasets / "noise").rglob("*.flac")}
    assert set(split.train) | set(split.test) == everything
    household = {p.name for p in split.test if p.parent.name == "household"}
    assert household == {"aircon_2.flac", "dishwasher_2.flac", "street_1.flac", "vacuuming_2.flac"}
    kinds = {p.name.split("_")[0] for p in split.test if p.parent.name != "household"}
    assert len(kinds) >= 5  # every place of the phone recordings is represented in evaluation
    assert noise_split(datasets / "noise") == split  # a rule, not a draw


def test_the_harness_hears_only_held_out_recordings(datasets: Path, tmp_path: Path) -> None:
    split = noise_split(datasets / "noise")
    pool = NoisePool(split.test[:3], ())
    names = {pool.segment(1600, key_rng("t", i))[1] for i in range(40)}
    assert names <= {p.name for p in split.test} and names.isdisjoint({p.name for p in split.train})


def test_synthetic_noise_is_seeded_unit_rms_and_coloured() -> None:
    a, b = synth_noise("pink", 16000, key_rng(1)), synth_noise("pink", 16000, key_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, synth_noise("pink", 16000, key_rng(2)))
    for kind in ("white", "pink", "brown", "fan"):
        x = synth_noise(kind, 32000, key_rng(kind))
        assert abs(np.sqrt(np.mean(x**2)) - 1) < 1e-6
    spectrum = {k: np.abs(np.fft.rfft(synth_noise(k, 32000, key_rng(0)))) ** 2 for k in ("white", "pink", "brown")}
    low_share = {k: s[:200].sum() / s.sum() for k, s in spectrum.items()}  # below 100 Hz
    assert low_share["white"] < low_share["pink"] < low_share["brown"]


@pytest.fixture(scope="module")
def rooms(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return room_bank((0.3, 0.9), 2, (1.0, 4.0), seed=7, cache=tmp_path_factory.mktemp("rooms"))


def test_rooms_are_seeded_cached_and_have_their_reverberation(rooms: dict, tmp_path: Path) -> None:
    again = room_bank((0.3, 0.9), 2, (1.0, 4.0), seed=7, cache=None)  # computed afresh, not read back
    for rt60 in (0.3, 0.9):
        for a, b in zip(rooms[rt60], again[rt60], strict=True):
            assert np.array_equal(a.speech_rir, b.speech_rir) and a.dims == b.dims
        assert sorted(r.distance for r in rooms[rt60]) == [1.0, 4.0]
        for room in rooms[rt60]:
            assert abs(room.measured_rt60 - rt60) / rt60 <= 0.15, (rt60, room.measured_rt60)
    other = room_bank((0.3,), 2, (1.0, 4.0), seed=8, cache=None)
    assert not np.array_equal(other[0.3][0].speech_rir[:2000], rooms[0.3][0].speech_rir[:2000])


def test_a_clip_in_a_room_keeps_its_level_and_gets_the_asked_snr(rooms: dict) -> None:
    pcm = read_audio(SAMPLES[0])
    room = rooms[0.3][0]
    n = 16000 + pcm.size + room.speech_rir.size + 8000
    noise = synth_noise("pink", n, key_rng(3))
    mix = rb.in_room(pcm, room, noise, snr_db=10.0, lead_s=1.0).astype(np.float64) / 32768
    quiet = rb.in_room(pcm, room, np.zeros(n), snr_db=10.0, lead_s=1.0).astype(np.float64) / 32768
    clean = pcm.astype(np.float64) / 32768
    assert abs(10 * np.log10(active_power(quiet) / active_power(clean))) < 0.2
    snr = 10 * np.log10(active_power(quiet) / np.mean((mix - quiet) ** 2))
    assert abs(snr - 10.0) < 0.3
    assert np.abs(mix[:16000]).max() > 0 and np.abs(quiet[:16000]).max() == 0  # noise before the talker


def _worker(protocol: rb.Protocol, rooms: dict, noise: tuple[Path, ...]) -> None:
    rb._init_worker([SHIPPED], protocol, rooms, noise, GateSettings())


def test_clean_and_0_db_score_exactly_what_classify_prints(rooms: dict, datasets: Path) -> None:
    protocol = replace(rb.Protocol(), gains_db=(-10.0, 0.0), rt60_s=(0.3,), snr_db=(10.0,))
    _worker(protocol, rooms, noise_split(datasets / "noise").test[:2])
    r = subprocess.run([sys.executable, "-m", "ser_edge", "classify", "--json", "--bundle", str(SHIPPED),
                        *map(str, SAMPLES)], capture_output=True, text=True, check=True)  # fmt: skip
    printed = json.loads(r.stdout)["results"]
    names = [c.name for c in rb.conditions(protocol)]
    for path in SAMPLES:
        rows = {names[ci]: s for ci, _, s in rb.score_job(rb.Job(path, "angry", (0,), grid=True))}
        expected = [p for p in printed if p["file"] == str(path)]
        assert len(rows["clean"]) == len(expected) >= 1
        for got, want in zip(rows["clean"], expected, strict=True):
            assert np.allclose(got, list(want["scores"].values()), atol=5e-5)
        assert np.array_equal(rows["clean"], rows["gain +0 dB"])
        assert not np.array_equal(rows["clean"], rows["RT60 0.3 s, SNR 10 dB"])


def test_the_grid_is_seeded(rooms: dict, datasets: Path) -> None:
    protocol = replace(rb.Protocol(), gains_db=(0.0,), rt60_s=(0.3, 0.9), snr_db=(5.0,))
    _worker(protocol, rooms, noise_split(datasets / "noise").test)
    job = rb.Job(SAMPLES[3], "angry", (0,), grid=True)
    first = [rb.render(job, read_audio(job.path), c)[0] for c in rb.conditions(protocol)]
    second = [rb.render(job, read_audio(job.path), c)[0] for c in rb.conditions(protocol)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    _worker(replace(protocol, seed=protocol.seed + 1), rooms, noise_split(datasets / "noise").test)
    moved = rb.render(job, read_audio(job.path), rb.conditions(protocol)[-1])[0]
    assert not np.array_equal(moved, first[-1])


def test_gain_clips_where_it_clips(rooms: dict, datasets: Path) -> None:
    protocol = replace(rb.Protocol(), gains_db=(30.0,), rt60_s=(0.3,), snr_db=(5.0,))
    _worker(protocol, rooms, ())
    job = rb.Job(SAMPLES[4], "angry", (0,), grid=True)
    loud = rb.render(job, read_audio(job.path), rb.conditions(protocol)[1])[0]
    assert loud.dtype == np.int16 and (np.abs(loud.astype(int)) >= 32767).sum() > 100


def test_device_report_counts_missed_clips_split_utterances_and_shares() -> None:
    eye = np.eye(8)
    # neutral right; calm answered angry; angry clip cut in two, both angry; an angry clip missed.
    r = device_report(np.array([0, 1, 4, 4]), [eye[[0]], eye[[4]], eye[[4, 4]], np.zeros((0, 8))])
    assert (r["clips"], r["utterances"], r["missed"]) == (4, 4, 1)
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["uar"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert r["shares"]["angry"] == pytest.approx(3 / 4) and r["max_share"]["class"] == "angry"
    assert r["confusion"][4][-1] == 1 and r["confusion_columns"][-1] == "missed"
    # Restricted to four classes: calm's score cannot win, the renormalised confidence is used.
    scores = np.full((1, 8), 0.02)
    scores[0, 1], scores[0, 3] = 0.8, 0.06
    four = device_report(np.array([3]), [scores], classes=[4, 2, 0, 3])
    assert four["accuracy"] == 1.0 and four["ece"] == pytest.approx(1 - 0.06 / 0.12)


def test_expected_calibration_error() -> None:
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, True, True, False])
    assert expected_calibration_error(conf, correct) == pytest.approx((2 * 0.05 + 2 * 0.05) / 4)
    assert expected_calibration_error(np.array([0.9] * 10), np.array([True] * 9 + [False])) == pytest.approx(0)
