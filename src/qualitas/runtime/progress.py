"""Progress bars on stderr (tqdm), silent with ``--quiet`` or when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import TextIO


def progress_enabled(quiet: bool, stream: TextIO | None = None) -> bool:
    """True when bars should be drawn: not quiet and ``stream`` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Factory of bars: one over files, and one per file over its frames.

    With several files scored in parallel (``--jobs``), per-file frame bars would
    interleave, so only the files bar is drawn (``frame_bars=False``).
    """

    def __init__(self, enabled: bool, *, frame_bars: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.frame_bars = frame_bars
        self.stream = sys.stderr if stream is None else stream

    def _bar(self, total: int | None, desc: str, unit: str, position: int, leave: bool):
        from tqdm import tqdm  # imported lazily: quiet runs never pay for it

        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            position=position,
            leave=leave,
            file=self.stream,
            dynamic_ncols=True,
            mininterval=0.2,
        )

    def files(self, total: int):
        """Bar over inputs (position 0)."""
        if not self.enabled:
            return _NullBar()
        return self._bar(total, "files", "file", 0, True)

    def frames(self, total: int | None, name: str):
        """Bar over one input's frames (position 1, removed when done)."""
        if not (self.enabled and self.frame_bars):
            return _NullBar()
        desc = name if len(name) <= 32 else "..." + name[-29:]
        return self._bar(total, desc, "frame", 1, False)


NULL_PROGRESS = Progress(False)
