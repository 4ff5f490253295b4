"""Unit tests of am/backends/."""
