"""Static HTML reports with matplotlib plots (Agg backend), written by ``replay`` and ``tune``.

The HTML is self-contained: plots are inline base64 PNGs (also written next to it as files),
no JavaScript, no CDN -- it opens offline and can be attached to a ticket.

Plots:

* per customer: each chosen signal's observed series with the model's expected value and
  band, labelled incident windows (green) and alerted incidents (red), and a score strip
  (``-log10(1 - score)``, so the default 0.9999 threshold is 4);
* tuning: recall against false alerts per customer-week for every trial, the Pareto front
  and the budget.
"""
from __future__ import annotations

import base64
import html
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from detectors.evaluation import format_delay, incidents
from detectors.events import DEFAULT_INTERVAL_S, time_or_none
from detectors.signals import SIGNALS

#: label kind -> the signals that should show it
KIND_SIGNALS = {
    "origin_outage": ("origin_errors", "error_5xx"),
    "partial_5xx": ("error_5xx",),
    "error_creep": ("error_5xx",),
    "latency": ("latency_p99",),
    "traffic_drop": ("requests",),
    "traffic_surge": ("requests",),
    "cache_collapse": ("cache_hit",),
}
LABELS = {name: sig.axis_label for name, sig in SIGNALS.items()}
RATIO_SIGNALS = {name for name, sig in SIGNALS.items() if sig.unit == "ratio"}
MAX_SIGNALS_PER_CUSTOMER = 3


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


# ----------------------------------------------------------------------------- choosing what to plot


def signals_for(customer_id: str, alerts: Iterable[Mapping[str, Any]], labels: Iterable[Any],
                available: Sequence[str]) -> list[str]:
    """The signals worth plotting for one customer: alerted ones, the labelled kinds', then traffic.

    >>> signals_for("a", [{"customer_id": "a", "signals": ["latency_p99"]}],
    ...             [{"customer_id": "a", "kind": "origin_outage"}],
    ...             ["requests", "error_5xx", "latency_p99", "origin_errors"])
    ['latency_p99', 'origin_errors', 'error_5xx']
    """
    out: list[str] = []

    def add(s):
        if s in available and s not in out:
            out.append(s)

    for a in alerts:
        if a.get("customer_id") == customer_id:
            for s in a.get("signals") or [a.get("signal")]:
                add(s)
    for lab in labels:
        if _get(lab, "customer_id") == customer_id:
            for s in KIND_SIGNALS.get(_get(lab, "kind") or "", ()):
                add(s)
    add("requests")
    return out[:MAX_SIGNALS_PER_CUSTOMER]


def choose_customers(
    labels: Sequence[Any],
    alerts: Sequence[Mapping[str, Any]],
    limit: int = 12,
    false_ids: set[str] | None = None,
    labelled_share: float = 1.0,
) -> tuple[list[str], list[str]]:
    """(labelled customers, alerted-but-unlabelled customers) to plot, at most ``limit`` in all.

    Labelled customers are picked round-robin over incident kinds so every kind shows up (at most
    ``labelled_share`` of ``limit`` when alerts are known too); then customers with false alerts
    (most first), then any alerted customers.
    """
    by_kind: dict[str, list[str]] = {}
    for lab in sorted(labels, key=lambda x: (_get(x, "start") or 0, _get(x, "customer_id"))):
        by_kind.setdefault(_get(lab, "kind") or "unknown", []).append(_get(lab, "customer_id"))
    chosen: list[str] = []
    queues = [list(v) for _, v in sorted(by_kind.items())]
    cap = min(limit, math.ceil(limit * labelled_share))
    while len(chosen) < cap and any(queues):
        for q in queues:
            while q:
                c = q.pop(0)
                if c not in chosen:
                    chosen.append(c)
                    break
            if len(chosen) >= cap:
                break
    labelled = list(chosen)
    counts: dict[str, int] = {}
    for a in alerts:
        if a.get("status") == "firing" and (false_ids is None or a["alert_id"] in false_ids):
            counts[a["customer_id"]] = counts.get(a["customer_id"], 0) + 1
    if false_ids is not None and not counts:
        for a in alerts:
            if a.get("status") == "firing":
                counts[a["customer_id"]] = counts.get(a["customer_id"], 0) + 1
    extra = [c for c in sorted(counts, key=lambda c: (-counts[c], c)) if c not in chosen][
        : max(0, limit - len(chosen))
    ]
    return labelled, extra


