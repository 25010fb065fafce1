"""Keyed machine intake in batches: many events, one transaction (group commit).

A burst of camera events arrives as many concurrent `POST /api/v1/cases`. Written one transaction
each, every event pays for its own BEGIN, reference revision check and COMMIT, and the writers queue
for the store's one write lock. `intake_events_once` writes a batch of them in one transaction
instead, each event exactly as `case_commands.intake_event_once` would.

What callers may rely on:
- Each event's answer (or the exception it raised) is the one `intake_event_once` gives for it:
  the batch only changes how many events share a commit.
- An event that would be refused before anything is written (outside every grid or the key's area,
  an unknown category) is set aside before the batch writes, all such events at once.
- An event whose answer is a refusal or an error, and every event of a batch that met another
  writer's row (an IntegrityError: the same key or event from another process) or a store fault,
  is run again alone through `intake_event_once`. The batch then commits without it, so one bad
  event never costs the others their cases, and nothing half-written ever commits.
- A batch reads which of its keys were used before in one SELECT and stores the answers to new keys
  in one INSERT at the end; it reads its events' claims and its devices' open cases in one SELECT
  each (`intake_machine.prefetch`), and its cases' audit rows go in together (services/grouped_writes.py).
- After the commit each new case wakes the dispatcher and the sender (`intake_answered`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import Context, copy_context
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError

from services import case_commands, cases, grouped_writes, idempotency, intake_machine
from services.api_keys import Principal
from services.context import ServiceContext
from services.db import transaction
from services.intake_machine import IntakeResult, MachineReport


@dataclass(frozen=True)
class KeyedEvent:
    """One machine event under its Idempotency-Key, with how its answer is rendered (`intake_event_once`).

    `context` is the caller's (its request id, for one): the event's work and log lines run in it, not
    in the context of whichever request happened to start the batch."""

    principal: Principal
    report: MachineReport
    key: str
    fingerprint: str
    answer: Callable[[Any], case_commands.StorableAnswer]
    context: Context = field(default_factory=copy_context)


class _Alone(Exception):
    """Events of the batch that must run alone: `every` for all of them, else those at `indices`."""

    def __init__(self, indices: list[int], every: bool = False) -> None:
        super().__init__(indices)
        self.indices, self.every = indices, every


def intake_events_once(ctx: ServiceContext, events: Sequence[KeyedEvent]) -> list[Any]:
    """Each event's answer (or `Replay`), or the exception it raised, in the order given. See the module."""
    answers: list[Any] = [None] * len(events)
    batch = list(range(len(events)))
    alone: list[int] = []
    while batch:
        try:
            written = _write(ctx, [events[i] for i in batch])
        except _Alone as spoiled:
            out = set(range(len(batch))) if spoiled.every else set(spoiled.indices)
            alone.extend(batch[i] for i in out)
            batch = [event for i, event in enumerate(batch) if i not in out]
            continue
        except DBAPIError:  # the COMMIT itself failed: nothing of the batch is stored
            alone.extend(batch)
            break
        for i, (answer, result) in zip(batch, written, strict=True):
            answers[i] = answer
            if result is not None:
                events[i].context.run(case_commands.intake_answered, ctx, events[i].report, result)
        break
    for i in sorted(alone):
        event = events[i]
        try:
            answers[i] = event.context.run(
                case_commands.intake_event_once, ctx, principal=event.principal, report=event.report, key=event.key,
                fingerprint=event.fingerprint, answer=event.answer)
        except Exception as exc:  # noqa: BLE001 - handed to the event's own request, which raises it
            answers[i] = exc
    return answers


def _write(ctx: ServiceContext, events: list[KeyedEvent]) -> list[tuple[Any, IntakeResult | None]]:
    """All of `events` in one transaction, or raise `_Alone` (rolled back) naming what must run alone.

    Keys seen before (answered, in flight, expired) and keys repeated within the batch go through the
    key's whole check (`intake_keyed_in`); new keys, the usual case, get their answers stored together
    at the end (`idempotency.store_new`): one SELECT and one INSERT for the batch's keys.
    """
    now = ctx.clock.now()
    written: list[tuple[Any, IntakeResult | None]] = []
    with transaction(ctx.sessions) as session:
        index = 0
        try:
            # The cases and their audit rows: one INSERT each for the batch. New rows' keys are reserved
            # once the counter's UPSERT (`numbers_reserved`, before any case) holds SQLite's write lock.
            with grouped_writes.grouped(session, new_rows=True):
                in_use = idempotency.keys_in_use(session, {(event.principal.id, event.key) for event in events})
                # Refusals known before any write are set aside at once: one bad event costs no re-run per event.
                refused = [i for i, event in enumerate(events) if (event.principal.id, event.key) not in in_use
                           and intake_machine.refusal_of(session, ctx, event.principal, event.report) is not None]
                if refused:
                    raise _Alone(refused)
                intake_machine.prefetch(session, ctx, [(event.principal.id, event.report) for event in events], now)
                new: list[idempotency.NewAnswer] = []
                with cases.numbers_reserved(session, ctx, count=len(events), now=now):  # one statement for all
                    for index, event in enumerate(events):
                        pair = (event.principal.id, event.key)
                        idempotency.check_key(event.key)
                        if pair in in_use:
                            idempotency.store_new(session, ctx, new)  # so the key's check sees this batch's answers
                            new = []
                            written.append(event.context.run(
                                case_commands.intake_keyed_in, session, ctx, principal=event.principal,
                                report=event.report, key=event.key, fingerprint=event.fingerprint, answer=event.answer,
                                now=now))
                            continue
                        response, result = event.context.run(
                            case_commands.intake_answer_in, session, ctx, principal=event.principal,
                            report=event.report, answer=event.answer, now=now)
                        new.append(case_commands.new_answer(event.principal, event.key, event.fingerprint, response))
                        in_use.add(pair)
                        written.append((response, result))
                idempotency.store_new(session, ctx, new)
        except _Alone:
            raise
        except DBAPIError:  # another writer's row, or the store: the transaction is spoiled for all
            raise _Alone([], every=True) from None
        except Exception:  # a refusal, a key in use, a fault: this event's own path answers it
            raise _Alone([index]) from None
    return written
