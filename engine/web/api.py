"""The JSON API for the CRM side: upsert contacts and accounts, move a stage, enroll,
pause, resume or stop, and read a contact's timeline.

Every route needs ``Authorization: Bearer SALESCYCLE_API_TOKEN`` (compared in constant
time). The token is checked before the body is read, so an unauthenticated client gets
401 whatever it sends; without a configured token the API answers 503.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from sqlalchemy import update

from engine.contacts import CrmMapping, find_contact
from engine.contacts.records import Record, RecordsOutcome, RecordUpserter
from engine.contacts.timeline import contact_events
from engine.sequences import EnrollmentRules, SequenceSet
from engine.sequences.control import Control, control_enrollments
from engine.sequences.manual import enroll_emails
from engine.sequences.model import Sequence
from engine.stages import Pipeline, StageChange, record_stage_changes
from engine.storage.schema import contacts
from engine.vocabulary import StageCause
from engine.web.api_models import (
    AccountBatch,
    AccountIn,
    AccountsResult,
    ContactBatch,
    ContactIn,
    ContactsResult,
    ContactTimeline,
    ControlIn,
    ControlResult,
    EnrollIn,
    EnrollResult,
    ItemError,
    StageIn,
    StageResult,
)
from engine.web.context import WebContext, problem
from engine.web.limits import read_body

API_TOKEN_ENV = "SALESCYCLE_API_TOKEN"
API_MAX_BYTES = 4 * 1024 * 1024  # 1,000 contacts of about 1 KiB each, with room
_Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ApiError(Exception):
    """A refusal with its status and reason (answered as ``{"detail": ...}``)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ApiSetup:
    """What the API needs from the workspace."""

    pipeline: Pipeline
    sequences: SequenceSet
    rules: EnrollmentRules
    mapping: CrmMapping


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {}}}


_NO_CONTACT = _documented("No such contact.")
_UNKNOWN_STAGE = _documented("Unknown stage (the valid ones are named).")
_UNKNOWN_SEQUENCE = _documented("Unknown sequence (the valid ones are named).")
_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: _documented("Missing or wrong bearer token."),
    413: _documented(f"The body is over {API_MAX_BYTES} bytes."),
    503: _documented(f"The API is not configured ({API_TOKEN_ENV}), or the database is down."),
}


def _route_class(token: str | None, setup: ApiSetup | None) -> type[APIRoute]:
    """Routes that check the token (and read the body within its limit) before FastAPI
    parses anything, and answer an :class:`ApiError` as JSON."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> _Handler:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                if token is None or setup is None:
                    return problem(503, f"the API is not configured; set {API_TOKEN_ENV}")
                if not _authorised(request.headers.get("authorization"), token):
                    return problem(
                        401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
                    )
                # Starlette keeps the body read here, and FastAPI parses that one.
                request._body = await read_body(request, API_MAX_BYTES)
                try:
                    return await handler(request)
                except ApiError as exc:
                    return problem(exc.status, exc.detail)

            return guarded

    return GuardedRoute


def _authorised(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def api_router(context: WebContext, token: str | None, setup: ApiSetup | None) -> APIRouter:
    """The ``/api`` routes; without ``token`` (or ``setup``) every one answers 503."""
    router = APIRouter(
        prefix="/api",
        tags=["api"],
        route_class=_route_class(token or None, setup),
        dependencies=[Depends(HTTPBearer(auto_error=False))],  # documents the scheme
        responses=_REFUSALS,
    )
    api = _Api(context, setup) if setup is not None else None

    def ready() -> _Api:
        assert api is not None  # the route class answers 503 first
        return api

    @router.post(
        "/contacts",
        summary="Upsert contacts (with owners and accounts)",
        response_model=ContactsResult,
    )
    async def upsert_contacts(batch: ContactBatch) -> ContactsResult:
        """Up to 1,000 contacts; each bad one is reported with its index, the others stored."""
        return await run_in_threadpool(ready().upsert_contacts, batch)

    @router.post("/accounts", summary="Upsert accounts", response_model=AccountsResult)
    async def upsert_accounts(batch: AccountBatch) -> AccountsResult:
        """Up to 1,000 accounts; each bad one is reported with its index, the others stored."""
        return await run_in_threadpool(ready().upsert_accounts, batch)

    @router.post(
        "/contacts/{email}/stage",
        summary="Move a contact to a stage",
        response_model=StageResult,
        responses={404: _NO_CONTACT, 422: _UNKNOWN_STAGE},
    )
    async def change_stage(email: str, change: StageIn) -> StageResult:
        return await run_in_threadpool(ready().change_stage, email, change)

    @router.post(
        "/enrollments",
        summary="Enroll contacts in a sequence",
        response_model=EnrollResult,
        responses={422: _UNKNOWN_SEQUENCE},
    )
    async def enroll_contacts(request: EnrollIn) -> EnrollResult:
        """Contacts the sequence's rules keep out are listed with the reason."""
        return await run_in_threadpool(ready().enroll, request)

    for action in Control:
        _add_control(router, ready, action)

    @router.get(
        "/contacts/{email}",
        summary="A contact's timeline",
        response_model=ContactTimeline,
        responses={404: _NO_CONTACT},
    )
    async def timeline(email: str) -> ContactTimeline:
        """Stage history, messages with their events, and enrollments."""
        return await run_in_threadpool(ready().timeline, email)

    return router


