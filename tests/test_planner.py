"""The planner alone: pure round-robin over candidate streams, skip reasons and caps (graph_refresh/planner.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from graph_refresh.capacity import Capacity, JobCost
from graph_refresh.config import RetrySettings
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from graph_refresh.owned import OwnedJobs
from graph_refresh.planner import Arrivals, CandidateStream, Planner, plan
from graph_refresh.report import RunReport
from graph_refresh.vocabulary import JobState, Lane

PYPI = "https://pypi.org/simple"
COST = JobCost(resources={"pods": 1})  # type: ignore[dict-item]


def candidates(*names: str) -> Iterator[Candidate]:
    return iter([Candidate(name, "1", PYPI) for name in names])


def streams(**per_stream: tuple[str, ...]) -> list[CandidateStream]:
    out = []
    for key, names in per_stream.items():
        solver = None if key == "analyzer" else f"solver-{key}-1-py38"
        out.append(CandidateStream(ANALYZER if solver is None else SOLVER, solver, candidates(*names), COST))
    return out


def run(report: RunReport, streams: list[CandidateStream], **kwargs: object) -> list[tuple[str | None, str]]:
    kwargs.setdefault("capacity", Capacity())
    planned = plan(streams, report=report, **kwargs)
    return [(p.item.solver, p.item.candidate.package_name) for p in planned]


def owning(state: JobState, *items: WorkItem) -> OwnedJobs:
    """A cluster view in which each item's latest Job (attempt 1) is in ``state``."""
    return OwnedJobs(latest={item.key: (1, state) for item in items})


def test_streams_take_turns_and_a_skip_does_not_use_a_turn() -> None:
    report = RunReport(dry_run=True, store="test")
    view = owning(JobState.IN_FLIGHT, WorkItem(SOLVER, "solver-a-1-py38", Candidate("p1", "1", PYPI)))
    order = run(report, streams(a=("p1", "p2", "p3"), b=("q1",), analyzer=("r1", "bad name")), view=view)
    assert order == [("solver-a-1-py38", "p2"), ("solver-b-1-py38", "q1"), (None, "r1"), ("solver-a-1-py38", "p3")]
    assert report.solvers["solver-a-1-py38"].skipped == {"in-flight": 1}
    assert report.analyzer.skipped == {"invalid": 1}


def test_a_cap_counts_each_streams_next_candidate_and_stops_it() -> None:
    report = RunReport(dry_run=True, store="test")
    order = run(report, streams(a=("p1", "p2", "p3"), b=("q1", "q2")), capacity=Capacity(slots=2))
    assert order == [("solver-a-1-py38", "p1"), ("solver-b-1-py38", "q1")]
    for counts in report.solvers.values():
        assert counts.skipped == {"capacity": 1}
        assert counts.examined == 2
    assert report.stopped_by[SOLVER] == "capacity"


def test_eager_stop_caps_a_kind_not_the_other() -> None:
    report = RunReport(dry_run=True, store="test")
    order = run(report, streams(a=("p1", "p2"), b=("q1", "q2"), analyzer=("r1", "r2")), eager_stop=1)
    assert order == [("solver-a-1-py38", "p1"), (None, "r1")]
    assert report.stopped_by == {SOLVER: "eager-stop", ANALYZER: "eager-stop"}
    # Every examined candidate was planned or skipped (the scheduler counts what became of the planned).
    examined = sum(c.examined for c in [*report.solvers.values(), report.analyzer])
    skipped = sum(sum(c.skipped.values()) for c in [*report.solvers.values(), report.analyzer])
    assert examined == len(order) + skipped == 5


def test_an_item_met_again_is_neither_examined_nor_planned_twice() -> None:
    report = RunReport(dry_run=True, store="test")
    view = owning(JobState.COMPLETE, WorkItem(SOLVER, "solver-a-1-py38", Candidate("p1", "1", PYPI)))
    order = run(
        report,
        streams(a=("p1", "p2", "p1", "p2", "p3"), analyzer=("r1", "bad name", "r1", "bad name")),
        view=view,
    )
    assert order == [("solver-a-1-py38", "p2"), (None, "r1"), ("solver-a-1-py38", "p3")]
    assert report.solvers["solver-a-1-py38"].examined == 3
    assert report.solvers["solver-a-1-py38"].skipped == {"awaiting-sync": 1}
    assert report.analyzer.examined == 2
    assert report.analyzer.skipped == {"invalid": 1}


