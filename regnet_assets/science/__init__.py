"""The science layer: plain Python, never Dagster, one package per stage of the asset graph.

``dataset`` (contract, simulator, links, motifs, metacells, candidates) → ``models`` (the
per-gene network and its batched trainer) → ``attribution`` (Integrated Gradients and the
regulatory network) → ``network`` (PKN, minimal DAG, KPNN) → ``reports`` (folds, clustering,
programs, maps); ``common`` holds what every stage shares.
"""
