import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'harness.py')).read())
def relu(v, tau):
    def make(shop, rows):
        L = shop.gather(v[rows] @ v[rows].T)
        return lambda g: g * np.maximum(L - tau, 0)
    return make
def power(v, p):
    def make(shop, rows):
        L = shop.gather(v[rows] @ v[rows].T)
        return lambda g: g * np.sign(L) * np.abs(L) ** p
    return make
V = {'layout (shipped)': simple(lay), 'layout 1024': simple(full)}
for tau in (0.2, 0.4, 0.6):
    V[f'layout relu(col-{tau})'] = relu(lay, tau)
for p in (2, 3):
    V[f'layout col^{p}'] = power(lay, p)
V['layout 1024 relu(col-0.4)'] = relu(full, 0.4)
evaluate(V, 'nonlinear colour')
