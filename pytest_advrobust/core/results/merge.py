"""The merge of a CI matrix's jobs: N pytest runs with ``--adv-shard=K/N`` (shard K of every decorated
test each) into one verdict, one JSON report, HTML report and Markdown summary and one baseline update,
with the numbers one process gives. ``python -m pytest_advrobust merge`` (:mod:`pytest_advrobust.__main__`)
writes them with the functions a pytest run uses.

A job's JSON report carries, under :data:`SHARD_KEY`, what the merge needs (:class:`ShardJob`): its test
reports as pytest-xdist workers send them (every record, the HTML cards, the recorded baseline entries), the
shards it accounted for, the tests it collected, its settings, library versions and exit status.

Reports that cannot be one run (another plugin or library version, other settings, another model, jobs of
another matrix) are refused (:class:`MergeRefused`). A shard set with a job missing or given twice, or a
test shard that did not report exactly once, is merged and red, and says which. Pure Python: no torch, no
pytest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..baselines.rule import baseline_entry
from ..display import shown
from ..errors import AdvRobustError
from ..settings import OPTIONS, AttackConfig, RunConfig, unparse
from ..settings.values import MAX_SHARDS, JobShard
from .gates import whole_test_failure
from .report import TestReport
from .shards import Shard, ShardFaults
from .summary import REPORT_SCHEMA_VERSION, status

SHARD_KEY = "shard"
"""The top-level key of a job's JSON report that holds its :class:`ShardJob`."""
REPORT_KEYS = ("schema_version", "tests", "totals", "missing_shards", "repeated_shards", SHARD_KEY)
"""The keys of a JSON report that are not the run's header (the header is every other key)."""
NOT_COMPARED = ("shard", "report", "html", "markdown", "github_summary", "artifacts")
"""Settings that only say which job a run is, or where its own files go: jobs of one run may differ."""
MERGE_COMMAND = "python -m pytest_advrobust merge"
MAX_REPORT_BYTES = 2**28
"""The largest file the merge reads as a job's report (256 MiB: HTML cards included, a report is megabytes;
reading JSON takes many times its size in memory)."""
_NOTHING_FAILED = (0, 5)
"""pytest's exit statuses of a job in which nothing failed: all passed, or it had no test to run."""


class MergeRefused(AdvRobustError):
    """The reports cannot be merged: a file is not a job's report, or the jobs are not one run."""


def job_settings(base: AttackConfig, run: RunConfig, rootdir: Path) -> dict[str, str]:
    """Every setting a job resolved from its command line and ini file, spelled as on the command line
    (paths relative to the rootdir), but those in :data:`NOT_COMPARED`: the jobs of one run agree on them."""

    def path_text(path: Path) -> str:
        return Path(os.path.relpath(path, rootdir)).as_posix()

    spelled = {}
    for option in OPTIONS:
        if option.name in NOT_COMPARED:
            continue
        holder: Any = base if option.per_test else run
        spelled[option.name] = unparse(option.name, getattr(holder, option.name), path_text)
    return spelled


