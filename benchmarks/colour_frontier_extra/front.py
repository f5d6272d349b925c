import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import sys
GA = gains()
def powered(pw, centre=True):
    v = whole ** pw
    if centre: v = v - v.mean(0)
    return l2_normalize(v)
for pw in (0.75, 1.0):
    feats[f'whole pow {pw} centred'] = powered(pw)
keep = sys.argv[1].split(',') if len(sys.argv) > 1 else list(feats)
sizes = [int(x) for x in sys.argv[2].split(',')] if len(sys.argv) > 2 else [200, 400]
results = {}
for name, shops in each_subset(sizes):
    per = defaultdict(list)
    for rows, shop, base in shops:
        for f in keep:
            v = feats[f][rows]
            sl = shop.gather(v @ v.T)
            per[f].append(sweep(shop, base, lambda g: g * sl, GA))
    results[name] = {f: list(zip(GA, np.mean(r, axis=0))) for f, r in per.items()}
table('features', results, False)
