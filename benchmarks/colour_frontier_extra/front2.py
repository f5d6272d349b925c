import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import sys
from fashionrec.imaging.colour import layout_roots
GA = gains()
lay = s.colour[:, :LAYOUT_DIM]
full = l2_normalize(layout_roots(s.histograms, prior['band_roots_mean']) - prior['layout_mean'])
full_nc = l2_normalize(layout_roots(s.histograms, prior['band_roots_mean']))
def axes(k):
    return l2_normalize((layout_roots(s.histograms, prior['band_roots_mean']) - prior['layout_mean']) @ prior['layout_axes'][:k].T)
sizes = [int(x) for x in sys.argv[1].split(',')] if len(sys.argv) > 1 else [200, 400]
results = {}
for name, shops in each_subset(sizes):
    per = defaultdict(list)
    for rows, shop, base in shops:
        L = shop.gather(lay[rows] @ lay[rows].T)
        per['layout'].append(sweep(shop, base, lambda g: g * L, GA))
        for m in (0.3, 0.5, 0.75, 1.0):
            per[f'layout margin {m}'].append(sweep(shop, base, lambda g: margin_extra(shop, L, g, m), GA))
        F = shop.gather(full[rows] @ full[rows].T)
        per['layout 1024 (no axes)'].append(sweep(shop, base, lambda g: g * F, GA))
        F = shop.gather(full_nc[rows] @ full_nc[rows].T)
        per['layout 1024 not centred'].append(sweep(shop, base, lambda g: g * F, GA))
        for k in (16, 32):
            a = axes(k)[rows]; F = shop.gather(a @ a.T)
            per[f'layout {k} axes'].append(sweep(shop, base, lambda g: g * F, GA))
        # centred within the shortlist: colour minus the shortlist mean
        per['layout minus shortlist mean'].append(sweep(shop, base, lambda g: g * (L - L.mean(1, keepdims=True)), GA))
        for size in (10, 14, 30, 40):
            sub = s.shop(rows, size)[0]
            Ls = sub.gather(lay[rows] @ lay[rows].T)
            per[f'layout shortlist {size}'].append(sweep(sub, base, lambda g: g * Ls, GA))
    results[name] = {f: list(zip(GA, np.mean(r, axis=0))) for f, r in per.items()}
table('layout variants', results, False)