def _add_control(router: APIRouter, ready: Callable[[], _Api], action: Control) -> None:
    @router.post(
        f"/enrollments/{action.value}",
        summary=f"{action.value.capitalize()} enrollments",
        response_model=ControlResult,
        name=f"enrollments_{action.value}",
        responses={404: _NO_CONTACT, 422: _UNKNOWN_SEQUENCE},
    )
    async def control(request: ControlIn) -> ControlResult:
        return await run_in_threadpool(ready().control, action, request)


class _Api:
    """The work behind the routes (run in worker threads)."""

    def __init__(self, context: WebContext, setup: ApiSetup) -> None:
        self.context = context
        self.setup = setup
        self.records = RecordUpserter(context.engine, setup.pipeline, setup.mapping, context.clock)

    def upsert_contacts(self, batch: ContactBatch) -> ContactsResult:
        records = [_contact_record(c, self.setup.mapping) for c in batch.contacts]
        outcome = self.records.contacts(_valid(records))
        outcome.errors = sorted(outcome.errors + _invalid(records))
        c = outcome.counts
        return ContactsResult(
            received=len(batch.contacts),
            created=c.created,
            updated=c.updated,
            unchanged=c.unchanged,
            accounts_created=c.accounts_created,
            accounts_updated=c.accounts_updated,
            owners_created=c.owners_created,
            owners_updated=c.owners_updated,
            stage_changes=c.stage_changes,
            errors=_errors(outcome),
        )

    def upsert_accounts(self, batch: AccountBatch) -> AccountsResult:
        records = [_account_record(a, self.setup.mapping) for a in batch.accounts]
        outcome = self.records.accounts(_valid(records))
        outcome.errors = sorted(outcome.errors + _invalid(records))
        return AccountsResult(
            received=len(batch.accounts),
            created=outcome.counts.accounts_created,
            updated=outcome.counts.accounts_updated,
            errors=_errors(outcome),
        )

    def change_stage(self, email: str, change: StageIn) -> StageResult:
        pipeline = self.setup.pipeline
        if change.stage not in pipeline:
            valid = ", ".join(pipeline.ids)
            raise ApiError(422, f"unknown stage '{change.stage}'; valid choices: {valid}")
        now = self.context.clock()
        with self.context.engine.begin() as connection:
            view = find_contact(connection, email)
            if view is None:
                raise ApiError(404, f"no contact with email {email.strip().lower()}")
            contact_id, current = int(view.contact["id"]), str(view.contact["stage"])
            if current != change.stage:
                connection.execute(
                    update(contacts)
                    .where(contacts.c.id == contact_id)
                    .values(stage=change.stage, stage_entered_at=now, updated_at=now)
                )
                moved = StageChange(contact_id, current, change.stage, change.note)
                record_stage_changes(connection, [moved], StageCause.API, now)
        return StageResult(
            email=view.contact["email"],
            from_stage=current,
            stage=change.stage,
            changed=current != change.stage,
        )

    def enroll(self, request: EnrollIn) -> EnrollResult:
        sequence = self._sequence(request.sequence)
        with self.context.engine.begin() as connection:
            result = enroll_emails(
                connection, sequence, request.emails, self.setup.rules, self.context.clock()
            )
        left_out = [{"email": e, "reason": r} for e, r in result.left_out]
        return EnrollResult.model_validate(
            {"sequence": sequence.name, "enrolled": result.enrolled, "left_out": left_out}
        )

    def control(self, action: Control, request: ControlIn) -> ControlResult:
        sequence = self._sequence(request.sequence)
        with self.context.engine.begin() as connection:
            contact_id = None
            if request.email is not None:
                view = find_contact(connection, request.email)
                if view is None:
                    raise ApiError(404, f"no contact with email {request.email.strip().lower()}")
                contact_id = int(view.contact["id"])
            changed = control_enrollments(
                connection, action, self.context.clock(), sequence.name, contact_id
            )
        return ControlResult(action=action.value, sequence=sequence.name, changed=changed)

    def timeline(self, email: str) -> ContactTimeline:
        with self.context.engine.connect() as connection:
            view = find_contact(connection, email)
            if view is None:
                raise ApiError(404, f"no contact with email {email.strip().lower()}")
            found = contact_events(connection, int(view.contact["id"]))
        by_message: dict[str | None, list[dict[str, Any]]] = {}
        for event in found:
            by_message.setdefault(event.pop("message"), []).append(event)
        messages = [
            {**m, "id": m["public_id"], "events": by_message.get(m["public_id"], [])}
            for m in view.messages
        ]
        history = [
            {
                "at": e.at,
                "from_stage": e.detail.get("from"),
                "to_stage": e.detail["to"],
                "cause": e.detail["cause"],
            }
            for e in view.timeline
            if e.kind == "stage"
        ]
        return ContactTimeline.model_validate(
            {
                "contact": view.contact,
                "account": view.account,
                "owner": view.owner,
                "stage_history": history,
                "messages": messages,
                "other_events": by_message.get(None, []),
                "enrollments": view.enrollments,
            }
        )

    def _sequence(self, name: str) -> Sequence:
        try:
            return self.setup.sequences.get(name)
        except KeyError as exc:
            raise ApiError(422, str(exc.args[0]).replace("valid:", "valid choices:")) from None


