"""Each model family converts to a full-int8 model that TFLite Micro runs like TFLite.

Untrained weights are enough: this is about the converter and the interpreters."""

from __future__ import annotations

import numpy as np
import pytest

from ser_training.config import Config, ModelConfig
from ser_training.export import exportable, quiet_stderr, verify
from ser_training.int8 import ConversionError, convert, input_quantisation
from ser_training.models import build


def _model(model: ModelConfig):
    import keras

    rng = np.random.default_rng(0)
    windows = rng.integers(-128, 100, (40, 149, 13)).astype(np.int8)
    flat = windows.reshape(-1, 13).astype(float)
    net = build(keras, model, 149, 13, flat.mean(0), flat.var(0))
    net.compile("adam", "categorical_crossentropy")
    net.fit(windows.astype(np.float32), np.eye(8)[rng.integers(0, 8, 40)], epochs=1, verbose=0)  # moves BN stats
    return net, windows


@pytest.mark.parametrize(
    ("model", "must_have"),
    [
        (
            ModelConfig(kind="ds_cnn", filters=16, blocks=2, window_mean=True, pool="average_max"),
            {"DEPTHWISE_CONV_2D", "MEAN", "SUB", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"},
        ),
        (ModelConfig(kind="ds_cnn", filters=16, blocks=1), {"DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "CONV_2D"}),
        (ModelConfig(kind="cnn_lstm", filters=16, lstm_units=16), {"UNIDIRECTIONAL_SEQUENCE_LSTM"}),
    ],
    ids=["ds_cnn+window_mean+average_max", "ds_cnn", "cnn_lstm"],
)
def test_converts_to_int8_and_runs_under_tflite_micro(model: ModelConfig, must_have: set[str]) -> None:
    net, windows = _model(model)
    data = convert(exportable(net, Config(model=model)), windows[:30])
    assert input_quantisation(data) == (1.0, 0)
    checks = verify(data, windows[30:])
    assert must_have <= set(checks["ops"])
    assert "SHAPE" not in checks["ops"]  # static shapes: batch size 1
    assert "FULLY_CONNECTED" not in checks["ops"]  # the classifier is a 1x1 CONV_2D
    if model.kind == "ds_cnn" and not model.window_mean:
        assert "MEAN" not in checks["ops"]  # pooling runs on CMSIS-NN, MEAN would not
    # The classifier as a 1x1 convolution is the same function as the trained Dense layer.
    exported = exportable(net, Config(model=model))
    np.testing.assert_allclose(exported.predict(windows[:4].astype(np.float32), batch_size=1, verbose=0),
                               net.predict(windows[:4].astype(np.float32), verbose=0), atol=1e-5)  # fmt: skip
    assert checks["tflm_max_abs_diff_steps"] <= 1
    assert 2_000 < checks["tflm_arena_bytes"] < 40_000  # 16-filter models: a few windows of activations


def test_verification_refuses_a_per_channel_fully_connected() -> None:
    import keras

    inputs = keras.Input((149, 13), batch_size=1)
    outputs = keras.layers.Dense(8, activation="softmax")(keras.layers.Flatten()(inputs))
    rng = np.random.default_rng(0)
    data = convert(keras.Model(inputs, outputs), rng.integers(-128, 100, (10, 149, 13)).astype(np.int8))
    with pytest.raises(ConversionError, match=r"1 FULLY_CONNECTED op.* per-channel weight scales"):
        verify(data, rng.integers(-128, 100, (4, 149, 13)).astype(np.int8))


def test_m4_cost_of_the_0_2_model_against_its_o2_measurement() -> None:
    """issue 14 measured the 0.2 model at 25.6 M instructions per window with TFLite
    Micro's kernels at -O2; the estimator, calibrated at -Os under Chirale (tests/
    test_m4_cost.py), prices the same graph higher by about the ratio the 0.3 model showed
    between those builds (14.51 M / 11.24 M), MEAN and the FULLY_CONNECTED included; with
    pooling instead of MEAN that share drops to a CMSIS-NN kernel's."""
    from pathlib import Path

    from ser_training import cost

    measured = (Path(__file__).parent / "golden/m4-measured-0.2.0.tflite").read_bytes()  # ser-tiny 0.2.0
    total, per_op = cost.m4_instructions(measured)
    assert total / 25.6e6 == pytest.approx(14.51 / 11.24, rel=0.05)
    assert per_op["MEAN"] == pytest.approx(50 * 7 * 64 * cost.MEAN_INPUT + cost.OP_OVERHEAD, rel=1e-6)
    model = ModelConfig(kind="ds_cnn", filters=64, blocks=4, first_stride=(3, 2))
    net, windows = _model(model)
    pooled_total, pooled = cost.m4_instructions(convert(exportable(net, Config(model=model)), windows[:20]))
    # The classifier (64 -> 8) runs on the 50 x 7 map, then the average pool takes its 8 logits.
    assert "MEAN" not in pooled and "FULLY_CONNECTED" not in pooled
    assert pooled["AVERAGE_POOL_2D"] == round(50 * 7 * 8 * cost.POOL_INPUT + cost.OP_OVERHEAD)
    classifier = 50 * 7 * 8 * 64 * cost.CONV_1X1_MAC + 50 * 7 * 8 * cost.REQUANTISE + cost.OP_OVERHEAD
    reshape = cost.OP_OVERHEAD  # the pooled logits are reshaped to (1, 8)
    swapped = total - per_op["MEAN"] - per_op["FULLY_CONNECTED"] + classifier + pooled["AVERAGE_POOL_2D"] + reshape
    assert pooled_total == pytest.approx(swapped, abs=10)


def test_arena_is_the_smallest_that_allocates() -> None:
    from tflite_micro import runtime

    from ser_training.int8 import tflm_min_arena

    model = ModelConfig(kind="ds_cnn", filters=16, blocks=1)
    net, windows = _model(model)
    data = convert(exportable(net, Config(model=model)), windows[:20])
    arena = tflm_min_arena(data)
    runtime.Interpreter.from_bytes(data, arena_size=arena)
    with quiet_stderr(), pytest.raises(RuntimeError, match="failed to allocate"):
        runtime.Interpreter.from_bytes(data, arena_size=arena - 256)
    with pytest.raises(ConversionError, match="does not fit a 8192-byte"), quiet_stderr():
        tflm_min_arena(data, high=8192)


def test_macs_are_counted_from_the_layer_shapes() -> None:
    import keras

    from ser_training.cost import macs_per_inference

    # conv 3x3, 1 -> 4 channels, valid padding on 10x6: 8x4x4 outputs x 9 taps; dense 128 -> 8.
    inputs = keras.Input((10, 6, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3)(inputs)
    outputs = keras.layers.Dense(8)(keras.layers.Flatten()(x))
    rng = np.random.default_rng(0)
    data = convert(keras.Model(inputs, outputs), rng.integers(-128, 100, (10, 10, 6, 1)).astype(np.int8))
    total, per_op = macs_per_inference(data)
    assert per_op == {"CONV_2D": 8 * 4 * 4 * 9, "FULLY_CONNECTED": 8 * 4 * 4 * 8}
    assert total == 1152 + 1024
