"""The kernel's declarations and plumbing: what the compiled arithmetic reads and writes."""
import numpy as np

from detectors import kernel as K
from detectors.kernel import ASSESSMENT_WIDTH, Assessment
from detectors.layout import Kind
from detectors.state import FORMAT_VERSION


def test_an_assessment_is_written_field_by_field():
    # (unrolled for speed: a field added to Assessment must be written too)
    a = Assessment(*(float(k + 1) for k in range(ASSESSMENT_WIDTH)))
    out = np.zeros(ASSESSMENT_WIDTH)
    K._write(out, a)
    assert out.tolist() == list(a)


def test_each_family_row_holds_its_fields_side_by_side_and_records_skip_caches():
    for family in (K.SEASONAL, K.RATIO):
        at = 0
        for f in family.fields:
            assert f.offset == at, f.name
            at += f.size
        assert at == family.width
        assert list(family.persisted) == [f for f in family.fields if f.kind is not Kind.CACHE]
    # the fields records of format version 3 hold, in their order: saved states keep loading
    # (a change here needs a new FORMAT_VERSION and the old one's fields in state.MIGRATIONS)
    assert [f.name for f in K.SEASONAL.persisted] == [
        "_n", "_t0", "_last", "_level", "_hod", "_hod_w", "_dow", "_dow_w", "_s2", "_s2_w", "_centred",
        "_shift", "_anom_since", "_anom_sign", "_warm", "_cs", "_cs_t0", "_tail_pi", "_tail_m1", "_tail_m2",
        "_tail_w", "_chg", "_chg_t0", "_chg_off", "_chg_n", "_chg_ok", "_ar_prev", "_ar_xy", "_ar_xx"]
    assert [f.name for f in K.RATIO.persisted] == [
        "_n", "_t0", "_last", "_a", "_b", "_tau2", "_tau_w", "_anom_since", "_anom_sign", "_anom_a",
        "_anom_b", "_warm", "_cs", "_cs_t0", "_cs_num", "_cs_den", "_tail_pi", "_tail_m1", "_tail_m2",
        "_tail_w"]
    assert FORMAT_VERSION == 3


def test_every_parameter_packs_into_its_own_slot():
    for family in (K.SEASONAL, K.RATIO):
        slots = sorted(p.slot for p in family.params)
        assert slots == list(range(family.n_packed))
