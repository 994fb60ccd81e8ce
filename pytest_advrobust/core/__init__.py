"""The library core: attacks, model wrapping and loading, images, class names, results, settings.

Nothing here imports pytest. Submodules that need torch import it themselves; ``settings`` and
``errors`` are pure Python so the pytest plugin can use them without paying for torch.
"""
