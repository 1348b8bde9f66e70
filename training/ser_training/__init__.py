"""ser-training: build-time training, evaluation and int8 export (TensorFlow)."""

__version__ = "0.1.0"
