"""Simulated rooms and the signal math of putting a clip in one: reverberation, noise at
a given SNR, gain with clipping.

Rooms are shoeboxes from pyroomacoustics' hybrid simulator (image sources up to order 3,
ray tracing for the late tail): it reaches the asked RT60 within ~10 % in about a second,
where pure image sources overshoot by 30 % and take ten times longer at RT60 0.9 s. Each
room has a microphone on a shelf, a talker at a given distance and a noise source
elsewhere in it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve
from tqdm import tqdm

from ser_edge.recognition.level import active_power

from .noise import key_rng

SAMPLE_RATE = 16000
_MARGIN = 0.3  # metres kept from every wall


@dataclass(frozen=True)
class Room:
    """One simulated room: impulse responses from the talker and from the noise source to the microphone."""

    rt60: float
    """Asked reverberation time (s)."""
    measured_rt60: float
    dims: tuple[float, float, float]
    distance: float
    """Talker to microphone (m)."""
    speech_rir: np.ndarray
    noise_rir: np.ndarray


def _inside(p: np.ndarray, dims: np.ndarray) -> bool:
    return bool(np.all(p >= _MARGIN) and np.all(p <= dims - _MARGIN))


def _positions(dims: np.ndarray, distance: float, rng: np.random.Generator):
    """Microphone on a shelf, talker ``distance`` away at head height, noise source
    elsewhere; None when this room cannot hold that distance."""
    for _ in range(200):
        mic = np.array([rng.uniform(_MARGIN, dims[0] - _MARGIN), rng.uniform(_MARGIN, dims[1] - _MARGIN),
                        rng.uniform(0.8, 1.8)])  # fmt: skip
        height = rng.uniform(1.1, 1.8)
        dz = height - mic[2]
        if abs(dz) >= distance:
            continue
        angle = rng.uniform(0, 2 * np.pi)
        flat = np.sqrt(distance**2 - dz**2)
        talker = mic + np.array([flat * np.cos(angle), flat * np.sin(angle), dz])
        noise = np.array([rng.uniform(_MARGIN, d - _MARGIN) for d in dims])
        if _inside(talker, dims) and np.linalg.norm(noise - mic) >= 0.5:
            return mic, talker, noise
    return None


def _simulate(dims: np.ndarray, positions: tuple, sabine_rt60: float, seed: int):
    """(speech RIR, noise RIR, measured RT60) of one shoebox whose walls Sabine's formula
    gives ``sabine_rt60``."""
    import pyroomacoustics as pra

    mic, talker, noise = positions
    pra.random.seed(seed)  # the ray tracer's own generators, NumPy's and C++'s
    with warnings.catch_warnings():  # the simulator warns about its own defaults
        warnings.simplefilter("ignore")
        absorption, _ = pra.inverse_sabine(sabine_rt60, dims)
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=3,
                           ray_tracing=True, air_absorption=True)  # fmt: skip
        room.set_ray_tracing(receiver_radius=0.5, n_rays=5000, energy_thres=1e-5)
        room.add_source(talker)
        room.add_source(noise)
        room.add_microphone(mic)
        room.compute_rir()
        measured = float(room.measure_rt60()[0][0])
    return np.asarray(room.rir[0][0], dtype=np.float64), np.asarray(room.rir[0][1], dtype=np.float64), measured


def simulate_room(rt60: float, distance: float, rng: np.random.Generator) -> Room:
    """A random shoebox (3-8 x 3-6 x 2.4-3.2 m) with the given RT60 and talker distance.

    Sabine's formula is only a first guess in rooms that are far from cubic (a long room
    asked for 0.9 s rang for 1.36 s): the walls are adjusted until the simulated room's
    measured RT60 is within 10 % of the asked one (at most four tries, keeping the closest).
    """
    while True:
        dims = np.array([rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.4, 3.2)])
        placed = _positions(dims, distance, rng)
        if placed is not None:
            break
    seed = int(rng.integers(2**31))
    guess, best = rt60, None
    for _ in range(4):
        try:
            speech, noise, measured = _simulate(dims, placed, guess, seed)
        except ValueError:  # Sabine asks for walls absorbing more than everything
            guess *= 1.2
            continue
        if best is None or abs(measured - rt60) < abs(best[2] - rt60):
            best = (speech, noise, measured)
        if abs(measured - rt60) <= 0.1 * rt60:
            break
        guess *= rt60 / measured
    if best is None:
        raise ValueError(f"cannot simulate RT60 {rt60} s in a {dims.round(1).tolist()} m room")
    speech, noise, measured = best
    return Room(rt60, measured, tuple(float(d) for d in dims), distance, speech, noise)


def room_bank(rt60s: tuple[float, ...], per_rt60: int, distances: tuple[float, float], seed: int,
              cache: Path | None = None) -> dict[float, list[Room]]:  # fmt: skip
    """``per_rt60`` rooms for each RT60, talker distances spread evenly over ``distances``
    (in a seeded order), cached by their parameters in ``cache``."""
    params = {"rt60s": list(rt60s), "per": per_rt60, "distances": list(distances), "seed": seed, "version": 2}
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"rooms-{tag}.npz" if cache else None
    if path and path.is_file():
        return _load_bank(path)
    bank = {}
    for rt60 in rt60s:
        rng = key_rng(seed, "rooms", rt60)
        spread = np.linspace(distances[0], distances[1], per_rt60) if per_rt60 > 1 else np.array([distances[0]])
        bank[rt60] = [simulate_room(rt60, float(d), rng)
                      for d in tqdm(rng.permutation(spread), desc=f"simulating rooms, RT60 {rt60:g} s")]  # fmt: skip
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_bank(path, bank)
    return bank


def training_rooms(n: int, rt60: tuple[float, float], distance: tuple[float, float], seed: int,
                   cache: Path | None = None) -> list[Room]:  # fmt: skip
    """n rooms for augmentation, RT60 and talker distance drawn uniformly from the ranges;
    seeded apart from room_bank's evaluation grid ("training" in every key)."""
    params = {"n": n, "rt60": list(rt60), "distance": list(distance), "seed": seed, "version": 1}
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"training-rooms-{tag}.npz" if cache else None
    if path and path.is_file():
        return _load_rooms(path)
    rng = key_rng(seed, "training rooms")
    rooms = [simulate_room(float(rng.uniform(*rt60)), float(rng.uniform(*distance)), rng)
             for _ in tqdm(range(n), desc="simulating training rooms")]  # fmt: skip
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_bank(path, {0.0: rooms})
    return rooms


