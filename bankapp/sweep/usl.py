"""The Universal Scalability Law (Neil Gunther), fitted with scipy.

    X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

`lambda` is the throughput of one user alone; `sigma` the contention, the
share of the work that is serialized (a lock every request takes): it bends
the curve towards a ceiling of lambda / sigma; `kappa` the coherency cost,
the price each pair of users pays to agree (cache lines, a lock's hand-over,
a database's conflict checks): it makes throughput fall past a peak at
N* = sqrt((1 - sigma) / kappa). With kappa <= 0 there is no retrograde
region: no N*, and the peak is the ceiling lambda / sigma, approached but
never reached (or no ceiling at all when sigma is 0 too: linear scaling).

`fit` uses every repeat of every level (not the means), with sigma and
kappa kept in [0, 1] and lambda positive.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

#: A kappa below this is 0: its N* would be beyond a million users (the optimizer stops short of the bound).
KAPPA_ZERO = 1e-12


def throughput(n, lam: float, sigma: float, kappa: float):
    """X(N), for a number or a numpy array of N."""
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


@dataclass(frozen=True)
class Fit:
    lam: float
    sigma: float
    kappa: float
    n_star: float | None  # None: no retrograde region (kappa <= 0)
    peak_n: float | None  # where the peak is (N*), None when it is only approached
    peak_x: float | None  # the peak throughput, or the ceiling lambda/sigma; None: no ceiling
    r2: float

    def as_dict(self) -> dict:
        return {"lambda": self.lam, **{k: v for k, v in asdict(self).items() if k != "lam"}}

    def curve(self, ns) -> np.ndarray:
        return throughput(ns, self.lam, self.sigma, self.kappa)


def fit(ns: list[float], xs: list[float]) -> Fit | None:
    """The USL through the points (N, X); None with fewer than 3 distinct N or if it does not converge."""
    n = np.asarray(ns, dtype=float)
    x = np.asarray(xs, dtype=float)
    if len(set(n.tolist())) < 3 or not np.all(np.isfinite(x)) or x.max() <= 0:
        return None
    smallest = n.min()
    lam0 = float(np.mean(x[n == smallest]) / smallest) or 1.0
    try:
        with warnings.catch_warnings():
            # as many points as parameters leave no covariance to estimate; the fit stands, and it is unused
            warnings.simplefilter("ignore", OptimizeWarning)
            (lam, sigma, kappa), _ = curve_fit(
                throughput, n, x, p0=(lam0, 0.1, 0.001), bounds=([1e-9, 0.0, 0.0], [np.inf, 1.0, 1.0]), maxfev=20_000
            )
    except (RuntimeError, ValueError):
        return None
    residual = float(np.sum((x - throughput(n, lam, sigma, kappa)) ** 2))
    total = float(np.sum((x - x.mean()) ** 2))
    r2 = 1 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    lam, sigma, kappa = float(lam), float(sigma), float(kappa)
    if kappa < KAPPA_ZERO:  # the optimizer's rounding off the bound: no coherency cost worth a peak
        kappa = 0.0
    n_star: float | None
    peak_n: float | None
    peak_x: float | None
    if kappa > 0:
        n_star = peak_n = math.sqrt(max(0.0, 1 - sigma) / kappa)
        peak_x = float(throughput(max(peak_n, 1.0), lam, sigma, kappa))
    else:
        n_star, peak_n = None, None
        peak_x = lam / sigma if sigma > 0 else None
    return Fit(lam, sigma, kappa, n_star, peak_n, peak_x, r2)
