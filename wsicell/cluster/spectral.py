"""Spectral clustering on a k-nearest-neighbour graph, and assignment by neighbour vote.

k-means cuts the representation space into convex cells around k centres. Cell types are
not convex blobs there, but a cell's nearest neighbours in that space are mostly of its own
type (on CoNSeP held-out images ~74 % of the 10 nearest share the label, against ~28 % by
chance): spectral clustering partitions that neighbour graph instead (Shi & Malik 2000; Ng,
Jordan & Weiss 2002):

1. the symmetric k-NN graph ``A`` of a sample of cells (FAISS, exact L2);
2. the top-k eigenvectors of ``D^-1/2 A D^-1/2`` (the random-walk Laplacian's bottom ones),
   scaled by ``D^-1/2``, each column to unit norm;
3. k-means (the project's FAISS k-means, k-means++ restarts) of those n x k coordinates.

Every other cell (the rest of the study, or a slide mapped later) takes the majority label of
its ``neighbours`` nearest sampled cells (ties: the nearest such cell's label), so millions
of cells need one graph of at most ``sample_size`` nodes.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import lobpcg

from wsicell.cluster.kmeans import gpu_count, train_kmeans


def knn_index(x: np.ndarray):  # -> faiss.Index
    """An exact L2 index over the rows of ``x`` (on every GPU when there is one)."""
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(x, dtype=np.float32))
    if gpu_count() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    return index


EXACT_VOTE_CELLS = 20_000
"""Up to this many sampled cells the vote searches them exactly; beyond, an inverted-file index."""


def vote_index(sample: np.ndarray):  # -> faiss.Index
    """The index the votes search: exact up to ``EXACT_VOTE_CELLS`` sampled cells; beyond, FAISS
    IVF-Flat (4 sqrt(m) lists, 32 probed) which compares a query with ~1/15 of a 50,000-cell
    sample: 1M cells are assigned in ~15 CPU s instead of ~220 (benchmarks/cluster_spectral.py)."""
    import faiss

    m, d = sample.shape
    if m <= EXACT_VOTE_CELLS:
        return knn_index(sample)
    x = np.ascontiguousarray(sample, dtype=np.float32)
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, int(4 * np.sqrt(m)))
    index.cp.seed = 1234  # the inverted lists' k-means: fixed
    index.train(x)
    index.add(x)
    index.nprobe = 32
    if gpu_count() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    return index


def knn_graph(x: np.ndarray, *, neighbours: int) -> sparse.csr_matrix:
    """The symmetric, unweighted k-NN graph of the rows of ``x`` (n x D): n x n CSR, no self-loops."""
    n = len(x)
    if n <= neighbours:
        raise ValueError(f"need more than {neighbours} cells for a {neighbours}-NN graph, got {n}")
    _, idx = knn_index(x).search(np.ascontiguousarray(x, dtype=np.float32), neighbours + 1)  # n x (k+1)
    rows = np.repeat(np.arange(n), neighbours + 1)
    cols = idx.ravel()
    keep = (cols != rows) & (cols >= 0)
    a = sparse.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, n))
    a = a.maximum(a.T)  # symmetric: an edge when either is among the other's nearest
    a.data[:] = 1.0
    return a.tocsr()


def spectral_embedding(graph: sparse.csr_matrix, *, k: int, seed: int) -> np.ndarray:
    """The n x k spectral coordinates of ``graph`` (steps 2 above)."""
    degree = np.asarray(graph.sum(axis=1)).ravel()
    degree[degree == 0] = 1.0
    inv_sqrt = sparse.diags(1.0 / np.sqrt(degree))
    s = inv_sqrt @ graph @ inv_sqrt  # D^-1/2 A D^-1/2
    n = graph.shape[0]
    rng = np.random.default_rng(seed)
    if n <= 20 * k:  # small graphs: a dense solve
        _, vectors = np.linalg.eigh(s.toarray())
        vectors = vectors[:, ::-1][:, :k]
    else:
        # a block method: a graph of c disconnected parts has eigenvalue 1 c times, which a
        # single-vector Lanczos (eigsh) may not resolve; LOBPCG iterates a block of vectors
        x0 = rng.standard_normal((n, k + 2))
        x0[:, 0] = np.sqrt(degree)  # the known top eigenvector speeds convergence
        values, vectors = lobpcg(s, x0, largest=True, tol=1e-5, maxiter=500)
        vectors = vectors[:, np.argsort(-values)[:k]]  # n x k, the largest eigenvalues
    coords = vectors / np.sqrt(degree)[:, None]
    coords /= np.maximum(np.linalg.norm(coords, axis=0), 1e-12)
    return np.ascontiguousarray(coords, dtype=np.float32)


def spectral_clusters(
    x: np.ndarray, *, k: int, neighbours: int = 15, seed: int = 0, restarts: int = 10, iterations: int = 25
) -> np.ndarray:
    """Cluster labels (n,) int32 in 0..k-1 of the rows of ``x`` (n x D float32)."""
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    coords = spectral_embedding(knn_graph(x, neighbours=neighbours), k=k, seed=seed)
    result = train_kmeans(coords, k=k, iterations=iterations, restarts=restarts, seed=seed, spherical=False)
    _, labels = knn_index(result.centroids).search(coords, 1)
    return relabel_by_size(labels[:, 0].astype(np.int32), k)


def relabel_by_size(labels: np.ndarray, k: int) -> np.ndarray:
    """Labels renumbered so that cluster 0 is the largest (a stable order across runs)."""
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    rank = np.empty(k, np.int32)
    rank[order] = np.arange(k, dtype=np.int32)
    return rank[labels]


def vote(index, sample_labels: np.ndarray, x: np.ndarray, *, k: int, neighbours: int) -> np.ndarray:
    """The majority label (n,) int32 among each row's ``neighbours`` nearest sampled cells.

    ``index`` holds the sample (``knn_index``), ``sample_labels`` its labels. Ties go to the
    label of the nearest cell among the tied ones (neighbours are searched nearest first).
    """
    m = int(index.ntotal)
    nb = min(neighbours, m)
    _, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), nb)  # n x nb, nearest first
    votes = sample_labels[idx].astype(np.int64)  # n x nb
    n, rows = len(x), np.arange(len(x))
    counts = np.bincount((rows[:, None] * k + votes).ravel(), minlength=n * k).reshape(n, k)
    first = np.full((n, k), nb, np.int64)  # rank of each label's nearest voter
    for rank in range(nb - 1, -1, -1):  # nearer ranks written last: they win
        first[rows, votes[:, rank]] = rank
    # most votes first; among equal counts, the label whose voter is nearest
    return np.argmax(counts * (nb + 1) - first, axis=1).astype(np.int32)


def cluster_means(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The mean (k, D) float32 of each cluster's rows (zeros for an empty cluster)."""
    sums = np.zeros((k, x.shape[1]), np.float64)
    np.add.at(sums, labels, x)
    counts = np.bincount(labels, minlength=k)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)
