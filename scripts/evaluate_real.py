#!/usr/bin/env python3
"""Score a detector on the labelled real series, as the anomaly benchmark they come from does.

Every file of ``../shared/data/real-series`` (see its README) is fed point by point to a fresh
detector (score first, then learn). Prints the benchmark score (one threshold for the corpus,
standard weights, probation, windows: ``detectors.nab``), the share of ordinary points (after
probation, outside every window) scoring >= 0.9999 overall and on the worst file, and a table
per file. Nothing is tuned per file.

    .venv/bin/python scripts/evaluate_real.py                          # make_detector("generic")
    .venv/bin/python scripts/evaluate_real.py --kind volume             # another preset
    .venv/bin/python scripts/evaluate_real.py --param accept_shift_after_s=7200
    .venv/bin/python scripts/evaluate_real.py --files 'realTweets/*'   # one part of the corpus
    .venv/bin/python scripts/evaluate_real.py --json > real.json
    .venv/bin/python scripts/evaluate_real.py --plots plots/    # a PNG per file: series, windows, detections
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors import nab  # noqa: E402
from detectors.univariate import make_detector  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real-series"


def _param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def evaluate(data: Path, kind: str, params: dict, progress: bool = True, only: str | None = None) -> dict:
    """Run the detector over every file (or those matching ``only``) and score it."""
    corpus = nab.load_corpus(data)
    if only:
        corpus = [s for s in corpus if fnmatch.fnmatch(s.name, only)]
        if not corpus:
            raise ValueError(f"no file matches --files {only!r}")
    make_detector(kind, **params)  # a bad kind or parameter fails here, before any work
    files = corpus
    if progress:
        from tqdm import tqdm

        files = tqdm(corpus, desc="files", unit="file", file=sys.stderr)
    t0 = time.perf_counter()
    runs = [nab.run_detector(lambda: make_detector(kind, **params), s) for s in files]
    secs = time.perf_counter() - t0
    scores = [sc for sc, _ in runs]
    # the benchmark ranks the scores in [0, 1]; ranking by surprise (unbounded) shows whether the
    # float score's compression near 1.0 loses anything
    result = nab.corpus_score(corpus, scores)
    by_surprise = nab.corpus_score(corpus, [sp for _, sp in runs])
    overall, worst, worst_share = nab.rare_share(corpus, scores)
    per_file = {
        name: {**row, "rare_share": nab.rare_share([s], [sc])[0]}
        for (name, row), s, sc in zip(result.per_file.items(), corpus, scores)
    }
    return {
        "detector": {"kind": kind, "params": params},
        "data": str(data),
        "files": len(corpus),
        "points": int(sum(len(s.ts) for s in corpus)),
        "seconds": round(secs, 2),
        "score": result.score,
        "score_ranked_by_surprise": by_surprise.score,
        "threshold": result.threshold,
        "threshold_surprise": by_surprise.threshold,
        "windows": result.windows,
        "windows_detected": result.detected,
        "false_positives": result.false_positives,
        "rare_level": nab.RARE,
        "rare_share_overall": overall,
        "rare_share_worst": worst_share,
        "rare_share_worst_file": worst,
        "per_file": per_file,
        "_runs": runs,
        "_corpus": corpus,
    }


def plot(out_dir: Path, corpus, runs, threshold: float) -> None:
    """One PNG per file: values with windows and detections, and the surprise with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    for s, (_, surprise) in zip(corpus, runs):
        fig, (ax, bx) = plt.subplots(2, 1, figsize=(14, 5), sharex=True)
        x = np.arange(len(s.ts))
        ax.plot(x, s.values, lw=0.6)
        det = surprise >= threshold
        det[: nab.probation(len(s.ts))] = False
        ax.plot(x[det], s.values[det], "r.", ms=5, label="detection")
        bx.plot(x, surprise, lw=0.6)
        bx.axhline(threshold, color="r", lw=0.6)
        for a, b in s.windows:
            ax.axvspan(a, b, color="orange", alpha=0.25)
            bx.axvspan(a, b, color="orange", alpha=0.25)
        for axis in (ax, bx):
            axis.axvline(nab.probation(len(s.ts)), color="k", ls=":", lw=0.8)
        ax.set_title(s.name)
        bx.set_ylabel("surprise (-log10 p)")
        fig.tight_layout()
        fig.savefig(out_dir / (s.name.replace("/", "__").replace(".csv.gz", ".png")), dpi=70)
        plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"corpus folder (default {DEFAULT_DATA})")
    p.add_argument("--kind", default="generic", help="make_detector preset (default: generic)")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="override a detector parameter (repeatable)")
    p.add_argument("--files", metavar="GLOB", help="only files whose name matches, e.g. 'realTweets/*' "
                   "(to check on one half what was tuned on the other)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write a PNG per file into DIR")
    args = p.parse_args()
    if not (args.data / "windows.json").is_file():
        print(f"evaluate_real: no windows.json in {args.data} (use --data)", file=sys.stderr)
        return 2
    try:
        out = evaluate(args.data, args.kind, dict(args.param), progress=not args.json, only=args.files)
    except (TypeError, ValueError) as e:
        print(f"evaluate_real: {e}", file=sys.stderr)
        return 2
    if args.plots:
        plot(args.plots, out["_corpus"], out["_runs"], out["threshold_surprise"])
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if not k.startswith("_")}, indent=2))
        return 0
    print(f"{'file':<58} {'windows':>7} {'found':>5} {'false':>5} {'raw':>6} {'>=0.9999':>9}")
    for name, row in out["per_file"].items():
        print(f"{name:<58} {row['windows']:>7} {row['detected']:>5} {row['false_positives']:>5} "
              f"{row['raw']:>6.2f} {row['rare_share']:>9.3%}")
    print(
        f"\n{out['files']} files, {out['points']:,} points in {out['seconds']} s; detector {args.kind} "
        f"{dict(args.param) or ''}\n"
        f"benchmark score {out['score']:.1f} (threshold {out['threshold']:.6f}; "
        f"{out['windows_detected']}/{out['windows']} windows found, "
        f"{out['false_positives']} false detections; "
        f"ranked by surprise: {out['score_ranked_by_surprise']:.1f})\n"
        f"ordinary points scoring >= {nab.RARE}: {out['rare_share_overall']:.4%} overall, worst "
        f"{out['rare_share_worst']:.3%} ({out['rare_share_worst_file']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
