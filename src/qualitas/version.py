"""The qualitas version, on the ground floor so reports and model cards can record it without
importing the package root (which reaches up to the runtime for ``qualitas.load_model``)."""

from __future__ import annotations

__version__ = "0.1.0"