# ----------------------------------------------------------------------------- figures


@dataclass
class _View:
    """What one customer's figure shows: the time window and the incidents in it."""

    ts: Any  # the trace's event times (numpy float64)
    sel: Any  # which of them are in the window (numpy bool)
    interval_s: float
    #: alerted incidents: [start, end or end of data, first event]
    spans: dict[str, list[float]]
    #: labelled incidents: (start, end, kind)
    lab_spans: list[tuple[Any, Any, Any]]

    @property
    def min_width(self) -> float:
        return 3 * self.interval_s


def _view(trace, alerts: Sequence[Mapping[str, Any]], labels: Sequence[Any], window_pad_s: float) -> _View:
    """The window around the customer's incidents (at least a day), or everything without one."""
    cid = trace.customer_id
    ts = np.frombuffer(trace.ts, dtype=np.float64) if len(trace.ts) else np.zeros(0)
    iv = float(np.median(np.diff(ts))) if len(ts) > 1 else 60.0
    t_end = float(ts[-1]) + iv if len(ts) else 0.0
    # incident spans from the alerts (first firing -> resolution or end of data)
    spans: dict[str, list[float]] = {}
    for aid, inc in incidents([a for a in alerts if a.get("customer_id") == cid]).items():
        st = time_or_none(inc.started_at)
        if st is not None:
            spans[aid] = [st, time_or_none(inc.resolved_at) or t_end, time_or_none(inc.first_event_ts) or st]
    lab_spans = [
        (time_or_none(_get(lab, "start")), time_or_none(_get(lab, "end")), _get(lab, "kind"))
        for lab in labels if _get(lab, "customer_id") == cid
    ]
    interest = [s for sp in spans.values() for s in sp[:2]] + [x for a, b, _ in lab_spans for x in (a, b)]
    if interest and len(ts):
        lo = max(float(ts[0]), min(interest) - window_pad_s)
        hi = min(t_end, max(interest) + window_pad_s)
        if hi - lo < 86400:
            mid = (lo + hi) / 2
            lo, hi = max(float(ts[0]), mid - 43200), min(t_end, mid + 43200)
        sel = (ts >= lo) & (ts <= hi)
    else:
        sel = np.ones(len(ts), dtype=bool)
    return _View(ts, sel, iv, spans, lab_spans)


def _dt(x):
    return np.asarray(np.asarray(x, dtype=np.float64) * 1e3, dtype="datetime64[ms]")


def _shade(ax, view: _View) -> None:
    """Labelled incidents as green spans, alerted ones as a red bar at the top."""
    for a, b, _k in view.lab_spans:
        if a is not None and b is not None:
            ax.axvspan(_dt(a), _dt(max(b, a + view.min_width)), color="tab:green", alpha=0.18, lw=0)
    for st, end, _first in view.spans.values():
        ax.axvspan(_dt(st), _dt(max(end, st + view.min_width)), ymin=0.93, ymax=1.0, color="tab:red",
                   alpha=0.7, lw=0)


def _signal_panel(ax, cols: Mapping[str, Any], signal: str, view: _View, x) -> None:
    """One signal: observed, expected and its band."""
    from matplotlib.ticker import PercentFormatter

    v, e, lo, hi = (np.frombuffer(cols[k], dtype=np.float64)[view.sel]
                    for k in ("value", "expected", "lo", "hi"))
    _shade(ax, view)
    ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.18, lw=0, label="expected band")
    ax.plot(x, e, color="tab:blue", lw=0.9, label="expected")
    ax.plot(x, v, color="black", lw=0.7, label="observed")
    ax.set_ylabel(LABELS.get(signal, signal), fontsize=8)
    if signal in RATIO_SIGNALS:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    finite = v[np.isfinite(v)]
    if len(finite):
        top = (
            float(np.nanmax(np.concatenate([finite, hi[np.isfinite(hi)]])))
            if np.isfinite(hi).any()
            else float(finite.max())
        )
        ax.set_ylim(bottom=min(0.0, float(finite.min())), top=top * 1.08 if top > 0 else None)


