"""Celery settings read per message or task are looked up once per app, as Celery's sender does."""

from __future__ import annotations

from celery import Celery

from tasks.celery_ext import settings_once


def test_a_setting_is_the_apps_own_value_and_a_default_where_it_sets_none() -> None:
    app = Celery("settings-once", set_as_current=False)
    app.conf.update(task_send_sent_event=True)

    assert settings_once.get(app, "task_send_sent_event") is True
    assert settings_once.get(app, "task_repr_maxlevels") == app.conf.task_repr_maxlevels


def test_a_change_after_the_first_read_is_not_seen() -> None:
    app = Celery("settings-once", set_as_current=False)
    app.conf.update(task_send_sent_event=False)
    assert settings_once.get(app, "task_send_sent_event") is False

    app.conf.update(task_send_sent_event=True)

    assert settings_once.get(app, "task_send_sent_event") is False


def test_each_app_keeps_its_own_values() -> None:
    first = Celery("first", set_as_current=False)
    second = Celery("second", set_as_current=False)
    first.conf.update(task_send_sent_event=True)
    second.conf.update(task_send_sent_event=False)

    assert settings_once.get(first, "task_send_sent_event") is True
    assert settings_once.get(second, "task_send_sent_event") is False
