"""Dynamic batching: concurrent frame-scorer calls of the same shape share one model call.

:class:`BatchingScorer` wraps a frame-kind :class:`~qualitas.runtime.models.QualityModel`
and is handed to the scoring engine as that model, so every request still goes through the
engine (decode, size policy, result schema, errors); only the model call is shared. A
background thread collects calls for at most ``max_wait`` seconds or ``max_batch`` images,
concatenates those of equal shape, calls the model once and hands each caller its slice.
If a shared call fails, the items are retried one by one so that the error reaches only
the request that caused it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class _Call:
    dist: torch.Tensor
    ref: torch.Tensor | None
    future: Future = field(default_factory=Future)

    @property
    def shape(self) -> tuple:
        return (tuple(self.dist.shape[1:]), None if self.ref is None else tuple(self.ref.shape[1:]))


class BatchingScorer:
    """A frame scorer (``info``, ``__call__(dist, ref) -> (B,)``) that batches its callers."""

    def __init__(
        self,
        model: Any,
        max_batch: int = 8,
        max_wait: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.model = model
        self.info = model.info
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait))
        self.on_batch = on_batch
        self._queue: queue.Queue[_Call | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="qualitas-batcher", daemon=True)
        self._thread.start()

    def __call__(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        call = _Call(dist, ref)
        self._queue.put(call)
        return call.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5.0)

    # ------------------------------------------------------------------ the batching thread

    def _collect(self, first: _Call) -> list[_Call]:
        calls, images = [first], first.dist.shape[0]
        deadline = time.monotonic() + self.max_wait
        while images < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                call = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if call is None:  # closing: finish this batch, then stop
                self._queue.put(None)
                break
            calls.append(call)
            images += call.dist.shape[0]
        return calls

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            calls = self._collect(first)
            groups: dict[tuple, list[_Call]] = {}
            for call in calls:
                groups.setdefault(call.shape, []).append(call)
            for group in groups.values():
                self._run(group)

    def _run(self, group: list[_Call]) -> None:
        if self.on_batch is not None:
            self.on_batch(sum(c.dist.shape[0] for c in group))
        if len(group) > 1:
            try:
                dist = torch.cat([c.dist for c in group])
                ref = None if group[0].ref is None else torch.cat([c.ref for c in group])  # type: ignore[misc]
                out = self.model(dist, ref)
            except Exception:  # noqa: BLE001 - retried one by one below, each caller gets its own error
                pass
            else:
                start = 0
                for c in group:
                    n = c.dist.shape[0]
                    c.future.set_result(out[start : start + n])
                    start += n
                return
        for c in group:
            try:
                c.future.set_result(self.model(c.dist, c.ref))
            except BaseException as err:  # noqa: BLE001 - delivered to the caller's thread
                c.future.set_exception(err)
