"""Plain-text wording for WeCom: the Telegram texts' msgids (so the catalogue's translations are shared),
without Telegram's HTML. The reader's `gettext` is passed in (zh_CN unless the person chose otherwise)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from models.lifecycle import Status
from models.tables import Area, Case, CaseSource, Category, Person
from models.work import CaseTask, OfferStatus
from models.elders import Elder
from models.field import ProgressKind
from services import batch_reads, verification, welfare_calls, work
from services.intake_open311 import case_answers
from services.names import department_name, localized
from services.navigation import navigate_url
from services.privacy import mask_text, resident_tag
from services.progress import recent_notes
from services.snapshots import snapshot_links
from onegrid.i18n import N_
from wecom.actions import Gettext

MAX_SNAPSHOT_LINKS = 2  # a card holds six link and text rows (wecom/formats.py MAX_HORIZONTAL)


def local_time(at: datetime | None, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).strftime("%m-%d %H:%M") if at is not None else "—"


def category_name(session: Session, code: str, locale: str) -> str:
    return localized(session.exec(select(Category).where(Category.code == code)).first(), locale, code)


def grid_name(session: Session, code: str | None, locale: str) -> str:
    grid = session.exec(select(Area).where(Area.code == code)).first() if code else None
    return localized(grid, locale, code or "—")


def order_lines(session: Session, case: Case, task: CaseTask, locale: str, _: Gettext, timezone: str) -> list[str]:
    """The work order's lines below its header, as bot/renderers/work_text.py `order_text` words them: the other
    departments of a joint case, a welfare check's household, the description with phone and ID numbers
    masked, a resident's answers to the category's questions."""
    others = batch_reads.other_departments(session, case.id, task.id)
    lines = [_("Category: {category}").format(category=category_name(session, case.category_code, locale)),
             _("Department: {department}").format(department=department_name(session, task.department_code, locale))]
    if others:
        lines.append(_("Joint handling with: {departments}").format(
            departments=", ".join(department_name(session, code, locale) for code in others)))
    lines.append(_("Grid: {grid}").format(grid=grid_name(session, case.grid_code, locale)))
    lines.extend(welfare_lines(session, case, _))
    if case.address:
        lines.append(_("Address: {address}").format(address=case.address))
    if case.description:
        lines.append(_("Description: {description}").format(description=mask_text(case.description)[:600]))
    for question, answer in case_answers(session, case.id) if case.source == CaseSource.RESIDENT else ():
        lines.append(f"{question}: {mask_text(answer)}")
    lines.append(_("Accept by: {accept} · Handle by: {handle}").format(
        accept=local_time(case.accept_due_at, timezone), handle=local_time(case.handle_due_at, timezone)))
    lines.append(reporter_line(session, case, _))
    return lines


def welfare_lines(session: Session, case: Case, _: Gettext) -> list[str]:
    """A welfare check's household, whole (staff must go and ring), as bot/renderers/alarms_text.py words it."""
    check = welfare_calls.check_of(session, case.id)
    elder = session.get(Elder, check.elder_id) if check is not None else None
    if elder is None:
        return []
    return [_("🚨 Welfare check: {name}, living alone (device {device})").format(name=elder.name or "—",
                                                                                device=check.device_id),
            _("Home: {address}").format(address=elder.address or "—"), *household_lines(elder, _)]


def household_lines(elder: Elder, _: Gettext) -> list[str]:
    """Who has the keys, and the family's numbers."""
    lines = [_("Key holder: {name} {phone}").format(name=elder.key_holder_name, phone=elder.key_holder_phone)] \
        if elder.key_holder_name or elder.key_holder_phone else []
    return lines + [_("Family: {name} {phone}").format(name=c.get("name", ""), phone=c.get("phone", ""))
                    for c in elder.contacts or []]


# How a progress note reads to staff (bot/renderers/field_text.py, the same msgids).
STAFF_NOTE_LABELS: dict[ProgressKind, str] = {
    ProgressKind.ARRIVED: N_("arrived on site"),
    ProgressKind.WAITING_MATERIALS: N_("waiting for materials"),
    ProgressKind.NEEDS_DEPARTMENT: N_("needs another department"),
    ProgressKind.TEXT: N_("note"),
}


