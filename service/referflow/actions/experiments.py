"""Experiments: create, read, change, stop; and who is exposed to which variant, where.

The variant a person sees is decided in ``domain/experiments.choose`` and stored at their first
exposure (``experiment_assignments``, one row per experiment and person), so results count
exactly what happened. Exposures, by subject:

- ``rewards``: a share link (createLink, an ask's link) and a claim of the advocate's code;
- ``message``: an ask (in the experiment's moment, if it names one);
- ``moment``: a moment it covers that asks, or would ask but for the variant (a holdout).

The variants are recorded where they act: on the link (createLink's ``variant``), on the ask
(``MomentDecision.variants``) and on the referral at claim (``Referral.variants``, also in the
claim's history entry); a referral's rewards variant sets its amounts at approval
(``variant_rewards`` -> ``ProgramConfig.rewards_for``), under the monthly caps as any approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.people import external_key
from referflow.domain import experiments as rules
from referflow.domain.codes import new_id
from referflow.domain.messaging import Outcome
from referflow.domain.moments import Decision
from referflow.domain.program import Reward
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import BadRequest, Conflict, NotFound, ValidationFailed
from referflow.storage.models import (
    Advocate,
    Experiment,
    ExperimentAssignment,
    ExperimentStatus,
    Referral,
)

STATUSES = tuple(ExperimentStatus)


# -- the experiments ------------------------------------------------------------------------------

def create_experiment(session: Session, ctx: ProgramContext, body: dict[str, Any]) -> Experiment:
    """Create a running experiment; 409 while another of its subject runs in the program."""
    design = _design(body, ctx)
    now = utcnow()
    row = Experiment(id=new_id("exp"), program_id=ctx.id, name=body["name"],
                     subject=str(design.subject), running_subject=str(design.subject),
                     status=ExperimentStatus.RUNNING, design=design.to_dict(), created_at=now)
    session.add(row)
    try:
        session.commit()
    except IntegrityError as exc:  # the unique (program, running subject): one runs already
        session.rollback()
        other = session.scalar(select(Experiment.id).where(
            Experiment.program_id == ctx.id, Experiment.running_subject == str(design.subject)))
        raise Conflict(f"experiment {other} already tests the {design.subject} of this program: "
                       "stop it first", code="experiment_running") from exc
    return row


def _design(body: dict[str, Any], ctx: ProgramContext) -> rules.Design:
    try:
        return rules.Design.from_dict(body, ctx.config.moments.types)
    except rules.InvalidDesign as exc:
        raise ValidationFailed(str(exc), code=exc.code,
                               errors=[{"path": exc.path, "message": str(exc)}]) from exc


def get_experiment(session: Session, ctx: ProgramContext, experiment_id: str) -> Experiment:
    """Return an experiment of this program, or raise 404."""
    row = session.scalar(select(Experiment).where(Experiment.program_id == ctx.id,
                                                  Experiment.id == experiment_id))
    if row is None:
        raise NotFound("no experiment with that id", code="experiment_not_found")
    return row


def list_experiments(session: Session, ctx: ProgramContext, status: str | None) -> list[Experiment]:
    """Return the program's experiments, newest first, optionally of one status."""
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status is one of {', '.join(STATUSES)}", code="invalid_query",
                         errors=[{"path": "status", "message": status[:40]}])
    query = select(Experiment).where(Experiment.program_id == ctx.id)
    if status is not None:
        query = query.where(Experiment.status == status)
    return list(session.scalars(query.order_by(Experiment.created_at.desc(), Experiment.id.desc())))


def update_experiment(session: Session, ctx: ProgramContext, experiment_id: str,
                      body: dict[str, Any]) -> Experiment:
    """Rename an experiment or change its stop rule's inputs; its variants never change."""
    row = get_experiment(session, ctx, experiment_id)
    if "variants" in body:
        state = "running" if row.status == ExperimentStatus.RUNNING else "stopped"
        raise Conflict(f"the variants and weights of a {state} experiment cannot change: people "
                       "are assigned by them; stop it and create another",
                       code="experiment_variants_fixed")
    row.design = {**row.design, **{k: body[k] for k in ("minimum_detectable_effect",
                                                           "baseline_rate") if k in body}}
    row.name = body.get("name", row.name)
    session.commit()
    return row


