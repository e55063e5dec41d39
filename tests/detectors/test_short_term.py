"""The seasonal model's short-term term (``ar_memory_points``): the echo of the last residual."""
import random

from detectors import kernel as K
from detectors import make_detector

STEP = 300.0
#: lag-1 autocorrelation of the simulated noise
PHI = 0.8


def correlated(n, seed=1, level=100.0, sd=5.0):
    """A flat series whose noise is AR(1): each residual keeps PHI of the last one."""
    rnd, e, out = random.Random(seed), 0.0, []
    for _ in range(n):
        e = PHI * e + rnd.gauss(0.0, sd)
        out.append(level + e)
    return out


def run(det, values):
    return [det.update({"ts": i * STEP, "value": v}) for i, v in enumerate(values)]


def test_the_generic_expectation_follows_the_echo_of_the_last_residual():
    values = correlated(4000)
    with_term, without = make_detector("generic"), make_detector("generic", ar_memory_points=0)
    err = {}
    for name, det in (("with", with_term), ("without", without)):
        out = run(det, values)
        err[name] = sum(abs(a.value - a.expected) for a in out[1000:]) / len(out[1000:])
    # one-step errors are the innovations (sd 5) instead of the whole noise (sd 5 / 0.6)
    assert err["with"] < 0.75 * err["without"], err
    row = with_term.state
    assert abs(row[K.S_AR_XY] / row[K.S_AR_XX] - PHI) < 0.1


def test_the_echo_of_an_anomaly_is_not_expected():
    det = make_detector("generic")
    run(det, correlated(3000))
    ts = 3000 * STEP
    spike = det.update({"ts": ts, "value": 400.0})
    assert spike.score > 0.9999
    # the point after a spike is judged against the baseline (PHI x the spike, even clipped at 3
    # standard deviations, would expect about 120)
    after = det.assess({"ts": ts + STEP, "value": 100.0})
    assert abs(after.expected - 100.0) < 10.0 and after.score < 0.99


def test_customer_signals_have_no_short_term_term():
    for kind in ("volume", "latency"):
        det = make_detector(kind)
        run(det, correlated(2000, level=1000.0, sd=50.0))
        assert det.state[K.S_AR_PREV] == det.state[K.S_AR_XY] == det.state[K.S_AR_XX] == 0.0, kind
