"""Flattening a sequence's steps into a program with jumps."""

from __future__ import annotations

from pathlib import Path

from engine.sequences import BranchStep, SendStep, WaitStep
from engine.sequences.program import Branch, Jump, compile_program
from engine.wiring import Runtime


def test_branches_become_jumps_that_land_after_them(workspace: Path) -> None:
    sequence = Runtime.open(workspace).sequences.get("pitching-follow-up")

    program = compile_program(sequence)

    kinds = [type(i).__name__ for i in program.instructions]
    assert kinds == ["SendStep", "WaitStep", "SendStep", "WaitStep", "Branch", "StageStep",
                     "SendStep", "Jump", "NotifyStep"]  # fmt: skip
    branch = program.instructions[4]
    jump = program.instructions[7]
    assert isinstance(branch, Branch) and branch.otherwise == 8
    assert isinstance(jump, Jump) and jump.target == 9 == len(program)
    assert program.at(9) is None
    assert program.index_of("case-study") == 6


def test_a_branch_without_else_jumps_straight_to_what_follows(workspace: Path) -> None:
    sequence = Runtime.open(workspace).sequences.get("customer-nurture")

    program = compile_program(sequence)

    branch = next(i for i in program.instructions if isinstance(i, Branch))
    jump = next(i for i in program.instructions if isinstance(i, Jump))
    after = program.at(branch.otherwise)
    assert branch.otherwise == jump.target
    assert isinstance(after, SendStep) and after.id == "review-request"
    assert sum(isinstance(i, SendStep) for i in program.instructions) == 5
    assert all(not isinstance(i, BranchStep) for i in program.instructions)
    assert isinstance(program.at(1), WaitStep)
