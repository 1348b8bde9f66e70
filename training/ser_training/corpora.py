"""Corpus loaders: folders of audio in, one manifest of labelled clips out.

Each loader knows one corpus's layout and naming; files it cannot use are reported as
problems (with the reason) instead of stopping the run.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

_RAVDESS_EMOTION = dict(zip(("01", "02", "03", "04", "05", "06", "07", "08"), EMOTIONS, strict=True))
_TESS_EMOTION = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "ps": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
}
_CREMA_EMOTION = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff")


@dataclass(frozen=True)
class Clip:
    """One labelled utterance."""

    path: Path
    label: str
    """One of EMOTIONS."""
    speaker: str
    """Corpus-qualified speaker id, e.g. "ravdess/07"; unique across corpora."""
    corpus: str
    gender: str | None = None
    """"male", "female" or None where unknown."""
    intensity: str | None = None
    statement: str | None = None


@dataclass
class Manifest:
    clips: list[Clip] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per file that was left out, naming the file and why."""

    def extend(self, other: Manifest) -> None:
        self.clips += other.clips
        self.problems += other.problems


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _require_dir(root: Path, corpus: str) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus}: dataset folder {root} does not exist")


def load_ravdess(root: Path) -> Manifest:
    """RAVDESS speech: MM-VC-EE-II-SS-RR-AA codes (emotion, intensity, statement, actor)."""
    _require_dir(root, "ravdess")
    out = Manifest()
    for path in _audio_files(root):
        codes = path.stem.split("-")
        if len(codes) != 7 or not all(c.isdigit() and len(c) == 2 for c in codes):
            out.problems.append(f"{path}: not a RAVDESS name (MM-VC-EE-II-SS-RR-AA)")
            continue
        _, channel, emotion, intensity, statement, _, actor = codes
        if channel != "01":
            out.problems.append(f"{path}: vocal channel {channel} is song, not speech")
        elif emotion not in _RAVDESS_EMOTION or intensity not in ("01", "02") or not 1 <= int(actor) <= 24:
            out.problems.append(f"{path}: emotion/intensity/actor code out of range")
        else:
            out.clips.append(
                Clip(
                    path=path,
                    label=_RAVDESS_EMOTION[emotion],
                    speaker=f"ravdess/{actor}",
                    corpus="ravdess",
                    gender="male" if int(actor) % 2 else "female",
                    intensity="strong" if intensity == "02" else "normal",
                    statement="dogs" if statement == "02" else "kids",
                )
            )
    return out


def _tess_emotion(text: str) -> str | None:
    return _TESS_EMOTION.get(text.lower())


def load_tess(root: Path) -> Manifest:
    """TESS: <SPEAKER>_<emotion>/ folders of <SPEAKER>_<word>_<emotion> files; 2 women."""
    _require_dir(root, "tess")
    out = Manifest()
    for path in _audio_files(root):
        folder_speaker, _, folder_emotion = path.parent.name.partition("_")
        parts = path.stem.split("_")
        label = _tess_emotion(folder_emotion)
        if label is None:
            out.problems.append(f"{path}: folder {path.parent.name} names no known emotion")
        elif len(parts) < 3 or _tess_emotion("_".join(parts[2:])) != label:
            out.problems.append(f"{path}: file name disagrees with its folder's emotion ({label})")
        elif parts[0].upper() != folder_speaker.upper():
            out.problems.append(f"{path}: file name disagrees with its folder's speaker")
        else:
            speaker = folder_speaker.upper()
            out.clips.append(Clip(path, label, f"tess/{speaker}", "tess", gender="female"))
    return out


