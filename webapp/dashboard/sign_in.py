"""Signing in to read: a form that trades a token for the dashboard's cookie, and signing out.

Only needed when reads need a token (TASKRELAY_API_TOKENS_READ); the cookie
(``webapp/session_cookie.py``) then carries the page's reads and event streams,
which a browser cannot send with an Authorization header. Writes still need
the token itself, as a header.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from webapp import auth, session_cookie
from webapp.dashboard.pages import page

bp = Blueprint("sign_in", __name__)


@bp.get(auth.SIGN_IN_PATH)
def form() -> Response:
    if not auth.tokens_of(current_app).reads_closed:
        return _home()  # reads are open: nothing to sign in to
    return _form(None, 200)


@bp.post(auth.SIGN_IN_PATH)
def sign_in() -> Response:
    tokens = auth.tokens_of(current_app)
    if not tokens.reads_closed:
        return _home()
    given = request.form.get("token", "").strip()
    if not given:
        return _form("Enter a token.", 400)
    if not auth.matches(given, tokens.readers):
        return _form("That is not one of this server's read or API tokens.", 403)
    response = _home()
    response.set_cookie(
        session_cookie.COOKIE_NAME,
        session_cookie.issue(given),
        max_age=session_cookie.SESSION_TTL_S,
        path="/",
        # Out of reach of scripts, and never sent along with a request from another site.
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return response


@bp.post(auth.SIGN_OUT_PATH)
def sign_out() -> Response:
    response = redirect(url_for("sign_in.form"), code=303)
    response.delete_cookie(session_cookie.COOKIE_NAME, path="/", httponly=True, samesite="Strict")
    return response


def _form(message: str | None, status: int) -> Response:
    hours = session_cookie.SESSION_TTL_S // 3600
    return page(render_template("sign_in.html", message=message, session_hours=hours), status)


def _home() -> Response:
    return redirect(url_for("dashboard.index"), code=303)
