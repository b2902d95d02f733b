"""Data: the manifest schema, datasets, clip sampling, input sizing, splits, converters.

Modules are imported where they are used (``qualitas.data.manifest`` stays free of torch):
``manifest`` (schema, read/write, ``resolve_under``), ``datasets`` (``DATASETS`` registry,
image/video/frame-folder/pair datasets, pre-training checks, MOS normalisation),
``sampling`` (which frames of a video), ``transforms`` (input sizing), ``splits``.
"""
