"""Threads of a scoring run: decoding one batch ahead (:class:`prefetch`), converting
decoded 4K frames late in the scoring thread, files metrics in their own thread, torch's
thread count and the automatic batch size."""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from qualitas.runtime import options as _options

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    import torch


def auto_batch_size(width: int, height: int, requested: int | None = None) -> int:
    """Frames per batch: ``requested``, or as many as fit
    :data:`qualitas.runtime.options.BATCH_PIXEL_BUDGET` (read at call time)."""
    if requested is not None:
        return requested
    budget = _options.BATCH_PIXEL_BUDGET
    return int(max(1, min(_options.MAX_AUTO_BATCH, budget // max(1, width * height))))


T = TypeVar("T")


_DONE = object()


class prefetch(Iterator[T]):  # noqa: N801 - used like a function: ``for b in prefetch(it)``
    """Iterate ``iterable`` in a background thread, one item ahead.

    The producer makes item k+1 while the consumer works on item k, and starts on k+2 only
    once k+1 has been taken, so at most two items are alive at a time (memory matters:
    one 4K frame in float32 RGB is 100 MB). Exceptions in the producer are re-raised in the
    consumer. ``close()`` (also called on exhaustion, on error and by ``with``) stops and
    joins the producer even if iteration never started, so no thread outlives its use.
    PyAV and torch release the GIL in their heavy parts, so decoding really runs in
    parallel with the metrics.
    """

    def __init__(self, iterable: Iterable[T]) -> None:
        self._iterable = iterable
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._taken = threading.Semaphore(0)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name="qualitas-decode", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Hand ``item`` over and wait until the consumer has taken it (False: stopped)."""
        self._queue.put(item)  # never blocks: the previous item was taken
        while not self._stop.is_set():
            if self._taken.acquire(timeout=0.05):
                return True
        return False

    def _produce(self) -> None:
        try:
            for item in self._iterable:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(err)
        finally:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        self._taken.release()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the producer thread and wait for it (idempotent)."""
        self._finished = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ConvertLate(Iterator[Any]):
    """``DecodedBatch`` items from ``source`` (a :class:`prefetch`) converted to ``FrameBatch``
    in the consumer's thread, always into the same tensors (valid until the next item)."""

    def __init__(self, source: prefetch, rgb: bool = True, luma: bool = False) -> None:
        self.source = source
        self.rgb, self.luma = rgb, luma
        self.buffer: torch.Tensor | None = None
        self.luma_buffer: torch.Tensor | None = None

    def __next__(self) -> Any:
        batch = next(self.source).to_batch(
            self.buffer, rgb=self.rgb, luma=self.luma, luma_out=self.luma_buffer
        )
        if batch.data is not None and (
            self.buffer is None or batch.data.data_ptr() != self.buffer.data_ptr()
        ):
            self.buffer = batch.data
        if batch.luma is not None and (
            self.luma_buffer is None or batch.luma.data_ptr() != self.luma_buffer.data_ptr()
        ):
            self.luma_buffer = batch.luma
        return batch

    def close(self) -> None:
        self.source.close()


def _wait_quietly(futures: Iterable[Future]) -> None:
    """Wait for background work whose result is no longer wanted (its errors ignored)."""
    for fut in futures:
        fut.exception()


def _run_in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future:
    """Run ``fn`` in a fresh thread (the libvmaf subprocess waits there, not in our loop)."""
    fut: Future = Future()

    def target() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - delivered through the future
            fut.set_exception(err)

    threading.Thread(target=target, name="qualitas-files-metric", daemon=True).start()
    return fut


def torch_threads_for(jobs: int, cpus: int | None = None) -> int:
    """Default torch threads: the cores divided between the jobs, minus one left to decoding.

    Decoding (two FFmpeg decoders per video pair, in background threads) needs CPU too, and
    OpenMP teams that are larger than the free cores spin and stall each other: on a busy
    2-core machine one metric thread scored twice as fast as two (docs/benchmarks.md).
    """
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // jobs - 1)


@contextmanager
def torch_threads(n: int, *, load: bool) -> Iterator[None]:
    """Run the block with torch's intra-op threads at ``n``, restored afterwards.

    ``load=False`` and torch not imported yet: nothing to set (a run whose metrics all take
    the YUV fast path never imports torch, which saves ~2 s of start-up, docs/benchmarks.md).
    """
    torch = sys.modules.get("torch")
    if torch is None and load:
        import torch
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
