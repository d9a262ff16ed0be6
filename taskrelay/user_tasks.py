"""The user's task modules for ``taskrelay up``: one setting for every role, checked first.

Every role loads the same modules (the web accepts only tasks a worker can run), so a
bad name, a module that is not installed or a task named like another would make each
role fail on its own, each in its own log. Checking here, before anything starts,
reports it once, in the terminal.
"""

from __future__ import annotations

import os
import subprocess

from taskrelay import roles
from taskrelay.errors import SetupError
from tasks import task_modules

# The setting every role reads for the user's task modules (celeryconfig).
TASK_MODULES_ENV = "TASKRELAY_TASK_MODULES"
# Importing the modules (and Celery with them) takes about a second.
LOAD_CHECK_TIMEOUT_S = 60.0
# Loads the task modules as the roles will: taskrelay's errors by their message
# alone, anything else (a user's module that raises on import) with its traceback.
_TRACEBACK_EXIT_CODE = 2
_LOAD_AS_THE_ROLES_DO = f"""
import sys, traceback
import celeryconfig
from tasks import task_modules
from tasks.errors import TaskrelayError
try:
    task_modules.load_configured(celeryconfig)
except TaskrelayError as error:
    sys.exit(str(error))
except BaseException:
    traceback.print_exc()
    sys.exit({_TRACEBACK_EXIT_CODE})
"""


def role_env(setting: str | None) -> dict[str, str]:
    """What the roles' environment needs: ``--tasks`` when given, else nothing to add."""
    return {} if setting is None else {TASK_MODULES_ENV: setting}


def check(setting: str | None) -> tuple[str, ...]:
    """The user's modules every role will load, refused here unless all of them load.

    ``setting`` is the value of ``--tasks``; None means the environment's
    TASKRELAY_TASK_MODULES, as the roles will see it.
    """
    effective = os.environ.get(TASK_MODULES_ENV, "") if setting is None else setting
    try:
        names = task_modules.parse(effective)
    except task_modules.TaskModuleError as error:
        raise SetupError(str(error)) from None
    if names:
        _check_they_load(setting)
    return names


def _check_they_load(setting: str | None) -> None:
    # In a child with the roles' interpreter, working directory and environment:
    # a module the roles would find there (such as one beside the working directory)
    # is found here too, and nothing the user's modules do on import stays behind.
    done = subprocess.run(
        [roles.PYTHON, "-c", _LOAD_AS_THE_ROLES_DO],
        env={**os.environ, **role_env(setting)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=LOAD_CHECK_TIMEOUT_S,
        check=False,
    )
    if done.returncode == _TRACEBACK_EXIT_CODE:
        raise SetupError(f"a task module failed to load:\n{done.stderr.strip()}")
    if done.returncode != 0:
        raise SetupError(
            done.stderr.strip() or f"loading the task modules exited {done.returncode}"
        )
