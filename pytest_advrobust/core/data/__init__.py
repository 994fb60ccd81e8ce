"""Where images, labels and class names come from: tensors, files, folders, Datasets and DataLoaders,
decoded and regrouped into batches of any size.

Imports only :mod:`..settings`, :mod:`..models` and the shared modules of ``core`` from outside the wing.
"""
