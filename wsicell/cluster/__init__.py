"""Clustering cells: each cell's embedding joined with its morphology (represent.py),
spectral clustering of a sample's neighbour graph or FAISS k-means (model.py), then every
cell assigned.

Public API: :class:`ClusterConfig`, :func:`cluster_store`, :func:`load_clustering`,
:func:`iter_assign`, :func:`train_kmeans`, :func:`choose_k`, :func:`fit_representation`,
:func:`fit_model`.
"""

from wsicell.cluster.choose_k import KChoice, KCurvePoint, choose_k, elbow
from wsicell.cluster.config import ClusterConfig
from wsicell.cluster.kmeans import (
    KMeansResult,
    assign,
    gpu_count,
    make_index,
    prepare,
    train_kmeans,
)
from wsicell.cluster.model import ClusterModel, fit_model
from wsicell.cluster.represent import Blend, Representation, fit_representation
from wsicell.cluster.run import (
    Clustering,
    ClusterResult,
    assign_slide,
    cluster_store,
    clustered_slides,
    iter_assign,
    load_clustering,
    slide_labels_current,
)

__all__ = [
    "Blend", "ClusterModel", "Representation", "fit_model", "fit_representation",
    "ClusterConfig", "ClusterResult", "Clustering", "KChoice", "KCurvePoint", "KMeansResult",
    "assign", "assign_slide", "choose_k", "cluster_store", "clustered_slides", "elbow", "gpu_count",
    "iter_assign", "load_clustering", "make_index", "prepare", "slide_labels_current", "train_kmeans",
]  # fmt: skip
