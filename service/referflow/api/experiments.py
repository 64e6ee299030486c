"""Experiments: create, list, read, change and stop them; their results as JSON or CSV."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from referflow.actions import experiment_results, experiments
from referflow.api.operations import Caller, db_session, operation
from referflow.domain.scopes import Scope
from referflow.errors import BadRequest

bp = Blueprint("experiments", __name__)


@operation(bp, "createExperiment", "POST", "/v1/experiments", tag="experiments",
           request_schema="create-experiment.request", response="experiment", status=201,
           scope=Scope.ADMIN_OF_PROGRAM,
           summary="Start an experiment: weighted variants of the rewards, the ask message or the "
                   "moment (one running per subject)")
def create_experiment(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return experiments.experiment_dict(experiments.create_experiment(db_session(), caller.ctx, body))


@operation(bp, "listExperiments", "GET", "/v1/experiments", tag="experiments",
           response="experiment-list", query=("status",),
           summary="List the program's experiments, newest first (status=running|stopped)")
def list_experiments(caller: Caller, body: None) -> dict[str, Any]:
    rows = experiments.list_experiments(db_session(), caller.ctx, request.args.get("status"))
    return {"items": [experiments.experiment_dict(row) for row in rows]}


@operation(bp, "getExperiment", "GET", "/v1/experiments/<experiment_id>", tag="experiments",
           response="experiment", summary="Read an experiment and its variants")
def get_experiment(caller: Caller, body: None, experiment_id: str) -> dict[str, Any]:
    return experiments.experiment_dict(
        experiments.get_experiment(db_session(), caller.ctx, experiment_id))


@operation(bp, "updateExperiment", "PATCH", "/v1/experiments/<experiment_id>", tag="experiments",
           request_schema="update-experiment.request", response="experiment",
           scope=Scope.ADMIN_OF_PROGRAM,
           summary="Rename an experiment or change its stop rule's inputs (never its variants: 409)")
def update_experiment(caller: Caller, body: dict[str, Any], experiment_id: str) -> dict[str, Any]:
    return experiments.experiment_dict(
        experiments.update_experiment(db_session(), caller.ctx, experiment_id, body))


@operation(bp, "stopExperiment", "POST", "/v1/experiments/<experiment_id>/stop",
           tag="experiments", request_schema="stop-experiment.request", response="experiment",
           scope=Scope.ADMIN_OF_PROGRAM,
           summary="Stop an experiment: nobody new is assigned; its results stay readable")
def stop_experiment(caller: Caller, body: dict[str, Any], experiment_id: str) -> dict[str, Any]:
    return experiments.experiment_dict(
        experiments.stop_experiment(db_session(), caller.ctx, experiment_id, body))


@operation(bp, "getExperimentResults", "GET", "/v1/experiments/<experiment_id>/results",
           tag="experiments", response="experiment-results", query=("format",),
           summary="Per variant: the funnel, conversion with its 95 % interval, revenue, reward "
                   "cost; the sample size and the stop rule's verdict (JSON or CSV)")
def get_experiment_results(caller: Caller, body: None,
                           experiment_id: str) -> dict[str, Any] | Response:
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv", code="invalid_query")
    result = experiment_results.results(db_session(), caller.ctx, experiment_id)
    if fmt == "json":
        return result
    response = Response(experiment_results.results_csv(result), mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename=experiment-{experiment_id}.csv"
    return response
