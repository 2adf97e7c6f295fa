"""Measuring a trained run: image metrics on chosen views, meshes in world units, novel views."""
