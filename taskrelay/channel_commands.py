"""``taskrelay publish`` and ``taskrelay subscribe``: channels from the terminal."""

from __future__ import annotations

import json
import os
import sys

import click

import celeryconfig
from taskrelay.cli_options import api_options
from taskrelay.client import ApiError, Client, parse_value
from taskrelay.follow import Follower, Gap
from tasks import channels, redis_urls
from tasks.channels import InvalidChannel


@click.command()
@click.argument("channel")
@click.argument("data")
@api_options
def publish(channel: str, data: str, url: str, token: str | None) -> None:
    """Publish DATA (a JSON value or a plain string) on CHANNEL; print the message id."""
    client = Client(url, token)
    try:
        message = client.publish(channel, parse_value(data))
    except ApiError as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()
    click.echo(message["id"])


@click.command()
@click.argument("channel", required=False)
@click.option("--pattern", help="Every channel matching a pattern; * matches one segment.")
@click.option("--from", "from_id", help="Resume after this message id.")
@click.option("--json", "as_json", is_flag=True, help="Print each message as a JSON line.")
@click.option(
    "--redis-url",
    default=lambda: redis_urls.from_environment(os.environ, celeryconfig.DEFAULT_REDIS_URL),
    show_default="REDIS_URL",
)
def subscribe(
    channel: str | None, pattern: str | None, from_id: str | None, as_json: bool, redis_url: str
) -> None:
    """Print every message of CHANNEL (or --pattern) as it arrives, like the article's
    listener (`Task get <data>`); resumes by itself when Redis restarts."""
    if (channel is None) == (pattern is None):
        raise click.UsageError("give either CHANNEL or --pattern, not both")
    try:
        follower = Follower(
            redis_url,
            channel=channels.check_name(channel) if channel is not None else None,
            pattern=channels.parse_pattern(pattern) if pattern is not None else None,
            from_id=channels.check_message_id(from_id, field="--from") if from_id else None,
            on_subscribed=lambda: click.echo(f"subscribed to {channel or pattern}", err=True),
        )
    except InvalidChannel as error:
        raise click.BadParameter(error.message, param_hint=error.field) from None
    try:
        for item in follower.messages():
            if isinstance(item, Gap):
                click.echo(f"gap: {item.notice['message']}", err=True)
                continue
            click.echo(item.envelope_json if as_json else _article_line(item.envelope_json))
            sys.stdout.flush()
    except KeyboardInterrupt:
        follower.stop()


def _article_line(envelope_json: str) -> str:
    data = json.loads(envelope_json)["data"]
    return f"Task get {data if isinstance(data, str) else json.dumps(data)}"
