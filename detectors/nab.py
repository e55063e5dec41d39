"""Scoring a detector on labelled real series the way the Numenta Anomaly Benchmark does.

``../shared/data/real-series`` (see its README) holds real and artificial series with labelled
anomaly *windows*. A detector sees each file as an independent stream, point by point, score
first then learn, and returns a score in [0, 1] per point. This module mirrors the benchmark's
"standard" scoring so a change can be judged here, before the held-out files judge it:

* the first 15 % of a file (at most 750 points) is *probation*: learned from, never scored;
* one threshold for the whole corpus, the best one for the detector: only the ranking matters;
* in a window, the earliest detection earns up to +1 (a scaled sigmoid of its position: about
  +1 at the left edge, 0 at the right); a window with no detection costs -1;
* a detection outside every window costs 0.11, less just after a window (the same sigmoid of
  the distance past it, in window widths);
* normalised: 100 x (S - S_null) / (S_perfect - S_null), S_null = -1 per window ("never
  detect"), S_perfect = +1 per window.

It also measures *calibration*: the share of ordinary points (after probation, outside every
window) scoring at or above a level such as 0.9999, which claims "1 in 10,000".

>>> s = Series("toy", np.arange(100.0), np.zeros(100), ((50, 59),))
>>> perfect = np.zeros(100); perfect[50] = 1.0
>>> corpus_score([s], [perfect]).score
100.0
>>> corpus_score([s], [np.zeros(100)]).score
0.0
"""
from __future__ import annotations

import csv
import gzip
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

#: share of a file learned from but never scored, and its ceiling in points
PROBATION_SHARE = 0.15
PROBATION_MAX = 750
#: the standard profile's weights
TP_WEIGHT = 1.0
FN_WEIGHT = 1.0
FP_WEIGHT = 0.11
#: a position this many window widths past a window scores as a plain false positive
FAR_PAST_WINDOW = 3.0
#: the score that claims "1 in 10,000"
RARE = 0.9999


def scaled_sigmoid(position: float) -> float:
    """Weight of a detection at ``position``: -1 (window start) .. 0 (end) .. > 0 (past it)."""
    if position > FAR_PAST_WINDOW:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation(n: int) -> int:
    """Number of leading points of an ``n``-point file that are never scored."""
    return min(math.floor(PROBATION_SHARE * n), PROBATION_MAX)


@dataclass(frozen=True)
class Series:
    """One labelled file: epoch-second timestamps, values, windows as inclusive row ranges."""

    name: str
    ts: np.ndarray
    values: np.ndarray
    windows: tuple[tuple[int, int], ...]

    def ordinary(self) -> np.ndarray:
        """Mask of the points that count for calibration: after probation, outside windows."""
        mask = np.zeros(len(self.ts), dtype=bool)
        mask[probation(len(self.ts)):] = True
        for a, b in self.windows:
            mask[a : b + 1] = False
        return mask


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.strip()).replace(tzinfo=timezone.utc).timestamp()


def load_corpus(root: str | Path) -> list[Series]:
    """Every file of ``root/windows.json``, sorted by name; windows mapped to row ranges."""
    root = Path(root)
    labels = json.loads((root / "windows.json").read_text())
    out = []
    for name in sorted(labels):
        with gzip.open(root / name, "rt", newline="") as f:
            rows = list(csv.DictReader(f))
        ts = np.array([_epoch(r["timestamp"]) for r in rows])
        values = np.array([float(r["value"]) for r in rows])
        index = {t: i for i, t in enumerate(ts)}
        windows = tuple((index[_epoch(a)], index[_epoch(b)]) for a, b in labels[name])
        out.append(Series(name, ts, values, windows))
    return out


def point_weights(s: Series) -> tuple[np.ndarray, np.ndarray]:
    """(window id or -1, weight) per point; probation points get NaN weight.

    The weight is what a detection at that point adds: in a window, its true-positive credit
    (only the window's earliest detection counts); outside, its (negative) false-positive cost.
    """
    n = len(s.ts)
    wid = np.full(n, -1, dtype=np.int64)
    weight = np.empty(n)
    starts = {a: (k, b) for k, (a, b) in enumerate(s.windows)}
    cur: tuple[int, int, float] | None = None  # (window id, right index, width)
    prev: tuple[int, float] | None = None  # (right index, width) of the last window
    first = probation(n)
    for i in range(n):
        if i in starts:
            k, right = starts[i]
            cur = (k, right, float(right - i + 1))
        if cur is not None:
            k, right, width = cur
            wid[i] = k
            weight[i] = scaled_sigmoid(-(right - i + 1) / width) * TP_WEIGHT / _MAX_TP
        elif prev is None:
            weight[i] = -FP_WEIGHT
        else:
            right, width = prev
            past = abs(right - i) / (width - 1.0) if width > 1.0 else FAR_PAST_WINDOW + 1.0
            weight[i] = scaled_sigmoid(past) * FP_WEIGHT
        if i < first:
            weight[i] = math.nan
        if cur is not None and i == cur[1]:
            prev, cur = (cur[1], cur[2]), None
    return wid, weight


