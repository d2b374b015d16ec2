"""Prebuilt overlay metadata (.hwh, .json) and, when built, bitstreams (bitlet.overlays)."""
