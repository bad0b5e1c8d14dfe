"""Episodes on disk: the store, its manifest and verification, window sampling, video in and out."""
