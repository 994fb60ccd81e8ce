"""``python -m pytest_advrobust merge REPORT...`` (or ``pytest-advrobust merge``): the jobs of a CI matrix,
each run with ``--adv-shard=K/N``, as one verdict, one JSON report, HTML report and Markdown summary (and,
on GitHub Actions, one job summary) and one baseline update. The rules are in :mod:`.core.results.merge`; the files
are written by the functions a pytest run writes them with, so they hold the numbers one process gives.

Exit status: 0 when every merged test passed; 1 when one failed, a job's shard is missing or came twice,
or a file could not be written; 2 when the reports cannot be merged (the message says why).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from .core.display import shown
from .core.errors import AdvRobustError
from .core.results.merge import MergedRun, MergeRefused, check_one_run, merge, read_shard_report
from .core.results.report import Counts
from .core.settings.parsers import names_folder
from .core.settings.reports import REPORT_FILES

REFUSED = 2
NO_CARDS = (
    "the HTML report shows no image: the jobs drew none (give them --adv-html=FILE too, and they draw the cards "
    "of their failed images)"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_advrobust", description="pytest-advrobust's commands.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    merge_parser = commands.add_parser(
        "merge",
        help="merge the reports of a CI matrix's jobs (--adv-shard=K/N) into one verdict",
        description=(
            "Merge the JSON reports of a CI matrix's jobs, each run with --adv-shard=K/N --adv-report=FILE, into "
            "one verdict (exit status 0: every test passed; 1: one failed, or a shard is missing or came twice; "
            "2: the reports are not one run), one JSON report, HTML report and Markdown summary, the job summary "
            "on GitHub Actions, and, when the jobs ran with --adv-baseline-update, one baseline update."
        ),
    )
    merge_parser.add_argument(
        "reports", nargs="+", metavar="REPORT", help="the jobs' JSON reports, e.g. reports/robustness.shard*of4.json"
    )
    for name, what in (
        ("report", "the merged JSON report"),
        ("html", "the merged HTML report"),
        ("markdown", "the Markdown summary"),
    ):
        merge_parser.add_argument(f"--{name}", type=_file_to_write(name), metavar="FILE", help=f"write {what} to FILE")
    merge_parser.add_argument(
        "--rootdir",
        type=Path,
        default=Path(),
        metavar="DIR",
        help="the project's folder as the jobs' pytest found it (a checkout of the commit they tested): its "
        "baseline folder is updated, and entries whose test is gone are found there. Default: the current folder",
    )
    merge_parser.add_argument(
        "--baseline-dir",
        type=Path,
        metavar="DIR",
        help="where the jobs' recorded baselines go (jobs run with --adv-baseline-update). Default: the jobs' "
        "baseline folder under --rootdir",
    )
    merge_parser.add_argument(
        "--no-github-summary",
        action="store_true",
        help="leave $GITHUB_STEP_SUMMARY alone (by default the summary is appended to it when it is set)",
    )
    return parser


def _file_to_write(name: str) -> Callable[[str], Path]:
    """argparse's ``type`` for ``--NAME=FILE``: a file to write, refused (a usage error, exit status 2) when
    it names a folder, by a trailing '/' or because it is one, with a file in it to give instead."""
    example = REPORT_FILES[name]

    def file(raw: str) -> Path:
        path = Path(raw)
        if names_folder(raw) or path.is_dir():
            suggested = Path(raw.strip(), example).as_posix()
            raise argparse.ArgumentTypeError(f"{raw} names a folder; name a file in it, e.g. --{name}={suggested}")
        return path

    return file


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """Run a command; returns the exit status."""
    args = _parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    out = sys.stdout if out is None else out
    try:
        reports = [read_shard_report(Path(path), path) for path in args.reports]
        check_one_run(reports)
    except MergeRefused as exc:
        print(f"advrobust merge: refused: {exc}", file=sys.stderr)
        return REFUSED
    run = merge(reports)
    absent = _absent_modules(run, args.rootdir)
    if absent and run.baseline_update:
        print(
            f"advrobust merge: refused: --rootdir {shown(str(args.rootdir))} does not hold the jobs' test files "
            f"({', '.join(shown(module) for module in absent[:3])}{', …' if len(absent) > 3 else ''}), so its "
            "baselines are not theirs: run the merge in the folder the jobs ran pytest in (their rootdir), or "
            "pass --rootdir=DIR",
            file=sys.stderr,
        )
        return REFUSED
    return _publish(run, args, environ, out)


def _absent_modules(run: MergedRun, rootdir: Path) -> list[str]:
    """The jobs' test modules (rootdir-relative) that are not files under ``rootdir``."""
    return [module for module in sorted(run.collected) if not (rootdir / module).is_file()]


