"""Seeing a flip: the clean image, the adversarial one, the perturbation amplified, the probability curve.

Every image is written as a lossless 8-bit PNG. The adversarial PNG is the 8-bit image the verdict judged,
and it is re-predicted *from the saved file*, so the report can say whether a user who downloads it
still fools the model. The curve is drawn with matplotlib (the ``report`` extra): it is the standard
plotting library, renders headless with its Agg backend, and writes a PNG an HTML report can inline.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..jsonfile import write_json
from ..models.model import WrappedModel, eval_mode
from ..settings.table import default
from .report import HtmlCard, ImageRecord


def png_bytes(pixels: torch.Tensor) -> bytes:
    """A C×H×W tensor in [0,1] (C = 3 or 1) as an 8-bit RGB or grayscale PNG (values rounded to k/255)."""
    from PIL import Image

    array = (pixels.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    gray = array.shape[2] == 1
    Image.fromarray(np.ascontiguousarray(array[:, :, 0] if gray else array), "L" if gray else "RGB").save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def perturbation_pixels(adversarial: torch.Tensor, clean: torch.Tensor, amplify: float) -> torch.Tensor:
    """The perturbation ×``amplify``, centred on grey (0.5 = no change), clipped to [0,1]."""
    return (0.5 + amplify * (adversarial - clean)).clamp(0, 1)


def curve_png(record: ImageRecord) -> bytes | None:
    """Probabilities per step of the true class, the target, and the top class; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed, so no probability curves are drawn: pip install 'pytest-advrobust[report]'",
            stacklevel=2,
        )
        return None
    steps = list(range(len(record.label_curve)))
    figure, axes = plt.subplots(figsize=(5, 3), dpi=100)
    axes.plot(steps, record.label_curve, marker="o", label=f"true: {record.label_name}")
    if record.target_curve is not None:
        axes.plot(steps, record.target_curve, marker="s", label=f"target: {record.target_name}")
    axes.plot(steps, record.top_curve, linestyle="--", color="grey", label="top class")
    for step, (before, after) in enumerate(zip(record.path_names, record.path_names[1:], strict=False), start=1):
        if before != after:
            axes.annotate(
                after,
                (step, record.top_curve[step]),
                fontsize=7,
                rotation=20,
                textcoords="offset points",
                xytext=(2, 4),
            )
    axes.set_xlabel("step")
    axes.set_ylabel("probability")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"{record.name}: eps={record.epsilon:g}", fontsize=9)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


@dataclass
class Card:
    """What is shown of one image: its PNGs, its numbers, and where its files went."""

    record: ImageRecord
    clean_png: bytes
    adversarial_png: bytes
    perturbation_png: bytes
    curve_png: bytes | None
    amplify: float = default("amplify")
    saved_file_fools: bool | None = None
    saved_file_label: str | None = None
    paths: dict[str, str] = field(default_factory=dict)

    def to_html(self) -> HtmlCard:
        """What the HTML report shows of this image, PNGs inlined as base64."""

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode("ascii")

        _, adv_name, adv_prob = self.record.shown_label
        return HtmlCard(
            name=self.record.name,
            line=self.record.line(),
            details=self.record.details(),
            clean=f"{self.record.clean_label_name} {self.record.clean_prob:.2f}",
            adversarial=f"{adv_name} {adv_prob:.2f}",
            amplify=self.amplify,
            saved_file_fools=self.saved_file_fools,
            saved_file_label=self.saved_file_label,
            clean_png=b64(self.clean_png),
            adversarial_png=b64(self.adversarial_png),
            perturbation_png=b64(self.perturbation_png),
            curve_png=None if self.curve_png is None else b64(self.curve_png),
        )


def build_cards(
    records: Sequence[ImageRecord],
    clean: torch.Tensor,
    rounded: torch.Tensor,
    model: WrappedModel,
    *,
    amplify: float = default("amplify"),
    all_images: bool = False,
    limit: int | None = None,
    curves: bool = True,
) -> list[Card]:
    """Cards for the flipped images (or all) of one batch (``clean``/``rounded``: its rows, in the order of
    ``records``), the first ``limit`` of them (None: every one); each adversarial PNG is re-predicted from
    its bytes; ``curves=False`` draws no probability curves."""
    from PIL import Image

    cards: list[Card] = []
    for row, record in enumerate(records):
        if not (all_images or record.failed):
            continue
        if limit is not None and len(cards) >= limit:
            break
        image, adversarial = clean[row], rounded[row]
        card = Card(
            record=record,
            clean_png=png_bytes(image),
            adversarial_png=png_bytes(adversarial),
            perturbation_png=png_bytes(perturbation_pixels(adversarial, image, amplify)),
            curve_png=curve_png(record) if curves else None,
            amplify=amplify,
        )
        channels = "L" if image.shape[0] == 1 else "RGB"
        reloaded = np.asarray(Image.open(io.BytesIO(card.adversarial_png)).convert(channels), dtype=np.float32) / 255
        pixels = torch.from_numpy(reloaded.reshape(*reloaded.shape[:2], -1)).permute(2, 0, 1)[None]
        with torch.no_grad(), eval_mode(model.model):
            label = int(model.logits(pixels.to(model.device)).argmax(dim=1))
        card.saved_file_label = record.adv_label_8bit_name if label == record.adv_label_8bit else f"class {label}"
        card.saved_file_fools = label != record.label
        cards.append(card)
    return cards


