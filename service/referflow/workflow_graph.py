"""Editing a workflow's graph: remove nodes and keep the chains they were part of; read and set
the values of its Settings node (the one node a builder edits)."""

from __future__ import annotations

from typing import Any


def drop_nodes(workflow: dict[str, Any], names: set[str]) -> None:
    """Remove nodes: what fed one passes on to what its first output fed (a removed step in a
    chain); other connections to removed nodes go."""
    old = workflow["connections"]

    def passed_on(name: str, seen: frozenset[str]) -> list[dict[str, Any]]:
        outputs = (old.get(name) or {}).get("main") or [[]]
        found: list[dict[str, Any]] = []
        for target in outputs[0]:
            if target["node"] not in names:
                found.append(target)
            elif target["node"] not in seen:
                found += passed_on(target["node"], seen | {target["node"]})
        return found

    workflow["nodes"] = [n for n in workflow["nodes"] if n["name"] not in names]
    connections = {}
    for source, outs in old.items():
        if source in names:
            continue
        rewired = []
        for targets in outs.get("main", []):
            kept: list[dict[str, Any]] = []
            for target in targets:
                for t in ([target] if target["node"] not in names
                          else passed_on(target["node"], frozenset({target["node"]}))):
                    if t not in kept:
                        kept.append(t)
            rewired.append(kept)
        connections[source] = {**outs, "main": rewired}
    workflow["connections"] = connections


SETTINGS = "Settings"


def settings_node(workflow: dict[str, Any]) -> dict[str, Any] | None:
    """Return the workflow's Settings node, if it has one."""
    return next((n for n in workflow["nodes"] if n.get("name") == SETTINGS), None)


def settings_assignments(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the assignments (``{name, value, ...}``) of the workflow's Settings node."""
    node = settings_node(workflow)
    found = node.get("parameters", {}).get("assignments", {}).get("assignments", []) if node else []
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []


def settings_values(workflow: dict[str, Any]) -> dict[str, Any]:
    """Return the values the workflow's Settings node holds, by name."""
    return {str(item.get("name")): item.get("value") for item in settings_assignments(workflow)}


def set_settings(workflow: dict[str, Any], values: dict[str, str]) -> None:
    """Set values the workflow's Settings node holds (those it does not hold are left out)."""
    for item in settings_assignments(workflow):
        item["value"] = values.get(item["name"], item["value"])
