"""One self-contained HTML file: a summary per test and a card per flipped image, images inlined; and the
same cards as a fragment for another tool's page (pytest-html's extras).

No scripts, no external fonts or stylesheets: it opens offline, from a CI artifact or an e-mail. The
layout is a flexible grid, so the three images sit side by side on a laptop and stack on a phone.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .gates import baseline_text
from .report import HtmlCard, TestReport

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1rem;color:#1d1d1f;
background:#f6f6f7;line-height:1.4}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem;word-break:break-all}
.meta{color:#555;font-size:.85rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{border-bottom:1px solid #e3e3e6;padding:.35rem .5rem;text-align:left}
.bad{color:#b3261e;font-weight:600}.good{color:#146c2e;font-weight:600}
.card{background:#fff;border:1px solid #e3e3e6;border-radius:8px;padding:.8rem;margin:.8rem 0}
.card h3{font-size:1rem;margin:0 0 .3rem;word-break:break-all}
.transition{font-size:1rem;margin:.2rem 0 .6rem}
.images{display:flex;flex-wrap:wrap;gap:.6rem}
figure{margin:0;flex:1 1 160px;max-width:260px}figure img{width:100%;height:auto;image-rendering:pixelated;
border:1px solid #ddd}figcaption{font-size:.8rem;color:#555}
.curve{flex:2 1 280px;max-width:520px}
pre{white-space:pre-wrap;font-size:.8rem;background:#f0f0f2;padding:.4rem;border-radius:4px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(data: str | None, alt: str, caption: str, css: str = "") -> str:
    if not data:
        return f'<figure class="{css}"><figcaption>{_e(caption)}: not drawn (install matplotlib)</figcaption></figure>'
    return (
        f'<figure class="{css}"><img alt="{_e(alt)}" src="data:image/png;base64,{_e(data)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _summary_row(test: TestReport, minimal_column: bool, baseline_column: bool) -> str:
    counts = test.counts
    minimal = test.minimal_epsilons
    minimal_text = f"{minimal[0]:.4g} (min), {minimal[len(minimal) // 2]:.4g} (median)" if minimal else "—"
    baseline = baseline_text(test) if test.baseline is not None else "—"
    css = "bad" if counts.flipped or counts.misclassified else "good"
    return (
        f'<tr><td>{_e(test.nodeid)}</td><td>{counts.attacked}</td><td class="{css}">{counts.flipped}</td>'
        f"<td>{counts.misclassified}</td><td>{_e(counts.accuracy(test.confidence).text())}</td>"
        + (f"<td>{_e(minimal_text)}</td>" if minimal_column else "")
        + (f"<td>{_e(baseline)}</td>" if baseline_column else "")
        + "</tr>"
    )


_PLOT = (480, 200, 48, 12, 30)
"""The robustness curve's plot: width, height, left margin (y labels), top margin and bottom margin (x labels)."""


def _curves_svg(test: TestReport) -> str:
    """Robust accuracy as a function of ε, the curve robustness papers plot, as an inline SVG: the test's
    own (from each image's minimal ε) and the baseline's dashed over it; empty when minimal ε was not
    searched."""
    curve = test.curve()
    if not curve:
        return ""
    baseline = test.baseline_curve()
    settings = test.gate_settings
    top = max(eps for eps, _ in [*curve, *(baseline or [])]) or 1.0
    width, height, left, above, below = _PLOT
    plot_w, plot_h = width - left - 10, height - above - below

    def x(eps: float) -> float:
        return left + plot_w * eps / top

    def y(accuracy: float) -> float:
        return above + plot_h * (1 - accuracy)

    def steps(points: Sequence[tuple[float, float]]) -> str:
        path = f"M{x(points[0][0]):.1f},{y(points[0][1]):.1f}"
        for eps, accuracy in points[1:]:
            path += f" H{x(eps):.1f} V{y(accuracy):.1f}"
        return path + f" H{x(top):.1f}"

    parts = [
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{x(top):.1f}" y2="{y(0):.1f}" stroke="#888"/>',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{left}" y2="{y(1):.1f}" stroke="#888"/>',
    ]
    for accuracy in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{left - 4}" y="{y(accuracy) + 4:.1f}" text-anchor="end">{accuracy:.0%}</text>')
    for eps in (0.0, top / 2, top):
        parts.append(f'<text x="{x(eps):.1f}" y="{height - 14}" text-anchor="middle">{eps:.4g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 2}" text-anchor="middle">ε</text>')
    if settings is not None and 0 < settings.epsilon <= top:
        budget = x(settings.epsilon)
        parts.append(f'<line x1="{budget:.1f}" y1="{y(0):.1f}" x2="{budget:.1f}" y2="{y(1):.1f}" stroke="#bbb" '
                     'stroke-dasharray="2,3"/>')  # fmt: skip
    if baseline:
        parts.append(f'<path d="{steps(baseline)}" fill="none" stroke="#888" stroke-width="2" stroke-dasharray="6,4"/>')
    parts.append(f'<path d="{steps(curve)}" fill="none" stroke="#1f5fbf" stroke-width="2"/>')
    legend = "now (solid)" + (", baseline (dashed)" if baseline else "") + "; dotted: the test's ε"
    return (
        f'<figure class="curve"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="robust accuracy as a function of epsilon" '
        f'font-size="11" font-family="system-ui,sans-serif">{"".join(parts)}</svg>'
        f"<figcaption>robust accuracy as a function of ε, from each image's minimal ε: {legend}</figcaption></figure>"
    )


