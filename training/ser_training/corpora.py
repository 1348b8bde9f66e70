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
_EMODB_EMOTION = {"W": "angry", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
_EMODB_MALE = {"03", "10", "11", "12", "15"}
_ASED_EMOTION = {"n": "neutral", "f": "fearful", "h": "happy", "s": "sad", "a": "angry"}
_TUREV_EMOTION = {"kz": "angry", "sk": "calm", "mt": "happy", "hl": "sad"}
_EMOSPEECH_EMOTION = {"calm": "calm", "fearful": "fearful", "angry": "angry", "happy": "happy"}
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


def file_sha256(path: Path) -> str:
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
        elif verify and expected.get(path.name) != file_sha256(path):
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


def load_emodb(root: Path) -> Manifest:
    """EmoDB: wav/SSTTTEV files (speaker, text, emotion letter, version); 10 German actors.
    Boredom (L) has no counterpart among the eight labels and is left out."""
    _require_dir(root, "emodb")
    out = Manifest()
    for path in _audio_files(root):
        name = path.stem
        if len(name) != 7 or not name[:2].isdigit():
            out.problems.append(f"{path}: not an EmoDB name (SSTTTEV)")
        elif name[5] == "L":
            out.problems.append(f"{path}: boredom (L) has no counterpart among the eight emotions")
        elif name[5] not in _EMODB_EMOTION:
            out.problems.append(f"{path}: unknown EmoDB emotion letter {name[5]!r}")
        else:
            speaker = name[:2]
            gender = "male" if speaker in _EMODB_MALE else "female"
            out.clips.append(Clip(path, _EMODB_EMOTION[name[5]], f"emodb/{speaker}", "emodb", gender=gender,
                                  statement=name[2:5]))  # fmt: skip
    return out


def load_ased(root: Path) -> Manifest:
    """ASED v1 (Amharic): <emotion letter><folder>-<sentence>-<repetition>-<gender>-<speaker>;
    the speaker is the last field alone (some speaker ids carry both gender codes)."""
    _require_dir(root, "ased")
    out = Manifest()
    for path in _audio_files(root):
        parts = path.stem.split("-")
        emotion = _ASED_EMOTION.get(parts[0][:1].lower()) if parts and parts[0] else None
        if len(parts) != 5 or emotion is None or not all(p.isdigit() for p in parts[1:]):
            out.problems.append(f"{path}: not an ASED name (xn-yy-aa-gg-bb)")
            continue
        gender = {"01": "female", "02": "male"}.get(parts[3])
        out.clips.append(Clip(path, emotion, f"ased/{parts[4]}", "ased", gender=gender, statement=parts[1]))
    return out


def load_turev(root: Path) -> Manifest:
    """TurEV-DB (Turkish single words): <speaker>_<code>_<word>, kz angry, sk calm, mt happy, hl sad."""
    _require_dir(root, "turev")
    out = Manifest()
    for path in _audio_files(root):
        parts = path.stem.split("_")
        if len(parts) < 3 or parts[1] not in _TUREV_EMOTION:
            out.problems.append(f"{path}: not a TurEV-DB name (<speaker>_<kz|sk|mt|hl>_<word>)")
            continue
        out.clips.append(Clip(path, _TUREV_EMOTION[parts[1]], f"turev/{parts[0]}", "turev", statement=parts[2]))
    return out


def load_emospeech(root: Path) -> Manifest:
    """Indian EmoSpeech Command v0.1: keyword-environment-emotion-timestamp-userhash, phone
    recordings in real places; self-reported emotions calm, fearful, angry, happy. Background
    clips (no keyword, no emotion) are not speech and are left out."""
    _require_dir(root, "emospeech")
    out = Manifest()
    for path in _audio_files(root):
        parts = path.stem.split("-")
        if len(parts) < 5:
            out.problems.append(f"{path}: not an EmoSpeech name (keyword-environment-emotion-time-user)")
        elif parts[0] == "background" or parts[2].lower() not in _EMOSPEECH_EMOTION:
            continue  # ambient recordings and clips without an emotion: not labelled speech
        else:
            label = _EMOSPEECH_EMOTION[parts[2].lower()]
            out.clips.append(Clip(path, label, f"emospeech/{parts[-1][:12]}", "emospeech", statement=parts[0]))
    return out


def baved_speakers(root: Path) -> dict[str, list[Path]]:
    """BAVED (Arabic single words, 60 speaker ids): files by speaker. Its labels are
    arousal levels, not emotions, so it is speech for the speech gate only. Names are
    spk-gender-age-word-level-record; ids 46 and 53 are one person."""
    _require_dir(root, "baved")
    out: dict[str, list[Path]] = {}
    for path in _audio_files(root):
        speaker = path.stem.split("-")[0]
        if speaker.isdigit():
            out.setdefault("46" if speaker == "53" else speaker, []).append(path)
    return out


BAVED_AROUSAL = {"0": -0.5, "1": 0.0, "2": 0.5}
"""BAVED's levels (low, neutral, high) on the arousal axis: their order is the corpus's,
the spacing this project's choice (affect_eval.py reports Pearson's r beside CCC)."""


def baved_arousal(root: Path) -> list[tuple[Path, str, float]]:
    """BAVED's words with their speaker ("baved/<id>") and arousal (BAVED_AROUSAL)."""
    out = []
    for speaker, files in sorted(baved_speakers(root).items(), key=lambda kv: int(kv[0])):
        for path in files:
            level = path.stem.split("-")[4] if path.stem.count("-") >= 5 else None
            if level in BAVED_AROUSAL:
                out.append((path, f"baved/{speaker}", BAVED_AROUSAL[level]))
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
        digest = file_sha256(clip.path)
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
    "emodb": "EmoDB: free for research from TU Berlin, not to be redistributed (Burkhardt et al. 2005)",
    "ased": "ASED v1: no licence stated, freely available for research (Retta et al. 2022)",
    "turev": "TurEV-DB: CC BY-NC-ND 4.0 (Canpolat et al. 2020)",
    "emospeech": "Indian EmoSpeech Command v0.1: CC BY-NC-SA 4.0 (Banga et al. 2019)",
    "baved": "BAVED: no licence stated, public on GitHub (40uf411/Basic-Arabic-Vocal-Emotions-Dataset)",
    "folder": "your own recordings: your terms and your speakers' consent",
}


def licence_terms(corpora: Iterable[str]) -> str:
    """One sentence naming the terms a model trained on these corpora carries."""
    corpora = sorted(set(corpora))
    terms = [LICENCES.get(c, f"{c}: terms unknown") for c in corpora]
    restricted = any(c in ("ravdess", "tess", "turev", "emospeech") for c in corpora)
    note = " The weights carry these non-commercial terms." if restricted else ""
    return "Trained on " + "; ".join(terms) + "." + note


#: Loaders by corpus name, as data.<name> and cross-corpus lists name them.
LOADERS = {
    "ravdess": load_ravdess,
    "tess": load_tess,
    "crema": load_crema,
    "emodb": load_emodb,
    "ased": load_ased,
    "turev": load_turev,
    "emospeech": load_emospeech,
    "folder": load_folder,
}
