"""Which channels a web process may publish to without the cap's check, and until when."""

from __future__ import annotations

from webapp.channels.admitted import AdmittedChannels

NOW = 1_800_000_000.0
DAY = 86_400.0


def test_an_admitted_channel_is_known_for_a_while_then_checked_again() -> None:
    admitted = AdmittedChannels(known_for_s=60, margin_s=30)
    admitted.admitted("orders", NOW + DAY, NOW)

    assert admitted.known("orders", NOW + 59.9)
    assert not admitted.known("orders", NOW + 60)
    assert not admitted.known("invoices", NOW)


def test_a_channel_is_not_known_within_the_margin_before_its_expiry() -> None:
    admitted = AdmittedChannels(known_for_s=60, margin_s=30)
    admitted.admitted("soon", NOW + 40, NOW)

    assert admitted.known("soon", NOW + 9.9)
    assert not admitted.known("soon", NOW + 10)


def test_a_channel_expiring_within_the_margin_is_never_known_and_forgets_what_it_was() -> None:
    admitted = AdmittedChannels(known_for_s=60, margin_s=30)
    admitted.admitted("short", NOW + DAY, NOW)

    admitted.admitted("short", NOW + 20, NOW)

    assert not admitted.known("short", NOW)


def test_past_the_most_names_the_oldest_goes() -> None:
    admitted = AdmittedChannels(known_for_s=60, margin_s=30, most_names=2)
    for name in ("a", "b", "c"):
        admitted.admitted(name, NOW + DAY, NOW)

    assert [admitted.known(name, NOW) for name in ("a", "b", "c")] == [False, True, True]
