"""Real photographs and a real depth map bundled with scikit-image (nothing downloads), as
numpy arrays, for the perception tests and `llm-agent bench`; import it lazily: it needs skimage."""
from __future__ import annotations

import cv2
import numpy as np
from skimage import data

NAMES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'motorcycle')


def photo(name: str) -> np.ndarray:
    """Return scikit-image's photograph `name` converted RGB -> BGR (uint8)."""
    img = data.stereo_motorcycle()[0] if name == 'motorcycle' else getattr(data, name)()
    return np.ascontiguousarray(cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR))


def sized(name: str, width: int, height: int) -> np.ndarray:
    """Return the photograph resized to width x height."""
    return cv2.resize(photo(name), (width, height), interpolation=cv2.INTER_AREA)


def panning(n: int, width: int = 320, height: int = 240, source: str = 'motorcycle'):
    """Yield n frames of a window panning across an enlarged photograph (a moving camera)."""
    img = photo(source)
    # Enlarged 1.6x, or more when the window needs it (1280x720 over a 741x500 photo).
    scale = max(1.6, 1.25 * width / img.shape[1], 1.25 * height / img.shape[0])
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    H, W = big.shape[:2]
    for i in range(n):
        s = i / max(n - 1, 1)
        x = int(s * (W - width))
        y = int((H - height) * 0.5 * (1 - np.cos(2 * np.pi * s)))  # down and back up
        yield big[y:y + height, x:x + width]


def motorcycle_depth_mm(baseline_focal: float = 60000.0) -> np.ndarray:
    """Return a real depth map (16UC1, mm) from the Middlebury motorcycle disparity; 0 = unknown."""
    disp = data.stereo_motorcycle()[2].astype(np.float64)
    depth = np.zeros(disp.shape, dtype=np.uint16)
    ok = np.isfinite(disp) & (disp > 0)
    depth[ok] = np.clip(baseline_focal / disp[ok], 0, 65535).astype(np.uint16)
    return depth
