"""The ``taskrelay bench`` command: options, the run in order, and where the report goes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from taskrelay.bench import (
    chaos,
    chord,
    drain,
    e2e,
    fanout,
    http_submit,
    levers,
    loadgen,
    report,
)
from taskrelay.bench import schedules as schedules_bench
from taskrelay.bench.errors import BenchError
from taskrelay.bench.progress import Progress
from taskrelay.bench.results import Section
from taskrelay.bench.stack import Stack


@dataclass(frozen=True)
class BenchOptions:
    tasks: int
    connections: int
    http_duration_s: float
    e2e_tasks: int
    e2e_clients: int
    e2e_rate: float
    e2e_duration_s: float
    e2e_rounds: int
    subscribers: int
    messages_per_s: float
    fanout_duration_s: float
    processes: int
    chaos_tasks: int
    chaos_workers: int
    chaos_kill_interval_s: float
    chaos_kills: int | None
    schedules: int = 1000
    schedules_duration_s: float = 60.0
    chord_steps: int = 200
    chord_repeats: int = 5
    only: tuple[str, ...] = ()

    def http_load(self) -> http_submit.Load:
        return http_submit.Load(self.connections, self.http_duration_s)

    def e2e_load(self) -> e2e.EndToEndLoad:
        return e2e.EndToEndLoad(
            self.e2e_tasks,
            self.e2e_clients,
            self.e2e_rate,
            self.e2e_duration_s,
            self.processes,
            self.e2e_rounds,
        )

    def fanout_load(self) -> fanout.FanoutLoad:
        return fanout.FanoutLoad(self.subscribers, self.messages_per_s, self.fanout_duration_s)

    def chaos_load(self) -> chaos.ChaosLoad:
        return chaos.ChaosLoad(
            self.chaos_tasks, self.chaos_workers, self.chaos_kill_interval_s, self.chaos_kills
        )

    def schedules_load(self) -> schedules_bench.SchedulesLoad:
        return schedules_bench.SchedulesLoad(
            self.schedules, self.schedules_duration_s, self.processes
        )

    def chord_load(self) -> chord.ChordLoad:
        return chord.ChordLoad(self.chord_steps, self.chord_repeats, self.processes)


@dataclass(frozen=True)
class Scenario:
    """One scenario of a run: its key (in the JSON and for --only), its step title, its run."""

    key: str
    title: Callable[[BenchOptions], str]
    run: Callable[[Stack, BenchOptions], Section]


SCENARIOS = (
    Scenario(
        "drain",
        lambda o: f"worker drain, {o.tasks} tasks x 4 subjects",
        lambda stack, o: drain.run(stack, o.tasks, o.processes),
    ),
    Scenario(
        "http_submit",
        lambda o: f"HTTP submit, {o.http_duration_s:g} s for each web",
        lambda stack, o: http_submit.run(stack, o.http_load()),
    ),
    Scenario(
        "end_to_end",
        lambda o: (
            f"end to end over HTTP, {o.e2e_tasks} tasks x 4 subjects x {o.e2e_rounds} rounds,"
            f" then {o.e2e_rate:g}/s"
        ),
        lambda stack, o: e2e.run(stack, o.e2e_load()),
    ),
    Scenario(
        "fanout",
        lambda o: f"fan-out, {o.subscribers} subscribers at {o.messages_per_s:g} msg/s",
        lambda stack, o: fanout.run(stack, o.fanout_load()),
    ),
    Scenario(
        "chaos",
        lambda o: o.chaos_load().describe(),
        lambda stack, o: chaos.run(stack, o.chaos_load()),
    ),
    Scenario(
        "schedules",
        lambda o: o.schedules_load().describe(),
        lambda stack, o: schedules_bench.run(stack, o.schedules_load()),
    ),
    Scenario(
        "chord",
        lambda o: o.chord_load().describe(),
        lambda stack, o: chord.run(stack, o.chord_load()),
    ),
)
SCENARIO_KEYS = tuple(scenario.key for scenario in SCENARIOS)


def selected(options: BenchOptions) -> list[Scenario]:
    return [s for s in SCENARIOS if not options.only or s.key in options.only]


def run_scenarios(stack: Stack, options: BenchOptions, progress: Progress) -> list[Section]:
    sections = []
    for scenario in selected(options):
        with progress.step(scenario.title(options)) as step:
            sections.append(scenario.run(stack, options))
            step.text = _summary(sections[-1])
    return sections


def run_levers(stack: Stack, options: BenchOptions, progress: Progress) -> list[Section]:
    return [
        levers.worker_levers(stack, options.tasks, progress),
        levers.web_levers(stack, options.http_load(), progress),
    ]


def _summary(section: Section) -> str:
    if section.unavailable:
        return section.unavailable
    return "; ".join(f"{row.subject} {row.rate:,.0f} {row.unit}" for row in section.rows)


def redis_version(stack: Stack) -> str:
    client = stack.client()
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def execute(options: BenchOptions, output: Path, *, with_levers: bool) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    levers_steps = len(levers.WORKER_LEVERS) + len(levers.WEB_LEVERS)
    steps = levers_steps if with_levers else len(selected(options))
    progress = Progress(steps)
    started = time.monotonic()
    with Stack(output / "run") as stack:
        context: dict[str, Any] = {
            "machine": {**report.machine(), "redis_version": redis_version(stack)},
            "options": asdict(options),
            "revision": report.revision(),
            "load_generator": loadgen.available_tool(),
        }
        run = run_levers if with_levers else run_scenarios
        sections = run(stack, options, progress)
    context["seconds"] = round(time.monotonic() - started, 1)
    name = "levers" if with_levers else "bench"
    json_path = output / f"{name}.json"
    report.write_json(json_path, sections, context)
    click.echo(report.table(sections))
    click.echo(f"revision: {context['revision']}")
    click.echo(f"JSON: {json_path}")
    if report.write_plot(output / f"{name}.png", sections):
        click.echo(f"plot: {output / f'{name}.png'}")
    else:
        click.echo(report.INSTALL_HINT, err=True)
    return json_path


@click.command()
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(SCENARIO_KEYS),
    help="Run only this scenario (repeat for several); default: all.",
)
@click.option("--tasks", default=3000, show_default=True, help="No-op tasks per drain.")
@click.option("--connections", default=16, show_default=True, help="HTTP load connections.")
@click.option("--http-duration", default=5.0, show_default=True, help="Seconds per HTTP load.")
@click.option("--e2e-tasks", default=2000, show_default=True, help="Tasks per end-to-end subject.")
@click.option("--e2e-clients", default=10, show_default=True, help="Concurrent end-to-end clients.")
@click.option("--e2e-rate", default=100.0, show_default=True, help="Tasks/s, fixed-rate latency.")
@click.option("--e2e-duration", default=5.0, show_default=True, help="Seconds at that rate.")
@click.option(
    "--e2e-rounds",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rounds of the three end-to-end subjects (median reported).",
)
@click.option("--subscribers", default=100, show_default=True, help="Fan-out subscribers.")
@click.option("--messages-per-s", default=200.0, show_default=True, help="Fan-out rate.")
@click.option("--fanout-duration", default=5.0, show_default=True, help="Seconds of fan-out.")
@click.option(
    "--processes",
    default=2,
    show_default=True,
    help="Task worker processes (drain; taskrelay up --concurrency end to end).",
)
@click.option("--chaos-tasks", default=20000, show_default=True, help="No-op tasks, chaos drain.")
@click.option("--chaos-workers", default=4, show_default=True, help="Workers, chaos drain.")
@click.option(
    "--chaos-kill-interval",
    # Every second, not every two: at two, kombu's stock transport lost nothing in
    # some runs (its window opens at a kill that lands between a BRPOP and its
    # unacked record), so the run could not show what the scenario is for.
    default=1.0,
    show_default=True,
    help="Seconds between two SIGKILLs of a random worker.",
)
@click.option(
    "--chaos-kills", default=0, show_default=True, help="Stop killing after this many (0: never)."
)
@click.option("--schedules", default=1000, show_default=True, help="Schedules firing every 1 s.")
@click.option(
    "--schedules-duration", default=60.0, show_default=True, help="Seconds the schedules fire."
)
@click.option("--chord-steps", default=200, show_default=True, help="No-op steps of the chord.")
@click.option(
    "--chord-repeats", default=5, show_default=True, help="Chords per subject (median reported)."
)
@click.option(
    "--output",
    default="bench-results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--levers", "with_levers", is_flag=True, help="Measure each lever instead.")
def bench(output: Path, with_levers: bool, **values: Any) -> None:
    """Measure taskrelay beside its baselines; print a table, write JSON and a PNG plot."""
    options = BenchOptions(
        tasks=values["tasks"],
        connections=values["connections"],
        http_duration_s=values["http_duration"],
        e2e_tasks=values["e2e_tasks"],
        e2e_clients=values["e2e_clients"],
        e2e_rate=values["e2e_rate"],
        e2e_duration_s=values["e2e_duration"],
        e2e_rounds=values["e2e_rounds"],
        subscribers=values["subscribers"],
        messages_per_s=values["messages_per_s"],
        fanout_duration_s=values["fanout_duration"],
        processes=values["processes"],
        chaos_tasks=values["chaos_tasks"],
        chaos_workers=values["chaos_workers"],
        chaos_kill_interval_s=values["chaos_kill_interval"],
        chaos_kills=values["chaos_kills"] or None,
        schedules=values["schedules"],
        schedules_duration_s=values["schedules_duration"],
        chord_steps=values["chord_steps"],
        chord_repeats=values["chord_repeats"],
        only=tuple(values["only"]),
    )
    if report.matplotlib_missing():
        click.echo(report.INSTALL_HINT, err=True)
    try:
        execute(options, output.resolve(), with_levers=with_levers)
    except BenchError as error:
        raise click.ClickException(str(error)) from None
