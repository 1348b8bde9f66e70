"""Stage 4: model bundles and the int8 model on an utterance's rows; the scoring rule."""
