"""Optional engines for catalogs past one machine: Ray Data for indexing, Milvus for search.

Nothing here is imported unless asked for (`--engine ray`, `--search milvus://...`), so the core package
never needs ray or pymilvus; install them with `pip install 'fashionrec[scale]'`.
"""
