import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import torch, sys
from fashionrec.imaging.colour import layout_roots
torch.set_num_threads(2)
GA = gains(0.025)
rng = np.random.default_rng(15)
perm = rng.permutation(len(s))
A, B = np.sort(perm[:len(s)//2]), np.sort(perm[len(s)//2:])
lay = s.colour[:, :LAYOUT_DIM]
full = l2_normalize(layout_roots(s.histograms, prior['band_roots_mean']) - prior['layout_mean'])
wr = np.sqrt(whole)
names_ = sorted(set(s.colours) - {''})
y = np.array([names_.index(c) if c else -1 for c in s.colours])
def probe(X, wd=1e-3, epochs=300):
    X = (X - X[A].mean(0)) / (X[A].std(0) + 1e-6)
    Xt = torch.tensor(X, dtype=torch.float32)
    m = torch.nn.Linear(X.shape[1], len(names_))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2, weight_decay=wd)
    ta = torch.tensor(A[y[A] >= 0]); yt = torch.tensor(y[A][y[A] >= 0])
    for _ in range(epochs):
        opt.zero_grad(); loss = torch.nn.functional.cross_entropy(m(Xt[ta]), yt); loss.backward(); opt.step()
    with torch.no_grad():
        p = torch.softmax(m(Xt), 1).numpy()
    acc = (p[B].argmax(1) == y[B])[y[B] >= 0].mean()
    return p, acc
feats2 = {'layout (shipped)': lay, 'layout 1024': full}
for nm, X, wd in [('probe hist', np.concatenate([wr, full], 1), 1e-2), ('probe hist+cnn', np.concatenate([wr, full, s.model], 1), 1e-2)]:
    p, acc = probe(X, wd)
    print(nm, 'held-out accuracy', round(float(acc), 3), flush=True)
    feats2[nm + ' sqrt p'] = l2_normalize(np.sqrt(p))
results = {}
for size in (200, 400):
    per = defaultdict(list); alone = defaultdict(list)
    for seed in range(3):
        rows = np.sort(np.random.default_rng(seed).choice(B, size, replace=False))
        shop, colour = s.shop(rows)
        base = shop.precision(None)
        for f, v in feats2.items():
            L = shop.gather(v[rows] @ v[rows].T)
            per[f].append(sweep(shop, base, lambda g: g * L, GA))
            alone[f].append(shop.standalone(v[rows]))
    results[f'{size} random from B'] = {f: list(zip(GA, np.mean(r, axis=0))) for f, r in per.items()}
    print(size, {f: round(float(np.mean(a)), 4) for f, a in alone.items()})
table('learned ceiling (trained on half A labels; subsets of half B)', results, False)
