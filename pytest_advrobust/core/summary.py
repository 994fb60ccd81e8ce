"""Session-wide view of robustness results: terminal lines and the JSON report.

Works on plain dicts (what ``AttackResult.to_dict()`` returns plus the test's node id), so results can
travel from pytest-xdist workers to the controller. Pure Python: no torch, no pytest.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPORT_SCHEMA_VERSION = 1


def summarize_test(nodeid: str, results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge the results of one test (the marker's attack and any adv_attack calls) into one dict."""
    images: list[dict[str, Any]] = []
    settings: list[dict[str, Any]] = []
    cards: list[dict[str, Any]] = []
    for result in results:
        images += list(result["images"])
        settings.append(dict(result["settings"]))
        cards += list(result.get("cards", []))
    flipped = sum(1 for image in images if image["flipped"] and not image["misclassified"])
    misclassified = sum(1 for image in images if image["misclassified"])
    held = len(images) - flipped - misclassified
    pairs = Counter(
        (
            image["clean_label_name"],
            image["shown_label_name"],
        )
        for image in images
        if image["flipped"] and not image["misclassified"]
    )
    return {
        "nodeid": nodeid,
        "attacked": len(images),
        "flipped": flipped,
        "misclassified": misclassified,
        "robust_accuracy": held / len(images) if images else None,
        "pairs": [[a, b, count] for (a, b), count in pairs.most_common()],
        "settings": settings,
        "images": images,
        "cards": cards,
    }


SHARD_ID = re.compile(r"-?shard\d+of\d+")


def unsharded(nodeid: str) -> str:
    """``test_x[shard2of4]`` -> ``test_x``; ``test_x[a-shard2of4]`` -> ``test_x[a]``."""
    if "shard" not in nodeid:
        return nodeid
    return SHARD_ID.sub("", nodeid).replace("[]", "").replace("[-", "[")


def merge_shards(summaries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One summary per decorated test: the shards of a test (from any xdist worker) merged."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for summary in summaries:
        groups.setdefault(unsharded(summary["nodeid"]), []).append(summary)
    merged = []
    for nodeid, parts in sorted(groups.items()):
        if len(parts) == 1 and parts[0]["nodeid"] == nodeid:
            merged.append(dict(parts[0]))
            continue
        parts = sorted(parts, key=lambda part: part["nodeid"])
        combined = summarize_test(
            nodeid,
            [{"images": p["images"], "settings": p["settings"][0], "cards": p.get("cards", [])} for p in parts],
        )
        combined["settings"] = combined["settings"][:1]
        combined["shards"] = [part["nodeid"] for part in parts]
        baselines = [part["baseline"] for part in parts if part.get("baseline")]
        if baselines:
            combined["baseline"] = _merge_baselines(baselines)
        merged.append(combined)
    return merged


def _merge_baselines(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    statuses = {part["status"] for part in parts}
    if statuses != {"compared"}:
        return dict(parts[0])
    merged: dict[str, Any] = {"status": "compared", "file": parts[0]["file"], "refused": None}
    for key in ("regressions", "improvements", "known", "new"):
        merged[key] = [item for part in parts for item in part[key]]
    merged["refused"] = next((part["refused"] for part in parts if part.get("refused")), None)
    return merged


def summary_lines(summaries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Per test: counts, robust accuracy and flipped-class pairs (``Egyptian cat -> paper towel ×2``)."""
    lines: list[str] = []
    for summary in merge_shards(summaries):
        accuracy = summary["robust_accuracy"]
        shown = "n/a" if accuracy is None or math.isnan(accuracy) else f"{accuracy:.0%}"
        settings = summary["settings"][0] if summary["settings"] else {}
        epsilon = settings.get("epsilon", float("nan"))
        how = f"{settings.get('attack', '?')} eps={epsilon:g} seed={settings.get('seed', '?')}"
        shards = f" in {len(summary['shards'])} shards" if summary.get("shards") else ""
        lines.append(
            f"{summary['nodeid']}: {summary['attacked']} attacked{shards}, {summary['flipped']} flipped, "
            f"{summary['misclassified']} misclassified, robust accuracy {shown} ({how})"
        )
        lines += [f"    {a} -> {b} ×{count}" for a, b, count in summary["pairs"]]
        baseline = summary.get("baseline")
        if baseline:
            lines.append("    baseline: " + baseline_status(baseline))
    return lines


def baseline_status(baseline: Mapping[str, Any]) -> str:
    """One phrase for a test's baseline state: recorded, none stored, not compared, or the counts."""
    if baseline["status"] == "recorded":
        return "recorded"
    if baseline["status"] == "missing":
        return f"none stored (in {baseline['file']})"
    if baseline.get("refused"):
        return "settings differ, not compared"
    return (
        f"{len(baseline['regressions'])} regression(s), {len(baseline['improvements'])} improvement(s), "
        f"{len(baseline['known'])} known flip(s)"
    )


def write_report(path: Path, summaries: Iterable[Mapping[str, Any]], header: Mapping[str, Any]) -> None:
    """Write the JSON report (sorted keys, schema version) atomically."""
    # the HTML report's inlined images stay out of the JSON; artifact paths are in each image
    tests = [{k: v for k, v in test.items() if k != "cards"} for test in merge_shards(summaries)]
    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        **header,
        "tests": tests,
        "totals": {
            "tests": len(tests),
            "attacked": sum(t["attacked"] for t in tests),
            "flipped": sum(t["flipped"] for t in tests),
            "misclassified": sum(t["misclassified"] for t in tests),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=_jsonable) + "\n", encoding="utf-8"
    )
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
