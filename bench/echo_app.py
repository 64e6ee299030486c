"""The baseline: a bare Flask JSON echo, served exactly like referflow."""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask("echo")


@app.post("/echo")
def echo():  # noqa: ANN201
    """Return the JSON body as it came."""
    return jsonify(request.get_json())
