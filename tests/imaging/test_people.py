"""imaging/people: the skin share that decides whether a photo is searched per garment."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fashionrec.imaging.people import skin_share
from fashionrec.imaging.preprocess import preprocess
from fashionrec.models import get_spec
from tests.conftest import draw_product

PREP = get_spec("efficientnet-lite2").preprocessing


def test_skin_tones_count_and_a_packshot_does_not() -> None:
    skin = Image.new("RGB", (120, 160), (224, 172, 140))  # a light skin tone
    half = Image.new("RGB", (120, 160), "white")
    half.paste(skin.crop((0, 0, 120, 80)), (0, 0))
    assert skin_share(preprocess(skin, PREP), PREP) > 0.6  # the white padding of a 3:4 photo is not skin
    assert 0.25 < skin_share(preprocess(half, PREP), PREP) < 0.45
    assert skin_share(preprocess(draw_product(5, (120, 160)), PREP), PREP) < 0.02
    assert skin_share(np.full((3, 260, 260), 1.0, dtype=np.float32), PREP) == 0.0


def test_caffe_inputs_are_read_back_in_rgb() -> None:
    prep = get_spec("resnet50").preprocessing
    skin = Image.new("RGB", (224, 224), (224, 172, 140))
    assert skin_share(preprocess(skin, prep), prep) == 1.0
    assert skin_share(preprocess(Image.new("RGB", (224, 224), (140, 172, 224)), prep), prep) == 0.0
