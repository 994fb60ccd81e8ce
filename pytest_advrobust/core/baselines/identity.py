"""What a baseline records of where its numbers came from: the model's fingerprint (its weights' sha256)
and the library versions. :func:`model_fingerprint` imports torch when called; the rest is pure Python.
"""

from __future__ import annotations

import hashlib
import re

FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}|n/a")
"""What :func:`model_fingerprint` returns: a baseline file or a job's report that holds anything else was
not written by the plugin (and the value is never echoed)."""


def checked_fingerprint(value: str, where: str) -> str:
    """``value`` if it is a fingerprint :func:`model_fingerprint` makes, else ``ValueError`` naming ``where``."""
    if not FINGERPRINT.fullmatch(value):
        raise ValueError(f"{where} must be 'sha256:' and 64 hex digits, or 'n/a', not {value[:40]!r}")
    return value


def model_fingerprint(model: object) -> str:
    """sha256 of the model's state dict (names, dtypes, shapes, values); 'n/a' for a plain callable."""
    import torch

    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        return "n/a"
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(raw.view(torch.uint8).numpy().tobytes())  # the bytes as stored, for any dtype
    return "sha256:" + digest.hexdigest()


def library_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "pytest-advrobust"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
