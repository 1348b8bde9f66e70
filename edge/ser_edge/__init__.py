"""ser-edge: on-device speech emotion recognition (no TensorFlow)."""

__version__ = "0.1.0"