@dataclass(frozen=True)
class ShardJob:
    """What one job of a matrix tells the merge, beyond its test reports' JSON entries."""

    shard: JobShard
    tests: list[TestReport]
    """The job's test reports as it received them (one per shard, from its xdist workers too)."""
    accounted: dict[str, str]
    """The test shards that reported or that pytest skipped: node id → the plugin's shard id (``shard2of4``)."""
    collected: dict[str, list[str]]
    """Per module (rootdir-relative), the tests the job ran (shards removed)."""
    complete: bool
    """Whether the job looked at every test it collected (no -k, no -x stop, no collection error)."""
    exit_status: int
    settings: dict[str, str]
    """:func:`job_settings`."""
    versions: dict[str, str]
    """Python's and the libraries' versions (:func:`~pytest_advrobust.core.baselines.identity.library_versions`)."""
    baseline_dir: str
    """The baseline folder, relative to the rootdir (POSIX separators)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.shard.index,
            "count": self.shard.count,
            "tests": [test.to_wire() for test in self.tests],
            "accounted": dict(sorted(self.accounted.items())),
            "collected": {module: sorted(tests) for module, tests in sorted(self.collected.items())},
            "complete": self.complete,
            "exit_status": self.exit_status,
            "settings": dict(self.settings),
            "versions": dict(self.versions),
            "baseline_dir": self.baseline_dir,
        }

    @classmethod
    def from_json(cls, data: Any) -> ShardJob:
        """Raises ``ValueError`` naming the first field that is not what :meth:`to_json` writes."""
        job = _of(data, dict, SHARD_KEY)
        for key in job:
            if key not in SHARD_FIELDS:
                raise ValueError(f"shard.{key} is not a field of a job's report"[:120])
        index, count = _of(job.get("index"), int, "shard.index"), _of(job.get("count"), int, "shard.count")
        if not 1 <= index <= count <= MAX_SHARDS:
            raise ValueError(f"shard.index must be 1 to shard.count (at most {MAX_SHARDS}), not {index} of {count}")
        own = JobShard(index, count)
        collected = {}
        for module, names in _of(job.get("collected"), dict, "shard.collected").items():
            where = f"shard.collected[{module!r}]"
            _within_rootdir(module, where)  # its baseline file may lose entries
            collected[module] = [_of(name, str, f"{where}[]") for name in _of(names, list, where)]
        tests = []
        for k, test in enumerate(_of(job.get("tests"), list, "shard.tests")):
            where = f"shard.tests[{k}]"
            report = TestReport.from_wire(test, where)  # ValueError names the field
            if report.shard or report.test:
                _job_shard(report.nodeid, report.shard, own, where, report.test)
            if report.baseline is not None:  # its baseline file is written there
                _baseline_module(report.baseline.module, collected, f"{where}.baseline.module")
            tests.append(report)
        versions = _strings(job.get("versions"), "shard.versions")
        for k, report in enumerate(tests):
            _recorded_entry(report, versions, f"shard.tests[{k}].baseline.entry")
        accounted = {}
        for nodeid, shard in _of(job.get("accounted"), dict, "shard.accounted").items():
            where = f"shard.accounted[{nodeid!r}]"
            accounted[nodeid] = _job_shard(nodeid, _of(shard, str, where), own, where)
        return cls(
            shard=own,
            tests=tests,
            accounted=accounted,
            collected=collected,
            complete=_of(job.get("complete"), bool, "shard.complete"),
            exit_status=_exit_status(job.get("exit_status")),
            settings=_strings(job.get("settings"), "shard.settings"),
            versions=versions,
            baseline_dir=_within_rootdir(_of(job.get("baseline_dir"), str, "shard.baseline_dir"), "shard.baseline_dir"),
        )


SHARD_FIELDS = (
    "index",
    "count",
    "tests",
    "accounted",
    "collected",
    "complete",
    "exit_status",
    "settings",
    "versions",
    "baseline_dir",
)
"""The keys of a job's :class:`ShardJob` (what :meth:`ShardJob.to_json` writes)."""


def _exit_status(value: Any) -> int:
    status: int = _of(value, int, "shard.exit_status")
    if not 0 <= status <= 255:
        raise ValueError(f"shard.exit_status must be a process's exit status (0 to 255), not {status}"[:120])
    return status


def _job_shard(nodeid: str, shard: str, job: JobShard, where: str, test: str | None = None) -> str:
    """``shard`` if it is one the plugin makes of ``nodeid`` (:meth:`Shard.of`) and the one a job ``job``
    runs (``--adv-shard=K/N`` makes shard K of N of every test), else ``ValueError`` naming ``where``."""
    try:
        found = Shard.of(nodeid, shard, test)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if (found.index, found.count) != (job.index, job.count):
        raise ValueError(
            f"{where} is {shard}, but shard.index and shard.count say the job ran shard {job.index} of {job.count}"[
                :160
            ]
        )
    return shard


def _recorded_entry(report: TestReport, versions: dict[str, str], where: str) -> None:
    """A recorded baseline entry must be the one its marker run records (:func:`baseline_entry` of that run,
    its fingerprint and the job's versions): the merge writes it to a committed file, so nothing in it may
    be other than what the run's checked fields say."""
    status = report.baseline
    if status is None or status.status != "recorded" or status.entry is None:
        return
    runs = [run for run in report.runs if run.marker]
    if len(runs) != 1 or runs[0].model_fingerprint is None:
        raise ValueError(f"{where} has no run of the adv_robust marker with a model fingerprint to come from")
    expected = baseline_entry(runs[0], runs[0].model_fingerprint, versions).to_json()
    written = status.entry.to_json()
    if written != expected:
        differing = sorted(key for key in {*written, *expected} if written.get(key) != expected.get(key))
        raise ValueError(f"{where} is not the entry its run records ({', '.join(differing)} differ)")


def _baseline_module(module: str, collected: dict[str, list[str]], where: str) -> str:
    """A recorded baseline's module: a Python file within the rootdir that the job collected."""
    _within_rootdir(module, where)
    if not module.endswith(".py") or module not in collected:
        raise ValueError(f"{where} must be a test module the job collected (shard.collected), not {module!r}"[:160])
    return module


