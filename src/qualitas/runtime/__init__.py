"""Scoring runtime: the engine behind ``qualitas score`` and its report writers.

* :mod:`qualitas.runtime.score`: ``score_paths(dists, ref, metrics, options) -> list[Result]``.
* :mod:`qualitas.runtime.report`: ``format_json`` / ``format_csv`` / ``format_table`` and the
  atomic ``write_json`` / ``write_csv`` (schema in docs/output-schema.md).
* :mod:`qualitas.runtime.progress`: tqdm bars on stderr, silent when quiet or not a terminal.
"""
