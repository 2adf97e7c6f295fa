"""Fitting an SDF field to a mesh directly (the encodings compared without rendering)."""
