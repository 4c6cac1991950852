"""What a real run predicts and scores (docs/eta.md): the front of each stream's lanes (how many candidates there
hold no slot, how many fresh items wait, and a few waiting items to predict), the windows it records for open
requests and those items, and the scores of earlier windows once the graph has their items. ``refresh.run`` and
``refresh.explain_item`` call these; the windows themselves are ``waiting/eta.py``'s, the format
``waiting/calibration.py``'s."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from graph_refresh.config import LaneSettings
from graph_refresh.errors import StoreError
from graph_refresh.items import ANALYZER, Candidate, Kind, SolverEnvironment, WorkItem, normal_index
from graph_refresh.store.base import GraphStore
from graph_refresh.templates import JobTemplates
from graph_refresh.vocabulary import Lane, SkipReason
from graph_refresh.waiting.calibration import Calibration, Prediction, Score, Wait, prediction_id, rescored
from graph_refresh.waiting.eta import Forecast, Pace, Shares, forecast
from graph_refresh.waiting.lanes import RequestOutcome, stream_name
from graph_refresh.waiting.state import RunRecord
from graph_refresh.waiting.trust import TrustedIndexes

logger = logging.getLogger(__name__)

SAMPLE_AT = (0, 30, 300)
"""The places, among the waiting items of each stream's fresh and backlog lanes, whose windows a run records."""
REQUESTS_RECORDED = 50
"""Versions of the requested lane whose windows a run records at most, per stream (in the order the lane takes
them): under a flood, the rest are recorded by the runs after, as they come up."""
SCAN_LIMIT = 5_000
"""Candidates read at most from the front of a stream's backlog to find what holds no slot there."""

HOLDING = frozenset(
    {
        SkipReason.INVALID,
        SkipReason.IN_FLIGHT,
        SkipReason.AWAITING_SYNC,
        SkipReason.FAILED_RECENTLY,
        SkipReason.QUARANTINED,
    }
)
"""What the run's decision (``fate.decide``) says of a candidate that takes no slot."""
Held = Callable[[Kind, str | None, Candidate], bool]
"""Whether a candidate of a stream holds no slot of the next run: it has a Job (in flight, awaiting the graph
sync, failed and waiting out its back-off or quarantine) or is invalid (``fate.decide`` says)."""


@dataclass
class Front:
    """The front of one stream's lanes after a run."""

    kind: Kind
    solver: str | None
    first: Candidate | None = None
    """The backlog's first waiting candidate: those before it hold no slot (None: none waits)."""
    fresh_left: int = 0
    """The fresh items waiting."""
    waiting: list[tuple[Lane, int, Candidate]] = field(default_factory=list)
    """Items to predict: lane, how many of the lane's candidates come between the lane's first waiting one and it
    (what ``explain`` counts), and the item."""


def fronts(
    store: GraphStore,
    templates: JobTemplates,
    cursors: Mapping[str, int],
    *,
    held: Held,
    fresh_lane: bool,
) -> list[Front]:
    """Every stream's front. ``cursors`` are the fresh cursors the run leaves; ``fresh_lane`` says whether the
    fresh lane runs at all."""
    end = store.arrival_end()
    out = []
    for kind, environment in templates.streams():
        name = stream_name(kind, None if environment is None else environment.name)
        cursor = min(cursors.get(name, end), end) if fresh_lane else end
        out.append(_front(store, kind, environment, cursor, end, held))
    return out


def _front(
    store: GraphStore, kind: Kind, environment: SolverEnvironment | None, cursor: int, end: int, held: Held
) -> Front:
    solver = None if environment is None else environment.name
    front = Front(kind, solver)
    backlog = (
        store.analyzer_candidates(up_to=cursor)
        if environment is None
        else store.solver_candidates(environment, up_to=cursor)
    )
    picked = _pick(backlog, lambda c: held(kind, solver, c))
    front.first = picked[0][1] if picked and picked[0][0] == 0 else None
    front.waiting += [(Lane.BACKLOG, ahead, candidate) for ahead, candidate in picked]
    if cursor < end:
        if environment is None:
            front.fresh_left = store.analyzer_fresh_ahead(after=cursor, before=end + 1)
            fresh = store.fresh_analyzer_candidates(after=cursor)
        else:
            front.fresh_left = store.solver_fresh_ahead(environment, after=cursor, before=end + 1)
            fresh = store.fresh_solver_candidates(environment, after=cursor)
        picked = _pick((c for _, c in fresh), lambda c: False)
        front.waiting += [(Lane.FRESH, ahead, candidate) for ahead, candidate in picked]
    return front


