"""Progress bars: drawn only on a terminal and never when quiet."""

from __future__ import annotations

import io

from qualitas.runtime.progress import Progress, progress_enabled


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_enabled_only_on_a_terminal_and_not_quiet():
    assert progress_enabled(False, FakeTTY()) is True
    assert progress_enabled(True, FakeTTY()) is False
    assert progress_enabled(False, io.StringIO()) is False


def test_bars_write_to_the_stream_when_enabled_and_nothing_otherwise():
    tty = FakeTTY()
    prog = Progress(True, stream=tty)
    with prog.files(2) as files, prog.frames(10, "clip.mp4") as frames:
        frames.update(10)
        files.update(2)
    text = tty.getvalue()
    assert "files" in text and "clip.mp4" in text and "2/2" in text

    silent = io.StringIO()
    prog = Progress(False, stream=silent)
    with prog.files(2) as files, prog.frames(10, "clip.mp4") as frames:
        frames.update(10)
        files.update(2)
    assert silent.getvalue() == ""
    no_frames = FakeTTY()
    with Progress(True, frame_bars=False, stream=no_frames).frames(5, "x.mp4") as bar:
        bar.update(5)
    assert no_frames.getvalue() == ""
