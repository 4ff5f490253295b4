"""Allow ``python -m am``."""

from am.main import entry

entry()
