"""Training endpoints and curves, and the files they write (checkpoints, curve frames)."""