def progress_lines(session: Session, case: Case, _: Gettext, timezone: str) -> list[str]:
    """"Progress:" and the case's latest notes (masked, no names), as the supervisors' case card lists them."""
    notes = recent_notes(session, case.id)
    if not notes:
        return []
    return [_("Progress:")] + [f"· {local_time(n.at, timezone)} {_(STAFF_NOTE_LABELS[n.kind])}"
                               + (f": {n.text}" if n.text else "") for n in notes]


def order_links(session: Session, case: Case, _: Gettext) -> list[tuple[str, str, str]]:
    """(name, shown text, url) of the card's link rows: navigation to the place (Amap), and a camera's
    snapshots that were not fetched as a photo (bot/renderers/field_text.py shows the same as links)."""
    links = [(_("🧭 Navigate"), _("Amap"), navigate_url(case))]
    for number, url in enumerate(snapshot_links(session, case)[:MAX_SNAPSHOT_LINKS], start=1):
        links.append((_("📷 Camera snapshot · {number}").format(number=number), url, url))
    return links


def reporter_line(session: Session, case: Case, _: Gettext) -> str:
    """Where the case came from; for a resident's report, as bot/renderers/resident_views.py `reporter_label`
    shows a reporter to staff: never a name, not even a surname; the masked phone, or a pseudonym."""
    if case.source != CaseSource.RESIDENT:
        sources = {CaseSource.PATROL: _("patrol"), CaseSource.CAMERA: _("camera"), CaseSource.SENSOR: _("sensor"),
                   CaseSource.HOTLINE: _("12345 hotline"), CaseSource.UPSTREAM: _("city platform")}
        return _("Source: {source}").format(source=sources.get(CaseSource(case.source), case.source))
    reporter = session.get(Person, case.reporter_id) if case.reporter_id else None
    if reporter is None or reporter.deleted_at is not None:
        label = _("anonymous resident")
    else:
        label = _("resident {phone}").format(phone=resident_tag(reporter.phone, reporter.id))
    return _("Reporter: {reporter}").format(reporter=label)


def location_prompt(_: Gettext) -> str:
    # WeCom has no live location: the worker sends their position with ＋ → 位置.
    return _("Now send your location on site.")


def work_refusal(_: Gettext, exc: Exception) -> str:
    """What a worker is told when an action was refused (handlers/worker_common.py `refusal`)."""
    if isinstance(exc, work.WorkerInactive):
        return _("Your worker account is deactivated. Ask your supervisor if this is a mistake.")
    if isinstance(exc, work.OfferUnavailable):
        if exc.why == OfferStatus.TAKEN:
            return _("Work order {number} was already taken by another worker.").format(number=exc.number)
        return _("Work order {number} is no longer offered to you.").format(number=exc.number)
    if isinstance(exc, work.TaskNotOpen):
        if exc.status in ("done", Status.AWAITING_VERIFICATION.value, "submitted"):
            return _("Case {number} was already submitted and awaits verification.").format(number=exc.number)
        return _("That cannot be done now.")
    if isinstance(exc, work.NotYourOrder):
        return _("This work order is not yours.")
    if isinstance(exc, work.ReasonRequired | verification.ReasonRequired):
        return _("Please write the reason in a few words.")
    if isinstance(exc, work.PhotosMissing):
        return _("Send at least one photo first.")
    if isinstance(exc, work.LocationMissing):
        return _("Send your location first.")
    if isinstance(exc, verification.OwnWork):
        return _("You handled this case yourself, so you cannot verify it. Another supervisor will.")
    if isinstance(exc, verification.OutsideYourArea):
        return _("This case is outside your area.")
    if isinstance(exc, verification.CardOutdated):
        return _("This card is out of date: case {number} is now {status}.").format(number=exc.number,
                                                                                      status=exc.status)
    if isinstance(exc, verification.NotASupervisor):
        return _("Only an active supervisor of this area can do that.")
    return _("That cannot be done now.")


LOW_ACCURACY, TOO_FAR = "low_accuracy", "too_far"  # LocationProblem values


def submitted_text(_: Gettext, *, number: str, distance_m: float, live: bool, flagged: bool,
                   waiting_for: list[str]) -> str:
    """The receipt of a submitted proof (bot/renderers/work_proofs.py `submitted_text`, without HTML)."""
    kind = _("live location") if live else _("static location")
    text = _("✅ Proof submitted for case {number}: {distance} m from the case point ({kind}).").format(
        number=number, distance=round(distance_m), kind=kind)
    if flagged:
        text += "\n" + _("It is flagged: the supervisor will judge the location.")
    if waiting_for:
        text += "\n" + _("Your part is done. The case moves on when these departments finish theirs: "
                         "{departments}.").format(departments=", ".join(waiting_for))
    else:
        text += "\n" + _("A supervisor will verify it.")
    return text


