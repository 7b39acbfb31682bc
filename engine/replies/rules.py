"""The rules of ``config/replies.yaml``: intent phrases per language and the out-of-office default.

Intents are tried in the order the file lists them, and the first whose phrase occurs
in the person's own words wins; a reply matching none is ``other``. Phrases match whole
words, case-insensitively, whatever whitespace separates their words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import Problem, WorkspaceError
from engine.replies.autoreply import OUT_OF_OFFICE
from engine.vocabulary import ReplyIntent
from engine.workspace import (
    Workspace,
    line_of,
    load_yaml,
    starter_root,
    suggest,
    validation_problems,
)

REPLIES_FILE = "config/replies.yaml"
LANGUAGES = ("en", "da", "sv", "de")
_RULE_INTENTS = [intent.value for intent in ReplyIntent if intent is not ReplyIntent.OTHER]


class AutoReplySpec(BaseModel):
    """``auto_reply:``: how out-of-office notices are handled."""

    model_config = ConfigDict(extra="forbid")

    resume_after_days: int = Field(default=3, ge=0, le=365)
    # Extra out-of-office phrasing per language, beside the built-in phrases.
    phrases: dict[str, list[str]] = {}


class RepliesFile(BaseModel):
    """The whole of ``config/replies.yaml`` (intent and language names are checked apart,
    so that their mistakes name the valid choices and their line)."""

    model_config = ConfigDict(extra="forbid")

    intents: dict[str, dict[str, list[str]]] = {}
    auto_reply: AutoReplySpec = AutoReplySpec()


@dataclass(frozen=True)
class PhraseMatch:
    """The phrase that decided an intent."""

    intent: ReplyIntent
    phrase: str
    language: str


class PhraseSet:
    """Phrases per language compiled into one whole-word, case-insensitive pattern."""

    def __init__(self, phrases: dict[str, list[str]]) -> None:
        self._language: dict[str, tuple[str, str]] = {}
        for language, words in phrases.items():
            for phrase in words:
                self._language.setdefault(_normal(phrase), (phrase, language))
        alternatives = sorted(self._language, key=len, reverse=True)  # longest first
        body = "|".join(r"\s+".join(map(re.escape, p.split())) for p in alternatives)
        self._pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE) if body else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def search(self, text: str) -> tuple[str, str] | None:
        """The first phrase found in ``text`` and its language."""
        found = self._pattern.search(text) if self._pattern is not None else None
        return self._language.get(_normal(found.group())) if found else None


def _normal(phrase: str) -> str:
    return " ".join(phrase.lower().split())


@dataclass(frozen=True)
class ReplyRules:
    """Compiled reply rules: intent phrases in file order, and the out-of-office settings."""

    intents: tuple[tuple[ReplyIntent, PhraseSet], ...]
    resume_after_days: int = 3
    out_of_office: PhraseSet = field(default_factory=lambda: PhraseSet(OUT_OF_OFFICE))

    @classmethod
    def from_file(cls, spec: RepliesFile) -> ReplyRules:
        intents = tuple(
            (ReplyIntent(name), PhraseSet(phrases))
            for name, phrases in spec.intents.items()
            if name in _RULE_INTENTS
        )
        auto = spec.auto_reply
        out_of_office = {
            language: [*OUT_OF_OFFICE.get(language, []), *auto.phrases.get(language, [])]
            for language in LANGUAGES
        }
        return cls(intents, auto.resume_after_days, PhraseSet(out_of_office))

    def unsubscribe_request(self, text: str) -> PhraseMatch | None:
        """An unsubscribe request in words (checked before every other intent)."""
        return self._match(text, only=ReplyIntent.UNSUBSCRIBE_REQUEST)

    def intent_of(self, text: str) -> PhraseMatch | None:
        """The first intent, in file order, whose phrase occurs in ``text``."""
        return self._match(text, only=None)

    def _match(self, text: str, only: ReplyIntent | None) -> PhraseMatch | None:
        for intent, phrases in self.intents:
            if only is not None and intent is not only:
                continue
            if (found := phrases.search(text)) is not None:
                return PhraseMatch(intent, *found)
        return None


def load_reply_rules(workspace: Workspace) -> ReplyRules:
    """The workspace's reply rules; raises with every problem in ``config/replies.yaml``."""
    rules, problems = read_reply_rules(workspace)
    if problems or rules is None:
        raise WorkspaceError(problems)
    return rules


def read_reply_rules(workspace: Workspace) -> tuple[ReplyRules | None, list[Problem]]:
    """The rules plus every problem in ``config/replies.yaml``.

    A workspace made before the file existed reads the starter workspace's rules.
    """
    path = workspace.root / REPLIES_FILE
    if not path.exists():
        path = starter_root() / REPLIES_FILE
    data, problems = load_yaml(path, REPLIES_FILE)
    if problems:
        return None, problems
    try:
        spec = RepliesFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        return None, validation_problems(REPLIES_FILE, data, exc, RepliesFile)
    problems = _intent_problems(spec, data) + _phrase_problems(
        spec.auto_reply.phrases, data, ["auto_reply", "phrases"]
    )
    return (None, problems) if problems else (ReplyRules.from_file(spec), [])


def _intent_problems(spec: RepliesFile, data: Any) -> list[Problem]:
    problems = []
    for name, phrases in spec.intents.items():
        if name == ReplyIntent.OTHER:
            message = "'other' is what a reply matching no rule gets; it takes no phrases"
            problems.append(Problem(REPLIES_FILE, line_of(data, ["intents", name]), message))
        elif name not in _RULE_INTENTS:
            message = f"unknown intent '{name}'; {suggest(name, _RULE_INTENTS)}"
            problems.append(Problem(REPLIES_FILE, line_of(data, ["intents", name]), message))
        problems += _phrase_problems(phrases, data, ["intents", name])
    return problems


def _phrase_problems(phrases: dict[str, list[str]], data: Any, base: list[Any]) -> list[Problem]:
    problems = []
    for language, words in phrases.items():
        if language not in LANGUAGES:
            message = f"unknown language '{language}'; {suggest(language, LANGUAGES)}"
            problems.append(Problem(REPLIES_FILE, line_of(data, [*base, language]), message))
        for index, phrase in enumerate(words):
            if len(phrase.strip()) < 2:
                message = f"phrase '{phrase}' is too short to mean anything; write a word or more"
                line = line_of(data, [*base, language, index])
                problems.append(Problem(REPLIES_FILE, line, message))
    return problems
