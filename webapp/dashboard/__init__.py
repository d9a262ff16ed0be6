"""The dashboard page, its sign-in form, and the article's two triggers."""

from __future__ import annotations

from flask import Flask

from webapp.dashboard import sign_in, views


def init_app(app: Flask) -> None:
    app.register_blueprint(views.bp)
    app.register_blueprint(sign_in.bp)
