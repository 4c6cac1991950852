"""The ledger ConfigMap's data: format, reading odd values, merging two writers, the size bound."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace

import pytest

from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from graph_refresh.retry.codec import CONFIGMAP_LIMIT_BYTES, MAX_DATA_BYTES, bound, data_size, from_data, merge, to_data
from graph_refresh.retry.model import AttemptResources, Cause, ContainerMemory, ItemId, LedgerEntry

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
DAY = 86_400.0
QUARANTINE = 30 * DAY

SOLVER_ITEM = WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", "https://pypi.org/simple"))
ANALYZER_ITEM = WorkItem(ANALYZER, None, Candidate("numpy", "1.18.0", "https://pypi.org/simple"))


def entry(
    key: str = "0123456789",
    *,
    failures: int = 1,
    attempt: int = 1,
    cause: Cause = Cause.OOM,
    failed_at: float = T0,
    memory: str = "1Gi",
) -> LedgerEntry:
    item = replace(ItemId.of(SOLVER_ITEM), key=key)
    resources = AttemptResources(memory={"solver": ContainerMemory(memory, memory)}, deadline_seconds=3600)
    return LedgerEntry(item, failures, attempt, cause, failed_at, resources)


def test_an_entry_is_one_compact_readable_json_value_under_its_item_key() -> None:
    solver = LedgerEntry(
        ItemId.of(SOLVER_ITEM),
        failures=2,
        attempt=2,
        cause=Cause.OOM,
        failed_at=T0,
        resources=AttemptResources(
            memory={"solver": ContainerMemory("2Gi", "2Gi"), "init": ContainerMemory(limit="128Mi")},
            deadline_seconds=3600,
        ),
    )
    data = to_data([solver])
    assert data == {
        SOLVER_ITEM.key: '{"kind":"solver","solver":"solver-fedora-31-py38","package":"flask","version":"1.1.2",'
        '"index":"https://pypi.org/simple","failures":2,"attempt":2,"cause":"oom","failed":"2024-05-01T10:00:00Z",'
        '"memory":{"init":{"limit":"128Mi"},"solver":{"request":"2Gi","limit":"2Gi"}},"deadline":3600}'
    }
    assert from_data(data) == ({SOLVER_ITEM.key: solver}, [])


def test_an_analyzer_entry_has_no_solver_and_round_trips() -> None:
    analyzer = LedgerEntry(
        ItemId.of(ANALYZER_ITEM), 1, 1, Cause.ERROR, T0 + 1, AttemptResources(pod_deadline_seconds=600)
    )
    data = to_data([analyzer])
    value = json.loads(data[ANALYZER_ITEM.key])
    assert "solver" not in value
    assert value["pod_deadline"] == 600
    assert "memory" not in value
    assert from_data(data) == ({ANALYZER_ITEM.key: analyzer}, [])


def test_to_data_is_sorted_by_key() -> None:
    data = to_data([entry("ffffffffff"), entry("0000000000"), entry("aaaaaaaaaa")])
    assert list(data) == ["0000000000", "aaaaaaaaaa", "ffffffffff"]


GOOD = json.loads(to_data([entry()])["0123456789"])


def spoiled(**fields: object) -> str:
    value = {**GOOD, **fields}
    return json.dumps({name: field for name, field in value.items() if field is not ...})


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("0123456789", "{not json", "not JSON"),
        ("0123456789", "[1, 2]", "not a JSON object"),
        ("0123456789", "[" * 100_000, "not JSON"),
        ("0123456789", 5, "not a string"),
        ("NOT-A-KEY", spoiled(), "not an item key"),
        ("0123456789abcdef", spoiled(), "not an item key"),
        ("0123456789", spoiled(kind="builder"), "kind 'builder'"),
        ("0123456789", spoiled(solver=...), "solver must be"),
        ("0123456789", spoiled(kind=ANALYZER), "solver must be"),
        ("0123456789", spoiled(package=...), "package is not"),
        ("0123456789", spoiled(version=7), "version is not"),
        ("0123456789", spoiled(index=""), "index is not"),
        ("0123456789", spoiled(failures=-1), "failures -1"),
        ("0123456789", spoiled(attempt=0), "attempt 0"),
        ("0123456789", spoiled(attempt=True), "attempt True"),
        ("0123456789", spoiled(attempt=1.5), "attempt 1.5"),
        ("0123456789", spoiled(cause="bored"), "cause 'bored'"),
        ("0123456789", spoiled(failed="yesterday"), "failed 'yesterday'"),
        ("0123456789", spoiled(failed=...), "failed None"),
        ("0123456789", spoiled(memory=["1Gi"]), "memory is not an object"),
        ("0123456789", spoiled(memory={"solver": {"limit": "lots"}}), "memory limit of container 'solver'"),
        ("0123456789", spoiled(memory={"solver": {"limit": "NaN"}}), "not a quantity"),
        ("0123456789", spoiled(memory={"solver": {"cpu": "1"}}), "object of request and limit"),
        ("0123456789", spoiled(deadline=0), "deadline 0"),
        ("0123456789", spoiled(pod_deadline="1h"), "pod_deadline '1h'"),
    ],
)
def test_an_unreadable_value_is_dropped_with_a_warning_naming_its_key(key: str, value: object, says: str) -> None:
    good = to_data([entry("aaaaaaaaaa")])
    entries, warnings = from_data({**good, key: value})
    assert list(entries) == ["aaaaaaaaaa"]
    assert len(warnings) == 1
    assert f"ledger entry {key!r} dropped" in warnings[0]
    assert says in warnings[0]


@pytest.mark.parametrize(("data", "warned"), [(None, False), ([], True), ("text", True), ({}, False)])
def test_data_that_is_not_a_mapping_reads_as_empty(data: object, warned: bool) -> None:
    entries, warnings = from_data(data)
    assert entries == {}
    assert bool(warnings) is warned


def test_times_with_offsets_and_fractions_are_read_as_utc() -> None:
    for text, expected in [
        ("2024-05-01T12:00:00+02:00", T0),
        ("2024-05-01T10:00:00.75Z", T0 + 0.75),
        ("2024-05-01T10:00:00", T0),
    ]:
        entries, warnings = from_data({"0123456789": spoiled(failed=text)})
        assert warnings == []
        assert entries["0123456789"].failed_at == expected


# --- merge -----------------------------------------------------------------------------------------------------

A = entry("aaaaaaaaaa")
B = entry("bbbbbbbbbb")
VARIANTS = [
    None,
    entry("cccccccccc"),
    entry("cccccccccc", attempt=2, failures=2, failed_at=T0 + 10),
    entry("cccccccccc", attempt=2, failures=1, cause=Cause.DISRUPTED, failed_at=T0 + 20),
    entry("cccccccccc", attempt=2, failures=2, failed_at=T0 + 30),
    entry("cccccccccc", attempt=2, failures=2, failed_at=T0 + 30, memory="2Gi"),  # ties all but the value
]


def ledger(*entries: LedgerEntry | None) -> dict[str, LedgerEntry]:
    return {found.key: found for found in entries if found is not None}


def test_merging_two_runs_loses_no_entry() -> None:
    assert merge(ledger(A), ledger(B)) == ledger(A, B)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (entry(attempt=1, failures=2, failed_at=T0 + 99), entry(attempt=2, failures=1, failed_at=T0)),
        (entry(attempt=2, failures=1, failed_at=T0 + 99), entry(attempt=2, failures=2, failed_at=T0)),
        (entry(attempt=2, failures=2, failed_at=T0), entry(attempt=2, failures=2, failed_at=T0 + 1)),
    ],
)
def test_the_later_attempt_then_more_failures_then_the_later_failure_wins(one: LedgerEntry, other: LedgerEntry) -> None:
    assert merge(ledger(one), ledger(other)) == ledger(other)
    assert merge(ledger(other), ledger(one)) == ledger(other)


@pytest.mark.parametrize("base", ["no base", *VARIANTS])
def test_merge_is_commutative_and_idempotent(base: LedgerEntry | str | None) -> None:
    base_ledger = None if isinstance(base, str) else ledger(A, base)
    for mine, theirs in itertools.product(VARIANTS, repeat=2):
        ours, others = ledger(A, mine), ledger(B, theirs)
        assert merge(ours, others, base=base_ledger) == merge(others, ours, base=base_ledger)
        assert merge(ours, ours, base=base_ledger) == ours


def test_with_a_base_a_key_one_side_deleted_stays_deleted() -> None:
    old = entry("cccccccccc")
    base = ledger(A, old)
    # An operator removed the key while this run, which read it, changed nothing about it.
    assert merge(ledger(A, old), ledger(A), base=base) == ledger(A)
    # This run forgot the key; the other writer left it as it was.
    assert merge(ledger(A), ledger(A, old), base=base) == ledger(A)


def test_with_a_base_a_change_beats_a_deletion_and_both_changes_meet_by_rank() -> None:
    old = entry("cccccccccc")
    newer = entry("cccccccccc", attempt=2, failures=2, failed_at=T0 + 60)
    newest = entry("cccccccccc", attempt=3, failures=3, failed_at=T0 + 120)
    base = ledger(old)
    assert merge(ledger(), ledger(newer), base=base) == ledger(newer)
    assert merge(ledger(newest), ledger(newer), base=base) == ledger(newest)
    # Without a base a deletion cannot be told from an entry the other side never had.
    assert merge(ledger(), ledger(old)) == ledger(old)


# --- bound -----------------------------------------------------------------------------------------------------


def test_bound_drops_expired_entries_first_then_the_oldest() -> None:
    now = T0 + QUARANTINE
    expired = entry("eeeeeeeeee", failed_at=T0)  # exactly at its end: over
    old = entry("0000000001", failed_at=T0 + 1)
    young = entry("0000000002", failed_at=T0 + 2)
    entries = ledger(expired, old, young)
    kept, dropped_expired, dropped_oldest = bound(entries, now, expire_after=QUARANTINE)
    assert (kept, dropped_expired, dropped_oldest) == (ledger(old, young), [expired], [])
    one_entry = data_size(to_data([young]))
    kept, dropped_expired, dropped_oldest = bound(entries, now, expire_after=QUARANTINE, max_bytes=one_entry)
    assert (kept, dropped_expired, dropped_oldest) == (ledger(young), [expired], [old])


def test_a_large_ledger_is_bounded_under_one_mebibyte_deterministically() -> None:
    rng = random.Random(7)
    now = T0 + 10 * DAY
    entries = [
        entry(f"{n:010x}", failed_at=T0 - rng.randrange(25 * 86_400), attempt=rng.randrange(1, 4), memory="1536Mi")
        for n in range(20_000)
    ]
    expected_expired = sum(1 for found in entries if found.failed_at + QUARANTINE <= now)
    kept, dropped_expired, dropped_oldest = bound(ledger(*entries), now, expire_after=QUARANTINE)
    size = data_size(to_data(kept.values()))
    assert size <= MAX_DATA_BYTES < CONFIGMAP_LIMIT_BYTES
    assert len(dropped_expired) == expected_expired
    assert len(kept) + len(dropped_expired) + len(dropped_oldest) == 20_000
    assert max(found.failed_at for found in dropped_oldest) <= min(found.failed_at for found in kept.values())
    # A different order of the same entries gives the same result.
    rng.shuffle(entries)
    assert bound(ledger(*entries), now, expire_after=QUARANTINE) == (kept, dropped_expired, dropped_oldest)


def test_a_memory_value_that_is_not_a_string_is_unreadable_not_a_crash() -> None:
    good = to_data([entry()])["0123456789"]
    bad = json.loads(good)
    bad["memory"] = {"solver": {"limit": 1073741824}}
    entries, warnings = from_data({"0123456789": json.dumps(bad)})
    assert entries == {}
    assert len(warnings) == 1
    assert "0123456789" in warnings[0]
