"""The fleet engine's compiled kernel: every series of a batch of events, on per-fleet arrays.

This is :class:`~detectors.univariate.SeasonalDetector` and
:class:`~detectors.univariate.RatioDetector` (``step``: score first, then learn) written once
more over structure-of-arrays state, compiled with numba. The River classes stay the public,
per-series API and the *reference*: ``tests/detectors/test_fleet.py`` checks on random streams
that this kernel gives the same scores, state and alerts, bit for bit. So the arithmetic here
follows the reference operation by operation (same order, same library functions):

* every constant arrives in the array ``C`` computed by Python (numba would fold
  ``math.log(10.0)`` or ``x ** 2.0`` at compile time, which can differ in the last bit);
* powers use a base or exponent that is not a compile-time constant (``C[HALF] ** x``) so
  LLVM keeps libm's ``pow``;
* the Student-t tail's ``lgamma`` terms come precomputed per degree of freedom (CPython's
  ``math.lgamma`` is its own implementation, not libm's).

Layout: ``SS[slot, j, field]`` holds seasonal series ``j``'s scalars (``S_*`` fields),
``HOD``/``HODW`` ``[slot, j, 24]`` and ``DOW``/``DOWW`` ``[slot, j, 7]`` its profiles;
``RS[slot, j, field]`` ratio series ``j`` (``R_*``). "None" in the reference is NaN here.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .verdict import Outcome

# -- constants array C (filled by detectors.fleet from the reference modules) ------------------
(C_HALF, C_TEN, C_TWO, C_LN10, C_SEQ_STEP_MAX, C_2_PI, C_SQRT2, C_PI, C_DAY, C_HOUR, C_MAX_STEP,
 C_SCALE_CLIP, C_DOW_PRIOR, C_SHIFT_RATE, C_NORMAL_DOF, C_MAX_SURPRISE, C_SEQ_Z_CLIP,
 C_SEQ_MAX_DECADES, C_DOW_RANGE, C_EXACT_P_MIN, C_POISSON_MAX_K, C_T_ASYMPT_PHI,
 C_SURPRISE_EXACT_MAX, C_SURPRISE_COMPRESS, C_N) = range(25)

# -- seasonal parameters PS[j, :] ---------------------------------------------------------------
(P_LOG, P_DIR, P_LEVEL_HL, P_SEASON_HL, P_SCALE_HL, P_WEEKLY, P_WARMUP_S, P_WARMUP_N, P_Z_LEARN,
 P_CLIP, P_ACCEPT, P_MIN_REL, P_MIN_ABS, P_COUNT_NOISE, P_SUPPORT_NOISE, P_BAND, P_TAIL_DOF,
 P_DOW_DN, P_DOW_UP, P_DOW_SEEN, P_SEQ_SHIFT, P_SEQ_PENALTY, P_SCALE_MIN_N, P_N) = range(24)

# -- seasonal state SS[slot, j, :] ----------------------------------------------------------------
(S_N, S_T0, S_LAST, S_LEVEL, S_S2, S_S2_W, S_CENTRED, S_SHIFT, S_ANOM_SINCE, S_ANOM_SIGN, S_WARM,
 S_CS, S_CS_T0, S_DT, S_R0, S_R1, S_R2, S_R3, S_N_FIELDS) = range(19)

# -- ratio parameters PR[j, :] ----------------------------------------------------------------------
(Q_DIR, Q_HL, Q_WARMUP_S, Q_WARMUP_N, Q_LEARN_THR, Q_CLIP, Q_ACCEPT, Q_MIN_REL, Q_PRIOR, Q_BAND,
 Q_SEQ_RATIO, Q_SEQ_WINDOW, Q_SEQ_ABS, Q_SEQ_PENALTY, Q_TAIL_DOF, Q_Z_LEARN, Q_N) = range(17)

# -- ratio state RS[slot, j, :] ----------------------------------------------------------------------
(R_N, R_T0, R_LAST, R_A, R_B, R_TAU2, R_TAU_W, R_ANOM_SINCE, R_ANOM_SIGN, R_ANOM_A, R_ANOM_B, R_WARM,
 R_CS, R_CS_T0, R_CS_NUM, R_CS_DEN, R_DT, R_DEC, R_N_FIELDS) = range(19)

#: directions (PS[P_DIR], PR[Q_DIR])
UP, DOWN, BOTH = 0, 1, 2
#: Assessment fields in the output array O[k, s, :]
(A_SCORE, A_VALUE, A_EXPECTED, A_LO, A_HI, A_EXCESS, A_SURPRISE, A_WINDOW, A_COUNT, A_SUPPORT,
 A_N) = range(11)
#: signal spec columns SPEC[s, :]: model family (0 seasonal, 1 ratio), index in its family,
#: event column of the value / numerator, of the support / denominator (-1: none), and whether
#: the signal is absent when its support is 0
F_SEASONAL, F_RATIO = 0, 1
(G_FAMILY, G_INDEX, G_VALUE_COL, G_SUPPORT_COL, G_SKIP_ZERO, G_N) = range(6)


@njit(cache=True, nogil=True)
def _put(out, score, value, expected, lo, hi, excess, surprise, window, count, support):
    """Write one Assessment (its fields in order) into ``out``."""
    out[A_SCORE] = score
    out[A_VALUE] = value
    out[A_EXPECTED] = expected
    out[A_LO] = lo
    out[A_HI] = hi
    out[A_EXCESS] = excess
    out[A_SURPRISE] = surprise
    out[A_WINDOW] = window
    out[A_COUNT] = count
    out[A_SUPPORT] = support


@njit(cache=True, nogil=True)
def _normal_sf(z, C):
    return 0.5 * math.erfc(z / C[C_SQRT2])


@njit(cache=True, nogil=True)
def _poisson_sf(k, lam, C):
    if k <= 0:
        return 1.0
    if lam <= 0.0:
        return 0.0
    if k > C[C_POISSON_MAX_K]:
        return _normal_sf((k - 0.5 - lam) / math.sqrt(lam), C)
    term = math.exp(-lam)
    cdf = term
    for i in range(1, k):
        term *= lam / i
        cdf += term
    x = 1.0 - cdf
    return x if x > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _student_t_sf2(t, nu, C, KT):
    t = abs(t)
    if t == 0.0:
        return 1.0
    rn = math.sqrt(nu)
    phi = math.atan2(rn, t)
    if phi < C[C_T_ASYMPT_PHI]:
        logf = KT[nu] - (nu + 1) / 2.0 * math.log1p(t * t / nu)
        return 2.0 * math.exp(logf) * t / nu
    if nu == 1:
        return 2.0 * phi / C[C_PI]
    x = nu + t * t
    u = nu / x
    term = 1.0
    series = 1.0
    for k in range(1, (nu - 1) // 2):
        term *= u * (2 * k) / (2 * k + 1)
        series += term
    q = C[C_2_PI] * (phi - rn * t / x * series)
    return q if q > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _score_from_surprise(s, C):
    if s <= 0.0:
        return 0.0
    ex = C[C_SURPRISE_EXACT_MAX]
    if s > ex:
        comp = C[C_SURPRISE_COMPRESS]
        s = ex + comp * (1.0 - math.exp(-(s - ex) / comp))
    return 1.0 - C[C_TEN] ** -s


@njit(cache=True, nogil=True)
def _seasonal_step(st, hod, hw, dow, dww, P, ts, v, n, has_n, out, C, KT, TU):
    """SeasonalDetector.step on one series (``st``: its scalars; views of its profiles)."""
    log_t = P[P_LOG] != 0.0
    weekly = P[P_WEEKLY] != 0.0
    direction = int(P[P_DIR])
    # ---- _prepare
    if log_t:
        y = math.log1p(v) if v > 0 else 0.0
    else:
        y = v
    if st[S_N] == 0.0:
        _put(out, 0.0, v, v, v, v, 0.0, 0.0, 0.0, 0.0, 0.0)
        # _learn of the first point
        if math.isnan(st[S_LAST]) or ts > st[S_LAST]:
            st[S_N] = 1.0
            st[S_T0] = ts
            st[S_LAST] = ts
            st[S_LEVEL] = y
            # (step: warm is False after a first point, the sequential test is not touched)
        return
    DAY = C[C_DAY]
    HOUR = C[C_HOUR]
    h = (ts % DAY) / HOUR - 0.5
    if h < 0.0:
        h += 24.0
    i = int(h)
    w = h - i
    j = 0 if i == 23 else i + 1
    d = int((ts // DAY + 3) % 7)
    mu = st[S_LEVEL] + hod[i] * (1.0 - w) + hod[j] * w
    if weekly:
        mu += dow[d]
    if log_t:
        floor = P[P_MIN_REL]
    else:
        fa = P[P_MIN_REL] * abs(mu)
        floor = fa if fa > P[P_MIN_ABS] else P[P_MIN_ABS]
    s2 = st[S_S2]
    heavy = s2 if s2 > floor * floor else floor * floor
    if P[P_SUPPORT_NOISE] != 0.0 and has_n and n != 0.0:
        heavy += P[P_SUPPORT_NOISE] / n
    var = heavy
    if P[P_COUNT_NOISE] != 0.0 and log_t:
        var += math.exp(-mu) if mu > 0 else 1.0
    b_lo = 0.0
    b_hi = 0.0
    dow_var = 0.0
    dow_up = P[P_DOW_UP]
    dow_dn = P[P_DOW_DN]
    if dow_up != 0.0 or dow_dn != 0.0:
        seen = dww[d]
        if seen < P[P_DOW_SEEN]:
            unseen = C[C_DOW_PRIOR] / (seen + C[C_DOW_PRIOR])
            b_lo = -unseen * dow_dn
            b_hi = unseen * dow_up
        hd = h + 0.5
        adj = d - 1 if hd < 12.0 else d + 1
        adj = 6 if adj < 0 else (0 if adj > 6 else adj)
        if dww[adj] > 0.0:
            tr = (1.0 - hd / 12.0 if hd < 12.0 else hd / 12.0 - 1.0) * (dow[adj] - dow[d])
            if tr > 0.0:
                b_hi += tr
            else:
                b_lo += tr
        b = b_hi if y > mu else -b_lo
        dow_var = (b / C[C_DOW_RANGE]) ** C[C_TWO]
        var += dow_var
    r_eff = y - mu
    if dow_var > 0.0:
        r_eff = r_eff - b_hi if r_eff > b_hi else (r_eff - b_lo if r_eff < b_lo else 0.0)
    sd = math.sqrt(var)
    z = (y - mu) / sd
    nu_f = P[P_TAIL_DOF] * (var / heavy) ** C[C_TWO]
    za = z if z > 0 else -z
    if nu_f > C[C_NORMAL_DOF]:
        q = math.erfc(za / C[C_SQRT2])
    else:
        nu = int(nu_f) | 1
        q = _student_t_sf2(za * TU[nu], nu, C, KT)
    if direction == BOTH:
        p = q
    elif (z > 0) == (direction == UP):
        p = 0.5 * q
    else:
        p = 1.0 - 0.5 * q
    surprise = -math.log10(p) if p > 0.0 else C[C_MAX_SURPRISE]
    warm0 = st[S_WARM] != 0.0
    cs_old = st[S_CS]
    cs = 0.0
    delta = P[P_SEQ_SHIFT]
    if warm0 and (cs_old != 0.0 or dow_var > 0.0 or za > 0.5 * delta):
        zc = z
        if dow_var > 0.0:
            zc = r_eff / math.sqrt(var - dow_var)
        zc = C[C_SEQ_Z_CLIP] * math.tanh(zc / C[C_SEQ_Z_CLIP])
        half = 0.5 * delta * delta
        cap = (P[P_SEQ_PENALTY] + C[C_SEQ_MAX_DECADES]) * C[C_LN10]
        up = ((cs_old if cs_old <= cap else cap) if cs_old > 0.0 else 0.0) + delta * zc - half
        mcs = -cs_old
        dn = ((mcs if mcs <= cap else cap) if cs_old < 0.0 else 0.0) - delta * zc - half
        if direction == UP:
            dn = 0.0
        elif direction == DOWN:
            up = 0.0
        cs = up if up > 0.0 and up >= dn else (-dn if dn > 0.0 else 0.0)
    window = 0.0
    seq_won = False
    dt_old = st[S_DT]
    if cs != 0.0:
        seq = (cs if cs > 0.0 else -cs) / C[C_LN10] - P[P_SEQ_PENALTY]
        if seq > surprise:
            surprise = seq
            seq_won = True
            same = (cs > 0.0) == (cs_old > 0.0) and cs_old != 0.0
            window = (ts - st[S_CS_T0] if same else 0.0) + (dt_old if dt_old > 0.0 else 0.0)
    if not seq_won and p >= C[C_EXACT_P_MIN]:
        score = 1.0 - p
    else:
        score = _score_from_surprise(surprise, C)
    k = P[P_BAND] * sd
    if log_t:
        exp_v = math.expm1(mu)
        lo = math.expm1(mu - k)
        hi = math.expm1(mu + k)
        lo = lo if lo > 0.0 else 0.0
    else:
        exp_v = mu
        lo = mu - k
        hi = mu + k
    _put(out, score, v, exp_v, lo, hi, 0.0, surprise, window, 0.0, 0.0)
    # ---- step: learn only a point after the last learned one
    if not (math.isnan(st[S_LAST]) or ts > st[S_LAST]):
        return
    _seasonal_learn(st, hod, hw, dow, dww, P, ts, y, mu, i, j, w, d, var, r_eff, C)
    if st[S_WARM] != 0.0:
        if cs == 0.0 or (cs > 0.0) != (st[S_CS] > 0.0) or st[S_CS] == 0.0:
            st[S_CS_T0] = ts
        st[S_CS] = cs


@njit(cache=True, nogil=True)
def _clipped(e, clip):
    return e if -clip < e < clip else (clip if e > 0 else -clip)


@njit(cache=True, nogil=True)
def _seasonal_learn(st, hod, hw, dow, dww, P, ts, y, mu, i, j, w, d, var, r_eff, C):
    DAY = C[C_DAY]
    HOUR = C[C_HOUR]
    weekly = P[P_WEEKLY] != 0.0
    dt = ts - st[S_LAST]
    dt = 1.0 if dt < 1.0 else (C[C_MAX_STEP] if dt > C[C_MAX_STEP] else dt)
    if dt != st[S_DT]:
        st[S_DT] = dt
        half = C[C_HALF]
        st[S_R0] = 1.0 - half ** (dt / P[P_LEVEL_HL])
        st[S_R1] = 1.0 - half ** (dt / (P[P_SEASON_HL] * HOUR))
        st[S_R2] = 1.0 - half ** (dt / (P[P_SEASON_HL] * 7 * DAY))
        r3 = 1.0 - half ** (dt / P[P_SCALE_HL])
        cap_v = 1.0 / P[P_SCALE_MIN_N]
        st[S_R3] = cap_v if cap_v < r3 else r3
    a_l = st[S_R0]
    a_s = st[S_R1]
    a_w = st[S_R2]
    a_v = st[S_R3]
    st[S_N] += 1.0
    warm = st[S_WARM] != 0.0
    if not warm and st[S_N] >= P[P_WARMUP_N] and ts - st[S_T0] >= P[P_WARMUP_S]:
        st[S_WARM] = 1.0
    r = y - mu
    sd = math.sqrt(var) if var > 0 else 1.0
    clip = P[P_CLIP] * sd
    anomalous = warm and (r if r > 0 else -r) >= P[P_Z_LEARN] * sd
    if anomalous:
        sign = 1.0 if r > 0 else -1.0
        if math.isnan(st[S_ANOM_SINCE]) or sign != st[S_ANOM_SIGN]:
            st[S_ANOM_SINCE] = ts
            st[S_ANOM_SIGN] = sign
            st[S_SHIFT] = r
        else:
            st[S_SHIFT] += C[C_SHIFT_RATE] * (r - st[S_SHIFT])
            if ts - st[S_ANOM_SINCE] >= P[P_ACCEPT]:
                st[S_LEVEL] += st[S_SHIFT]
                st[S_ANOM_SINCE] = np.nan
                st[S_ANOM_SIGN] = 0.0
                st[S_SHIFT] = 0.0
                st[S_LAST] = ts
                return
    else:
        st[S_ANOM_SINCE] = np.nan
    dow_on = P[P_DOW_UP] != 0.0 or P[P_DOW_DN] != 0.0
    first_day = ts - st[S_T0] < DAY
    if not first_day and st[S_CENTRED] == 0.0:
        # _recentre: the mean of the visited time-of-day bins moves into the level
        total = 0.0
        count = 0
        for b in range(24):
            if hw[b] > 0:
                total += hod[b]
                count += 1
        m = total / count if count else 0.0
        st[S_LEVEL] += m
        for b in range(24):
            if hw[b] > 0:
                hod[b] -= m
        st[S_CENTRED] = 1.0
    if not first_day:
        rc = r if -clip < r < clip else (clip if r > 0 else -clip)
        if dow_on:
            wd = dww[d]
            unseen = 0.0 if wd >= P[P_DOW_SEEN] else C[C_DOW_PRIOR] / (wd + C[C_DOW_PRIOR])
            rc *= 1.0 - unseen
        st[S_LEVEL] += a_l * rc
    u = dt / HOUR if dt < HOUR else 1.0
    wk = dow[d] if weekly else 0.0
    target = y - st[S_LEVEL] - wk
    if not warm:
        clip = math.inf
    bw = 1.0 - w
    if bw > 0.0:
        hw[i] += bw * u
        g = bw * u / hw[i]
        if g < a_s * bw:
            g = a_s * bw
        e = target - hod[i]
        hod[i] += g * _clipped(e, clip)
    if w > 0.0:
        hw[j] += w * u
        g = w * u / hw[j]
        if g < a_s * w:
            g = a_s * w
        e = target - hod[j]
        hod[j] += g * _clipped(e, clip)
    if weekly and not first_day:
        ud = dt / DAY
        dww[d] += ud
        g = ud / (dww[d] + C[C_DOW_PRIOR])
        if g < a_w:
            g = a_w
        e = y - st[S_LEVEL] - (hod[i] * (1.0 - w) + hod[j] * w) - dow[d]
        dow[d] += g * _clipped(e, clip)
    if anomalous:
        st[S_LAST] = ts
        return
    e2 = r_eff * r_eff
    sc = C[C_SCALE_CLIP]
    cap = sc * sc * var if var > 0 else e2
    if e2 > cap:
        e2 = cap
    if P[P_COUNT_NOISE] != 0.0 and P[P_LOG] != 0.0:
        e2 -= math.exp(-mu) if mu > 0 else 1.0
    st[S_S2_W] += 1.0
    g = 1.0 / st[S_S2_W]
    if g < a_v:
        g = a_v
    st[S_S2] += g * (e2 - st[S_S2])
    st[S_LAST] = ts


@njit(cache=True, nogil=True)
def _one_tail(num, den, p0, tau2, nu, C, KT):
    lam = den * p0
    if num <= lam:
        if num <= 0:
            return 1.0
        x = 0.5 + 0.5 * (lam - num + 1.0) / (lam + 1.0)
        return 1.0 if 1.0 <= x else x
    over = den * den * tau2
    if num <= C[C_POISSON_MAX_K] and over < lam:
        return _poisson_sf(int(math.ceil(num)), lam + over, C)
    var = lam * (1.0 - p0) + over
    z = (num - 0.5 - lam) / math.sqrt(var if var > 0 else 1e-12)
    if over > 0.0:
        nu_eff = nu * (var / over) ** C[C_TWO]
        if nu_eff > C[C_NORMAL_DOF]:
            return _normal_sf(z, C)
    else:
        return _normal_sf(z, C)
    nn = int(nu_eff) | 1
    return 0.5 * _student_t_sf2(z * math.sqrt(nn / (nn - 2.0)), nn, C, KT)


@njit(cache=True, nogil=True)
def _ratio_tail(num, den, p0, tau2, P, C, KT):
    nu = int(P[Q_TAIL_DOF])
    direction = int(P[Q_DIR])
    if direction == BOTH:
        up = _one_tail(num, den, p0, tau2, nu, C, KT)
        down = _one_tail(den - num, den, 1.0 - p0, tau2, nu, C, KT)
        m = down if down < up else up
        x = 2.0 * m
        return x if x < 1.0 else 1.0
    if direction == DOWN:
        num = den - num
        p0 = 1.0 - p0
    return _one_tail(num, den, p0, tau2, nu, C, KT)


@njit(cache=True, nogil=True)
def _ratio_step(st, P, ts, num, den, out, C, KT):
    """RatioDetector.step on one series (``st``: its scalars)."""
    direction = int(P[Q_DIR])
    prior = P[Q_PRIOR]
    p0 = (st[R_A] + prior) / (st[R_B] + 2.0 * prior)
    if den <= 0:
        _put(out, 0.0, np.nan, p0, p0, p0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return
    rate = num / den
    if rate > 1.0:
        rate = 1.0
    spread = P[Q_MIN_REL] * (p0 if p0 < 0.5 else 1.0 - p0)
    tau2 = st[R_TAU2] if st[R_TAU2] > spread * spread else spread * spread
    var_rate = p0 * (1.0 - p0) / den + tau2
    p = 1.0 if st[R_N] == 0.0 else _ratio_tail(num, den, p0, tau2, P, C, KT)
    surprise = -math.log10(p) if p > 0.0 else C[C_MAX_SURPRISE]
    k = P[Q_BAND] * math.sqrt(var_rate)
    excess = num - den * p0
    if direction == DOWN:
        excess = -excess
    lo = p0 - k
    hi = p0 + k
    lo = lo if lo > 0.0 else 0.0
    hi = hi if hi < 1.0 else 1.0
    cs = 0.0
    cs_old = st[R_CS]
    carry = cs_old
    if carry > 0.0 and ts - st[R_CS_T0] >= P[Q_SEQ_WINDOW]:
        carry = 0.0
    if st[R_WARM] != 0.0:
        q0 = (1.0 - p0) if direction == DOWN else p0
        kk = (den - num) if direction == DOWN else num
        if q0 > 0.0:
            q1 = q0 * P[Q_SEQ_RATIO]
            if q1 < q0 + P[Q_SEQ_ABS]:
                q1 = q0 + P[Q_SEQ_ABS]
            cap = (P[Q_SEQ_PENALTY] + C[C_SEQ_MAX_DECADES]) * C[C_LN10]
            llr = (kk * math.log(q1 / q0) if kk != 0.0 else 0.0) - den * (q1 - q0)
            if llr > C[C_SEQ_STEP_MAX]:
                llr = C[C_SEQ_STEP_MAX]
            cs = (carry if carry < cap else cap) + llr
            cs = 0.0 if cs < 0.0 else cs
    seq = cs / C[C_LN10] - P[Q_SEQ_PENALTY]
    dt_old = st[R_DT]
    if seq > surprise:
        if carry > 0.0:
            run_num = st[R_CS_NUM] + num
            run_den = st[R_CS_DEN] + den
        else:
            run_num = num
            run_den = den
        window = (ts - st[R_CS_T0] if carry > 0.0 else 0.0) + (dt_old if dt_old > 0.0 else 0.0)
        run_excess = run_num - run_den * p0
        excess = -run_excess if direction == DOWN else run_excess
        _put(out, _score_from_surprise(seq, C), run_num / run_den, p0, lo, hi, excess, seq, window,
             run_num, run_den)
    else:
        score = 1.0 - p if p >= C[C_EXACT_P_MIN] else _score_from_surprise(surprise, C)
        _put(out, score, rate, p0, lo, hi, excess, surprise, 0.0, num, den)
    cs_ret = cs if carry == cs_old or cs == 0.0 else -cs
    # ---- step: learn a point with requests, after the last learned one
    if not (math.isnan(st[R_LAST]) or ts > st[R_LAST]):
        return
    _ratio_learn(st, P, ts, num, den, p0, var_rate, out[A_SCORE], C)
    if st[R_WARM] != 0.0:
        cs = cs_ret
        if cs == 0.0:
            st[R_CS_NUM] = 0.0
            st[R_CS_DEN] = 0.0
        elif st[R_CS] == 0.0 or cs < 0.0:
            cs = -cs if cs < 0.0 else cs
            st[R_CS_T0] = ts
            st[R_CS_NUM] = num
            st[R_CS_DEN] = den
        else:
            st[R_CS_NUM] += num
            st[R_CS_DEN] += den
        st[R_CS] = cs


@njit(cache=True, nogil=True)
def _ratio_learn(st, P, ts, num, den, p0, var_rate, score, C):
    direction = int(P[Q_DIR])
    if st[R_N] == 0.0:
        st[R_T0] = ts
    dt = 1.0 if math.isnan(st[R_LAST]) else ts - st[R_LAST]
    dt = 1.0 if dt < 1.0 else (C[C_MAX_STEP] if dt > C[C_MAX_STEP] else dt)
    if dt != st[R_DT]:
        st[R_DT] = dt
        st[R_DEC] = C[C_HALF] ** (dt / P[Q_HL])
    st[R_N] += 1.0
    warm = st[R_WARM] != 0.0
    if not warm and st[R_N] >= P[Q_WARMUP_N] and ts - st[R_T0] >= P[Q_WARMUP_S]:
        st[R_WARM] = 1.0
    rate = num / den
    dev = rate - p0
    sd = math.sqrt(var_rate)
    bad = direction == BOTH or (dev > 0) == (direction == UP)
    if bad:
        hit = score >= P[Q_LEARN_THR]
    else:
        hit = (dev if dev > 0 else -dev) >= P[Q_Z_LEARN] * sd
    if warm and hit:
        sign = 1.0 if rate > p0 else -1.0
        if math.isnan(st[R_ANOM_SINCE]) or sign != st[R_ANOM_SIGN]:
            st[R_ANOM_SINCE] = ts
            st[R_ANOM_SIGN] = sign
            st[R_ANOM_A] = 0.0
            st[R_ANOM_B] = 0.0
        st[R_ANOM_A] += num
        st[R_ANOM_B] += den
        if ts - st[R_ANOM_SINCE] >= P[Q_ACCEPT]:
            if st[R_B] != 0.0:
                x = st[R_ANOM_B] / st[R_B]
                keep = 1.0 if 1.0 <= x else x
            else:
                keep = 0.0
            st[R_A] = st[R_ANOM_A]
            st[R_B] = st[R_ANOM_B]
            st[R_TAU2] *= keep if keep != 0.0 else 1.0
            st[R_ANOM_SINCE] = np.nan
            st[R_ANOM_SIGN] = 0.0
        st[R_LAST] = ts
        return
    st[R_ANOM_SINCE] = np.nan
    dec = st[R_DEC]
    first = st[R_B] == 0.0
    if not first:
        lim = P[Q_CLIP] * sd
        if dev > lim or dev < -lim:
            clipped = den * (p0 + (lim if dev > 0 else -lim)) + (1.0 if dev > 0 else -1.0)
            if (num > clipped) if dev > 0 else (num < clipped):
                num = clipped if clipped > 0.0 else 0.0
    st[R_A] = st[R_A] * dec + num
    st[R_B] = st[R_B] * dec + den
    if first:
        st[R_LAST] = ts
        return
    e = dev * dev - p0 * (1.0 - p0) / den
    cap = P[Q_CLIP] * P[Q_CLIP] * var_rate
    if e > cap:
        e = cap
    st[R_TAU_W] += 1.0
    g = 1.0 / st[R_TAU_W]
    a_v = 1.0 - dec
    if g < a_v:
        g = a_v
    st[R_TAU2] += g * (e - st[R_TAU2])
    if st[R_TAU2] < 0.0:
        st[R_TAU2] = 0.0
    st[R_LAST] = ts


@njit(cache=True, nogil=True)
def run_batch(slots, EV, col_ts, col_interval, col_requests, requests_signal, SPEC, gate,
              last_ts, interval, dirty, active,
              SS, HOD, HODW, DOW, DOWW, PS, RS, PR, C, KT, TU,
              O, warm_out, outcome, exp_req, need):  # noqa: E741  (O: the output array)
    """One batch of events (rows of ``EV``, customer ``slots``), in order.

    Writes per event: ``outcome`` (an :class:`~detectors.verdict.Outcome`), ``exp_req`` (the requests model's
    expectation, else the observed requests), ``need`` (1: the alert lifecycle must look at it:
    a warm signal reached its gate, or the customer's lifecycle is not idle), and per event and
    signal the assessment ``O[k, s, :]`` and ``warm_out[k, s]`` (-1: the event lacks the signal).
    """
    n_sig = SPEC.shape[0]
    for k in range(slots.shape[0]):
        slot = slots[k]
        ts = EV[k, col_ts]
        lt = last_ts[slot]
        if not math.isnan(lt) and ts <= lt:
            outcome[k] = Outcome.DUPLICATE
            need[k] = 0
            for s in range(n_sig):
                warm_out[k, s] = -1
            continue
        dirty[slot] = 1
        last_ts[slot] = ts
        interval[slot] = EV[k, col_interval]
        warm_any = False
        cand = False
        expected_requests = EV[k, col_requests]
        for s in range(n_sig):
            vcol = SPEC[s, G_VALUE_COL]
            v = EV[k, vcol]
            if math.isnan(v):
                warm_out[k, s] = -1
                continue
            scol = SPEC[s, G_SUPPORT_COL]
            has_n = scol >= 0
            n = EV[k, scol] if has_n else 0.0
            if SPEC[s, G_SKIP_ZERO] != 0 and n == 0.0:
                warm_out[k, s] = -1
                continue
            jj = SPEC[s, G_INDEX]
            out = O[k, s]
            if SPEC[s, G_FAMILY] == F_SEASONAL:
                st = SS[slot, jj]
                _seasonal_step(st, HOD[slot, jj], HODW[slot, jj], DOW[slot, jj], DOWW[slot, jj],
                               PS[jj], ts, v, n, has_n, out, C, KT, TU)
                warm = st[S_WARM] != 0.0
            else:
                st = RS[slot, jj]
                _ratio_step(st, PR[jj], ts, v, n, out, C, KT)
                warm = st[R_WARM] != 0.0
            if not warm:
                warm_out[k, s] = 0
                continue
            warm_out[k, s] = 1
            warm_any = True
            if s == requests_signal:
                expected_requests = out[A_EXPECTED]
            if out[A_SCORE] >= gate[s]:
                cand = True
        exp_req[k] = expected_requests
        if warm_any:
            outcome[k] = Outcome.SCORED
            need[k] = 1 if (cand or active[slot] != 0) else 0
        else:
            outcome[k] = Outcome.WARMING
            need[k] = 0
