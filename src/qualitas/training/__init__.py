"""Training engine (the only package that imports Lightning).

``config`` (YAML schema and ``-o`` overrides), ``task`` (``QualityTask``), ``datamodule``,
``callbacks``, ``run`` (``train``, ``train_splits``, ``load_trained``) and ``predict``
(``evaluate_run``). See docs/training.md.
"""