Picked = list[tuple[int, Candidate]]


def _pick(candidates: Iterator[Candidate], holds: Callable[[Candidate], bool]) -> Picked:
    """The waiting candidates at SAMPLE_AT (the first one always, when one waits), each with how many candidates
    come between the first waiting one and it (those before the first hold no slot: they have a Job or are
    invalid). Reads at most SCAN_LIMIT candidates."""
    first: int | None = None
    waiting = 0
    picked: Picked = []
    wanted = set(SAMPLE_AT)
    for position, candidate in enumerate(candidates):
        if position >= SCAN_LIMIT or waiting > max(SAMPLE_AT):
            break
        if holds(candidate):
            continue
        first = position if first is None else first
        if waiting in wanted:
            picked.append((position - first, candidate))
        waiting += 1
    return picked


def predict(
    pace: Pace,
    calibration: Calibration,
    item: WorkItem,
    lane: Lane,
    ahead: int,
    *,
    shares: Shares,
) -> Forecast:
    """The windows of ``item`` (one stream) waiting in ``lane`` behind ``ahead`` items that take a slot: the one
    forecast a run records and ``explain`` shows."""
    stream = stream_name(item.kind, item.solver)
    return forecast(
        pace,
        stream,
        lane,
        ahead,
        shares=shares,
        waits=calibration.waits_of(stream),
        widening=calibration.widening(lane),
        seed=item.key,
    )


def shares_of(settings: LaneSettings) -> Shares:
    return Shares(request=settings.request_share, fresh=settings.fresh_share)


def recorded(
    calibration: Calibration,
    pace: Pace,
    wanted: Iterable[tuple[WorkItem, Lane, int]],
    *,
    shares: Shares,
    at: float,
    started: Collection[str] = (),
) -> Calibration:
    """``calibration`` with a prediction for each ``wanted`` item (its lane and how many come before it) that has
    none open in its stream yet; an item whose Job exists (its key in ``started``) has started now."""
    have = {(p.package, p.version, p.index, p.stream) for p in calibration.open}
    new = []
    for item, lane, ahead in wanted:
        stream = stream_name(item.kind, item.solver)
        index = normal_index(item.candidate.index_url) or item.candidate.index_url
        identity = (item.candidate.package_name, item.candidate.package_version, index, stream)
        if identity in have:
            continue
        window = predict(pace, calibration, item, lane, ahead, shares=shares)  # without one, it measures a wait
        have.add(identity)
        new.append(
            Prediction(
                prediction_id(*identity, at),
                *identity,
                lane=lane.value,
                seen=at,
                drawn=window.drawn,
                shown=window.solved,
                period=pace.period,
                start=at if item.key in started else None,
            )
        )
    return replace(calibration, open=(*calibration.open, *new))


def requested(
    requests: RequestOutcome,
    templates: JobTemplates,
    *,
    has_job: Collection[str],
    known: Calibration,
    limit: int | None = REQUESTS_RECORDED,
) -> list[tuple[WorkItem, Lane, int]]:
    """The versions the requested lane of each stream takes (requests' items and their closures), in its order,
    with how many it takes first: those without a Job yet (their key not in ``has_job``), at most ``limit`` a
    stream, leaving out those ``known`` has open already."""
    have = {(p.package, p.version, p.stream) for p in known.open}
    out = []
    for kind, environment in templates.streams():
        solver = None if environment is None else environment.name
        name = stream_name(kind, solver)
        taken = 0
        for ahead, (candidate, _) in enumerate(requests.requested(name)):
            if limit is not None and taken >= limit:
                break
            item = WorkItem(kind, solver, candidate)
            if item.key not in has_job and (candidate.package_name, candidate.package_version, name) not in have:
                out.append((item, Lane.REQUESTED, ahead))
                taken += 1
    return out