def _within_rootdir(path: str, where: str) -> str:
    """``path`` if it names a place inside the rootdir (relative, no ``..``, no NUL, ``/`` separators), else a
    ``ValueError`` naming ``where``: the merge writes files there."""
    parts = PurePosixPath(path).parts
    inside = path and "\x00" not in path and "\\" not in path and not PurePosixPath(path).is_absolute()
    if not inside or ".." in parts or PureWindowsPath(path).drive:
        raise ValueError(f"{where} must be a path within the rootdir, not {path!r}"[:160])
    return path


def _of(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
        got = "missing" if value is None else f"{type(value).__name__} {value!r}"[:60]
        raise ValueError(f"{where} must be {kind.__name__}, not {got}")
    return value


def _strings(value: Any, where: str) -> dict[str, str]:
    mapping = _of(value, dict, where)
    return {key: _of(text, str, f"{where}[{key!r}]") for key, text in mapping.items()}


@dataclass(frozen=True)
class ShardReport:
    """One job's JSON report: where it was read from (as given), the run's header and the job."""

    path: str
    header: dict[str, Any]
    job: ShardJob


def read_shard_report(path: Path, given: str | None = None) -> ShardReport:
    """Read one job's report; raises :class:`MergeRefused` saying why a file is not one (``given``: the
    path as the user wrote it, for the message)."""
    name = shown(given if given is not None else str(path))
    if path.is_dir():
        raise MergeRefused(f"{name} is a folder, not a job's report: name the reports in it ({name}/*.shard*.json)")
    _regular_report(path, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeRefused(f"{name}: no such file (was the job's report downloaded?)") from None
    except OSError as exc:
        raise MergeRefused(f"{name} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MergeRefused(f"{name} is not a JSON report: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise MergeRefused(f"{name} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise MergeRefused(f"{name} is not a job's report: its JSON is nested too deeply to read") from None
    except ValueError:  # a number beyond Python's int-from-text limit
        raise MergeRefused(f"{name} is not a job's report: it holds a number of more than 4300 digits") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or isinstance(version, bool) or version != REPORT_SCHEMA_VERSION:
        what = "no schema_version" if version is None else f"schema_version {shown(repr(version))}"
        raise MergeRefused(
            f"{name} is not a JSON report this pytest-advrobust reads ({what}; it reads {REPORT_SCHEMA_VERSION})"
        )
    if SHARD_KEY not in data:
        raise MergeRefused(
            f"{name} is the report of a run without --adv-shard=K/N: only the reports of a matrix's jobs, each "
            "run with --adv-shard=K/N, can be merged"
        )
    try:
        job = ShardJob.from_json(data[SHARD_KEY])
    except ValueError as exc:
        raise MergeRefused(f"{name} is not a job's report this pytest-advrobust wrote: {shown(str(exc))}") from None
    header = {key: value for key, value in data.items() if key not in REPORT_KEYS}
    return ShardReport(given if given is not None else str(path), header, job)


def _regular_report(path: Path, name: str) -> None:
    """Refuse what is not a regular file of at most :data:`MAX_REPORT_BYTES` (a FIFO, a device, a link to
    one): reading it could block or never end."""
    try:
        found = path.stat()
    except FileNotFoundError:
        raise MergeRefused(f"{name}: no such file (was the job's report downloaded?)") from None
    except OSError as exc:
        raise MergeRefused(f"{name} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(found.st_mode):
        raise MergeRefused(f"{name} is not a regular file (a device, a FIFO or a socket), not a job's report")
    if found.st_size > MAX_REPORT_BYTES:
        raise MergeRefused(
            f"{name} is {found.st_size / 2**20:.0f} MiB, more than a job's report can be "
            f"({MAX_REPORT_BYTES // 2**20} MiB): is it a job's report?"
        )


def check_one_run(reports: Sequence[ShardReport]) -> None:
    """Raise :class:`MergeRefused` when the reports cannot be the jobs of one run: another plugin version,
    another number of jobs, other settings or library versions, or another model for a test."""
    if not reports:
        raise MergeRefused("no report to merge: name the jobs' reports (reports/*.shard*.json)")
    first = reports[0]
    for report in reports[1:]:
        if report.job.shard.count != first.job.shard.count:
            raise MergeRefused(
                f"{_name(first)} is a job of {first.job.shard.count} and {_name(report)} a job of "
                f"{report.job.shard.count}: they are jobs of two matrices; merge the reports of one workflow run"
            )
        # the settings one by one first: the header's line of defaults holds several of them
        _same(first, report, "settings", "a setting")
        _same(first, report, "versions", "a library version")
        _same(first, report, "header", "the run's, in the report's header")
    _same_models(reports)
    _same_test_settings(reports)


RUN_ONLY = ("notes", "from_model", "device")
"""What a test's run settings may differ in between two jobs beyond what the report leaves out already (its
batches): what each job saw (its notes, its device under ``auto``), not what it was asked to do."""


def _same_test_settings(reports: Sequence[ShardReport]) -> None:
    """Each test ran with the same settings in every job (its marker's run): the shards of one test are one
    test only then."""
    seen: dict[str, tuple[dict[str, Any], ShardReport]] = {}
    for report in reports:
        for test in report.job.tests:
            for run in test.runs:
                if not run.marker:
                    continue
                mine = {key: value for key, value in run.settings.to_json().items() if key not in RUN_ONLY}
                first, where = seen.setdefault(test.test_id, (mine, report))
                differing = sorted(key for key in mine if mine[key] != first.get(key))
                if differing:
                    key = differing[0]
                    raise MergeRefused(
                        f"these reports are not one run: {shown(test.test_id)} ran with {key} "
                        f"{_cut(repr(first.get(key)))} in {_name(where)} and {_cut(repr(mine[key]))} in "
                        f"{_name(report)}; merge the reports of jobs that ran the same code with the same settings"
                    )


def _name(report: ShardReport) -> str:
    return shown(report.path)


def _same(first: ShardReport, other: ShardReport, what: str, title: str) -> None:
    mine = first.header if what == "header" else getattr(first.job, what)
    theirs = other.header if what == "header" else getattr(other.job, what)
    differing = sorted(key for key in {*mine, *theirs} if mine.get(key) != theirs.get(key))
    if differing:
        key = differing[0]
        raise MergeRefused(
            f"these reports are not one run: {shown(key)[:60]} ({title}) is {_cut(repr(mine.get(key)))} in "
            f"{_name(first)} and {_cut(repr(theirs.get(key)))} in {_name(other)}"
            + (f" ({len(differing) - 1} more differ)" if len(differing) > 1 else "")
            + "; merge the reports of jobs that ran the same code with the same settings and libraries"
        )


def _cut(text: str, most: int = 80) -> str:
    """``text`` escaped and at most ``most`` characters (a report's value can be megabytes)."""
    return shown(text[:most]) + ("…" if len(text) > most else "")


def _same_models(reports: Sequence[ShardReport]) -> None:
    """Each test attacked one model in every job (the fingerprint of its marker's runs)."""
    seen: dict[str, tuple[str, ShardReport]] = {}
    for report in reports:
        for test in report.job.tests:
            for run in test.runs:
                if run.model_fingerprint is None:
                    continue
                key = test.test_id
                fingerprint, where = seen.setdefault(key, (run.model_fingerprint, report))
                if fingerprint != run.model_fingerprint:
                    raise MergeRefused(
                        f"{_name(where)} and {_name(report)} are not one run: {shown(key)} attacked two models "
                        f"({shown(fingerprint[:19])}… and {shown(run.model_fingerprint[:19])}…); the jobs must "
                        "test the same weights (a model file that changed between jobs, a download of another version?)"
                    )


@dataclass
class MergedRun:
    """The jobs as one run: what the writers take, and what makes it red."""

    header: dict[str, Any]
    """The run's header, as one process writes it (without the shard faults)."""
    tests: list[TestReport]
    """One report per test (shards merged), a test with a shard fault marked failed."""
    faults: ShardFaults
    problems: list[str] = field(default_factory=list)
    """The job set's problems: jobs missing or given twice, a job whose pytest failed outside the reports."""
    baseline_update: bool = False
    baseline_dir: str = ""
    complete: bool = False
    """Each job's report came once, and every job looked at every test it collected: only then are the
    baseline entries whose test is gone unused."""
    collected: dict[str, set[str]] = field(default_factory=dict)
    gates: dict[str, str] = field(default_factory=dict)
    """Per test that fails the gates on its images together (minimum robust accuracy, statistical baseline
    rule), the message one process gives it."""

    @property
    def report_header(self) -> dict[str, Any]:
        """The JSON report's header: the run's and the shard faults."""
        return {**self.header, **self.faults.header()}

    @property
    def failed_tests(self) -> list[TestReport]:
        return [test for test in self.tests if status(test) == "failed"]

    @property
    def failed(self) -> bool:
        return bool(self.problems or self.faults.tests() or self.failed_tests)


def merge(reports: Sequence[ShardReport]) -> MergedRun:
    """The jobs of one run (:func:`check_one_run` first) as one: each job's first report counts; a job
    missing or given twice, and a test shard that did not report exactly once, make the run red."""
    count = reports[0].job.shard.count
    by_index: dict[int, list[ShardReport]] = {}
    for report in reports:
        by_index.setdefault(report.job.shard.index, []).append(report)
    problems = []
    missing_jobs = [index for index in range(1, count + 1) if index not in by_index]
    if missing_jobs:
        problems.append(
            f"no report of {_jobs(missing_jobs, count)} among the {len(reports)} given (a job that did not run, "
            "or whose report was not downloaded)"
        )
    for index, copies in sorted(by_index.items()):
        if len(copies) > 1:
            files = list(dict.fromkeys(_name(copy) for copy in copies))  # one file may be named twice
            problems.append(
                f"shard {index} of {count} given {len(copies)} times: "
                + (", ".join(files) if len(files) > 1 else f"{files[0]} each time")
                + (f" (only {_name(copies[0])} is merged)" if len(files) > 1 else "")
            )
    tests: list[TestReport] = []
    taken: set[str] = set()
    repeated: list[str] = []
    for report in reports:  # in the order given: a job's first copy is merged, the same shard again is repeated
        job = report.job
        for nodeid in {*job.accounted, *(test.nodeid for test in job.tests)}:
            if nodeid in taken:
                repeated.append(nodeid)
        own: dict[str, TestReport] = {}
        for test in job.tests:
            if test.nodeid in own:  # one job's report lists a test twice: counted once, and red
                repeated.append(test.nodeid)
            elif test.nodeid not in taken:
                own[test.nodeid] = test
        taken.update(job.accounted, (test.nodeid for test in job.tests))
        tests += own.values()
        if job.exit_status not in _NOTHING_FAILED and not any(test.failed for test in job.tests):
            what = (
                "while its robustness tests passed"
                if job.tests
                else "and reported no robustness test (a collection error, or a run stopped early?)"
            )
            problems.append(
                f"shard {job.shard.index} of {job.shard.count} ({_name(report)}): pytest exited with status "
                f"{job.exit_status} {what}: see that job's log"
            )
    expected: dict[str, Shard] = {}
    for report in reports:  # every shard of each test the jobs split: all N of them run in a matrix
        shards = [(test.nodeid, test.shard) for test in report.job.tests if test.shard]
        for nodeid, shard in [*shards, *report.job.accounted.items()]:
            expected.update((sibling.nodeid, sibling) for sibling in Shard.of(nodeid, shard).siblings())
    faults = ShardFaults.find(tests, expected, taken, repeated)
    judged, gates = _gated(faults.judged(tests))
    collected: dict[str, set[str]] = {}
    for report in reports:
        for module, names in report.job.collected.items():
            collected.setdefault(module, set()).update(names)
    first = reports[0]
    return MergedRun(
        header=dict(first.header),
        tests=judged,
        faults=faults,
        gates=gates,
        problems=problems,
        baseline_update=first.job.settings.get("baseline_update") == "true",
        baseline_dir=first.job.baseline_dir,
        complete=len(by_index) == count == len(reports) and all(report.job.complete for report in reports),
        collected=collected,
    )


def _gated(tests: list[TestReport]) -> tuple[list[TestReport], dict[str, str]]:
    """The tests with the gates on each one's shards together (:func:`~.gates.whole_test_failure`): a test
    that fails them is failed, with its message."""
    judged, messages = [], {}
    for test in tests:
        message = whole_test_failure(test, len(test.shards)) if test.shards else None
        if message is not None:
            messages[test.nodeid] = message
            test = dataclasses.replace(test, failed=True)
        judged.append(test)
    return judged, messages


def _jobs(indexes: Sequence[int], count: int) -> str:
    if len(indexes) == 1:
        return f"shard {indexes[0]} of {count}"
    return f"shards {', '.join(map(str, indexes))} of {count}"


def merge_command(
    shard: JobShard, report: str, html: str | None = None, markdown: str | None = None, extra: Iterable[str] = ()
) -> str:
    """The command that merges every job's report, to paste in the folder the job ran in: ``report``,
    ``html`` and ``markdown`` are the merged files (this job's names without ``.shardKofN``), relative to it."""
    path = Path(report)
    pattern = (
        shlex.quote(str(path.with_name(f"{path.stem}.shard"))) + "*" + shlex.quote(f"of{shard.count}{path.suffix}")
    )
    options = [f"--report={report}"]
    options += [f"--html={html}"] if html is not None else []
    options += [f"--markdown={markdown}"] if markdown is not None else []
    return f"{MERGE_COMMAND} {pattern} " + shlex.join([*options, *extra])
