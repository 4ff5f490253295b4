"""Allow ``python -m am``."""

from am.main import main

raise SystemExit(main())
