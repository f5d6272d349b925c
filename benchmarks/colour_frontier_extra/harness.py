import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import os
from fashionrec.imaging.colour import layout_roots
GA = gains(0.1, 2.05)
lay = s.colour[:, :LAYOUT_DIM]
full = l2_normalize(layout_roots(s.histograms, prior['band_roots_mean']) - prior['layout_mean'])
SEEDSETS = {'s0-2': range(3), 's3-11': range(3, 12)}
SHOPS = {}
for size in (200, 400):
    for seed in range(12):
        rows = np.sort(np.random.default_rng(seed).choice(len(s), size, replace=False))
        shop, _ = s.shop(rows)
        SHOPS[(size, seed)] = (rows, shop, shop.precision(None))

def evaluate(variants, title):
    """variants: name -> f(shop, rows) -> (extra(g) function, optional W0 base override)"""
    out = {}
    for (size, seed), (rows, shop, base) in SHOPS.items():
        for name, make in variants.items():
            extra = make(shop, rows)
            out.setdefault(name, {}).setdefault(size, {})[seed] = np.array(sweep(shop, base, extra, GA))
    print(f'\n{title}: frontier (gain: type / colour) at type >= -0.01, seeds 0-2 (as catalogs.py) and 3-11')
    print('| variant | 200 s0-2 | 200 s3-11 | 400 s0-2 | 400 s3-11 |')
    print('|---|--:|--:|--:|--:|')
    for name, by in out.items():
        cells = []
        for size in (200, 400):
            for sname, seeds in SEEDSETS.items():
                g, dt, dc = frontier(list(zip(GA, np.mean([by[size][x] for x in seeds], 0))))
                cells.append(f'{g:g}: {dt:+.4f} / {dc:+.4f}')
        print(f'| {name} | ' + ' | '.join(cells) + ' |', flush=True)
    return out

def simple(v):
    def make(shop, rows):
        L = shop.gather(v[rows] @ v[rows].T)
        return lambda g: g * L
    return make
