"""Workflows: chains, groups and chords of registered tasks, started over HTTP.

A description (``description.py``) is validated against the registry and compiled
into a plan (``plan.py``): every task step with its task id, the steps it waits on
and what it receives as its first argument. The web stores the plan and sends the
steps that wait on nothing (``state.py``, ``dispatch.py``); each step that returns
settles the workflow in one Lua script (``settle.lua``), which counts the distinct
finished steps and claims the steps now ready exactly once; the step's worker then
sends them (``hooks.py``, called by ``tasks.celery_ext.tracking``).

Importing this package does nothing.
"""
