"""Loads the log capture into the Python children of a scraped test run (`tests/log_capture.py`).

`tests/log_scrape.py` puts this directory on `PYTHONPATH` and sets `LOG_SCRAPE_DIR` for the
run, so a `python -m bots serve` or a worker the tests start captures its own records too.
Without `LOG_SCRAPE_DIR` (any other Python) it does nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if directory := os.environ.get("LOG_SCRAPE_DIR"):
    _root = str(Path(__file__).resolve().parents[2])
    sys.path.insert(0, _root)
    try:
        from tests.log_capture import install_in_child

        install_in_child(directory)
    finally:
        sys.path.remove(_root)