def stop_experiment(session: Session, ctx: ProgramContext, experiment_id: str,
                    body: dict[str, Any]) -> Experiment:
    """Stop an experiment: nobody new is assigned; its referrals keep their variant's terms."""
    row = get_experiment(session, ctx, experiment_id)
    if row.status == ExperimentStatus.STOPPED:
        raise Conflict(f"experiment {row.id} was stopped at {to_rfc3339(row.stopped_at)}",
                       code="experiment_stopped")
    row.status, row.running_subject = ExperimentStatus.STOPPED, None
    row.stopped_at, row.stop_note = utcnow(), body.get("note")
    session.commit()
    return row


def design_of(row: Experiment) -> rules.Design:
    """Return the stored design of an experiment."""
    data = row.design
    return rules.Design(tuple(rules.Variant.from_dict(v) for v in data["variants"]),
                        rules.Subject(data["subject"]), data.get("moment"),
                        data["minimum_detectable_effect"], data.get("baseline_rate"))


def experiment_dict(row: Experiment) -> dict[str, Any]:
    """Dump an experiment (the shape of experiment.json)."""
    design = row.design
    return {"id": row.id, "name": row.name, "subject": row.subject, "status": row.status,
            "moment": design.get("moment"), "variants": design["variants"],
            "minimum_detectable_effect": design["minimum_detectable_effect"],
            "baseline_rate": design.get("baseline_rate"),
            "created_at": to_rfc3339(row.created_at), "stopped_at": to_rfc3339(row.stopped_at),
            "stop_note": row.stop_note}


# -- assignment and exposure ----------------------------------------------------------------------

def running(session: Session, ctx: ProgramContext) -> list[Experiment]:
    """Return the program's running experiments (at most one per subject)."""
    return list(session.scalars(select(Experiment).where(
        Experiment.program_id == ctx.id, Experiment.running_subject.is_not(None))
        .order_by(Experiment.subject)))


def variant_of(session: Session, ctx: ProgramContext, row: Experiment, external_id: str) -> str:
    """Return the person's variant: the stored one, else the one the hash chooses."""
    stored = session.get(ExperimentAssignment, (row.id, external_key(ctx, external_id)))
    if stored is not None:
        return stored.variant
    design = design_of(row)
    index = rules.choose(ctx.secret, row.id, external_id, [v.weight for v in design.variants])
    return design.variants[index].name


def assign(session: Session, ctx: ProgramContext, row: Experiment, external_id: str,
           advocate_id: str | None, now: datetime) -> str:
    """Store the person's variant at their first exposure (once, race-free); return it."""
    key = external_key(ctx, external_id)
    stored = session.get(ExperimentAssignment, (row.id, key))
    if stored is None:
        name = variant_of(session, ctx, row, external_id)
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(ExperimentAssignment).values(
            experiment_id=row.id, subject_key=key, advocate_id=advocate_id, variant=name,
            assigned_at=now).on_conflict_do_nothing())
        stored = session.get(ExperimentAssignment, (row.id, key))
        assert stored is not None
    if advocate_id is not None and stored.advocate_id is None:
        stored.advocate_id = advocate_id  # a held-out person who became an advocate
    return stored.variant


def entry(row: Experiment, name: str) -> dict[str, Any]:
    """Return how a variant is recorded on a link, an ask or a referral."""
    return {"experiment_id": row.id, "name": name, "subject": row.subject}


def link_variant(session: Session, ctx: ProgramContext, advocate: Advocate,
                 now: datetime) -> dict[str, Any] | None:
    """Assign an advocate given a share link to the running rewards experiment, if any."""
    for row in running(session, ctx):
        if row.subject == rules.Subject.REWARDS:
            return entry(row, assign(session, ctx, row, advocate.external_id, advocate.id, now))
    return None


