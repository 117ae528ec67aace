"""The client's tests: ``lethe_client`` is its own package (``lethe_client/src``).

``make install`` installs it into the venv (editable). Without that, the repository's
``lethe_client/`` folder would import as an empty namespace package, so the source folder
is put on the path here: the tests then run against the code in this checkout either way.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENT_SRC = REPO / "lethe_client" / "src"

_spec = importlib.util.find_spec("lethe_client")
if _spec is None or _spec.origin is None:  # absent, or only the namespace folder
    sys.path.insert(0, str(CLIENT_SRC))
    sys.modules.pop("lethe_client", None)