def _publish(run: MergedRun, args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
    """The terminal summary, the files, and the exit status."""
    from .core.results.summary import summary_lines

    def say(line: str) -> None:
        print(line, file=out)

    if run.tests:
        say("-" * 20 + " adversarial robustness " + "-" * 20)
    for line, _ in summary_lines(run.tests):
        say(line)
    for message in run.gates.values():
        for line in message.splitlines():
            say(f"advrobust: {line}")
    for test in run.faults.tests():
        counted = (
            "the counts above are the other shards' only"
            if test in run.faults.missing
            else "the counts above take the first copy given"
        )
        say(f"advrobust: {shown(test)}: {run.faults.text(test)}; {counted}")
    for problem in run.problems:
        say(f"advrobust: {problem}")
    unwritten = False
    for what, path, write in _outputs(run, args, environ):
        try:
            lines = write()
        except (OSError, AdvRobustError) as exc:
            unwritten = True
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            say(f"advrobust: could not write the {what} to {shown(os.path.relpath(path))}: {shown(why)}")
            continue
        for line in lines:
            say(f"advrobust: {line}")
    counts = Counts.of([image for test in run.tests for image in test.images])
    failed = len(run.failed_tests)
    say(
        f"advrobust merge: {len(run.tests)} test(s) from {len(args.reports)} job report(s): {counts.flipped} of "
        f"{counts.attacked} image(s) flipped, {failed} test(s) failed"
        + ("; red" if run.failed or unwritten else "; green")
    )
    return 1 if run.failed or unwritten else 0


Output = tuple[str, Path, Callable[[], list[str]]]


def _outputs(run: MergedRun, args: argparse.Namespace, environ: Mapping[str, str]) -> list[Output]:
    """(what, where, the writer returning its lines) of each file asked for."""
    from .core.jsonfile import write_text
    from .core.results.github import append_step_summary
    from .core.results.html_report import render_html
    from .core.results.markdown import render_markdown
    from .core.results.summary import write_report

    outputs: list[Output] = []

    def text_file(what: str, path: Path, text: str, notes: Sequence[str] = ()) -> Output:
        def write() -> list[str]:
            write_text(path, text)
            return [f"{what} written to {shown(os.path.relpath(path))}", *notes]

        return (what, path, write)

    full_reports = tuple(os.path.relpath(path) for path in (args.html, args.report) if path is not None)
    markdown = render_markdown(run.tests, run.header, full_reports)
    if args.report is not None:
        report: Path = args.report

        def json_report() -> list[str]:
            write_report(report, run.tests, run.report_header)
            return [f"JSON report written to {shown(os.path.relpath(report))}"]

        outputs.append(("JSON report", report, json_report))
    if args.html is not None:
        failed = any(image.failed for test in run.tests for image in test.images)
        drawn = any(attack.cards for test in run.tests for attack in test.runs)
        notes = [NO_CARDS] if failed and not drawn else []
        outputs.append(text_file("HTML report", args.html, render_html(run.tests, run.header), notes))
    if args.markdown is not None:
        outputs.append(text_file("Markdown summary", args.markdown, markdown))
    step_summary = environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and not args.no_github_summary and run.tests:
        path = Path(step_summary)

        def job_summary() -> list[str]:
            append_step_summary(path, markdown)
            return ["summary appended to $GITHUB_STEP_SUMMARY (the run's page)"]

        outputs.append(("job summary", path, job_summary))
    baseline_dir: Path = args.baseline_dir if args.baseline_dir is not None else args.rootdir / run.baseline_dir
    # a link in the checkout (committed by the code under test) must not lead the writes elsewhere
    within: Path = args.baseline_dir if args.baseline_dir is not None else args.rootdir
    outputs.append(("baseline", baseline_dir, lambda: _baselines(run, baseline_dir, args.rootdir, within)))
    return outputs


def _baselines(run: MergedRun, baseline_dir: Path, rootdir: Path, within: Path) -> list[str]:
    """With ``--adv-baseline-update`` jobs: the recorded entries merged into the baseline files, image by
    image, and after a complete run the entries whose test is gone removed; otherwise those entries named."""
    from .core.baselines.store import find_unused, kept_text, recorded_updates, write_baselines
    from .core.results.summary import removed_text, unused_text

    # only where the jobs' test files are can a baseline entry's test be known to be gone
    unused = (
        find_unused(baseline_dir, rootdir, run.collected) if run.complete and not _absent_modules(run, rootdir) else {}
    )
    if not run.baseline_update:
        return [unused_text(unused)] if unused else []
    updates, kept = recorded_updates(run.tests)
    written = write_baselines(baseline_dir, updates, unused, within=within) if updates or unused else []
    lines = [f"baseline written to {shown(os.path.relpath(path))}" for path in written]
    lines += [kept_text(shown(test.nodeid), test) for test in kept]
    lines += [removed_text(unused)] if unused else []
    return lines


if __name__ == "__main__":
    sys.exit(main())
