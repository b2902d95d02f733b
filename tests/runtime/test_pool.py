"""Pooling of per-frame scores, batch sizing, default metrics and the decode prefetcher."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from qualitas.errors import UsageError
from qualitas.runtime.score import auto_batch_size, default_metrics, pool_scores, prefetch, resolve_metrics


def test_pool_mean_min_p5_in_the_worse_direction():
    x = list(range(1, 101))  # 1..100
    assert pool_scores(x, "mean") == pytest.approx(50.5)
    assert pool_scores(x, "min") == 1
    assert pool_scores(x, "min", higher_is_better=False) == 100
    assert pool_scores(x, "p5") == 5  # nearest rank, lower side
    assert pool_scores(x, "p5", higher_is_better=False) == 96  # 95th percentile, upper side


def test_pool_harmonic_mean_is_libvmafs():
    x = np.array([10.0, 90.0, 50.0])
    expected = 3 / np.sum(1 / (x + 1)) - 1
    assert pool_scores(x, "harmonic_mean") == pytest.approx(expected)
    assert pool_scores([0.0, 0.0], "harmonic_mean") == 0.0
    assert pool_scores([7.0, 7.0], "harmonic_mean") == pytest.approx(7.0)


def test_pool_infinite_frames_stay_infinite_not_nan():
    x = [math.inf] * 19 + [30.0]
    assert pool_scores(x, "mean") == math.inf
    assert pool_scores(x, "p5") == 30.0
    assert pool_scores([math.inf] * 3, "p5") == math.inf
    assert pool_scores([math.inf, 40.0], "harmonic_mean") == pytest.approx(2 / (1 / 41) - 1)
    assert math.isnan(pool_scores([], "mean"))


def test_pool_unknown_is_usage_error():
    with pytest.raises(UsageError, match="pooling"):
        pool_scores([1.0], "median")


def test_auto_batch_size_bounded_by_pixels():
    assert auto_batch_size(1920, 1080) == 4
    assert auto_batch_size(3840, 2160) == 1
    assert auto_batch_size(176, 144) == 32
    assert auto_batch_size(3840, 2160, requested=3) == 3


def test_default_metrics_and_resolution():
    assert default_metrics("image", True) == ["psnr", "ssim", "ms_ssim"]
    assert default_metrics("video", True) == ["psnr", "ssim", "ms_ssim", "vmaf"]
    with pytest.raises(UsageError, match="--metric"):
        default_metrics("image", False)
    assert resolve_metrics(None, True, ["image", "video"]) == ["psnr", "ssim", "ms_ssim", "vmaf"]
    assert resolve_metrics(["ssim", "psnr", "ssim"], True) == ["ssim", "psnr"]
    with pytest.raises(UsageError, match="full-reference"):
        resolve_metrics(["psnr"], False)


def test_prefetch_preserves_order_and_reraises():
    assert list(prefetch(iter(range(50)))) == list(range(50))

    def broken():
        yield 1
        raise ValueError("corrupt frame 2")

    it = prefetch(broken())
    assert next(it) == 1
    with pytest.raises(ValueError, match="corrupt frame 2"):
        next(it)


def test_prefetch_stops_its_thread_when_abandoned():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = prefetch(endless())
    assert next(it) == 0
    it.close()
    time.sleep(0.05)
    assert threading.active_count() == before
    assert len(produced) <= 2  # it stayed at most one item ahead


def test_torch_threads_leave_a_core_to_decoding():
    from qualitas.runtime.score import torch_threads_for

    assert torch_threads_for(1, cpus=2) == 1
    assert torch_threads_for(1, cpus=16) == 15
    assert torch_threads_for(4, cpus=16) == 3
    assert torch_threads_for(8, cpus=4) == 1
