import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'harness.py')).read())
# label-free: predict the colour vector from the CNN vector (ridge), fitted on the sample's images (no labels)
X = s.model.astype(np.float64); X = X - X.mean(0)
U, S_, Vt = np.linalg.svd(X, full_matrices=False)
Z = U[:, :512] * S_[:512]; Z /= Z.std(0)   # whitened CNN, 512 axes
def ridge(Y, lam):
    B = np.linalg.solve(Z.T @ Z + lam * np.eye(Z.shape[1]), Z.T @ Y)
    return Z @ B
V = {'layout (shipped)': simple(lay)}
for lam in (1e3, 1e4):
    P = ridge(lay.astype(np.float64), lam)
    r2 = 1 - ((lay - P) ** 2).sum() / ((lay - lay.mean(0)) ** 2).sum()
    print('ridge', lam, 'R2', round(float(r2), 3))
    Pn = l2_normalize(P.astype(np.float32))
    V[f'CNN->layout ridge {lam:g}'] = simple(Pn)
    for a in (0.5, 1.0):
        V[f'layout + {a} CNN->layout {lam:g}'] = simple(l2_normalize(lay + a * Pn))
evaluate(V, 'colour from the CNN, label-free (ridge on the sample images)')
