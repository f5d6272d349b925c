import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'harness.py')).read())
def qe_scores(shop, t=3):
    W = shop.within()
    return (W[:, :t, :].sum(1) - (np.arange(W.shape[1]) < t)[None]) / t
def gated(v, m, t=3, beta=0.0):
    def make(shop, rows):
        L = shop.gather(v[rows] @ v[rows].T)
        q = shop.shape_listed + 0.5 * qe_scores(shop, t)
        kth = -np.sort(-q, axis=1)[:, m - 1:m]
        gate = q >= kth
        ex0 = beta * qe_scores(shop, t)
        return lambda g: ex0 + np.where(gate, g * L, 0.0)
    return make
def qe_fair(v, t=3, beta=0.5):
    """QE shape part for W0 too: report change against QE's own W0 (shift base)."""
    def make(shop, rows):
        L = shop.gather(v[rows] @ v[rows].T)
        ex0 = beta * qe_scores(shop, t)
        shift = shop.precision(ex0) - shop.precision(None)
        return lambda g: ex0 + g * L - 0 * shift
    return make
V = {'layout (shipped)': simple(lay)}
for m in (8, 12):
    V[f'layout, gate: top {m} of shortlist by shape+0.5 QE'] = gated(lay, m)
V['layout 1024, gate top 12'] = gated(full, 12)
evaluate(V, 'kind gate')
