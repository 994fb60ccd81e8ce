"""Baselines for retrained models: the rule that compares a run with its stored baseline (:mod:`.rule`)
and the files baselines are stored in (:mod:`.store`).
"""