def test_the_memory_of_repeats_is_bounded() -> None:
    report = RunReport(dry_run=True, store="test")
    order = run(report, streams(a=("p1", "p2", "p3", "p1", "p3")), remember=2)
    assert [name for _, name in order] == ["p1", "p2", "p3", "p3"], "p3 came past the memory's bound"
    assert report.solvers["solver-a-1-py38"].examined == 4


def test_a_store_that_never_repeats_needs_no_memory() -> None:
    report = RunReport(dry_run=True, store="test")
    order = run(report, streams(a=("p1", "p1")), drop_repeats=False)
    assert order == [("solver-a-1-py38", "p1"), ("solver-a-1-py38", "p1")]


def test_a_retry_too_big_for_the_quota_is_skipped_and_the_stream_goes_on() -> None:
    from decimal import Decimal

    from graph_refresh.capacity import Quota
    from graph_refresh.retry.model import AttemptResources, Cause, ContainerMemory, ItemId, LedgerEntry
    from graph_refresh.retry.policy import History

    report = RunReport(dry_run=True, store="test")
    small = JobCost(resources={"limits.memory": Decimal(2**30)})
    big = JobCost(resources={"limits.memory": Decimal(6 * 2**30)})
    quota = Quota("q", hard={"limits.memory": Decimal(8 * 2**30)}, used={"limits.memory": Decimal(4 * 2**30)})
    failed = WorkItem(SOLVER, "solver-a-1-py38", Candidate("p1", "1", PYPI))
    entry = LedgerEntry(
        ItemId.of(failed),
        failures=1,
        attempt=1,
        cause=Cause.OOM,
        failed_at=0.0,
        resources=AttemptResources({"c": ContainerMemory("3Gi", "3Gi")}),
    )
    streams = [CandidateStream(SOLVER, "solver-a-1-py38", candidates("p1", "p2", "p3"), small)]
    order = run(
        report,
        streams,
        capacity=Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=[quota]),
        history=History({failed.key: entry}, RetrySettings(), 60.0),
        cost=lambda item, resources: big,
    )
    assert order == [("solver-a-1-py38", "p2"), ("solver-a-1-py38", "p3")], "the retry did not block the stream"
    assert report.solvers["solver-a-1-py38"].skipped == {"capacity": 1}


def test_a_retry_above_a_quotas_hard_limit_counts_as_at_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    from decimal import Decimal

    from graph_refresh.capacity import Quota
    from graph_refresh.retry.model import AttemptResources, Cause, ContainerMemory, ItemId, LedgerEntry
    from graph_refresh.retry.policy import History

    report = RunReport(dry_run=True, store="test")
    small = JobCost(resources={"limits.memory": Decimal(2**30)})
    big = JobCost(resources={"limits.memory": Decimal(6 * 2**30)})
    quota = Quota("q", hard={"limits.memory": Decimal(4 * 2**30)}, used={})
    failed = WorkItem(SOLVER, "solver-a-1-py38", Candidate("p1", "1", PYPI))
    resources = AttemptResources({"c": ContainerMemory("3Gi", "3Gi")})
    entry = LedgerEntry(ItemId.of(failed), 1, 1, Cause.OOM, 0.0, resources, "c")
    history = History({failed.key: entry}, RetrySettings(retry_backoff_seconds=3600), 60.0)
    streams = [CandidateStream(SOLVER, "solver-a-1-py38", candidates("p1", "p2"), small)]
    capacity = Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=[quota])
    order = run(report, streams, capacity=capacity, history=history, cost=lambda item, resources: big)
    assert order == [("solver-a-1-py38", "p2")]
    assert report.solvers["solver-a-1-py38"].skipped == {"failed-recently": 1}, "an error backs off, then retries"
    assert history.entries[failed.key].cause is Cause.ERROR
    assert history.entries[failed.key].failures == 1
    assert "ResourceQuota 'q': limits.memory (hard limit" in caplog.text
    assert "at the cap" in caplog.text

    later = History(dict(history.entries), RetrySettings(retry_backoff_seconds=3600), 7200.0)
    report = RunReport(dry_run=True, store="test")
    streams = [CandidateStream(SOLVER, "solver-a-1-py38", candidates("p1"), small)]
    capacity = Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=[quota])
    planned = list(plan(streams, report=report, capacity=capacity, history=later, cost=lambda item, res: small))
    assert [(p.item.attempt, p.resources, p.retries) for p in planned] == [(2, resources, Cause.ERROR)]


