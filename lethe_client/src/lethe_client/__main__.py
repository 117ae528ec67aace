"""``python -m lethe_client``: the ``lethe`` command."""

import sys

from lethe_client.cli import main

sys.exit(main())
