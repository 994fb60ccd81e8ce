"""The attacks: one loop (:mod:`.loop`) under the sign-gradient attacks, APGD and Square, the goals that
say what counts as success, the minimal-ε search and the checks that refuse false robustness.

Imports only :mod:`..settings`, :mod:`..models` and :mod:`..errors` from outside the wing.
"""
