"""Unit tests: pure composition and checks, laid out like am/ (no engine, no tmux)."""