def _score_panel(sax, trace, signals: Sequence[str], thresholds: Mapping[str, float] | None, view: _View,
                 x) -> None:
    """Every signal's score as -log10(1 - score), the thresholds dashed, first alerts as triangles."""
    _shade(sax, view)
    for s in signals:
        cols = trace.series.get(s)
        if cols is None:
            continue
        sc = np.frombuffer(cols["score"], dtype=np.float64)[view.sel]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = -np.log10(np.clip(1.0 - sc, 1e-12, 1.0))
        sax.plot(x, y, lw=0.8, label=s)
    for s in signals:
        th = (thresholds or {}).get(s)
        if th is not None and th < 1:
            sax.axhline(-math.log10(1 - th), color="grey", ls="--", lw=0.7)
    for _st, _end, first in view.spans.values():
        sax.plot([_dt(first)], [0], marker="^", color="tab:red", ms=7, clip_on=False)
    sax.set_ylabel("-log10(1-score)", fontsize=8)
    sax.tick_params(labelsize=7)
    sax.grid(alpha=0.3)
    sax.legend(fontsize=7, loc="upper left", ncol=len(signals))


def customer_figure(trace, alerts: Sequence[Mapping[str, Any]], labels: Sequence[Any], signals: Sequence[str],
                    thresholds: Mapping[str, float] | None = None, window_pad_s: float = 12 * 3600) -> bytes:
    """PNG of one customer's traced signals (see the module docstring)."""
    from matplotlib.patches import Patch

    plt = _plt()
    view = _view(trace, alerts, labels, window_pad_s)
    x = _dt(view.ts[view.sel])
    n = len(signals)
    fig, axes = plt.subplots(n + 1, 1, figsize=(11, 2.1 * n + 1.6), sharex=True,
                             gridspec_kw={"height_ratios": [3] * n + [1.6]})
    axes = list(np.atleast_1d(axes))
    for ax, s in zip(axes, signals):
        cols = trace.series.get(s)
        if cols is not None:
            _signal_panel(ax, cols, s, view, x)
    _score_panel(axes[-1], trace, signals, thresholds, view, x)
    handles, names = axes[0].get_legend_handles_labels()
    handles += [Patch(color="tab:green", alpha=0.3), Patch(color="tab:red", alpha=0.7)]
    names += ["labelled incident", "alerted incident (top bar)"]
    axes[0].legend(handles, names, fontsize=7, loc="upper left", ncol=5)
    axes[0].set_title(f"{trace.customer_id}: {len(view.lab_spans)} labelled, {len(view.spans)} alerted "
                      f"incident(s)", fontsize=10)
    fig.autofmt_xdate()
    return _png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated when minimising x and maximising y, by increasing x.

    >>> pareto_front([(0.1, 0.5), (0.2, 0.4), (0.3, 0.9), (0.0, 0.1)])
    [3, 0, 2]
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def tradeoff_figure(trials: Sequence[Mapping[str, Any]], budget: float, best: int | None = None,
                    baseline: int | None = None) -> bytes:
    """Recall vs false alerts per customer-week, one dot per trial; Pareto front and budget."""
    plt = _plt()
    pts = [(t["false_per_customer_week"], t["recall"]) for t in trials
           if t.get("recall") is not None and t.get("false_per_customer_week") is not None]
    nums = [
        t["number"]
        for t in trials
        if t.get("recall") is not None and t.get("false_per_customer_week") is not None
    ]
    fig, ax = plt.subplots(figsize=(8, 5))
    if pts:
        xs, ys = zip(*pts)
        ok = [x <= budget for x in xs]
        ax.scatter([x for x, o in zip(xs, ok) if o], [y for y, o in zip(ys, ok) if o], s=18, color="tab:blue",
                   alpha=0.7, label="trial within budget")
        ax.scatter([x for x, o in zip(xs, ok) if not o], [y for y, o in zip(ys, ok) if not o], s=18,
                   color="grey", alpha=0.5, label="trial over budget")
        front = pareto_front(pts)
        ax.step([pts[i][0] for i in front], [pts[i][1] for i in front], where="post", color="tab:red", lw=1.3,
                label="Pareto front")
        ax.scatter([pts[i][0] for i in front], [pts[i][1] for i in front], s=30, facecolor="none",
                   edgecolor="tab:red")
        for num, marker, color, name in (
            (baseline, "D", "black", "base config"),
            (best, "*", "gold", "best"),
        ):
            if num is not None and num in nums:
                x, y = pts[nums.index(num)]
                ax.scatter(
                    [x],
                    [y],
                    s=160 if marker == "*" else 60,
                    marker=marker,
                    color=color,
                    edgecolor="black",
                    zorder=5,
                    label=f"{name} (trial {num})",
                )
    ax.axvline(budget, color="tab:orange", ls="--", lw=1, label=f"budget {budget:g}")
    ax.set_xlabel("false alerts per customer-week")
    ax.set_ylabel("incident recall")
    ys_ = [p[1] for p in pts]
    ax.set_ylim(max(-0.02, (min(ys_) - 0.1) if ys_ else -0.02), 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Trade-off over {len(trials)} trials")
    return _png(fig)


# ----------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1150px;color:#222;
padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.muted{color:#777}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
details{margin:.3em 0}summary{cursor:pointer}
.good{color:#1a7f37}.bad{color:#c62828}.scroll{overflow-x:auto;max-width:100%}
"""


@dataclass
class Report:
    """A list of HTML blocks; :meth:`write` renders the page and saves the PNGs next to it."""

    title: str
    blocks: list[str] = field(default_factory=list)
    images: list[tuple[str, bytes]] = field(default_factory=list)

    def h2(self, text: str) -> None:
        self.blocks.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.blocks.append(f"<p{c}>{html.escape(text)}</p>")

    def pre(self, text: str) -> None:
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")

    def kv(self, pairs: Mapping[str, Any]) -> None:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
            for k, v in pairs.items()
        )
        self.blocks.append(f"<table>{rows}</table>")

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]], limit: int | None = None) -> None:
        rows = list(rows)
        more = ""
        if limit is not None and len(rows) > limit:
            more = f"<p class=muted>... {len(rows) - limit} more rows in the JSON output</p>"
            rows = rows[:limit]
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
        )
        self.blocks.append(f"<div class=scroll><table><tr>{head}</tr>{body}</table></div>{more}")

    def details(self, summary: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A collapsible block: ``summary`` always shown, the table when opened."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
        )
        self.blocks.append(f"<details><summary>{html.escape(summary)}</summary>"
                           f"<div class=scroll><table><tr>{head}</tr>{body}</table></div></details>")

    def image(self, name: str, png: bytes, caption: str = "") -> None:
        self.images.append((name, png))
        b64 = base64.b64encode(png).decode()
        cap = f"<div class=muted>{html.escape(caption)}</div>" if caption else ""
        self.blocks.append(
            f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{b64}">{cap}</figure>'
        )

    def render(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
                f"<p class=muted>generated {stamp}</p>" + "\n".join(self.blocks) + "</body></html>\n")

    def write(self, out_dir: Path, name: str = "report.html", png_dir: str = "plots") -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        if self.images:
            (out_dir / png_dir).mkdir(exist_ok=True)
            for old in (out_dir / png_dir).glob("*.png"):  # plots of an earlier run into the same dir
                old.unlink()
            for fname, png in self.images:
                (out_dir / png_dir / fname).write_bytes(png)
        path = out_dir / name
        path.write_text(self.render(), encoding="utf-8")
        return path


#: floats are shown with this many significant digits (so a threshold of 0.9999 stays 0.9999)
SIGNIFICANT_DIGITS = 6
#: from here on a float is shown with thousands separators and one decimal (or none, if whole)
LARGE = 1000


def _fmt(v: Any) -> str:
    """A cell for people: ``n/a``, yes/no, thousands separators, no float noise, dicts as ``k v, k v``.

    >>> [_fmt(x) for x in (None, True, 129600, 0.9999, 0.9923463927086412, 209747.522, 5.0, 1e-05)]
    ['n/a', 'yes', '129,600', '0.9999', '0.992346', '209,747.5', '5', '1e-05']
    >>> _fmt({"scored": 129600, "warming": 3})
    'scored 129,600, warming 3'
    """
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        if abs(v) >= LARGE:
            return f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}"
        return f"{v:.{SIGNIFICANT_DIGITS}g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "none"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _size(v: float | None) -> str:
    """Mean requests per interval, rounded to what matters for telling customers apart.

    >>> _size(5.441), _size(209747.522), _size(None)
    ('5.4', '209,748', 'n/a')
    """
    if v is None:
        return "n/a"
    return f"{v:,.1f}" if abs(v) < 10 else f"{v:,.0f}"


def _signed(v: Any) -> str:
    """A change: always with its sign.

    >>> _signed(0), _signed(-0.125), _signed(2), _signed(None)
    ('+0', '-0.125', '+2', 'n/a')
    """
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return _fmt(v)
    return ("+" if v >= 0 else "") + _fmt(v)


def _pct(v):
    return None if v is None else f"{v:.1%}"


# ----------------------------------------------------------------------------- sections


def evaluation_section(rep: Report, ev: Mapping[str, Any], limit: int = 40) -> None:
    """Headline, by kind, by size decile, missed labels and false alerts of an Evaluation.to_dict()."""
    iv = ev.get("interval_s") or DEFAULT_INTERVAL_S
    rep.kv({
        "labels": ev["labels"], "detected": ev["detected"], "recall": _pct(ev["recall"]),
        "opened incidents": ev["opened_incidents"], "precision": _pct(ev["precision"]),
        "false alerts": ev["false_alerts"], "false alerts per customer-week": ev["false_per_customer_week"],
        "time to detect, median": format_delay(ev["ttd_median_intervals"], iv),
        "time to detect, p90": format_delay(ev["ttd_p90_intervals"], iv),
        "customers x weeks": f"{ev['customers']:,} x {ev['span_s'] / 604800:.2f}",
    })
    if ev["by_kind"]:
        rep.table(
            ["incident kind", "labels", "detected", "recall", "time to detect, median"],
            [
                [
                    k,
                    r["labels"],
                    r["detected"],
                    _pct(r["recall"]),
                    format_delay(r["ttd_median_intervals"], iv),
                ]
                for k, r in ev["by_kind"].items()
            ],
        )
    if ev["by_size_decile"]:
        rep.p("By customer size (mean requests per interval), smallest decile first:")
        rep.table(["decile", "customers", "size min (requests / interval)", "size max (requests / interval)",
                   "labels", "recall", "false alerts", "false / customer-week"],
                  [[r["decile"], r["customers"], _size(r["size_min"]), _size(r["size_max"]), r["labels"],
                    _pct(r["recall"]), r["false_alerts"], r["false_per_customer_week"]]
                   for r in ev["by_size_decile"]])
    missed = [r for r in ev["label_results"] if not r["detected"]]
    if missed:
        rep.p(f"Missed incidents ({len(missed)}):")
        rep.table(["customer", "start", "end", "kind"], [[r["customer_id"], r["start"], r["end"], r["kind"]]
                                                          for r in missed], limit=limit)
    if ev["false_alert_incidents"]:
        rep.p(f"False alerts ({len(ev['false_alert_incidents'])}):")
        rep.table(["customer", "started at", "alert id"], [[r["customer_id"], r["started_at"], r["alert_id"]]
                                                          for r in ev["false_alert_incidents"]], limit=limit)


def customer_plots(rep: Report, traces: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]],
                   labels: Sequence[Any], thresholds: Mapping[str, float], order: Sequence[str]) -> int:
    n = 0
    for cid in order:
        tr = traces.get(cid)
        if tr is None or not len(tr):
            continue
        sigs = signals_for(cid, alerts, labels, list(tr.series))
        png = customer_figure(tr, alerts, labels, sigs, thresholds)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in cid)
        rep.image(f"customer-{safe}.png", png, f"{cid}: {', '.join(sigs)}")
        n += 1
    return n


def parents_section(rep: Report, parents: Mapping[str, Any], incidents: Sequence[Mapping[str, Any]]) -> None:
    """The correlator's parent incidents, each with its children (the latest record of each)."""
    rep.kv({k: v for k, v in parents.items() if k != "evaluation"})
    ev = parents.get("evaluation")
    if ev:
        rep.table(["shared-cause target", "value"], [
            ["causes touching >= 20 customers", ev["causes_targeted"]],
            ["one parent within 2 intervals of the first child", _pct(ev["parent_recall"])],
            ["localised right", _pct(ev["localised_right"])],
            ["notifications / per-customer count",
             f"{ev['notifications']} / {ev['per_customer_notifications']}"],
            ["false parents", ev["false_parents"]],
            ["unrelated incidents overlapping a parent that notified alone",
             _pct(ev["unrelated_notified_share"])],
        ])
    last: dict[str, Mapping[str, Any]] = {}
    for r in incidents:
        last[r["parent_id"]] = r
    if not last:
        rep.p("No parent incident: no group had significantly many customers going wrong at once.", "muted")
    for pid, r in last.items():
        kids = r.get("children") or []
        rep.details(
            f"{r['severity']} {r['status']}: {r['cause']} [{pid}; {len(kids)} child alerts, "
            f"{r.get('children_open', 0)} open; published {r.get('published_at')}]",
            ["customer", "alert", "severity", "status", "started at", "resolved at"],
            [[k["customer_id"], k["alert_id"], k["severity"], k["status"], k["started_at"], k["resolved_at"]]
             for k in kids])


def write_replay_report(out_dir: Path, summary: Mapping[str, Any], *, traces: Mapping[str, Any],
                        alerts: Sequence[Mapping[str, Any]], labels: Sequence[Any],
                        thresholds: Mapping[str, float], order: Sequence[str],
                        diff: Mapping[str, Any] | None = None,
                        incidents: Sequence[Mapping[str, Any]] = ()) -> Path:
    rep = Report(f"Lookout replay: {summary['source'].get('path') or summary['source'].get('topic')}")
    rep.h2("Run")
    rep.kv(
        {
            "source": summary["source"].get("path") or f"kafka://{summary['source'].get('topic')}",
            "config": f"{summary['config']['path'] or '(defaults)'} [{summary['config']['fingerprint']}]",
            "records": summary["records"],
            "invalid (dlq.jsonl)": summary["invalid"],
            "customers": summary["customers"],
            "event time": f"{summary['first_ts']} .. {summary['last_ts']} ({summary['span_days']} days)",
            "interval": f"{summary['interval_s'] or DEFAULT_INTERVAL_S:,} s",
            "outcomes": summary["outcomes"],
            "alerts": summary["alerts"]["alerts"],
            "opened incidents": summary["alerts"]["opened_incidents"],
            "by severity": summary["alerts"]["by_severity"],
            "by primary signal": summary["alerts"]["by_primary_signal"],
            "replay speed": f"{summary['events_per_s']:,.0f} records/s ({summary['seconds']:.1f} s)",
        }
    )
    if summary["source"].get("inferred_interval_s"):
        rep.p(
            f"The CSV file has no interval_s column: {summary['source']['inferred_interval_s']:,} s was told "
            f"from the timestamps.",
            "muted",
        )
    if summary.get("evaluation"):
        rep.h2("Against the labels")
        evaluation_section(rep, summary["evaluation"])
    if summary.get("parents") is not None:
        rep.h2("Parent incidents (shared causes)")
        parents_section(rep, summary["parents"], incidents)
    if diff is not None:
        rep.h2("Change vs baseline")
        rep.p(
            f"baseline {diff['baseline_config']}: {len(diff['gained'])} incidents gained, "
            f"{len(diff['lost'])} lost, "
            f"{len(diff['changed'])} changed, {diff['unchanged']} unchanged"
        )
        if diff.get("metrics"):
            rep.table(["metric", "baseline", "new", "delta"],
                      [[k, v["old"], v["new"], _signed(v["delta"])] for k, v in diff["metrics"].items()])
        for title in ("gained", "lost", "changed"):
            rows = diff[title]
            if rows:
                rep.p(f"{title} ({len(rows)}):")
                rep.table(
                    ["customer", "started at", "severity", "signal", "resolved at", "labelled", "changes"],
                    [
                        [
                            r["customer_id"],
                            r["started_at"],
                            r["severity"],
                            r["signal"],
                            r["resolved_at"],
                            r.get("matches_label"),
                            "; ".join(f"{f}: {o} -> {n}" for f, (o, n) in r.get("changes", {}).items()),
                        ]
                        for r in rows
                    ],
                    limit=50,
                )
    rep.h2("Customers")
    rep.p("Observed (black) vs expected (blue, with band); green = labelled incident, red = alerted incident "
          "(triangle = first alert). Bottom: scores as -log10(1 - score), dashed = alert threshold.", "muted")
    n = customer_plots(rep, traces, alerts, labels, thresholds, order)
    if not n:
        rep.p("No customer had labels or alerts to plot.", "muted")
    return rep.write(out_dir)


def write_tune_report(out_dir: Path, *, summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]],
                      params_rows: Sequence[Sequence[Any]], best_eval: Mapping[str, Any] | None,
                      base_eval: Mapping[str, Any] | None, traces: Mapping[str, Any],
                      alerts: Sequence[Mapping[str, Any]], labels: Sequence[Any],
                      thresholds: Mapping[str, float], order: Sequence[str]) -> Path:
    budget = summary["budget"]
    best = summary.get("best_trial")
    rep = Report(
        f"Lookout tuning: {summary['trials_done']} trials, budget {budget:g} false alerts per customer-week"
    )
    rep.h2("Search")
    rep.kv({
        "source": summary["source"].get("path") or f"kafka://{summary['source'].get('topic')}",
        "events in memory": summary["events"], "invalid records": summary["invalid"],
        "interval": f"{summary.get('interval_s') or DEFAULT_INTERVAL_S:,} s",
        "customers": summary["customers"], "labels": summary["labels"],
        "base config": f"{summary['base_config'] or '(defaults)'} [{summary['base_fingerprint']}]",
        "best trial": best, "best config": f"{summary['best_config_path']} [{summary['best_fingerprint']}]",
        "objective": "maximise recall subject to false alerts per customer-week <= budget",
        "time": f"{summary['seconds']:.1f} s with {summary['jobs']} process(es)",
    })
    rep.image(
        "tradeoff.png",
        tradeoff_figure(trials, budget, best, summary.get("baseline_trial")),
        "Each dot is a trial. Red: Pareto front (no other trial has both more recall and fewer "
        "false alerts).",
    )
    rep.h2("Parameters")
    rep.table(["parameter", "base", "best", "searched range"], params_rows)
    if base_eval is not None and best_eval is not None:
        rep.h2("Base vs best")
        keys = ("recall", "precision", "false_alerts", "false_per_customer_week", "ttd_median_intervals",
                "ttd_p90_intervals", "opened_incidents")
        iv = summary.get("interval_s") or DEFAULT_INTERVAL_S
        rep.table(
            ["metric", "base", "best"],
            [
                [
                    k.removesuffix("_intervals"),
                    format_delay(base_eval.get(k), iv),
                    format_delay(best_eval.get(k), iv),
                ]
                if k.startswith("ttd_")
                else [k, _pct(base_eval.get(k)), _pct(best_eval.get(k))]
                if k in ("recall", "precision")
                else [k, base_eval.get(k), best_eval.get(k)]
                for k in keys
            ],
        )
    ok = sorted((t for t in trials if t.get("value") is not None), key=lambda t: -t["value"])
    rep.h2("Top trials")
    names = [r[0] for r in params_rows]
    rep.table(
        ["trial", "recall", "false/cw", "precision", "TTD median (intervals)", "within budget", *names],
        [
            [
                t["number"],
                _pct(t["recall"]),
                t["false_per_customer_week"],
                _pct(t["precision"]),
                t["ttd_median_intervals"],
                t["feasible"],
                *[t["params"].get(n) for n in names],
            ]
            for t in ok
        ],
        limit=20,
    )
    if best_eval is not None:
        rep.h2("Best config against the labels")
        evaluation_section(rep, best_eval)
    rep.h2("Customers (best config)")
    n = customer_plots(rep, traces, alerts, labels, thresholds, order)
    if not n:
        rep.p("No customer had labels or alerts to plot.", "muted")
    return rep.write(out_dir)
