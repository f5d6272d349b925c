import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import sys
GA = gains(0.1)
lay = s.colour[:, :LAYOUT_DIM]
seedsets = {'seeds 0-2': range(3), 'seeds 3-11': range(3, 12)}
results = {}
for size in (200, 400):
    for sname, seeds in seedsets.items():
        per = defaultdict(list)
        for seed in seeds:
            rows = np.sort(np.random.default_rng(seed).choice(len(s), size, replace=False))
            shop, colour = s.shop(rows)
            base = shop.precision(None)
            L = shop.gather(lay[rows] @ lay[rows].T)
            W = shop.within()  # n, m, m
            sl = shop.shape_listed
            per['layout (shipped)'].append(sweep(shop, base, lambda g: g * L, GA))
            for t in (3, 5):
                for beta in (0.5, 1.0):
                    # query expansion within the shortlist: similarity to the query plus beta x mean similarity to
                    # its t nearest shortlisted products (the shortlist is in shape order)
                    qe = (W[:, :t, :].sum(1) - 1.0 * (np.arange(W.shape[1]) < t)[None]) / t  # drop self-sim 1
                    extra0 = beta * qe
                    w0 = shop.precision(extra0) - base
                    per[f'QE t{t} b{beta}'].append(
                        sweep(shop, base, lambda g: extra0 + g * L, GA))
                    per[f'QE t{t} b{beta} vs QE W0'].append(sweep(shop, base + w0, lambda g: extra0 + g * L, GA))
                    per[f'QE t{t} b{beta} W0 change'].append([w0] * len(GA))
        results[f'{size} {sname}'] = {f: list(zip(GA, np.mean(r, axis=0))) for f, r in per.items()}
        print(size, sname, flush=True)
# features names differ by W0 change text; print rows by catalogue
for name, res in results.items():
    print('\n' + name)
    for f, rows in res.items():
        if f.endswith('W0 change'):
            print(f'  {f}: {rows[0][1][0]:+.4f} / {rows[0][1][1]:+.4f}'); continue
        g, dt, dc = frontier(rows)
        print(f'  {f}: {g:g}: {dt:+.4f} / {dc:+.4f}')
