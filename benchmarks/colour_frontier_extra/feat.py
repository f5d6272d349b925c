import os
import sys, json, numpy as np
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from colour_frontier import *
from fashionrec.imaging.colour import _prior, srgb_to_lab, BANDS, PALETTE_SIZE
from fashionrec.vectors import l2_normalize

s = Sample(Path(os.environ.get('CATALOG', '/tmp/exp/demo22')))
prior = _prior()
pal = prior['palette']
whole = s.histograms.reshape(-1, BANDS, PALETTE_SIZE).sum(1)
whole = whole / np.maximum(whole.sum(1, keepdims=True), 1e-12)
D = np.sqrt(((pal[:, None] - pal[None]) ** 2).sum(-1))


def gains(start: float = 0.05, top: float = 1.6) -> tuple:
    """The colour gains each study sweeps: every 0.025 below 0.5, every 0.1 from 0.5 below `top`."""
    return tuple(np.round(np.concatenate([np.arange(start, 0.5, 0.025), np.arange(0.5, top, 0.1)]), 3))


def each_subset(sizes):
    """(catalog name, its seeded random subsets as (rows, shop, shape-only precision)), as catalogs.py draws them."""
    for name, subsets in s.catalogs(sizes, 3, False, False):
        yield name, ((rows, shop, shop.precision(None)) for rows in subsets for shop in [s.shop(rows)[0]])

def kern(sig, root=True, centre=True):
    K = np.exp(-D ** 2 / (2 * sig ** 2))
    w, V = np.linalg.eigh(K)
    half = V @ np.diag(np.sqrt(np.clip(w, 0, None))) @ V.T
    h = np.sqrt(whole) if root else whole
    v = h @ half
    if centre:
        v = v - v.mean(0)
    return l2_normalize(v)

def hexlab(x):
    return srgb_to_lab(np.array([int(x[i:i+2], 16) for i in (1, 3, 5)]) / 255.0)

NAMES = {'black': '#141414', 'white': '#f4f4f4', 'grey': '#808080', 'red': '#c41e2a', 'orange': '#f07820',
         'yellow': '#f0d020', 'green': '#2e8b3c', 'blue': '#2850b4', 'purple': '#6e2c8c', 'pink': '#f08caa',
         'brown': '#7a4a28', 'navy': '#1c2448', 'beige': '#d8c4a0', 'maroon': '#6a1a28', 'olive': '#6a6a28',
         'darkgrey': '#404040', 'lightgrey': '#c0c0c0'}
protos = np.stack([hexlab(v) for v in NAMES.values()])

def names(t, keys=None, centre=True):
    P = protos if keys is None else np.stack([hexlab(NAMES[k]) for k in keys])
    d2 = ((pal[:, None] - P[None]) ** 2).sum(-1)
    A = np.exp(-(d2 - d2.min(1, keepdims=True)) / (2 * t ** 2)); A /= A.sum(1, keepdims=True)
    p = whole @ A
    v = np.sqrt(p)
    if centre:
        v = v - v.mean(0)
    return l2_normalize(v)

def wholeroot(centre=True):
    v = np.sqrt(whole)
    if centre: v = v - v.mean(0)
    return l2_normalize(v)

feats = {
    'layout (shipped)': s.colour[:, :LAYOUT_DIM],
    'joined (shipped)': s.colour,
    'whole part (shipped)': s.colour[:, LAYOUT_DIM:],
    'whole sqrt centred': wholeroot(),
    'whole sqrt raw': wholeroot(False),
}
for sig in (5, 10, 15, 25):
    feats[f'kernel {sig} sqrt centred'] = kern(sig)
for sig in (10, 15):
    feats[f'kernel {sig} lin centred'] = kern(sig, root=False)
for t in (5, 10, 20):
    feats[f'names17 t{t} centred'] = names(t)
    feats[f'names17 t{t} raw'] = names(t, centre=False)
