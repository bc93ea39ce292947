"""Chain of Conscience runtime."""
