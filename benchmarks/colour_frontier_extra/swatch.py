import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'harness.py')).read())
import json
cat = Catalog.open('/tmp/exp/demo22')
SW = np.zeros((len(s), 3, 3), np.float32); SH = np.zeros((len(s), 3), np.float32)
for i, t in enumerate(cat._swatches):
    for j, sw in enumerate(json.loads(t) if t else []):
        SW[i, j] = hexlab(sw['rgb']); SH[i, j] = sw['share']
SHn = SH / np.maximum(SH.sum(1, keepdims=True), 1e-9)
def swatch_kernel(sig, top1=False):
    def make(shop, rows):
        P, Wt = SW[rows], (SHn[rows] if not top1 else (np.arange(3) == 0)[None].repeat(len(rows), 0).astype(np.float32))
        n = len(rows); K = np.zeros((n, n), np.float32)
        for a in range(3):
            for b in range(3):
                d2 = ((P[:, None, a] - P[None, :, b]) ** 2).sum(-1)
                K += Wt[:, a, None] * Wt[None, :, b] * np.exp(-d2 / (2 * sig ** 2))
        d = np.sqrt(np.maximum(np.diag(K), 1e-9)); K = K / d[:, None] / d[None]
        L = shop.gather(K)
        return lambda g: g * L
    return make
lay_make = simple(lay)
def plus(m1, m2, a):
    def make(shop, rows):
        e1, e2 = m1(shop, rows), m2(shop, rows)
        return lambda g: e1(g) + e2(a * g)
    return make
V = {'layout (shipped)': lay_make}
for sig in (8, 15, 25):
    V[f'swatch kernel dE {sig}'] = swatch_kernel(sig)
V['top swatch dE 15'] = swatch_kernel(15, True)
for a in (0.25, 0.5):
    V[f'layout + {a} swatch 15'] = plus(lay_make, swatch_kernel(15), a)
# standalone of swatch kernel on 400 s0-2
for sig in (8, 15, 25):
    vals = []
    for seed in range(3):
        rows, shop, base = SHOPS[(400, seed)]
        P, Wt = SW[rows], SHn[rows]; n = len(rows); K = np.zeros((n, n), np.float32)
        for a in range(3):
            for b in range(3):
                K += Wt[:, a, None] * Wt[None, :, b] * np.exp(-((P[:, None, a] - P[None, :, b]) ** 2).sum(-1) / (2 * sig ** 2))
        d = np.sqrt(np.maximum(np.diag(K), 1e-9)); K = K / d[:, None] / d[None]
        K[shop.excluded] = -np.inf
        top = np.argpartition(-K, 4, axis=1)[:, :5]
        vals.append((shop.colours[top] == shop.colours[:, None]).mean(1)[shop.counted[1]].mean())
    print('standalone swatch', sig, np.mean(vals))
evaluate(V, 'swatches')
