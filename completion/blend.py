"""Poisson blending of generated content into a hole (Perez et al. 2003).

Inside the hole we solve lap(f) = lap(g) (g: the generated image) with f = the input image on the
known pixels that border the hole (Dirichlet) and no flux across the image border (Neumann), so
the fill keeps G's detail but meets the known pixels without a seam. Known pixels are untouched.
One sparse LU factorisation serves the three colour channels."""

from __future__ import annotations

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def poisson_blend(target: np.ndarray, source: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Return target (HxWxC float) with its hole pixels replaced by the Poisson-blended source.

    target, source: HxWxC arrays (any float scale, the same for both); hole: HxW bool.
    If no known pixel touches the hole (an all-hole image) the source is pasted unchanged."""
    target = np.asarray(target, dtype=np.float64)
    source = np.asarray(source, dtype=np.float64)
    out = target.copy()
    h, w = hole.shape
    ys, xs = np.nonzero(hole)
    n = len(ys)
    if n == 0:
        return out
    if n == h * w:
        out[hole] = source[hole]
        return out
    index = -np.ones((h, w), dtype=np.int64)
    index[ys, xs] = np.arange(n)

    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    rhs = np.zeros((n, target.shape[2]))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)  # outside the image: Neumann, no term
        p = np.nonzero(inside)[0]
        qy, qx = ny[p], nx[p]
        diag[p] += 1
        # Guidance: the source's gradient across this edge.
        rhs[p] += source[ys[p], xs[p]] - source[qy, qx]
        q_hole = hole[qy, qx]
        unknown = p[q_hole]
        rows.append(unknown)
        cols.append(index[qy[q_hole], qx[q_hole]])
        vals.append(-np.ones(len(unknown)))
        known = p[~q_hole]
        rhs[known] += target[qy[~q_hole], qx[~q_hole]]  # Dirichlet boundary: the input's pixels
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    anchored = _anchored_components(hole, index, n)
    if not anchored.all():
        # A hole region with no known neighbour has no boundary value: pin it to the source.
        a = a.tolil()
        free = np.nonzero(~anchored)[0]
        a[free, :] = 0
        a[free, free] = 1
        rhs[free] = source[ys[free], xs[free]]
        a = a.tocsc()
    solution = spla.splu(a).solve(rhs)
    out[ys, xs] = solution
    return out


def _anchored_components(hole: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """Per hole pixel: does its 4-connected hole region touch a known pixel?"""
    count, labels = cv2.connectedComponents(hole.astype(np.uint8), connectivity=4)
    touching = cv2.dilate((~hole).astype(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))
    anchored_labels = np.unique(labels[(touching > 0) & hole])
    ok = np.isin(labels, anchored_labels)
    return ok[hole][np.argsort(index[hole])] if n else np.zeros(0, bool)


def seamless_clone(target: np.ndarray, source: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """OpenCV's seamlessClone (NORMAL_CLONE) of source into the hole, for comparison.

    It needs the hole's bounding box to stay clear of the image border, so the images are padded
    by reflection first; known pixels are restored afterwards."""
    pad = 8
    # seamlessClone reads the destination inside the region too: give it the source there, so
    # the hole's old content (unknown, or the ground truth in an evaluation) cannot leak in.
    target = np.where(hole[..., None], source, target)
    t = cv2.copyMakeBorder(_u8(target), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    s = cv2.copyMakeBorder(_u8(source), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    m = cv2.copyMakeBorder(hole.astype(np.uint8) * 255, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))  # seamlessClone erodes the mask's rim
    x, y, bw, bh = cv2.boundingRect(m)
    center = (x + bw // 2, y + bh // 2)
    blended = cv2.seamlessClone(s, t, m, center, cv2.NORMAL_CLONE)[pad:-pad, pad:-pad]
    out = np.asarray(target, dtype=np.float64).copy()
    out[hole] = blended[hole]
    return out


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float64) + 0.5, 0, 255).astype(np.uint8)
