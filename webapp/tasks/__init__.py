"""Tasks over HTTP: submit, read, follow and revoke tasks; the registry; dead letters."""

from __future__ import annotations

from flask import Flask

from webapp.tasks import api


def init_app(app: Flask) -> None:
    app.register_blueprint(api.bp)
