"""Chain of Conscience runtime."""

__version__ = "0.1.0"
