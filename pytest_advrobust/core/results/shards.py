"""Shard sets: whether each shard of a sharded test reported exactly once, and what it means when one did
not: the test is failed, the counts are the other shards' only, and its baseline entry is left as it was.

The plugin's collector checks the shards one pytest process selected (its xdist workers' too); the merge of
a CI matrix's shard reports (:mod:`.merge`) checks all N shards of every test. A shard pytest skipped (one
with no images) is accounted for, not missing. Pure Python: no torch, no pytest.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .report import TestReport, merge_shards, unsharded

_SHARD_OF = re.compile(r"shard(\d+)of(\d+)")


@dataclass(frozen=True)
class MissingShard:
    """A shard of a test, by node id: ``shard`` of ``shards``."""

    nodeid: str
    shard: int
    shards: int

    @classmethod
    def of(cls, nodeid: str) -> MissingShard:
        params = nodeid.rpartition("[")[2]
        found = _SHARD_OF.search(params)
        assert found is not None, nodeid
        return cls(nodeid, int(found[1]), int(found[2]))


def shard_ids(nodeid: str) -> list[str]:
    """Every shard of the test one of whose shards is ``nodeid``: ``test_x[a-shard2of3]`` gives
    ``test_x[a-shard1of3]``, ``test_x[a-shard2of3]`` and ``test_x[a-shard3of3]``."""
    shard = MissingShard.of(nodeid)
    head, bracket, params = nodeid.rpartition("[")
    return [
        head + bracket + _SHARD_OF.sub(f"shard{k}of{shard.shards}", params, count=1) for k in range(1, shard.shards + 1)
    ]


def _shards_text(nodeids: Sequence[str], what: str) -> str:
    """``shard 2 of 4 did not report``, ``shards 2, 3 of 4 did not report``."""
    shards = [MissingShard.of(nodeid) for nodeid in nodeids]
    if len(shards) == 1:
        return f"shard {shards[0].shard} of {shards[0].shards} {what}"
    return f"shards {', '.join(str(shard.shard) for shard in shards)} of {shards[0].shards} {what}"


@dataclass(frozen=True)
class ShardFaults:
    """The tests whose shards did not each report once: {test: shards that sent nothing} and {test: node
    ids reported more than once (by two jobs of a matrix)}. Tests are node ids without the shard."""

    missing: Mapping[str, Sequence[MissingShard]] = field(default_factory=dict)
    repeated: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def find(
        cls,
        reports: Iterable[TestReport],
        selected: Mapping[str, Collection[str]],
        accounted: Collection[str],
        repeated: Iterable[str] = (),
    ) -> ShardFaults:
        """``selected``: per sharded test, the node ids of the shards that should report; ``accounted``: the
        node ids that reported or that pytest skipped. Only tests some of whose shards reported are checked
        (a test none of whose shards reported is not in the reports at all)."""
        reported = {unsharded(report.nodeid) for report in reports}
        missing = {}
        for test in sorted(reported & selected.keys()):
            shards = sorted((MissingShard.of(nodeid) for nodeid in set(selected[test]) - set(accounted)),
                            key=lambda shard: shard.shard)  # fmt: skip
            if shards:
                missing[test] = shards
        twice: dict[str, list[str]] = {}
        for nodeid in sorted(set(repeated)):
            twice.setdefault(unsharded(nodeid), []).append(nodeid)
        return cls(missing, {test: sorted(ids, key=_shard_order) for test, ids in sorted(twice.items())})

    def tests(self) -> list[str]:
        """The tests with a fault, sorted."""
        return sorted({*self.missing, *self.repeated})

    def text(self, test: str) -> str:
        """``shard 2 of 4 did not report``; ``shard 3 of 4 reported more than once``."""
        parts = []
        if test in self.missing:
            parts.append(_shards_text([shard.nodeid for shard in self.missing[test]], "did not report"))
        repeated = self.repeated.get(test, ())
        sharded = [nodeid for nodeid in repeated if unsharded(nodeid) != nodeid]
        if sharded:
            parts.append(_shards_text(sharded, "reported more than once"))
        if len(sharded) < len(repeated):
            parts.append("reported more than once")
        return "; ".join(parts)

    def header(self) -> dict[str, Any]:
        """The JSON report's ``missing_shards`` and ``repeated_shards``, each only when not empty."""
        header: dict[str, Any] = {}
        if self.missing:
            header["missing_shards"] = {
                test: [shard.nodeid for shard in shards] for test, shards in self.missing.items()
            }
        if self.repeated:
            header["repeated_shards"] = {test: list(ids) for test, ids in self.repeated.items()}
        return header

    def judged(self, reports: Iterable[TestReport]) -> list[TestReport]:
        """One report per test (:func:`~.report.merge_shards`), a test with a fault marked failed and its
        recorded baseline entry withheld (the stored one is left as it was)."""
        faulty = set(self.tests())
        return [self._failed(report) if report.nodeid in faulty else report for report in merge_shards(list(reports))]

    def _failed(self, report: TestReport) -> TestReport:
        baseline = report.baseline
        if baseline is not None and baseline.status == "recorded":
            why = self.text(report.nodeid) or "a shard did not report exactly once"
            baseline = dataclasses.replace(baseline, withheld=why)
        return dataclasses.replace(report, failed=True, baseline=baseline)


def _shard_order(nodeid: str) -> tuple[int, str]:
    return (MissingShard.of(nodeid).shard if unsharded(nodeid) != nodeid else 0, nodeid)