def too_far_text(_: Gettext, *, problems: tuple[str, ...], distance_m: float, allowed_m: float, accuracy_m: float,
                 max_accuracy_m: float) -> str:
    lines = []
    if LOW_ACCURACY in problems:
        lines.append(_("📍 Your location is only accurate to ±{accuracy} m; at most ±{max} m is accepted. "
                       "Wait for a better GPS fix outdoors and send it again.").format(
            accuracy=round(accuracy_m), max=round(max_accuracy_m)))
    if TOO_FAR in problems:
        lines.append(_("📍 You are {distance} m from the case point; at most {allowed} m is accepted here. "
                       "Go to the place and send your location again.").format(
            distance=round(distance_m), allowed=round(allowed_m)))
    lines.append(_("Or, if you are sure you are in the right place, submit it flagged for the supervisor to judge."))
    return "\n".join(lines)


def welfare_location_refusal(_: Gettext, judgement: work.LocationJudgement) -> str:
    """Why a welfare check's location was not taken (handlers/alarms.py `_refusal`, the same msgids). WeCom
    reports no accuracy, so a fix is never too imprecise here: too far, forwarded or too old."""
    if judgement.refused_outright or judgement.clearly_far:
        return location_refusal(_, judgement)
    return too_far(_, judgement)


def ping_header(number: str, after: str, _: Gettext, *, repeat: int = 0) -> str:
    """bot/renderers/supervision_card.py `ping_header`, the same msgids."""
    if after == "accept_due":
        head = _("⏰ Case {number}: not accepted in time").format(number=number)
    else:
        head = _("🚨 Case {number}: handling deadline passed").format(number=number)
    if repeat:
        head = _("🔁 Reminder {count}: ").format(count=repeat) + head
    return head


def photo_refusal(_: Gettext, exc: Exception) -> str:
    """Why a proof photo was refused (handlers/worker_proofs.py, the same msgids)."""
    if isinstance(exc, work.SamePicture):
        if exc.earlier == "report":
            return _("This is the same picture as the resident's photo. Photograph the place as it is now, after "
                     "the work.")
        return _("This picture was already used as proof. Take a new photo of the place as it is now.")
    if isinstance(exc, work.TooManyPhotos):
        return _("You already sent {max} photos, the most a proof takes.").format(max=exc.limit) + "\n" + \
            location_prompt(_)
    if isinstance(exc, work.ProofPhotoRefused):
        return picture_problem(_, exc.problem)
    return work_refusal(_, exc)


def picture_problem(_: Gettext, problem: object) -> str:
    """Why a picture was refused (a services.photos.PhotoProblem), in handlers/worker_proofs.py's words."""
    from services.photos import PhotoProblem  # noqa: PLC0415 - only the photo refusals need it

    return {
        PhotoProblem.TOO_LARGE: _("This file is larger than 20 MB. Send the picture as a photo, or a smaller file."),
        PhotoProblem.NOT_AN_IMAGE: _("This is not a picture we can read. Send a photo (JPEG, PNG, WebP or HEIC)."),
        PhotoProblem.TOO_MANY_PIXELS: _("This picture has far too many pixels for a camera photo and was refused. "
                                        "Send the photo from your camera."),
        PhotoProblem.TRUNCATED: _("This picture is incomplete (the file is cut off). Send it again."),
    }[problem]


def too_far(_: Gettext, judgement: work.LocationJudgement) -> str:
    # WeCom reports no accuracy, so none is named (Telegram's words with one would say ±0 m).
    return _("📍 You are {distance} m from the case point; at most {allowed} m is accepted here. "
             "Go to the place and send your location again.").format(
        distance=round(judgement.distance_m), allowed=round(judgement.allowed_m))


def location_refusal(_: Gettext, judgement: work.LocationJudgement) -> str:
    if work.LocationProblem.FORWARDED in judgement.problems:
        return _("This location was forwarded. Send your own location from the site, not a forwarded one.")
    if work.LocationProblem.CLEARLY_FAR in judgement.problems:  # far beyond the radius: a refusal, not a flag
        return too_far(_, judgement)
    minutes = max(1, round(judgement.age_s / 60))
    return _("This location was sent {minutes} min ago, which is too old to prove you are on site. "
             "Send your location again now.").format(minutes=minutes)
