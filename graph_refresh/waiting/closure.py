"""What a request brings with it (docs/lanes.md, "A request brings what it needs"): the dependencies the graph
knows for the requested version, theirs, and so on, breadth-first. Pure: the store's answers come in through
the function a run passes.

Advice on a stack needs every version of the stack solved in the user's environment, so a request for one
version is a request for what it depends on. The graph learns what a version depends on only once some solver
has resolved it, so a request's closure grows from run to run as its members are solved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from graph_refresh.items import Candidate, invalid_reason, normal_index, normalize_name
from graph_refresh.waiting.trust import TrustedIndexes

MAX_MEMBERS = 2_000  # versions in one request's closure, the item included: a bound on what one request brings

Dependencies = Callable[[Sequence[Candidate]], Sequence[Sequence[Candidate]]]
"""The store's dependencies of a batch of items, in order (``GraphStore.dependencies``)."""


@dataclass(frozen=True)
class Member:
    """One version of a request's closure: the item (depth 0) or a dependency found ``depth`` levels below it."""

    candidate: Candidate
    """The version as the store has it; its index in the store's spelling when the deployment trusts it."""
    depth: int
    untrusted: bool = False
    """Its index is not one the deployment trusts: shown, never scheduled, its own dependencies not followed."""
    invalid: str | None = None
    """Why it can never become a Job (``items.invalid_reason``): skipped, its dependencies not followed."""

    @property
    def counts(self) -> bool:
        """Whether the request waits for it: a version a Job may be created for."""
        return not self.untrusted and self.invalid is None


@dataclass(frozen=True)
class Closure:
    """A request's closure in the order the requested lane takes it, and whether a bound cut it."""

    members: tuple[Member, ...]
    bounded: bool = False
    """``MAX_MEMBERS`` left out versions that were known."""


def identity(candidate: Candidate) -> tuple[str, str, str]:
    """What makes two spellings one version of a closure: the normal name, the version, the normal index."""
    return (normalize_name(candidate.package_name), candidate.package_version, normal_index(candidate.index_url) or "")


def newest_first(candidates: Sequence[Candidate]) -> list[Candidate]:
    """``candidates`` (one package's versions) newest first by PEP 440; a version that is not PEP 440 last, in
    text order; ties (one version on two indexes) by index."""
    valid, invalid = [], []
    for candidate in candidates:
        try:
            valid.append((Version(candidate.package_version), candidate))
        except InvalidVersion:
            invalid.append(candidate)
    valid.sort(key=lambda pair: pair[1].index_url)
    valid.sort(key=lambda pair: pair[0], reverse=True)  # stable: one version on two indexes keeps index order
    return [candidate for _, candidate in valid] + sorted(invalid, key=lambda c: (c.package_version, c.index_url))


def closures(
    items: Sequence[Candidate],
    dependencies: Dependencies,
    *,
    trusted: TrustedIndexes,
    depth: int,
    limit: int = MAX_MEMBERS,
) -> list[Closure]:
    """Each item's closure: the item, then the dependencies the store knows for it, then theirs, breadth-first,
    each version once, at most ``depth`` levels below the item and ``limit`` versions in all. Within a level the
    dependency packages come in the order their dependents first name them, each package's newest versions
    first. A dependency on an index the deployment does not trust is a member (shown, never scheduled) whose
    own dependencies are not followed, and so is an invalid one. ``dependencies`` is asked once per level, with
    the new versions of every closure together; a StoreError from it propagates."""
    found = [[Member(item, 0, invalid=invalid_reason(item))] for item in items]
    seen = [{identity(item)} for item in items]
    bounded = [False] * len(items)
    frontier = [[member.candidate for member in members if member.counts] for members in found]
    for level in range(1, depth + 1):
        asked = list(dict.fromkeys(candidate for batch in frontier for candidate in batch))
        if not asked:
            break
        known = dict(zip(asked, dependencies(asked), strict=True))
        for index, parents in enumerate(frontier):
            packages: dict[str, list[Candidate]] = {}
            for parent in parents:
                for dependency in known[parent]:
                    key = identity(dependency)
                    if key in seen[index]:
                        continue
                    seen[index].add(key)
                    packages.setdefault(key[0], []).append(dependency)
            new: list[Member] = []
            for versions in packages.values():
                for dependency in newest_first(versions):
                    if len(found[index]) + len(new) >= limit:
                        bounded[index] = True
                        break
                    new.append(_member(dependency, level, trusted))
            found[index].extend(new)
            frontier[index] = [member.candidate for member in new if member.counts]
    return [Closure(tuple(members), cut) for members, cut in zip(found, bounded, strict=True)]


def _member(dependency: Candidate, depth: int, trusted: TrustedIndexes) -> Member:
    candidate = dependency._replace(package_name=normalize_name(dependency.package_name))
    spelling = trusted.spelling(candidate.index_url)
    if spelling is None:
        return Member(candidate, depth, untrusted=True)
    candidate = candidate._replace(index_url=spelling)
    return Member(candidate, depth, invalid=invalid_reason(candidate))
