"""The simulator's catalogue and shared causes: reproducible, labelled, of any size, uneven."""
from __future__ import annotations

import json

from detectors.catalogue import parse_catalogue
from detectors.synthetic import Incident, SimConfig, simulate
from detectors.synthetic_shared import MAX_ONSET_DELAY, customer_attributes

CFG = SimConfig(customers=400, duration_s=4 * 86400, shared_causes=6, seed=21)


def test_same_seed_same_causes_labels_and_catalogue():
    a, b = simulate(CFG), simulate(CFG)
    assert a.shared_causes == b.shared_causes and a.incidents == b.incidents and a.catalogue == b.catalogue
    other = simulate(SimConfig(**{**CFG.__dict__, "seed": 22}))
    assert other.shared_causes != a.shared_causes


def test_a_customers_attributes_do_not_depend_on_the_fleet_size():
    small = simulate(SimConfig(customers=50, duration_s=86400, seed=3))
    large = simulate(SimConfig(customers=500, duration_s=86400, seed=3))
    for p in small.customers:
        assert small.catalogue.get(p.customer_id) == large.catalogue.get(p.customer_id)
    attrs = customer_attributes(3, 0, 10.0, "emea")
    assert set(attrs) >= {"plan", "origin_provider", "origin_asn", "account_team"}


def test_causes_touch_part_of_their_scope_with_uneven_onset_and_labels_that_say_so():
    sim = simulate(CFG)
    assert len(sim.shared_causes) == CFG.shared_causes
    iv = CFG.interval_s
    for cause in sim.shared_causes:
        members = sim.catalogue.members(cause.scope)
        assert len(members) == cause.scope_size and set(cause.customers) <= members
        assert 0 < cause.share <= 1.0
        labels = [i for i in sim.incidents if i.cause == cause.cause_id]
        assert sorted(i.customer_id for i in labels) == list(cause.customers)
        assert all(i.scope == cause.scope and i.kind == cause.kind for i in labels)
        starts = {i.start for i in labels}
        assert min(starts) >= cause.start and max(starts) <= cause.start + MAX_ONSET_DELAY * iv
        if len(labels) >= 10:
            assert len(starts) > 1, "onsets are uneven"
    sizes = sorted(len(c.customers) for c in sim.shared_causes)
    assert sizes[0] < sizes[-1]


def test_unrelated_incidents_start_during_causes_on_other_customers():
    sim = simulate(CFG)
    singles = [i for i in sim.incidents if i.cause is None]
    for cause in sim.shared_causes:
        during = [i for i in singles if cause.start <= i.start < cause.end]
        assert len(during) >= CFG.unrelated_per_cause
        assert not any(i.customer_id in cause.customers for i in during)


def test_labels_and_catalogue_round_trip_through_their_files():
    sim = simulate(CFG)
    for inc in sim.incidents:
        assert Incident.from_json(json.loads(json.dumps(inc.to_json()))) == inc
    assert parse_catalogue(list(sim.catalogue.to_json_lines())) == sim.catalogue


def test_no_shared_causes_changes_nothing_else():
    plain = simulate(SimConfig(customers=30, duration_s=3 * 86400, seed=9))
    assert plain.shared_causes == [] and all(i.cause is None for i in plain.incidents)
    assert len(plain.catalogue) == 30  # the catalogue is there all the same
