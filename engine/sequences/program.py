"""A sequence's steps flattened into a program: one list, branches as jumps.

An enrollment's position is then one number (``enrollments.step_index``) whatever
the nesting, and running, planning and reporting walk the same list.

``[send a, branch c then [x] else [y], send b]`` becomes::

    0 Send a
    1 Branch c, else -> 4
    2   x
    3   Jump -> 5
    4   y
    5 Send b
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from engine.segments.model import Condition
from engine.sequences.model import (
    BranchStep,
    ExitStep,
    NotifyStep,
    SendStep,
    Sequence,
    StageStep,
    Step,
    WaitStep,
)


@dataclass(frozen=True)
class Branch:
    """Go on when ``condition`` holds for the contact, else jump to ``otherwise``."""

    id: str
    condition: Condition
    otherwise: int


@dataclass(frozen=True)
class Jump:
    """Continue at ``target`` (the end of a branch's ``then`` list)."""

    id: str
    target: int


Instruction: TypeAlias = SendStep | WaitStep | StageStep | NotifyStep | ExitStep | Branch | Jump


@dataclass(frozen=True)
class Program:
    """The instructions of one sequence, in order."""

    sequence: Sequence
    instructions: tuple[Instruction, ...]

    def __len__(self) -> int:
        return len(self.instructions)

    def at(self, index: int) -> Instruction | None:
        """The instruction at ``index``; ``None`` past the end (the enrollment is complete)."""
        return self.instructions[index] if 0 <= index < len(self.instructions) else None

    def index_of(self, step_id: str) -> int | None:
        """Where the step with this id is (to find an enrollment's place after an edit)."""
        return next((i for i, ins in enumerate(self.instructions) if ins.id == step_id), None)


def compile_program(sequence: Sequence) -> Program:
    """Flatten ``sequence``'s steps."""
    instructions: list[Instruction] = []
    _emit(sequence.steps, instructions)
    return Program(sequence, tuple(instructions))


def _emit(steps: tuple[Step, ...], out: list[Instruction]) -> None:
    for step in steps:
        if not isinstance(step, BranchStep):
            out.append(step)
            continue
        branch_at = len(out)
        out.append(Branch(step.id, step.condition, otherwise=-1))  # patched below
        _emit(step.then, out)
        jump_at = len(out)
        out.append(Jump(f"{step.id}.end", target=-1))
        out[branch_at] = Branch(step.id, step.condition, otherwise=len(out))
        _emit(step.otherwise, out)
        out[jump_at] = Jump(f"{step.id}.end", target=len(out))
