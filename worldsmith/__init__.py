"""worldsmith: an open world-foundation-model platform for physical AI."""

__version__ = "0.1.0"