MAX_FILE_NAME_BYTES = 255
"""The longest file name, in bytes, that ext4, APFS, NTFS and most other file systems allow."""
MAX_STEM_BYTES = 200
"""The longest stem (UTF-8 bytes) of an image's files: ``<stem>-perturbation.png`` and the JSON writer's
temp file beside ``<stem>.json`` both stay well within :data:`MAX_FILE_NAME_BYTES`."""
HASH_CHARS = 8
"""Hex digits of sha256 that tell apart names which coincide once file-safe, or once shortened."""


def _file_safe(name: str) -> str:
    """Letters, digits (of any script), ``.``, ``_`` and ``-``; the image extension dropped; any length."""
    stem = re.sub(r"\.(png|jpe?g|bmp|webp|gif|tiff?)$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^\w.-]+", "_", stem).strip("_") or "image"


def _with_hash(stem: str, name: str, max_bytes: int, chars: int = HASH_CHARS) -> str:
    """``<stem>-<hash of name>``, the stem cut (at a character boundary) so the whole fits ``max_bytes`` of
    UTF-8."""
    tag = "-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:chars]
    room = max_bytes - len(tag)
    cut = stem.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore").rstrip("_.-")
    return (cut or "image") + tag


def safe_name(name: str, max_bytes: int = MAX_STEM_BYTES) -> str:
    """An image or test name as a file name: ``cat/a.png`` -> ``cat_a``. A name longer than ``max_bytes``
    in UTF-8 is cut and ends with a short hash of the whole name, so it stays apart from its neighbours."""
    stem = _file_safe(name)
    return stem if len(stem.encode("utf-8", "surrogatepass")) <= max_bytes else _with_hash(stem, name, max_bytes)


def unique_stems(names: Iterable[str], max_bytes: int = MAX_STEM_BYTES) -> dict[str, str]:
    """Each distinct name's :func:`safe_name`, made unique where file systems ignore case: names that
    coincide (``red/a b.png``, ``red/a_b.png``, ``red/a b.jpg``) all get a short hash of their own name
    (``red_a_b-1c0f3e9a``), the same whatever the order of the names; the others keep their plain stem."""
    plain = {name: safe_name(name, max_bytes) for name in dict.fromkeys(names)}
    uses: dict[str, int] = {}
    for stem in plain.values():
        uses[stem.casefold()] = uses.get(stem.casefold(), 0) + 1
    stems = {name: stem for name, stem in plain.items() if uses[stem.casefold()] == 1}
    taken = {stem.casefold() for stem in stems.values()}
    for name in sorted(set(plain) - set(stems)):
        chars = HASH_CHARS
        stem = _with_hash(_file_safe(name), name, max_bytes, chars)
        while stem.casefold() in taken and chars < 64:  # a hash that meets another name's stem: use more of it
            chars += 4
            stem = _with_hash(_file_safe(name), name, max_bytes, chars)
        taken.add(stem.casefold())
        stems[name] = stem
    return {name: stems[name] for name in plain}


def write_artifacts(cards: list[Card], folder: Path, names: Iterable[str] = ()) -> None:
    """``<image>-clean.png``, ``-adversarial.png``, ``-perturbation.png``, ``-curve.png``, ``<image>.json``,
    each file name within :data:`MAX_FILE_NAME_BYTES`. ``names``: every image of the test, so that an
    image's stem (:func:`unique_stems`) does not depend on which images have cards."""
    if cards:
        folder.mkdir(parents=True, exist_ok=True)
    stems = unique_stems([*names, *(card.record.name for card in cards)])
    for card in cards:
        stem = stems[card.record.name]
        files = {
            "clean": card.clean_png,
            "adversarial": card.adversarial_png,
            "perturbation": card.perturbation_png,
            "curve": card.curve_png,
        }
        for kind, data in files.items():
            if data is not None:
                path = folder / f"{stem}-{kind}.png"
                path.write_bytes(data)
                card.paths[kind] = str(path)
        json_path = folder / f"{stem}.json"
        card.paths["json"] = str(json_path)
        numbers = {
            **card.record.to_json(),
            "saved_file_fools": card.saved_file_fools,
            "saved_file_label": card.saved_file_label,
            "files": {kind: Path(path).name for kind, path in card.paths.items()},  # beside this file
        }
        write_json(json_path, numbers)
