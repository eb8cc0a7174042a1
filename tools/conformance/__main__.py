"""``python -m tools.conformance CONFORMANCE_DIR [RULES_DIR] [-v]``."""

from tools.conformance.runner import main

raise SystemExit(main())
