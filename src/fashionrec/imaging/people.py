"""Is a person in the photo? Skin, measured on the model's own input, decides whether a photo is searched per
garment region.

A packshot (a product alone on a plain background) shows no skin; a photo of someone wearing the garment does:
face, neck, arms. Read from the preprocessed input the model already has (every 4th pixel of the padded square),
it costs under 0.1 ms. Measured (issue 23): the 23 VITON-HD photos of people 3.7-23% skin, the sample's
full-resolution packshots 0-1%, its photos of models 3-9%; `REGION_SKIN_SHARE` is 2%. Brown leather can read as skin; such a photo is then searched per region only
if a garment is also seen and it is not the shop's own photo of a product (`recommend.view`).
"""

from __future__ import annotations

import numpy as np

from fashionrec.imaging.preprocess import Preprocessing

STRIDE = 4


def skin_share(pixels: np.ndarray, prep: Preprocessing) -> float:
    """The share of a model input's (3, S, S) pixels in skin tones, by the YCbCr rule of Chai and Ngan (1999),
    bounds widened; white padding counts as not skin.

    Example:
        >>> from fashionrec.models import get_spec
        >>> prep = get_spec("efficientnet-lite2").preprocessing
        >>> skin_share(np.full((3, 260, 260), 1.0, dtype=np.float32), prep)  # white
        0.0
    """
    sample = pixels[:, ::STRIDE, ::STRIDE].astype(np.float32)
    if prep.mode == "caffe":  # BGR, means subtracted
        rgb = sample[::-1] + np.asarray(prep.mean[::-1], dtype=np.float32)[:, None, None]
    else:
        rgb = sample * np.asarray(prep.std, np.float32)[:, None, None] + np.asarray(prep.mean, np.float32)[:, None, None]
    r, g, b = np.clip(rgb, 0, 255)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return float(((y > 60) & (cr >= 138) & (cr <= 175) & (cb >= 80) & (cb <= 130)).mean())
