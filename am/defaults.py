"""Built-in defaults, below flags, ``AM_*`` variables and config.toml (am/config.py).

A leaf with no import at all: every ``am list`` reads the idle default from here.
"""

DEFAULT_IMAGE = "am-agent:latest"
DEFAULT_LIMITS = {"memory": "2g", "cpus": "2", "pids": "100"}
DEFAULT_LOG_MAX_SIZE = "16m"  # logs.max_size: the log and one rotated file, at most twice it
DEFAULT_LOG_MAX = 16 * 1024**2
DEFAULT_IDLE_AFTER = 600  # seconds without output before an agent counts as idle
