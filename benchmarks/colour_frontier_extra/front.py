import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import sys
GA = tuple(np.round(np.concatenate([np.arange(0.05, 0.5, 0.025), np.arange(0.5, 1.6, 0.1)]), 3))
def powered(pw, centre=True):
    v = whole ** pw
    if centre: v = v - v.mean(0)
    return l2_normalize(v)
for pw in (0.75, 1.0):
    feats[f'whole pow {pw} centred'] = powered(pw)
keep = sys.argv[1].split(',') if len(sys.argv) > 1 else list(feats)
sizes = [int(x) for x in sys.argv[2].split(',')] if len(sys.argv) > 2 else [200, 400]
results = {}
for name, subsets in s.catalogs(sizes, 3, False, False):
    per = defaultdict(list)
    for rows in subsets:
        shop, colour = s.shop(rows)
        base = shop.precision(None)
        for f in keep:
            v = feats[f][rows]
            sl = shop.gather(v @ v.T)
            per[f].append(sweep(shop, base, lambda g: g * sl, GA))
    results[name] = {f: list(zip(GA, np.mean(r, axis=0))) for f, r in per.items()}
table('features', results, False)
