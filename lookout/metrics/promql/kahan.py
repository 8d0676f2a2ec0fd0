"""Vectorised Kahan–Neumaier summation, as Prometheus uses for sums and means.

Each call adds one term to many independent running sums at once (a whole column of windows or
a whole rank of a group), so the Python loop runs over window positions, never over samples."""

from __future__ import annotations

import numpy as np


def kahan_inc(inc: np.ndarray, s: np.ndarray, c: np.ndarray, mask: np.ndarray | None = None):
    """``kahanSumInc`` applied element-wise; entries where ``mask`` is False are left unchanged."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = s + inc
        big = np.abs(s) >= np.abs(inc)
        nc = c + np.where(big, (s - t) + inc, (inc - t) + s)
        nc = np.where(np.isinf(t), 0.0, nc)
    if mask is None:
        return t, nc
    return np.where(mask, t, s), np.where(mask, nc, c)


def kahan_sum(w: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row sums of ``w`` (rows x positions) over ``mask``, Kahan-compensated."""
    s = np.zeros(w.shape[0])
    c = np.zeros(w.shape[0])
    for j in range(w.shape[1]):
        s, c = kahan_inc(w[:, j], s, c, mask[:, j])
    with np.errstate(invalid="ignore"):
        return s + c


def kahan_mean(w: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row means as Prometheus' ``avg_over_time``/``avg`` compute them: a Kahan sum, switching to
    an incremental mean once the sum overflows. Rows must have their valid entries first."""
    n_rows, width = w.shape
    if width == 0:
        return np.full(n_rows, np.nan)
    s = np.where(mask[:, 0], w[:, 0], 0.0)
    c = np.zeros(n_rows)
    mean = np.zeros(n_rows)
    incr = np.zeros(n_rows, bool)
    count = mask[:, 0].astype(float)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for j in range(1, width):
            m = mask[:, j]
            if not m.any():
                continue
            count = np.where(m, j + 1.0, count)
            ns, nc = kahan_inc(w[:, j], s, c)
            still = m & ~incr & ~np.isinf(ns)
            s = np.where(still, ns, s)
            c = np.where(still, nc, c)
            switch = m & ~incr & np.isinf(ns)
            mean = np.where(switch, s / (count - 1), mean)
            c = np.where(switch, c / (count - 1), c)
            incr = incr | switch
            doinc = m & incr
            q = (count - 1) / count
            nm, nc2 = kahan_inc(w[:, j] / count, q * mean, q * c)
            mean = np.where(doinc, nm, mean)
            c = np.where(doinc, nc2, c)
        return np.where(incr, mean + c, s / count + c / count)
