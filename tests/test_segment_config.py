"""SegmentConfig: the opt-ins it names (what `wsicell extract` and `evaluate` print)."""

from __future__ import annotations

from wsicell.segment.config import SegmentConfig


def test_hv_opt_ins_name_every_setting_that_costs_time_or_drops_nuclei() -> None:
    assert SegmentConfig().hv_opt_ins == []
    assert SegmentConfig(hv_flips=2).hv_opt_ins == ["2 test-time flips"]
    every = SegmentConfig(hv_flips=4, hv_annotator_threshold=0.5, hv_min_object_probability=0.85)
    assert every.hv_opt_ins == ["4 test-time flips", "annotator filter 0.5", "min object probability 0.85"]


def test_stored_settings_in_words() -> None:
    from wsicell.segment.config import describe_settings

    assert describe_settings({"method": "hvnet", "hv_flips": 4, "hv_annotator_threshold": 0.5}) == (
        "hvnet, 4 test-time flips, annotator filter 0.5"
    )
    assert describe_settings({"method": "watershed"}) == "watershed"
    assert describe_settings({"method": "hvnet", "a_setting_from_elsewhere": 1}) == "hvnet"  # unreadable: method only
