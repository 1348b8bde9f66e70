"""Training YAML: every shipped config loads; mistakes name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ser_training.config import ConfigError, expand, load_config

ROOT = Path(__file__).resolve().parents[1] / "training" / "configs"
CONFIGS = sorted([p for p in ROOT.glob("*.yaml") if p.name != "base.yaml"] + list(ROOT.glob("ablations/*.yaml")))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.window.frames == cfg.frontend.n_frames(3 * cfg.frontend.sample_rate)  # 3 s windows
    assert cfg.model.kind in ("ds_cnn", "cnn", "cnn_lstm")


def test_the_ser_base_recipe_loads_and_names_only_known_corpora(tmp_path: Path) -> None:
    from ser_training.base_config import LABELLED, load_base_config

    cfg = load_base_config(ROOT / "base.yaml")
    assert set(cfg.corpora) == set(LABELLED) and cfg.encoder.blocks == (2, 3) and cfg.augment.renderings >= 1
    bad = tmp_path / "b.yaml"
    bad.write_text("corpora: [ravdess, mystery]\n")
    with pytest.raises(ConfigError, match="unknown corpus 'mystery'"):
        load_base_config(bad)
    bad.write_text("head: {calibrate_views: some}\n")
    with pytest.raises(ConfigError, match="head: calibrate_views must be clean or all"):
        load_base_config(bad)


def test_the_default_is_the_shipped_recipe_on_the_device_front_end() -> None:
    from ser_edge.frontend import DEFAULT_CONFIG

    cfg = load_config(next(p for p in CONFIGS if p.name == "tiny.yaml"))
    assert cfg.model.kind == "ds_cnn" and cfg.frontend == DEFAULT_CONFIG  # a bundle the daemon accepts
    assert cfg.data.gate and cfg.augment.rooms > 0 and cfg.augment.noise > 0 and cfg.train.calibrate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {kind: ds_cnn, filterz: 3}", "model.filterz: unknown key"),
        ("train: {epochs: many}", "train.epochs: expected int, got 'many'"),
        ("window: [1, 2]", "window: expected a mapping"),
        ("model: {first_kernel: [3]}", "model.first_kernel: expected 2 values, got 1"),
        (
            "frontend: {n_mels: 7, n_mfcc: 13}",
            "frontend: invalid front-end config: n_mfcc (13) must not exceed n_mels (7)",
        ),
        ("augment: {snr_db: 5}", "augment.snr_db: expected a list"),
        ("model: {kind: ds_cnn\n", "not valid YAML"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_file_and_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
    monkeypatch.delenv("SER_NOWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"uses \$\{SER_NOWHERE\}, which is not set"):
        expand("${SER_NOWHERE}/x")
    monkeypatch.setenv("SER_NOWHERE", "/data")
    assert expand("${SER_NOWHERE}/x") == Path("/data/x")


def test_extra_corpus_must_be_known_and_configured(ravdess: Path) -> None:
    from dataclasses import replace

    from ser_training.config import Config, DataConfig
    from ser_training.pipeline import load_corpora

    base = DataConfig(ravdess=str(ravdess), tess=None)
    with pytest.raises(ValueError, match="unknown corpus 'timit'"):
        load_corpora(Config(data=replace(base, extra_training=("timit",))))
    with pytest.raises(ValueError, match=r"'tess' has no configured folder \(data.tess\)"):
        load_corpora(Config(data=replace(base, extra_training=("tess",))))


def test_the_robustness_protocol_loads_with_the_issues_grid() -> None:
    from ser_training.robustness import PROTOCOL_FILE, load_protocol

    p = load_protocol(PROTOCOL_FILE)
    assert p.gains_db == (-30, -20, -10, 0, 10) and p.rt60_s == (0.3, 0.6, 0.9) and p.snr_db == (20, 10, 5, 0)
    assert p.distance_m == (1.0, 4.0) and "emodb" in p.corpora and p.every == 1
