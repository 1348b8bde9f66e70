"""Around the pipeline: benchmarks, the live monitor, the self-test, a local Mosquitto."""
