"""Loading every segment of a workspace: duplicates, references and cycles checked."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from engine.errors import Problem
from engine.segments.fields import FieldSpec
from engine.segments.model import AllOf, AnyOf, Condition, Not, Segment, SegmentRef
from engine.segments.parsing import SegmentParser
from engine.workspace import Workspace, load_yaml, suggest

SEGMENTS_DIR = "segments"


@dataclass(frozen=True)
class SegmentSet:
    """The workspace's valid segments by name (a segment with a mistake is left out)."""

    segments: dict[str, Segment] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.segments

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments.values())

    def get(self, name: str) -> Segment:
        """The segment called ``name``; a ``KeyError`` names the valid ones."""
        try:
            return self.segments[name]
        except KeyError:
            raise KeyError(f"unknown segment '{name}'; {suggest(name, self.segments)}") from None


def read_segments(
    workspace: Workspace,
    fields: dict[str, FieldSpec],
    stages: Collection[str] | None,
    sequences: Collection[str] | None,
    custom_fields_known: bool = True,
) -> tuple[SegmentSet, list[Problem]]:
    """Parse ``segments/*.yaml``; the valid segments and every problem found.

    ``None`` stages or sequences are not checked (their own file is unreadable).
    """
    parser = SegmentParser(fields, stages, sequences, custom_fields_known)
    parsed: dict[str, Segment] = {}
    failed: dict[str, str] = {}  # name -> file, for segments with mistakes of their own
    for path in sorted((workspace.root / SEGMENTS_DIR).glob("*.yaml")):
        shown = workspace.shown(path)
        data, problems = load_yaml(path, shown)
        parser.problems.extend(problems)
        segment = None if problems else parser.parse(data, shown)
        if segment is None:
            name = data.get("name") if isinstance(data, dict) else None
            failed.setdefault(str(name) if name else path.stem, shown)
            continue
        if segment.name in parsed:
            first = parsed[segment.name]
            message = (
                f"segment '{segment.name}' is defined twice (also in {first.path}:{first.line})"
            )
            parser.problems.append(Problem(shown, segment.line, message))
            continue
        parsed[segment.name] = segment
    problems = parser.problems
    broken = _reference_problems(parsed, failed, problems)
    valid = {name: s for name, s in parsed.items() if name not in broken}
    return SegmentSet(valid), problems


def references(condition: Condition) -> Iterator[SegmentRef]:
    """Every ``segment: NAME`` inside a condition."""
    if isinstance(condition, SegmentRef):
        yield condition
    elif isinstance(condition, AllOf | AnyOf):
        for child in condition.conditions:
            yield from references(child)
    elif isinstance(condition, Not):
        yield from references(condition.condition)


def _reference_problems(
    parsed: dict[str, Segment], failed: dict[str, str], problems: list[Problem]
) -> set[str]:
    """Report unknown references and cycles; the names of segments that cannot be used."""
    broken: set[str] = set()
    for segment in parsed.values():
        for ref in references(segment.where):
            if ref.name in failed:
                broken.add(segment.name)  # its own file reports what is wrong with it
            elif ref.name not in parsed:
                others = [name for name in parsed if name != segment.name]
                message = f"unknown segment '{ref.name}'; {suggest(ref.name, others)}"
                problems.append(Problem(segment.path, ref.line, message))
                broken.add(segment.name)
    for cycle in _cycles(parsed):
        first = parsed[cycle[0]]
        ref = next(r for r in references(first.where) if r.name == cycle[1])
        problems.append(
            Problem(first.path, ref.line, "segments refer to each other in a cycle: "
                    + " -> ".join(cycle))
        )  # fmt: skip
        broken.update(cycle)
    # a segment using a broken one is broken too
    changed = True
    while changed:
        changed = False
        for segment in parsed.values():
            if segment.name not in broken and any(
                r.name in broken for r in references(segment.where)
            ):
                broken.add(segment.name)
                changed = True
    return broken


def _cycles(parsed: dict[str, Segment]) -> list[list[str]]:
    """Each reference cycle once, as the chain of names that closes on itself."""
    cycles: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()
    done: set[str] = set()

    def visit(name: str, chain: list[str]) -> None:
        if name in chain:
            cycle = [*chain[chain.index(name) :], name]
            if frozenset(cycle) not in seen_cycles:
                seen_cycles.add(frozenset(cycle))
                cycles.append(cycle)
            return
        if name in done or name not in parsed:
            return
        for ref in references(parsed[name].where):
            visit(ref.name, [*chain, name])
        done.add(name)

    for name in parsed:
        visit(name, [])
    return cycles
