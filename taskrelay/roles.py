"""The command lines of taskrelay's roles, one place for ``taskrelay up`` and the tests."""

from __future__ import annotations

import sys

PYTHON = sys.executable


def web_argv(bind: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "gunicorn",
        "-c",
        "python:webapp.gunicorn_conf",
        "--bind",
        bind,
        "webapp:create_app()",
    ]


def worker_argv(queue: str, *, concurrency: int, node_name: str | None = None) -> list[str]:
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-Q",
        queue,
        "-n",
        node_name or f"{queue}@%h",
        "-c",
        str(concurrency),
        "--loglevel",
        "INFO",
    ]


def flower_argv(address: str, port: int, basic_auth: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "tasks",
        "flower",
        f"--address={address}",
        f"--port={port}",
        f"--basic-auth={basic_auth}",
    ]
