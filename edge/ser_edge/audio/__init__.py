"""Stage 1: audio in, from a microphone, files or a node's AUDIO frames, as int16 16 kHz."""
