"""Augmented renderings feed training windows only; evaluation sees originals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_training.augment import AugmentConfig, render
from ser_training.corpora import Clip
from ser_training.dataset import FeatureBank, evaluation_windows, training_windows

from .conftest import SAMPLES

PAD = np.zeros(13, np.int8)


def _bank(clips: list[Clip]) -> FeatureBank:
    originals = {c.path: np.zeros((200, 13), np.int8) for c in clips}  # originals are all 0
    renderings = {c.path: [np.full((200, 13), 7, np.int8)] * 3 for c in clips}  # renderings all 7
    return FeatureBank(originals, renderings)


def test_evaluation_windows_never_contain_renderings() -> None:
    clips = [Clip(Path(f"{i}.wav"), "sad", f"ravdess/{i}", "ravdess") for i in range(5)]
    windows, owners = evaluation_windows(clips, _bank(clips), 149, 50, PAD)
    assert (windows == 0).all() and sorted(set(owners)) == list(range(5))


def test_training_windows_draw_renderings_and_originals() -> None:
    clips = [Clip(Path(f"{i}.wav"), "sad", f"ravdess/{i}", "ravdess") for i in range(400)]
    rng = np.random.default_rng(0)
    windows = training_windows(clips, _bank(clips), 149, PAD, rng, p_original=0.25)
    from_original = (windows == 0).all(axis=(1, 2))
    assert 0.15 < from_original.mean() < 0.35 and ((windows == 7).all(axis=(1, 2)) | from_original).all()


def test_renderings_are_seeded_and_differ_from_the_original() -> None:
    from ser_edge.audio.audio_io import read_audio

    pcm = read_audio(SAMPLES[0])
    cfg = AugmentConfig(renderings=2, p=1.0)
    first, again = render(pcm, "x", cfg), render(pcm, "x", cfg)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])
    assert all(r.dtype == np.int16 and abs(r.size - pcm.size) < 0.3 * pcm.size for r in first)
    other = render(pcm, "y", cfg)
    assert not np.array_equal(first[0], other[0])


def test_rooms_and_noise_come_from_the_training_side_only(datasets: Path) -> None:
    from ser_edge.audio.audio_io import read_audio
    from ser_training.augment import surroundings
    from ser_training.noise import noise_split

    cfg = AugmentConfig(renderings=2, p=1.0, rooms=1.0, room_bank=2, noise=1.0, noise_snr_db=(5.0, 5.0))
    where = surroundings(cfg, datasets / "noise", cache=None)
    split = noise_split(datasets / "noise")
    assert set(where.noise_files) == set(split.train) and set(where.noise_files).isdisjoint(split.test)
    assert len(where.rooms) == 2 and all(0.1 <= r.rt60 <= 1.0 and 0.5 <= r.distance <= 4.0 for r in where.rooms)
    pcm = read_audio(SAMPLES[0])
    first, again = render(pcm, "x", cfg, where=where), render(pcm, "x", cfg, where=where)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    dry = render(pcm, "x", cfg)  # the same draws without rooms and noise
    assert all(w.size > d.size for w, d in zip(first, dry, strict=True))  # each has a reverberant tail
    # At 5 dB SNR the noise is plainly there: the quietest 20 ms of the rendering is far louder than the clip's.
    quiet = min(np.mean(first[0][i : i + 320].astype(float) ** 2) for i in range(0, first[0].size - 320, 320))
    clean = min(np.mean(pcm[i : i + 320].astype(float) ** 2) for i in range(0, pcm.size - 320, 320))
    assert quiet > 100 * clean


def test_another_channel_band_limits_and_keeps_the_level() -> None:
    from ser_edge.audio.audio_io import read_audio
    from ser_training.augment import Surroundings, another_channel

    rng = np.random.default_rng(0)
    white = rng.normal(0, 1, 64000)
    f = np.fft.rfftfreq(white.size, 1 / 16000)
    for seed in range(5):
        y = another_channel(white, np.random.default_rng(seed))
        gain = np.abs(np.fft.rfft(y)) ** 2 / np.abs(np.fft.rfft(white)) ** 2
        mid = gain[(f > 900) & (f < 1100)].mean()
        assert gain[f < 40].mean() < mid / 4 and gain[f > 7900].mean() < mid / 4  # both edges cut
    pcm = read_audio(SAMPLES[2])
    cfg = AugmentConfig(renderings=1, p=0.0, channel=1.0)
    assert np.array_equal(render(pcm, "x", cfg)[0], render(pcm, "x", AugmentConfig(renderings=1, p=0.0))[0])
    (phone,) = render(pcm, "x", cfg, where=Surroundings((), ()))  # no rooms, no noise: only the channel
    assert not np.array_equal(phone, pcm)
    level = lambda x: np.mean(x.astype(float) ** 2)  # noqa: E731
    assert 0.5 < level(phone) / level(pcm) < 2.0


def test_gated_featurising_sees_the_utterance_the_device_would(tmp_path: Path) -> None:
    import soundfile as sf

    from ser_edge.audio.audio_io import read_audio
    from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig, compute_features
    from ser_edge.pipeline import utterances_in
    from ser_edge.settings import GateSettings
    from ser_training.dataset import featurise, training_gate

    pcm = read_audio(SAMPLES[1])
    path = tmp_path / "clip.wav"
    sf.write(path, np.concatenate([np.zeros(16000, np.int16), pcm]), 16000, subtype="PCM_16")  # a second of zeros first
    fe = FrontendConfig(agc_strength=1.0, log_floor=-40)  # a front end with memory: where it starts matters
    clip = Clip(path, "calm", "x/1", "x")
    energy = GateSettings(kind="energy")
    gated = featurise([clip], fe, None, workers=1, gate=energy).originals[path]
    whole = featurise([clip], fe, None, workers=1).originals[path]
    (u,) = utterances_in(read_audio(path), energy)
    assert np.array_equal(gated, compute_features(u.pcm, cfg=fe))
    assert gated.shape[0] < whole.shape[0] - 50  # the leading zeros and the tail are not in it
    # The speech gate: the rows the daemon scores, the span's rows of its stretch's front end.
    speech = training_gate("speech", DEFAULT_CONFIG)
    by_speech = featurise([clip], DEFAULT_CONFIG, None, workers=1, gate=speech).originals[path]
    (s,) = utterances_in(read_audio(path), speech)
    assert s.rows is not None and np.array_equal(by_speech, s.rows)
    with pytest.raises(ValueError, match="needs the speech gate's front end"):
        training_gate("speech", FrontendConfig(agc_strength=0.0))
    # Cached features were cut by one gate: another gate's settings must not reuse them.
    featurise([clip], fe, None, tmp_path / "cache", workers=1, gate=energy)
    strict = GateSettings(kind="energy", start_db=30.0, stop_db=20.0)
    strict = featurise([clip], fe, None, tmp_path / "cache", workers=1, gate=strict).originals[path]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2 and strict.shape[0] < gated.shape[0]
