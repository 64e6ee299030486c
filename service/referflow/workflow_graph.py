"""Editing a workflow's graph: remove nodes and keep the chains they were part of."""

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
