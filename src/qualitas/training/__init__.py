"""Training engine (the only package that imports Lightning).

``config`` (YAML schema and ``-o`` overrides), ``task`` (``QualityTask``), ``datamodule``,
``callbacks``, ``prepare`` (data preparation, ``run_info``), ``folders`` (the run folder's
lifecycle), ``run`` (``train``, ``train_splits``; re-exports ``load_trained`` from
``qualitas.models.checkpoint``), ``probe`` and ``predict`` (``evaluate_run``). See
docs/training.md.
"""
