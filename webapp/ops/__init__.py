"""Operations: liveness, readiness, the OpenAPI document, Prometheus metrics and stats."""

from __future__ import annotations

from flask import Flask

from webapp.ops import api, metrics, stats


def init_app(app: Flask) -> None:
    app.register_blueprint(api.bp)
    app.register_blueprint(metrics.bp)
    stats.init_app(app)
