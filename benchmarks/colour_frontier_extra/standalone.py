import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'feat.py')).read())
import time
res = {}
cats = s.catalogs([400], 3, False, True)
for name, subsets in cats:
    shops = [s.shop(r) for r in subsets]
    for f, v in feats.items():
        vals = [sh.standalone(v[r]) for (sh, _), r in zip(shops, subsets)]
        res.setdefault(f, {})[name] = np.mean(vals)
for f, d in res.items():
    print(f"{f:30s}", '  '.join(f"{k}: {x:.4f}" for k, x in d.items()), flush=True)
