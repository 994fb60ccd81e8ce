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

from ..settings.values import MAX_SHARDS
from .report import TestReport, merge_shards

SHARD_ID = re.compile(r"shard([1-9][0-9]{0,8})of([1-9][0-9]{0,8})")
"""The plugin's own id of a shard, ``shard2of4``: only ever read where the plugin said it put one."""


def _component(params: str, shard: str) -> re.Match[str] | None:
    """The last occurrence of ``shard`` as a whole id in a test's parameter ids (``a-shard2of4``)."""
    found = list(re.finditer(rf"(?:^|-){re.escape(shard)}(?=-|$)", params))
    return found[-1] if found else None


def _replace(nodeid: str, shard: str, new: str) -> str | None:
    """``nodeid`` with the plugin's ``shard`` in its last parameter group replaced by ``new`` ("": removed,
    with its separator and an emptied group); None when it holds none."""
    head, bracket, params = nodeid.rpartition("[")
    if not bracket or not params.endswith("]"):
        return None
    inner = params[:-1]
    found = _component(inner, shard)
    if found is None:
        return None
    start, end = found.span()
    lead = "-" if inner[start : start + 1] == "-" else ""
    if new:
        inner = inner[:start] + lead + new + inner[end:]
    else:
        inner = inner[:start] + inner[end:]
        inner = inner[1:] if not lead and inner.startswith("-") else inner
    return head + (f"[{inner}]" if inner else "")


def without_shard(nodeid: str, shard: str) -> str | None:
    """``test_x[a-shard2of4]`` without the plugin's ``shard2of4``: ``test_x[a]`` (None: it holds no such id
    where the plugin puts it). A test or parameter whose own name looks like a shard is left alone."""
    return _replace(nodeid, shard, "")


@dataclass(frozen=True)
class Shard:
    """One of the test cases the plugin splits a decorated test into: ``index`` of ``count`` (1-based), its
    node id and the test's node id without it. Built only from what the plugin says it made (the ``shard``
    a test report or a collected item carries), never by matching a pattern in a name."""

    nodeid: str
    test: str
    index: int
    count: int

    @property
    def id(self) -> str:
        return f"shard{self.index}of{self.count}"

    @classmethod
    def of(cls, nodeid: str, shard: str, test: str | None = None) -> Shard:
        """The shard ``shard`` (``shard2of4``) of node id ``nodeid``; ``ValueError`` naming what is wrong when
        it is not one the plugin makes (beyond :data:`MAX_SHARDS`, not in the node id's parameters, or with
        another ``test`` than the node id without it)."""
        found = SHARD_ID.fullmatch(shard) if isinstance(shard, str) else None
        if found is None:
            raise ValueError(f"shard must be shardKofN, not {shard!r}"[:120])
        index, count = int(found[1]), int(found[2])
        if not 1 <= index <= count <= MAX_SHARDS:
            raise ValueError(f"shard {shard!r} must have 1 ≤ K ≤ N ≤ {MAX_SHARDS}"[:120])
        whole = without_shard(nodeid, shard)
        if whole is None or (test is not None and test != whole):
            raise ValueError(f"node id {nodeid!r} is not shard {shard} of test {test!r}"[:160])
        return cls(nodeid, whole, index, count)

    def siblings(self) -> list[Shard]:
        """Every shard of the test, this one included, in order."""
        shards = []
        for k in range(1, self.count + 1):
            nodeid = _replace(self.nodeid, self.id, f"shard{k}of{self.count}")
            assert nodeid is not None
            shards.append(Shard(nodeid, self.test, k, self.count))
        return shards


def _shards_text(shards: Sequence[Shard], what: str) -> str:
    """``shard 2 of 4 did not report``, ``shards 2, 3 of 4 did not report``."""
    if len(shards) == 1:
        return f"shard {shards[0].index} of {shards[0].count} {what}"
    return f"shards {', '.join(str(shard.index) for shard in shards)} of {shards[0].count} {what}"


@dataclass(frozen=True)
class ShardFaults:
    """The tests whose shards did not each report once: {test: shards that sent nothing} and {test: node
    ids reported more than once (by two jobs of a matrix)}. Tests are node ids without the shard."""

    missing: Mapping[str, Sequence[Shard]] = field(default_factory=dict)
    repeated: Mapping[str, Sequence[str]] = field(default_factory=dict)
    known: Mapping[str, Shard] = field(default_factory=dict)
    """The shards by node id, to name them."""

    @classmethod
    def find(
        cls,
        reports: Iterable[TestReport],
        expected: Mapping[str, Shard],
        accounted: Collection[str],
        repeated: Iterable[str] = (),
    ) -> ShardFaults:
        """``expected``: every shard that should report, by node id; ``accounted``: the node ids that
        reported or that pytest skipped. Only tests some of whose shards reported are checked (a test none
        of whose shards reported is not in the reports at all)."""
        reported = {report.test_id for report in reports if report.shard}
        missing: dict[str, list[Shard]] = {}
        for nodeid, shard in sorted(expected.items(), key=lambda item: (item[1].test, item[1].index)):
            if shard.test in reported and nodeid not in accounted:
                missing.setdefault(shard.test, []).append(shard)
        twice: dict[str, list[str]] = {}
        for nodeid in sorted(set(repeated)):
            known = expected.get(nodeid)
            twice.setdefault(known.test if known is not None else nodeid, []).append(nodeid)
        order = {nodeid: shard.index for nodeid, shard in expected.items()}
        return cls(
            dict(sorted(missing.items())),
            {
                test: sorted(ids, key=lambda nodeid: (order.get(nodeid, 0), nodeid))
                for test, ids in sorted(twice.items())
            },
            dict(expected),
        )

    def tests(self) -> list[str]:
        """The tests with a fault, sorted."""
        return sorted({*self.missing, *self.repeated})

    def text(self, test: str) -> str:
        """``shard 2 of 4 did not report``; ``shard 3 of 4 reported more than once``."""
        parts = []
        if test in self.missing:
            parts.append(_shards_text(self.missing[test], "did not report"))
        repeated = self.repeated.get(test, ())
        sharded = [self.known[nodeid] for nodeid in repeated if nodeid in self.known]
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
