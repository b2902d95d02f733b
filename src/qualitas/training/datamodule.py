"""The Lightning data module: loaders over already-built datasets.

Building the datasets (reading the manifest, checking rows, splitting, fitting the MOS
normalisation) happens once in :mod:`qualitas.training.run`; this class only owns loaders.
Lightning wraps the evaluation loaders in a ``DistributedSampler`` under DDP; the padding
it adds is removed again by the task (dataset indices are de-duplicated).
"""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from qualitas.data.datasets import collate_skip


class QualityDataModule(L.LightningDataModule):
    """Train/val/test loaders with :func:`collate_skip` (failed samples dropped and counted)."""

    def __init__(
        self,
        train_set: Dataset | None,
        val_set: Dataset | None,
        test_set: Dataset | None = None,
        *,
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        train_weights: list[float] | None = None,
        collate_fn=collate_skip,
    ) -> None:
        super().__init__()
        self.collate_fn = collate_fn
        """Batches: :func:`collate_skip` (stacked tensors), or e.g. detection's list collate."""
        self.train_set = train_set
        self.val_set = val_set
        self.test_set = test_set
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_weights = train_weights
        """Per-sample draw weights (class-balanced sampling); ``None``: a plain shuffle."""

    @classmethod
    def from_splits(
        cls,
        datasets: dict[str, Dataset | None],
        data_cfg,
        *,
        train_weights: list[float] | None = None,
        collate_fn=collate_skip,
    ) -> QualityDataModule:
        """Loaders over ``datasets["train"|"val"|"test"]`` sized by a ``DataConfig``."""
        return cls(
            datasets["train"],
            datasets["val"],
            datasets["test"],
            batch_size=data_cfg.batch_size,
            val_batch_size=data_cfg.val_batch_size,
            num_workers=data_cfg.num_workers,
            pin_memory=data_cfg.pin_memory,
            train_weights=train_weights,
            collate_fn=collate_fn,
        )

    def _loader(self, ds: Dataset, *, train: bool) -> DataLoader:
        sampler = None
        if train and self.train_weights is not None:
            # Lightning wraps it for DDP (DistributedSamplerWrapper): each rank draws its share.
            sampler = WeightedRandomSampler(self.train_weights, num_samples=len(self.train_weights))
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.val_batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            # Keep the last partial batch: small datasets would otherwise lose samples.
            drop_last=False,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0 and train,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)
