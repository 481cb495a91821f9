"""haops: render, check, push and prove high-availability web clusters."""

__version__ = "0.1.0"
