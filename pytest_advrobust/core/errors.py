"""Exceptions. Every message names the offending option, file or image and says how to fix it."""

from __future__ import annotations


class AdvRobustError(Exception):
    """Base class: a configuration or input problem that makes a robustness verdict impossible."""


class OptionError(AdvRobustError, ValueError):
    """A setting has a bad value; the message names the setting and where it came from."""


class ImageLoadError(AdvRobustError):
    """An image file or folder cannot be used; the message names the file."""


class ClassNameError(AdvRobustError, KeyError):
    """An unknown class name or index; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelLoadError(AdvRobustError):
    """A model spec or file cannot be loaded."""


class UnsafeModelFileError(ModelLoadError):
    """A model file needs full unpickling, which can run arbitrary code, and was not allowed."""


class ModelOutputError(AdvRobustError):
    """The model's output cannot be attacked soundly (wrong shape, NaN, probabilities, ...)."""


class FalseRobustnessError(AdvRobustError):
    """The attack could not have worked (zero or non-finite input gradient): no verdict is possible."""


class DeviceMemoryError(AdvRobustError):
    """Even a batch of one image runs out of the device's memory."""


class NotRobustError(AssertionError):
    """At least one image flipped within ε (or was misclassified before any attack)."""
