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
from ser_training.corpora import EMOTIONS
from ser_training.metrics import device_report, expected_calibration_error, format_reliability, reliability
from ser_training.noise import NoisePool, key_rng, noise_split, synth_noise
from ser_training.report import affect_table

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


def test_reliability_says_what_a_threshold_publishes_and_how_often_it_is_right() -> None:
    """Issue 29: at threshold t, the share of utterances published and of events right."""

    def rows(label: int, top: float, right: bool) -> np.ndarray:
        r = np.full((1, 8), (1 - top) / 7)
        r[0, label if right else (label + 1) % 8] = top
        return r

    # 10 clips: tops 0.95 x4 (3 right), 0.55 x4 (2 right), 0.25 x1 (wrong), one missed by the gate,
    # one clip cut in two utterances (0.95 right, 0.25 right)
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2])
    found = [rows(0, 0.95, True), rows(1, 0.95, True), rows(2, 0.95, True), rows(3, 0.95, False),
             rows(4, 0.55, True), rows(5, 0.55, True), rows(6, 0.55, False), rows(7, 0.55, False),
             rows(0, 0.25, False), np.zeros((0, 8)), np.vstack([rows(2, 0.95, True), rows(2, 0.25, True)])]  # fmt: skip
    r = reliability(labels, found, thresholds=(0.0, 0.3, 0.55, 0.9, 0.99), bins=4)
    assert (r["clips"], r["utterances"], r["missed"]) == (11, 11, 1)
    by_t = {row["threshold"]: (row["events"], row["published"], row["right"]) for row in r["thresholds"]}
    assert by_t[0.0] == (11, 1.0, pytest.approx(7 / 11))
    assert by_t[0.3] == (9, pytest.approx(9 / 11), pytest.approx(6 / 9))  # the two 0.25s are uncertain
    assert by_t[0.55] == by_t[0.3]  # a top score equal to the threshold is published, as the daemon does
    assert by_t[0.9] == (5, pytest.approx(5 / 11), pytest.approx(4 / 5))
    assert by_t[0.99] == (0, 0.0, None)  # nothing published: no share of right events to give
    bins = [(b["utterances"], b["accuracy"]) for b in r["bins"]]
    assert bins == [(0, None), (2, 0.5), (4, 0.5), (5, pytest.approx(4 / 5))]
    assert r["bins"][3]["confidence"] == pytest.approx(0.95)
    table = format_reliability(r)
    assert "| 0.3 (default) | 66.7 % | 81.8 % | 9 of 11 |" in table and "| 0.99 | n/a | 0.0 % | 0 of 11 |" in table


def test_the_report_shows_what_the_threshold_buys(tmp_path: Path) -> None:
    from ser_training.report import Page, threshold_section

    eye = np.eye(8) * 0.6 + 0.05
    r = reliability(np.array([0, 1, 2]), [eye[[0]], eye[[2]], eye[[2]]])
    bundle, out, empty = tmp_path / "b", tmp_path / "out", tmp_path / "e"
    for d in (bundle, out, empty):
        d.mkdir()
    (bundle / "robustness.json").write_text(json.dumps({"reliability": {"clean": r, "emodb": r}}))
    body = threshold_section(Page(out), bundle)
    assert "<td>0.3 (default)</td><td>66.7 %</td><td>100.0 %</td><td>3 of 3</td>" in body
    assert "emodb, a corpus never trained on" in body and "uncertain" in body
    assert (out / "reliability.png").stat().st_size > 10_000
    assert "Not recorded" in threshold_section(Page(out), empty)
    (empty / "manifest.json").write_text('{"version": "0.3.0"}')  # measured for another version: not shown
    (empty / "reliability.json").write_text(json.dumps(r | {"version": "0.2.0", "source": "one-off"}))
    assert "Not recorded" in threshold_section(Page(out), empty)
    (empty / "manifest.json").write_text('{"version": "0.2.0"}')
    assert "Source: one-off" in threshold_section(Page(out), empty)


def test_the_threshold_table_in_the_docs_is_the_shipped_bundles() -> None:
    """edge/docs/daemon.md and the README print the threshold table of ser-base's robustness.json (issue 29)."""
    import re

    from ser_training.report import reliability_tables

    tables, source = reliability_tables(REPO / "deploy" / "models" / "ser-base")
    clean = tables["clean"]
    assert "fold models" in source and clean["missed"] == 0
    for doc in (REPO / "edge" / "docs" / "daemon.md", REPO / "README.md"):
        rows = re.findall(r"^\| ([0-9.]+)[^|]* \| ([0-9.]+) % \| ([0-9.]+) % \|", doc.read_text(), re.M)
        assert len(rows) >= 4, doc
        measured = {row["threshold"]: row for row in clean["thresholds"]}
        for t, right, published in rows:
            row = measured[float(t)]
            assert abs(float(right) - 100 * row["right"]) < 0.05, (doc, t, right)
            assert abs(float(published) - 100 * row["published"]) < 0.05, (doc, t, published)


def test_the_tables_say_how_well_published_arousal_and_valence_follow_the_truth() -> None:
    protocol = rb.load_protocol()
    conds = rb.conditions(protocol)
    eye = np.eye(8)
    labels = ["angry", "sad", "happy", "calm"]
    jobs = [rb.Job(Path(f"{e}.wav"), e, (0,), grid=True, intensity="strong") for e in labels]
    jobs.append(rb.Job(Path("x.wav"), "fearful", (0,), grid=True, intensity="normal"))  # never heard
    jobs += [rb.Job(Path(f"e{e}.wav"), e, (0,), grid=False, corpus="emodb") for e in ("angry", "sad", "happy")]

    def rows(job: rb.Job, ci: int) -> np.ndarray:
        if job.label == "fearful":
            return np.zeros((0, 8))
        if ci == 0:  # clean: certain and right, split in two utterances for angry
            return eye[[EMOTIONS.index(job.label)] * (2 if job.label == "angry" else 1)]
        return np.full((1, 8), 1 / 8)  # elsewhere: torn between all classes

    results = [[(ci, 0, rows(j, ci)) for ci in range(len(conds) if j.grid else 1)] for j in jobs]
    t = rb.tables(jobs, results, protocol)
    clean = t["affect"]["clean"]
    assert clean["unheard"] == 1 and clean["arousal"]["n"] == 4
    assert clean["arousal"]["ccc"] == pytest.approx(1.0) and clean["valence"]["ccc"] == pytest.approx(1.0)
    # A model torn between every class publishes one point for every clip: no concordance.
    assert t["affect"][conds[1].name]["arousal"]["ccc"] == pytest.approx(0.0)
    assert t["summary"]["emodb_arousal_ccc"] == pytest.approx(1.0)
    assert t["summary"]["clean_valence_ccc"] == pytest.approx(1.0)
    assert "arousal 1.00 (1.00), valence 1.00 (1.00); 1 clips unheard" in rb.format_tables(t)
    assert rb.compact(t | {"models": []})["affect"] == t["affect"]
    page = affect_table(t["affect"])
    assert "<td>clean</td><td>4</td><td>1</td><td>1.00 (1.00)</td><td>1.00 (1.00)</td>" in page
    assert affect_table({}) == ""  # tables measured before arousal and valence were