@dataclass(frozen=True)
class CorpusScore:
    """The corpus's normalised score at its best threshold, and what makes it up."""

    score: float
    threshold: float
    raw: float
    windows: int
    detected: int
    false_positives: int
    per_file: dict[str, dict[str, float]]


def corpus_score(corpus: Sequence[Series], scores: Sequence[np.ndarray]) -> CorpusScore:
    """Best normalised score over every threshold (one for the whole corpus).

    Points are taken in order of falling score; at each distinct score the total is
    "false-positive costs so far + each window's best detection, or -1 if none".
    """
    wids, weights, vals, files = [], [], [], []
    offset = 0
    n_windows = 0
    for f, (s, sc) in enumerate(zip(corpus, scores)):
        if len(sc) != len(s.ts):
            raise ValueError(f"{s.name}: {len(sc)} scores for {len(s.ts)} points")
        wid, w = point_weights(s)
        keep = ~np.isnan(w)
        # a window that lies wholly in probation cannot be detected and is not counted
        live = sorted(set(wid[keep & (wid >= 0)].tolist()))
        remap = {k: offset + j for j, k in enumerate(live)}
        wids.append(np.array([remap.get(int(k), -1) for k in wid[keep]], dtype=np.int64))
        weights.append(w[keep])
        vals.append(np.asarray(sc, dtype=float)[keep])
        files.append(np.full(int(keep.sum()), f))
        offset += len(live)
        n_windows += len(live)
    wid = np.concatenate(wids)
    weight = np.concatenate(weights)
    val = np.concatenate(vals)
    if np.isnan(val).any():
        raise ValueError("scores must not be NaN")
    order = np.argsort(-val, kind="stable")
    best_tp = np.full(n_windows, -FN_WEIGHT)
    total = -FN_WEIGHT * n_windows
    best = (total, math.inf, 0)  # (raw score, threshold, how many points detected)
    i = 0
    n = len(order)
    while i < n:
        t = val[order[i]]
        while i < n and val[order[i]] == t:
            k = order[i]
            if wid[k] >= 0:
                if weight[k] > best_tp[wid[k]]:
                    total += weight[k] - best_tp[wid[k]]
                    best_tp[wid[k]] = weight[k]
            else:
                total += weight[k]
            i += 1
        if total > best[0]:
            best = (total, t, i)
    raw, threshold, _ = best
    null, perfect = -FN_WEIGHT * n_windows, TP_WEIGHT * n_windows
    norm = 100.0 * (raw - null) / (perfect - null) if n_windows else 0.0
    return CorpusScore(
        score=round(float(norm), 6), threshold=float(threshold), raw=float(raw), windows=n_windows,
        detected=_windows_hit(wid, val, threshold),
        false_positives=int(((val >= threshold) & (wid < 0)).sum()),
        per_file=_per_file(corpus, scores, threshold),
    )


def _windows_hit(wid: np.ndarray, val: np.ndarray, threshold: float) -> int:
    hit = wid[(wid >= 0) & (val >= threshold)]
    return len(set(hit.tolist()))


def _per_file(corpus: Sequence[Series], scores: Sequence[np.ndarray], threshold: float) -> dict:
    out = {}
    for s, sc in zip(corpus, scores):
        sc = np.asarray(sc, dtype=float)
        wid, w = point_weights(s)
        keep = ~np.isnan(w)
        det = keep & (sc >= threshold)
        fp = det & (wid < 0)
        tp = 0.0
        hit = 0
        for k in range(len(s.windows)):
            inw = det & (wid == k)
            if inw.any():
                tp += float(w[inw].max())
                hit += 1
        n_win = len({int(k) for k in wid[keep & (wid >= 0)]})
        raw = tp - FN_WEIGHT * (n_win - hit) + float(w[fp].sum())
        ordinary = s.ordinary()
        out[s.name] = {
            "windows": n_win, "detected": hit, "false_positives": int(fp.sum()), "raw": raw,
            "rare_share": float((sc[ordinary] >= RARE).mean()) if ordinary.any() else 0.0,
        }
    return out


def rare_share(
    corpus: Sequence[Series], scores: Sequence[np.ndarray], level: float = RARE
) -> tuple[float, str, float]:
    """(overall share of ordinary points scoring >= level, worst file, its share)."""
    hits = total = 0
    worst, worst_share = "", 0.0
    for s, sc in zip(corpus, scores):
        m = s.ordinary()
        k = int((np.asarray(sc)[m] >= level).sum())
        hits += k
        total += int(m.sum())
        share = k / m.sum() if m.sum() else 0.0
        if share >= worst_share:
            worst, worst_share = s.name, share
    return hits / total if total else 0.0, worst, worst_share


def run_detector(factory: Callable[[], object], s: Series) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``s`` point by point (``update``: score, then learn); (scores, surprises)."""
    det = factory()
    scores = np.empty(len(s.ts))
    surprise = np.empty(len(s.ts))
    update = det.update  # type: ignore[attr-defined]
    for i, (t, v) in enumerate(zip(s.ts.tolist(), s.values.tolist())):
        a = update({"ts": t, "value": v})
        scores[i] = a.score
        surprise[i] = a.surprise
    return scores, surprise


def run_corpus(
    factory: Callable[[], object], corpus: Iterable[Series]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`run_detector` over every file."""
    return [run_detector(factory, s) for s in corpus]
