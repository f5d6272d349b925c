import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import sys
GA = gains(0.1)
lay = s.colour[:, :LAYOUT_DIM]
for size in (200, 400):
    allr = []
    for seed in range(12):
        rows = np.sort(np.random.default_rng(seed).choice(len(s), size, replace=False))
        shop, colour = s.shop(rows)
        base = shop.precision(None)
        L = shop.gather(lay[rows] @ lay[rows].T)
        r = sweep(shop, base, lambda g: g * L, GA)
        allr.append(r)
        at = dict(zip(GA, r))[0.3]
        print(size, seed, 'base', np.round(base, 4), 'gain 0.3:', np.round(at, 4), 'frontier', frontier(list(zip(GA, r))), flush=True)
    m = np.mean(allr, 0)
    print(size, 'mean of 12 seeds frontier', frontier(list(zip(GA, m))), 'at 0.3', np.round(dict(zip(GA, m))[0.3], 4),
          'sd of change at 0.3', np.round(np.std([dict(zip(GA, r))[0.3] for r in allr], 0), 4))
    m3 = np.mean(allr[:3], 0)
    print(size, 'seeds 0-2 frontier', frontier(list(zip(GA, m3))))