# --- lanes ----------------------------------------------------------------------------------------------------


def lane_streams(lane: Lane, **per_stream: tuple[str, ...]) -> list[CandidateStream]:
    out = streams(**per_stream)
    for stream in out:
        stream.lane = lane
        if lane is Lane.FRESH:
            names = [c.package_name for c in stream.candidates]
            pairs = iter([(100 + n, Candidate(name, "1", PYPI)) for n, name in enumerate(names)])
            stream.candidates = Arrivals(pairs, 99)
    return out


def fill(report: RunReport, capacity: Capacity, **lanes: object) -> list[tuple[str, str]]:
    planner = Planner(report=report, capacity=capacity)
    shares: dict[str, object] = {"request_share": 1.0, "fresh_share": 1.0}  # the whole of the free slots
    planned = planner.fill(**{**shares, **lanes})  # type: ignore[arg-type]
    return [(str(p.lane), p.item.candidate.package_name) for p in planned]


def test_requested_items_come_first_even_when_capacity_fits_only_them() -> None:
    report = RunReport(dry_run=True, store="test")
    order = fill(
        report,
        Capacity(slots=2),
        requested=lane_streams(Lane.REQUESTED, a=("wanted",), analyzer=("wanted",)),
        fresh=lane_streams(Lane.FRESH, a=("new1", "new2")),
        backlog=lane_streams(Lane.BACKLOG, a=("old1", "old2"), analyzer=("old3",)),
    )
    assert order == [("requested", "wanted"), ("requested", "wanted")]
    assert report.stopped_by[SOLVER] == "capacity"


def test_fresh_takes_its_share_of_what_is_left_and_the_backlog_the_rest() -> None:
    report = RunReport(dry_run=True, store="test")
    fresh = lane_streams(Lane.FRESH, a=("new1", "new2", "new3", "new4"))
    order = fill(
        report,
        Capacity(slots=5),
        requested=lane_streams(Lane.REQUESTED, a=("wanted",)),
        fresh=fresh,
        backlog=lane_streams(Lane.BACKLOG, a=("old1", "old2", "old3", "old4")),
        fresh_share=0.5,
    )
    assert order == [
        ("requested", "wanted"),
        ("fresh", "new1"),
        ("fresh", "new2"),
        ("backlog", "old1"),
        ("backlog", "old2"),
    ]
    arrivals = fresh[0].candidates
    assert isinstance(arrivals, Arrivals)
    assert arrivals.passed == 101, "new3 and new4 stay fresh for the next run"


def test_a_lane_with_nothing_to_do_leaves_its_slots_to_the_next() -> None:
    report = RunReport(dry_run=True, store="test")
    order = fill(
        report,
        Capacity(slots=3),
        requested=[],
        fresh=lane_streams(Lane.FRESH, a=()),
        backlog=lane_streams(Lane.BACKLOG, a=("old1", "old2", "old3", "old4")),
    )
    assert order == [("backlog", "old1"), ("backlog", "old2"), ("backlog", "old3")]


def test_slots_the_backlog_leaves_go_to_the_fresh_candidates_beyond_the_share() -> None:
    report = RunReport(dry_run=True, store="test")
    fresh = lane_streams(Lane.FRESH, a=("new1", "new2", "new3", "new4", "new5"))
    order = fill(
        report,
        Capacity(slots=4),
        requested=[],
        fresh=fresh,
        backlog=lane_streams(Lane.BACKLOG, a=("old1",)),
        fresh_share=0.5,
    )
    assert order == [("fresh", "new1"), ("fresh", "new2"), ("backlog", "old1"), ("fresh", "new3")]
    arrivals = fresh[0].candidates
    assert isinstance(arrivals, Arrivals)
    assert arrivals.passed == 102, "new4 was counted under the cap: still fresh"
    assert report.solvers["solver-a-1-py38"].skipped == {"capacity": 1}


def test_a_backlog_stopped_by_capacity_leaves_the_fresh_beyond_the_share_uncounted() -> None:
    report = RunReport(dry_run=True, store="test")
    fresh = lane_streams(Lane.FRESH, a=("new1", "new2", "new3"))
    order = fill(
        report,
        Capacity(slots=2),
        requested=[],
        fresh=fresh,
        backlog=lane_streams(Lane.BACKLOG, a=("old1", "old2")),
        fresh_share=0.5,
    )
    assert order == [("fresh", "new1"), ("backlog", "old1")]
    assert report.solvers["solver-a-1-py38"].skipped == {"capacity": 1}, "the backlog's stop only"
    arrivals = fresh[0].candidates
    assert isinstance(arrivals, Arrivals)
    assert arrivals.passed == 100


