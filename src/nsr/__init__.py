"""NSR: neural surface reconstruction (IDR-style SDF + appearance) with fast input encodings."""

__version__ = "0.1.0"
