"""am, the agent manager: many AI coding agents side by side, each on its own repository copy."""

__version__ = "0.1.0"