def claim_variants(session: Session, ctx: ProgramContext, advocate: Advocate,
                   now: datetime) -> list[dict[str, Any]]:
    """Return the advocate's variants for a claim of their code.

    The rewards experiment assigns them now if no link did (their link may predate it); a
    message or moment experiment counts the claim only when it exposed them before.
    """
    found = []
    for row in running(session, ctx):
        if row.subject == rules.Subject.REWARDS:
            found.append(entry(row, assign(session, ctx, row, advocate.external_id, advocate.id,
                                           now)))
            continue
        stored = session.get(ExperimentAssignment, (row.id, external_key(ctx, advocate.external_id)))
        if stored is not None:
            found.append(entry(row, stored.variant))
    return found


@dataclass(frozen=True)
class MomentPlan:
    """The message and moment experiments a moment concerns, and the person's variant in each."""

    picks: tuple[tuple[Experiment, rules.Variant], ...] = ()
    gates: tuple[Outcome, ...] = ()  # the moment experiment's outcome for the decision


def plan_moment(session: Session, ctx: ProgramContext, external_id: str,
                moment_type: str) -> MomentPlan:
    """Return the variants a moment of this type would expose the person to."""
    picks: list[tuple[Experiment, rules.Variant]] = []
    gates: list[Outcome] = []
    for row in running(session, ctx):
        design = design_of(row)
        variant = design.variant(variant_of(session, ctx, row, external_id)) \
            if _concerns(design, moment_type) else None
        if variant is None:
            continue
        picks.append((row, variant))
        gate = rules.moment_gate(variant, design.covered_moments, moment_type)
        if gate is not None:
            gates.append(gate)
    return MomentPlan(tuple(picks), tuple(gates))


def _concerns(design: rules.Design, moment_type: str) -> bool:
    if design.subject == rules.Subject.MOMENT:
        return moment_type in design.covered_moments
    return design.subject == rules.Subject.MESSAGE and design.moment in (None, moment_type)


def expose_moment(session: Session, ctx: ProgramContext, plan: MomentPlan, decision: Decision,
                  external_id: str, advocate_id: str | None, link: dict[str, Any] | None,
                  now: datetime) -> list[dict[str, Any]] | None:
    """Store the assignments a decided moment exposed, and return its variants to record.

    An ask exposes every pick (and the link's rewards variant); a skip only a moment
    experiment's holdout, when nothing else stopped the ask.
    """
    held_out = decision.skip_reason == rules.HOLDOUT
    if not (decision.ask or held_out):
        return None
    if advocate_id is None:
        advocate_id = session.scalar(select(Advocate.id).where(
            Advocate.program_id == ctx.id, Advocate.external_id == external_id))
    found = []
    for row, variant in plan.picks:
        if decision.ask or row.subject == rules.Subject.MOMENT:
            assign(session, ctx, row, external_id, advocate_id, now)
            found.append({**entry(row, variant.name), **(
                {"message": variant.message} if row.subject == rules.Subject.MESSAGE else {})})
    return found + ([link] if link else []) or None


def link_shown(recorded: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return a link's variant as createLink shows it (experiment and name), or None."""
    return None if recorded is None else {"experiment_id": recorded["experiment_id"],
                                          "name": recorded["name"]}


def public_variants(recorded: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Return the recorded variants as the API shows them (experiment, name, subject)."""
    return [{k: v[k] for k in ("experiment_id", "name", "subject")} for v in recorded or ()]


def ask_message(recorded: Sequence[dict[str, Any]] | None) -> str | None:
    """Return the message an ask's message variant says to send (None: your own)."""
    return next((v.get("message") for v in recorded or () if v["subject"] == rules.Subject.MESSAGE),
                None)


def variant_rewards(session: Session, referral: Referral) -> dict[str, Reward] | None:
    """Return the rewards of the referral's rewards variant, if it has one that sets them."""
    for recorded in referral.variants or ():
        if recorded["subject"] != rules.Subject.REWARDS:
            continue
        row = session.get(Experiment, recorded["experiment_id"])
        if row is not None:
            rewards = design_of(row).variant(recorded["name"]).rewards
            return dict(rewards) if rewards else None
    return None
