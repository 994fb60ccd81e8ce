"""Regenerate photos/: 32×32 PNGs of noisy solid colours, vivid and muted, three per colour."""

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
COLORS = {"red": 0, "green": 1, "blue": 2}


def main() -> None:
    rng = np.random.default_rng(0)
    for kind, (high, low) in {"vivid": (200, 60), "muted": (121, 120)}.items():
        for name, channel in COLORS.items():
            for k in range(3):
                pixels = np.full((32, 32, 3), low, dtype=np.int16)
                pixels[..., channel] = high
                noise = rng.integers(-1, 2, (32, 32, 1)) if kind == "muted" else rng.integers(-20, 21, (32, 32, 3))
                image = np.clip(pixels + noise, 0, 255).astype(np.uint8)
                path = HERE / "photos" / kind / name / f"{name}{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image, "RGB").save(path)


if __name__ == "__main__":
    main()
