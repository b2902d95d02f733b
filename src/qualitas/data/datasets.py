"""Every dataset ``qualitas train`` can read, registered in ``DATASETS`` by name.

The datasets themselves live in :mod:`qualitas.data.base` (image, video, frames, pairs) and
in their own modules (``importance``), which import ``base`` — never this module — so
registering them here makes no import cycle. Add a dataset module: register it on
``qualitas.data.base.DATASETS`` and import it below. The names once defined here (score
normalisation, media loading, the pre-training check) are re-exported from their homes.
"""

from __future__ import annotations

from qualitas.data import importance  # noqa: F401  (registers "importance")
from qualitas.data.base import (
    DATASETS,
    FrameFolderDataset,
    ImageDataset,
    PairDataset,
    QualityDataset,
    VideoDataset,
    collate_skip,
    pairs_from_groups,
)
from qualitas.data.media import (
    list_frames,
    load_image,
    load_video_frames,
    media_kind_of,
    probe_frames,
    video_num_frames,
)
from qualitas.data.precheck import (
    CheckReport,
    DataError,
    TrainingCheck,
    check_records,
    check_training_records,
)
from qualitas.data.scores import NORM_KINDS, ScoreNorm, record_mos

__all__ = [
    "DATASETS",
    "NORM_KINDS",
    "CheckReport",
    "DataError",
    "FrameFolderDataset",
    "ImageDataset",
    "PairDataset",
    "QualityDataset",
    "ScoreNorm",
    "TrainingCheck",
    "VideoDataset",
    "check_records",
    "check_training_records",
    "collate_skip",
    "list_frames",
    "load_image",
    "load_video_frames",
    "media_kind_of",
    "pairs_from_groups",
    "probe_frames",
    "record_mos",
    "video_num_frames",
]
