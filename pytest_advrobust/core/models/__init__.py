"""Models: the wrapper the attacks see (normalization, device, eval mode), loading a model from a spec,
the formats libraries save models in, and each model's own preprocessing.

Imports only :mod:`..settings` and the shared modules of ``core`` from outside the wing.
"""
