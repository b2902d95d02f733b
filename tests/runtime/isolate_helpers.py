"""Scorers for the --timeout tests; a module of its own so spawned workers can import it."""

from __future__ import annotations

import os
import signal
import time
from collections import namedtuple

from qualitas.metrics.base import MetricInfo

Frame = namedtuple("Frame", "index time score")


class _Files:
    """Whole-file scorer: hangs on paths containing "hang", crashes on "crash", else 0.5."""

    info = MetricInfo("probe", False, True, (0.0, 1.0), "files", kind="files")

    def score_files(self, dist, ref, **options):
        name = os.path.basename(str(dist))
        if "hang" in name:
            time.sleep(600)
        if "crash" in name:
            os.kill(os.getpid(), signal.SIGSEGV)
        return type("R", (), {"frames": [Frame(0, None, 0.5)]})()


def probe_scorers():
    return {"probe": _Files()}