def after_run(
    calibration: Calibration,
    *,
    store: GraphStore,
    templates: JobTemplates,
    settings: LaneSettings,
    runs: Sequence[RunRecord],
    record: RunRecord,
    requests: RequestOutcome,
    had_job: Collection[str],
    created: Collection[str],
    cursors: Mapping[str, int],
    held: Held,
    durations: Mapping[str, float],
    trusted: TrustedIndexes,
) -> tuple[RunRecord, Calibration, list[Score], dict[str, tuple[int, Candidate]]]:
    """What a real run at ``record.at`` keeps of windows, after ``runs`` (the earlier ones):

    - the windows of the versions its requested lane takes (requests and their closures), as they were when it
      began (``had_job``: the keys of items with a Job then; ``created``: those it created);
    - the scores of earlier windows whose item the graph now has (``durations``: per item key, its completed
      Job's duration; ``trusted``: the indexes, by which a prediction finds its item);
    - its ``record`` with the front of each stream's lanes, and per stream the backlog's first waiting candidate
      with its arrival position;
    - the windows of a few waiting items of each stream.

    Raises StoreError when the store cannot be read."""
    at, shares = record.at, shares_of(settings)
    # The requested lane's windows as they were when the run began (what explain said just before it).
    wanted = requested(requests, templates, has_job=had_job, known=calibration)
    calibration = recorded(calibration, Pace.of(runs, at), wanted, shares=shares, at=at, started=created)
    count = len(calibration.scores)
    calibration = scored(calibration, store, templates, at=at, started=created, trusted=trusted, durations=durations)
    scores = list(calibration.scores[count:])
    streams = fronts(store, templates, cursors, held=held, fresh_lane=settings.fresh_share > 0)
    unserved = requested(requests, templates, has_job={*had_job, *created}, known=Calibration(), limit=None)
    asked = Counter(stream_name(item.kind, item.solver) for item, _, _ in unserved)
    queues = {stream_name(f.kind, f.solver): {"fresh": f.fresh_left} for f in streams}
    for name, count in asked.items():
        queues.setdefault(name, {})["requested"] = count
    record = replace(record, queues=queues)
    waiting = [(WorkItem(f.kind, f.solver, c), lane, ahead) for f in streams for lane, ahead, c in f.waiting]
    calibration = recorded(calibration, Pace.of([*runs, record], at), waiting, shares=shares, at=at)
    firsts = [(stream_name(f.kind, f.solver), f.first) for f in streams if f.first is not None]
    statuses = store.statuses([c for _, c in firsts], list(templates.solver_environments())) if firsts else []
    backlog_fronts = {
        name: (status.arrival, first)
        for (name, first), status in zip(firsts, statuses, strict=True)
        if status.arrival is not None
    }
    return record, calibration, scores, backlog_fronts


def item_keys(calibration: Calibration, templates: JobTemplates, trusted: TrustedIndexes) -> dict[str, str]:
    """Prediction id → the key of its item in its stream, for the predictions of the streams the Templates run."""
    kinds = {stream_name(k, None if e is None else e.name): k for k, e in templates.streams()}
    keys = {}
    for prediction in calibration.open:
        kind = kinds.get(prediction.stream)
        if kind is not None:
            keys[prediction.id] = WorkItem(kind, _solver(prediction.stream), _candidate(prediction, trusted)).key
    return keys


def scored(
    calibration: Calibration,
    store: GraphStore,
    templates: JobTemplates,
    *,
    at: float,
    started: Collection[str],
    trusted: TrustedIndexes,
    durations: Mapping[str, float] | None = None,
) -> Calibration:
    """``calibration`` after this run at ``at``: predictions whose item has a Job now (its key in ``started``) have
    started, and those whose item the graph now has are scored, their waits measured (``durations``: per item
    key, its Job's duration, where the run read it). Predictions of streams the Templates do not run, and those
    this run recorded, wait."""
    if not calibration.open:
        return calibration
    keys = item_keys(calibration, templates, trusted)
    known, unknown = [], []
    for prediction in calibration.open:
        key = keys.get(prediction.id)
        if key is None or prediction.seen == at:  # another stream's, or recorded by this run: it lacks the item
            unknown.append(prediction)
            continue
        if prediction.start is None and key in started:
            prediction = replace(prediction, start=at)
        known.append((prediction, key))
    kept = tuple(p for p, _ in known) + tuple(unknown)
    environments = list(templates.solver_environments())
    try:
        statuses = store.statuses([_candidate(p, trusted) for p, _ in known], environments)
    except StoreError as error:
        logger.warning("The windows recorded earlier could not be scored this run: %s", error)
        return replace(calibration, open=kept)
    found, waits = {}, []
    for (prediction, key), status in zip(known, statuses, strict=True):
        done = status.analyzed if prediction.stream == ANALYZER else prediction.stream in status.solved_by
        if not done:
            continue
        found[prediction.id] = at
        if prediction.start is not None:
            took = None if durations is None else durations.get(key)
            waits.append(Wait(prediction.id, at - prediction.start, took))
    return rescored(replace(calibration, open=kept), found, at, waits)


def _solver(stream: str) -> str | None:
    return None if stream == ANALYZER else stream


def _candidate(prediction: Prediction, trusted: TrustedIndexes) -> Candidate:
    return Candidate(prediction.package, prediction.version, trusted.spelling(prediction.index) or prediction.index)