def _card(card: HtmlCard) -> str:
    fools = card.saved_file_fools
    saved = (
        ""
        if fools is None
        else f'<p class="meta">Saved 8-bit PNG re-predicted as {_e(card.saved_file_label)}: '
        f'<span class="{"bad" if fools else "good"}">{"still fools the model" if fools else "does not fool it"}'
        "</span></p>"
    )
    details = "".join(f"<pre>{_e(line)}</pre>" for line in card.details)
    return (
        f'<div class="card"><h3>{_e(card.name)}</h3>'
        f'<p class="transition">{_e(card.clean)} &rarr; <span class="bad">{_e(card.adversarial)}</span></p>'
        f'<p class="meta">{_e(card.line)}</p>{saved}'
        '<div class="images">'
        + _img(card.clean_png, "clean image", "clean")
        + _img(card.adversarial_png, "adversarial image", "adversarial (8-bit)")
        + _img(card.perturbation_png, "perturbation", f"perturbation ×{card.amplify:g}, grey = 0")
        + _img(card.curve_png, "probability per step", "probability per step", "curve")
        + f"</div>{details}</div>"
    )


def render_html(tests: Iterable[TestReport], header: Mapping[str, Any]) -> str:
    """The report for merged test reports (see :func:`report.merge_shards`) carrying their cards."""
    tests = list(tests)
    # columns only for what the run used: minimal ε when it was searched, baselines when they exist
    minimal_column = any(image.minimal_epsilon is not None for test in tests for image in test.images)
    baseline_column = any(test.baseline is not None for test in tests)
    rows = "".join(_summary_row(test, minimal_column, baseline_column) for test in tests)
    sections = []
    for test in tests:
        cards = [card for run in test.runs for card in run.cards]
        capped = [note for run in test.runs for note in run.settings.notes if "--adv-artifacts-max" in note]
        curve = _curves_svg(test)
        if cards or curve:
            sections.append(
                f"<h2>{_e(test.nodeid)}</h2>"
                + curve
                + "".join(f'<p class="meta">{_e(note)}</p>' for note in capped)
                + "".join(_card(card) for card in cards)
            )
    flipped = sum(t.counts.flipped for t in tests)
    attacked = sum(t.counts.attacked for t in tests)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Adversarial robustness: {flipped} of {attacked} flipped</title><style>{STYLE}</style></head><body>"
        f"<h1>Adversarial robustness: {flipped} of {attacked} image(s) flipped</h1>"
        f'<p class="meta">run defaults (markers override them per test): {_e(header.get("defaults", ""))} · '
        f"pytest-advrobust {_e(header.get('pytest_advrobust', ''))}</p>"
        "<table><thead><tr><th>test</th><th>attacked</th><th>flipped</th><th>misclassified</th><th>robust accuracy</th>"
        + ("<th>minimal ε</th>" if minimal_column else "")
        + ("<th>baseline</th>" if baseline_column else "")
        + "</tr></thead>"
        f"<tbody>{rows}</tbody></table>{''.join(sections) or '<p>No image flipped.</p>'}</body></html>\n"
    )


_FRAGMENT_FIGURE = "display:inline-block;vertical-align:top;margin:0 .6rem .4rem 0"
_FRAGMENT_IMAGE = "width:128px;height:auto;image-rendering:pixelated;border:1px solid #ccc"


def _fragment_figure(data: str, alt: str, caption: str) -> str:
    return (
        f'<figure style="{_FRAGMENT_FIGURE}"><img alt="{_e(alt)}" style="{_FRAGMENT_IMAGE}" '
        f'src="data:image/png;base64,{_e(data)}">'
        f'<figcaption style="font-size:.8rem">{_e(caption)}</figcaption></figure>'
    )


def cards_fragment(cards: Sequence[HtmlCard], failed: int, test_failed: bool = True) -> str:
    """The first ``cards`` of a test's ``failed`` images as an HTML fragment for another tool's page: each
    image's line, then its clean, adversarial and amplified perturbation PNGs inlined. Inline styles only,
    so the page's own stylesheet is left alone. ``test_failed=False``: the test passed, its baseline
    allowing these failures."""
    what = "failed" if test_failed else "failed (all known to the baseline: the test passed)"
    rest = "the failure message lists every one" if test_failed else "--adv-report lists every one"
    shown = (
        f"the first {len(cards)} of {failed} {what} images ({rest})"
        if failed > len(cards)
        else f"{failed} {what} image(s)"
    )
    parts = [f"<p><strong>adversarial robustness</strong>: {shown}</p>"]
    for card in cards:
        parts.append(
            f'<div class="advrobust-card"><pre style="white-space:pre-wrap">{_e(card.line)}</pre>'
            + _fragment_figure(card.clean_png, "clean image", f"clean: {card.clean}")
            + _fragment_figure(card.adversarial_png, "adversarial image", f"adversarial (8-bit): {card.adversarial}")
            + _fragment_figure(card.perturbation_png, "perturbation", f"perturbation ×{card.amplify:g}, grey = 0")
            + "</div>"
        )
    return "".join(parts)
