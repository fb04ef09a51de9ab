"""Typed exceptions raised by the library; only the CLI turns them into messages."""

from __future__ import annotations


class CompletionError(Exception):
    """Base class for every error the tool reports to a user in one line."""


class ImageError(CompletionError):
    """An image or mask file cannot be read or is unsuitable."""


class MaskError(CompletionError):
    """A mask is malformed or does not fit its image."""


class ModelFileError(CompletionError):
    """A model or checkpoint file is missing, corrupt or of an unknown format."""


class TrainingDiverged(CompletionError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class OutputError(CompletionError):
    """An output cannot be written."""


class DataError(CompletionError):
    """A data folder holds no usable images."""


class ServeError(CompletionError):
    """The server cannot start (its port is taken, its address does not resolve)."""