def _crema_demographics(meta: Path) -> dict[str, str]:
    table = meta / "VideoDemographics.csv"
    if not table.is_file():
        raise FileNotFoundError(f"crema-d: {table} is missing (actor demographics)")
    with table.open(newline="") as f:
        return {row["ActorID"]: row["Sex"].lower() for row in csv.DictReader(f)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_crema(root: Path, meta: Path | None = None, verify: bool = False) -> Manifest:
    """CREMA-D: AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav, 6 emotions, 91 actors.

    ``meta`` holds VideoDemographics.csv (and, for ``verify``, AudioWAV_lfs_sha256.tsv);
    it defaults to the corpus root, as in the release.
    """
    _require_dir(root, "crema-d")
    meta = meta or root
    genders = _crema_demographics(meta)
    expected: dict[str, str] = {}
    if verify:
        sums = meta / "AudioWAV_lfs_sha256.tsv"
        if not sums.is_file():
            raise FileNotFoundError(f"crema-d: {sums} is missing, cannot verify")
        with sums.open(newline="") as f:
            expected = {Path(r["path"]).name: r["sha256"] for r in csv.DictReader(f, delimiter="\t")}
    audio = root / "AudioWAV"
    _require_dir(audio, "crema-d")
    out = Manifest()
    for path in _audio_files(audio):
        parts = path.stem.split("_")
        if len(parts) != 4 or parts[2] not in _CREMA_EMOTION or parts[0] not in genders:
            out.problems.append(f"{path}: not a CREMA-D name with a known actor and emotion")
        elif verify and expected.get(path.name) != _sha256(path):
            why = "not in the checksum list" if path.name not in expected else "SHA-256 differs"
            out.problems.append(f"{path}: {why}")
        else:
            actor, sentence, emotion, level = parts
            out.clips.append(
                Clip(
                    path,
                    _CREMA_EMOTION[emotion],
                    f"crema/{actor}",
                    "crema",
                    gender=genders[actor],
                    intensity=level,
                    statement=sentence,
                )
            )
    return out


def load_folder(root: Path) -> Manifest:
    """A user's own recordings: <label>/<file>, label one of EMOTIONS; one speaker per root."""
    _require_dir(root, "folder")
    out = Manifest()
    for path in _audio_files(root):
        label = path.relative_to(root).parts[0].lower()
        if label not in EMOTIONS:
            out.problems.append(f"{path}: folder {label!r} is not one of {', '.join(EMOTIONS)}")
        else:
            out.clips.append(Clip(path, label, f"folder/{root.name}", "folder"))
    return out


def check_audio(manifest: Manifest) -> Manifest:
    """Drop unreadable, empty and duplicate files (same bytes), reporting each."""
    out = Manifest(problems=list(manifest.problems))
    seen: dict[str, Path] = {}
    for clip in manifest.clips:
        try:
            frames = sf.info(str(clip.path)).frames
        except (sf.LibsndfileError, RuntimeError) as e:
            out.problems.append(f"{clip.path}: unreadable audio ({e})")
            continue
        if frames == 0:
            out.problems.append(f"{clip.path}: empty (0 samples)")
            continue
        digest = _sha256(clip.path)
        if digest in seen:
            out.problems.append(f"{clip.path}: duplicate of {seen[digest]}")
            continue
        seen[digest] = clip.path
        out.clips.append(clip)
    return out


def counts(clips: Iterable[Clip], key: str) -> dict[str, int]:
    result: dict[str, int] = {}
    for clip in clips:
        value = str(getattr(clip, key))
        result[value] = result.get(value, 0) + 1
    return dict(sorted(result.items()))


#: The terms each corpus's recordings come with; a model trained on them inherits these.
LICENCES = {
    "ravdess": "RAVDESS: CC BY-NC-SA 4.0 (Livingstone & Russo 2018)",
    "tess": "TESS: CC BY-NC-ND 4.0 (Dupuis & Pichora-Fuller 2010)",
    "crema": "CREMA-D: Open Database License, contents under the Database Contents License (Cao et al. 2014)",
    "folder": "your own recordings: your terms and your speakers' consent",
}


def licence_terms(corpora: Iterable[str]) -> str:
    """One sentence naming the terms a model trained on these corpora carries."""
    terms = [LICENCES.get(c, f"{c}: terms unknown") for c in sorted(set(corpora))]
    restricted = any(c in ("ravdess", "tess") for c in corpora)
    note = " The weights carry these non-commercial terms." if restricted else ""
    return "Trained on " + "; ".join(terms) + "." + note