def _save_bank(path: Path, bank: dict[float, list[Room]]) -> None:
    arrays, meta = {}, []
    for rooms in bank.values():
        for room in rooms:
            i = len(meta)
            arrays[f"s{i}"], arrays[f"n{i}"] = room.speech_rir, room.noise_rir
            meta.append([room.rt60, room.measured_rt60, *room.dims, room.distance])
    np.savez(path, meta=np.array(meta), **arrays)


def _load_rooms(path: Path) -> list[Room]:
    data = np.load(path)
    return [Room(float(rt60), float(measured), (float(x), float(y), float(z)), float(distance),
                 data[f"s{i}"], data[f"n{i}"])
            for i, (rt60, measured, x, y, z, distance) in enumerate(data["meta"])]  # fmt: skip


def _load_bank(path: Path) -> dict[float, list[Room]]:
    bank: dict[float, list[Room]] = {}
    for room in _load_rooms(path):
        bank.setdefault(room.rt60, []).append(room)
    return bank


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """x heard through the room, with its reverberant tail (length x + rir - 1)."""
    return fftconvolve(x, rir)


def scale_to(x: np.ndarray, power: float) -> np.ndarray:
    """x scaled so that its active power is ``power``."""
    own = active_power(x)
    return x * np.sqrt(power / own) if own > 0 else x


def with_gain(x: np.ndarray, db: float) -> np.ndarray:
    """x times a gain in dB (float, full scale 1.0; clipping happens when it becomes int16)."""
    return x * 10 ** (db / 20)


def noise_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """noise scaled so that the speech's active power is ``snr_db`` above the noise's mean power."""
    noise_power = float(np.mean(noise**2))
    if noise_power == 0:
        return noise
    return noise * np.sqrt(active_power(speech) / noise_power * 10 ** (-snr_db / 10))