def test_an_item_is_planned_once_whichever_lanes_meet_it() -> None:
    report = RunReport(dry_run=True, store="test")
    order = fill(
        report,
        Capacity(),
        requested=lane_streams(Lane.REQUESTED, a=("p1",)),
        fresh=lane_streams(Lane.FRESH, a=("p1", "p2")),
        backlog=lane_streams(Lane.BACKLOG, a=("p0", "p1")),
    )
    assert order == [("requested", "p1"), ("fresh", "p2"), ("backlog", "p0")]
    counts = report.solvers["solver-a-1-py38"]
    assert counts.examined == 3, "the repeats are passed over uncounted"


def test_a_cap_counted_in_the_fresh_lane_leaves_that_candidate_fresh() -> None:
    report = RunReport(dry_run=True, store="test")
    fresh = lane_streams(Lane.FRESH, a=("new1", "new2", "new3"))
    planner = Planner(report=report, capacity=Capacity(), eager_stop=1)
    planned = list(planner.fill(requested=[], fresh=fresh, backlog=[], request_share=1.0, fresh_share=1.0))
    assert [p.item.candidate.package_name for p in planned] == ["new1"]
    assert report.solvers["solver-a-1-py38"].skipped == {"eager-stop": 1}
    arrivals = fresh[0].candidates
    assert isinstance(arrivals, Arrivals)
    assert arrivals.cursor() == 99, "new1 is planned: the lane passes it once its Job exists"
    arrivals.exists(planned[0].item.job_name)
    assert arrivals.cursor() == 100, "new2 was counted, not passed"


def test_sync_lag_leaves_only_the_requested_lane() -> None:
    report = RunReport(dry_run=True, store="test")
    order = fill(
        report,
        Capacity(),
        requested=lane_streams(Lane.REQUESTED, a=("wanted",)),
        fresh=lane_streams(Lane.FRESH, a=("new1",)),
        backlog=lane_streams(Lane.BACKLOG, a=("old1",), analyzer=("old2",)),
        sync_lag=True,
    )
    assert order == [("requested", "wanted")]
    assert report.stopped_by == {SOLVER: "sync-lag", ANALYZER: "sync-lag"}


@pytest.mark.parametrize("seed", range(40))
def test_a_share_is_a_fraction_over_time_whatever_the_free_slots(seed: int) -> None:
    """Over many runs with random free slots and shares, each lane gets its share of the slots within one
    Job, carried from run to run, as long as every lane always has candidates."""
    rng = random.Random(seed)
    request_share, fresh_share = rng.choice([0.0, 0.1, 0.25, 0.5, 0.8, 1.0]), rng.choice([0.0, 0.1, 0.5, 0.9])
    credits: dict[str, float] = {}
    wanted = {"requested": 0.0, "fresh": 0.0}
    got = {"requested": 0, "fresh": 0, "backlog": 0}
    for _ in range(60):
        slots = rng.choice([0, 1, 1, 2, 3, 5, 12])
        names = tuple(f"c{n}" for n in range(slots + 1))
        planner = Planner(report=RunReport(dry_run=True, store="test"), capacity=Capacity(slots))
        planned = list(
            planner.fill(
                requested=lane_streams(Lane.REQUESTED, a=names),
                fresh=lane_streams(Lane.FRESH, b=names),
                backlog=lane_streams(Lane.BACKLOG, c=names),
                request_share=request_share,
                fresh_share=fresh_share,
                credits=credits,
            )
        )
        assert len(planned) == slots, "every free slot is used"
        wanted["requested"] += request_share * slots
        taken = sum(p.lane is Lane.REQUESTED for p in planned)
        wanted["fresh"] += fresh_share * (slots - taken)
        for p in planned:
            got[str(p.lane)] += 1
        credits = planner.credits
        for lane in ("requested", "fresh"):
            assert wanted[lane] - 1 < got[lane] <= wanted[lane] + 1e-6 or got[lane] == 0 == round(wanted[lane]), (
                lane,
                wanted,
                got,
            )