# requests onto the field keys of config/crm.yaml -----------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _attributes(
    prefix: str, given: dict[str, Any], known: dict[str, Any], cells: dict[str, str]
) -> None:
    for name, value in given.items():
        if name not in known:
            valid = ", ".join(known) or "(none in config/crm.yaml)"
            raise ValueError(f"unknown {prefix}'{name}'; valid choices: {valid}")
        cells[f"{prefix}{name}"] = _text(value)


def _account_record(account: AccountIn, mapping: CrmMapping) -> Record:
    cells = {
        f"account.{name}": _text(getattr(account, name))
        for name in account.model_fields_set - {"attributes"}
    }
    try:
        _attributes(
            "account.attributes.", account.attributes, mapping.spec.account_attributes, cells
        )
    except ValueError as exc:
        return _Invalid(str(exc))
    return cells


def _contact_record(contact: ContactIn, mapping: CrmMapping) -> Record:
    nested = {"owner", "account", "attributes"}
    cells = {
        f"contact.{name}": _text(getattr(contact, name))
        for name in contact.model_fields_set - nested
    }
    cells.setdefault("contact.email", _text(contact.email))
    if contact.owner is not None:
        cells["owner.email"] = _text(contact.owner.email)
        if "name" in contact.owner.model_fields_set:
            cells["owner.name"] = _text(contact.owner.name)
    if contact.account is not None:
        account = _account_record(contact.account, mapping)
        if isinstance(account, _Invalid):
            return account
        cells.update(account)
    try:
        _attributes("attributes.", contact.attributes, mapping.spec.attributes, cells)
    except ValueError as exc:
        return _Invalid(str(exc))
    return cells


class _Invalid(dict[str, str]):
    """A record refused before normalising: carries its reason."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def _valid(records: list[Record]) -> list[tuple[int, Record]]:
    return [(i, r) for i, r in enumerate(records) if not isinstance(r, _Invalid)]


def _invalid(records: list[Record]) -> list[tuple[int, str]]:
    return [(i, r.reason) for i, r in enumerate(records) if isinstance(r, _Invalid)]


def _errors(outcome: RecordsOutcome) -> list[ItemError]:
    return [ItemError(index=i, error=e) for i, e in outcome.errors]
