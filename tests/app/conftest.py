from __future__ import annotations

import sys
from pathlib import Path

# tests/app has no __init__.py (the package name would shadow `app`), so make app_helpers importable.
sys.path.insert(0, str(Path(__file__).parent))
