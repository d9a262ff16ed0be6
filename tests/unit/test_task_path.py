"""A task's path, built by the tasks API without url_for, is the text url_for builds."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask, url_for

from webapp.tasks.api import task_path


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "a/b c?d#e%f", "tâche-é", "..", "x;y=z&w"])
@pytest.mark.parametrize("base_url", ["http://localhost/", "http://localhost/mounted/under"])
def test_task_path_is_what_url_for_builds(offline_app: Flask, task_id: str, base_url: str) -> None:
    # base_url sets SCRIPT_NAME, as a proxy mounting the app under a prefix does.
    with offline_app.test_request_context("/api/tasks", method="POST", base_url=base_url):
        assert task_path(task_id) == url_for("tasks_api.get_task", task_id=task_id)


def test_an_accepted_task_is_answered_with_its_path(offline_app: Flask) -> None:
    task_id = str(uuid.uuid4())
    with offline_app.test_request_context("/api/tasks", method="POST"):
        expected = url_for("tasks_api.get_task", task_id=task_id)
        assert task_path(task_id) == expected == f"/api/tasks/{task_id}"
