"""The serial link to an Arduino node: its framed protocol and the Pi's side of it."""
