"""
Run the stress storms and check their invariants.

``python testing/stress/run.py`` runs the short mode (seconds; what CI runs),
``--full`` the full one (minutes), ``--only NAME`` selected storms. Exits
non-zero if any invariant failed. See ``README.md`` beside this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script: make the ``stress`` package beside this file importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stress._main import main

    sys.exit(main(sys.argv[1:]))
