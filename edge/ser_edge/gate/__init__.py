"""Stage 2: the voice gate, which cuts the stream into utterances (energy, or speech)."""
