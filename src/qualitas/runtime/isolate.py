"""Scoring in child processes with a per-input time limit (``qualitas score --timeout``).

A decoder or libvmaf that hangs on a hostile file cannot be interrupted from inside the
process (it blocks in C), so with a timeout every input is scored by a worker process:

* workers are started once (``spawn``: no forked threads or OpenMP state) and keep their
  metrics loaded, so the cost is one start per worker, not per input;
* each worker is the leader of its own process group, so killing the group also stops the
  ffmpeg/libvmaf process it started;
* an input that runs past the limit gets ``error = "timed out after N s"``, its worker is
  killed and replaced, and the batch goes on; a worker that dies (a native crash in a
  decoder) gives its input ``"scoring process died (…)"`` the same way.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from qualitas.errors import QualitasError, UsageError
from qualitas.runtime.progress import NULL_PROGRESS, Progress

STARTUP_TIMEOUT = 300.0
"""Seconds a worker may take to import torch and build its metrics (a busy machine is slow)."""


def _worker_main(conn: Connection, names: list[str], options: Any, factory: Any, defaults_used: bool) -> None:
    """Child process: build the metrics once, then score one input per message."""
    import torch

    from qualitas.runtime.engine import Scorer
    from qualitas.runtime.metric_set import build_metrics
    from qualitas.runtime.threads import torch_threads_for

    try:
        os.setsid()  # own process group: the parent's killpg also stops ffmpeg children
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        scorers = factory() if factory is not None else None
        built = build_metrics(names, options.device, scorers, options)
        torch.set_num_threads(options.threads or torch_threads_for(1))
        scorer = Scorer(built, options, NULL_PROGRESS, defaults_used=defaults_used)
    except QualitasError as err:
        conn.send(("fatal", str(err), err.exit_code))
        return
    conn.send(("ready", None, 0))
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        dist, ref, item_names, pair_error = item
        conn.send(("result", scorer.score(dist, ref, item_names, pair_error), 0))


class _Worker:
    def __init__(self, ctx: Any, args: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.index: int | None = None
        self.deadline = 0.0
        if not self.conn.poll(STARTUP_TIMEOUT):
            self.kill()
            raise QualitasError(f"a scoring process did not start within {STARTUP_TIMEOUT:g} s")
        try:
            kind, message, code = self.conn.recv()
        except EOFError:
            self.kill()
            raise QualitasError(f"a scoring process died while starting ({self.exit_reason()})") from None
        if kind == "fatal":
            self.kill()
            err = UsageError(message) if code == 2 else QualitasError(message)
            raise err

    def exit_reason(self) -> str:
        self.proc.join(1.0)
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def kill(self) -> None:
        """Stop the worker and everything it started (its process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (OSError, TypeError):
            self.proc.kill()
        self.proc.join(5.0)
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5.0)
        if self.proc.is_alive():
            self.kill()
        else:
            self.conn.close()


def score_isolated(
    pairs: Sequence[Any],
    names: Sequence[list[str]],
    all_names: list[str],
    options: Any,
    *,
    timeout: float,
    scorers_factory: Callable[[], Mapping[str, Any]] | None = None,
    defaults_used: bool = False,
    progress: Progress = NULL_PROGRESS,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Score ``pairs`` (``names[i]``: the metrics of pair i) in ``options.jobs`` worker
    processes, each input limited to ``timeout`` seconds; results in input order."""
    import dataclasses

    from qualitas.runtime.inputs import _guess_kind
    from qualitas.runtime.options import Result

    ctx = mp.get_context("spawn")
    worker_opts = dataclasses.replace(options, jobs=1)
    args = (all_names, worker_opts, scorers_factory, defaults_used)
    results: list[Any] = [None] * len(pairs)
    todo = deque(i for i, p in enumerate(pairs))
    idle: list[_Worker] = []
    busy: list[_Worker] = []

    def finish(i: int, res: Any) -> None:
        results[i] = res
        if on_result is not None:
            on_result(i, res)
        bar.update(1)

    def failed(i: int, message: str) -> Any:
        p = pairs[i]
        return Result(
            path=str(p.dist),
            ref=None if p.ref is None else str(p.ref),
            kind=_guess_kind(p.dist),
            error=message,
        )

    try:
        with progress.files(len(pairs)) as bar:
            while todo or busy:
                # Inputs that failed pairing need no worker.
                while todo and pairs[todo[0]].error:
                    i = todo.popleft()
                    finish(i, failed(i, pairs[i].error))
                while todo and len(busy) < options.jobs:
                    if not idle:
                        idle.append(_Worker(ctx, args))
                    w = idle.pop()
                    i = todo.popleft()
                    p = pairs[i]
                    w.conn.send((p.dist, p.ref, names[i], p.error))
                    w.index, w.deadline = i, time.monotonic() + timeout
                    busy.append(w)
                if not busy:
                    continue
                left = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                ready = wait([w.conn for w in busy], timeout=left)
                now = time.monotonic()
                for w in list(busy):
                    i = w.index
                    if w.conn in ready:
                        try:
                            _, res, _ = w.conn.recv()
                        except (EOFError, OSError):
                            busy.remove(w)
                            reason = w.exit_reason()
                            w.kill()
                            finish(i, failed(i, f"scoring process died ({reason})"))
                            continue
                        busy.remove(w)
                        idle.append(w)
                        finish(i, res)
                    elif now >= w.deadline:
                        busy.remove(w)
                        w.kill()
                        finish(i, failed(i, f"timed out after {timeout:g} s (--timeout)"))
    finally:
        for w in busy:
            w.kill()
        for w in idle:
            w.close()
    return results
