"""``--adv-shard=K/N``: this pytest run is job K of a CI matrix of N. Which tests it runs, what its JSON
report carries for ``python -m pytest_advrobust merge`` (:mod:`..core.merge`), and the merge command it
prints.

Every decorated test is split into N shards (:meth:`.options.Settings.resolve_for`) and the job keeps
shard K. A test that calls ``adv_attack`` itself cannot be split: those tests are dealt out over the jobs
in node-id order, so each runs in exactly one. Tests that attack nothing run in every job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from ..core.baselines.identity import library_versions
from ..core.results.merge import ShardJob, job_settings
from ..core.results.merge import merge_command as build_merge_command
from ..core.settings.values import JobShard
from .collector import Collector
from .options import Settings


def job_items(items: Sequence[pytest.Item], shard: JobShard) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(the items job ``shard`` runs, the others), both in collection order."""
    own_attacks = sorted(
        item.nodeid
        for item in items
        if item.get_closest_marker("adv_robust") is None and "adv_attack" in getattr(item, "fixturenames", ())
    )
    dealt = {nodeid for k, nodeid in enumerate(own_attacks) if k % shard.count == shard.index - 1}
    kept: list[pytest.Item] = []
    others: list[pytest.Item] = []
    for item in items:
        if item.get_closest_marker("adv_robust") is not None:
            callspec = getattr(item, "callspec", None)
            part = callspec.params.get("adv_shard") if callspec is not None else None
            mine = part is None or part == shard.index - 1
        else:
            mine = item.nodeid in dealt or item.nodeid not in own_attacks
        (kept if mine else others).append(item)
    return kept, others


def shard_job(settings: Settings, collector: Collector) -> ShardJob:
    """What this job's report tells the merge (:class:`~pytest_advrobust.core.results.merge.ShardJob`)."""
    assert settings.run.shard is not None
    rootdir = settings.rootpath
    return ShardJob(
        shard=settings.run.shard,
        tests=list(collector.reports),
        accounted={
            nodeid: shard.id for nodeid, shard in sorted(collector.shards.items()) if nodeid in collector.accounted
        },
        collected={module: sorted(tests) for module, tests in collector.collected().items()},
        complete=collector.complete,
        exit_status=collector.exit_status,
        settings=job_settings(settings.base, settings.run, rootdir),
        versions=library_versions(),
        baseline_dir=Path(os.path.relpath(settings.baseline_dir, rootdir)).as_posix(),
    )


def merge_command(settings: Settings) -> str:
    """The merge of every job's report, to paste in the folder this job was started in: the merged files
    are the ones the options name, without ``.shardKofN``."""
    run = settings.run
    shard = run.shard
    assert shard is not None and run.report is not None

    def merged(path: Path | None) -> str | None:
        return None if path is None else settings.shown(shard.merged_file(path))

    extra = []
    if settings.rootpath != settings.invocation_dir:  # the baseline folder is found from the rootdir
        extra.append(f"--rootdir={settings.shown(settings.rootpath)}")
    report = merged(run.report)
    assert report is not None
    return build_merge_command(shard, report, merged(run.html), merged(run.markdown), extra)
