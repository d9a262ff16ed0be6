"""The relay sweeper's watch on the primary: one catch-up per promotion, once every
client has had time to follow, and none for what is not a promotion."""

from __future__ import annotations

from tasks.celery_ext.relay_sweeper import CATCH_UP_DELAY_S, PromotionWatch

OLD = ("10.0.0.1", 6379)
NEW = ("10.0.0.2", 6379)


def test_a_new_primary_makes_one_catch_up_due_after_the_delay() -> None:
    watch = PromotionWatch()
    watch.observe(OLD, now=100.0)
    watch.observe(NEW, now=110.0)

    assert not watch.catch_up_due(110.0 + CATCH_UP_DELAY_S / 2)
    assert watch.catch_up_due(110.0 + CATCH_UP_DELAY_S)
    assert not watch.catch_up_due(120.0 + CATCH_UP_DELAY_S), "once per promotion"


def test_the_first_answer_an_unchanged_primary_and_no_answer_make_no_catch_up() -> None:
    watch = PromotionWatch()
    watch.observe(OLD, now=0.0)  # the first answer: nothing to compare with
    watch.observe(None, now=1.0)  # no sentinel answered: nothing learnt
    watch.observe(OLD, now=2.0)

    assert not watch.catch_up_due(100.0)


def test_a_failover_and_back_makes_a_catch_up_each_time() -> None:
    watch = PromotionWatch()
    watch.observe(OLD, now=0.0)
    watch.observe(NEW, now=10.0)
    assert watch.catch_up_due(10.0 + CATCH_UP_DELAY_S)
    watch.observe(None, now=20.0)
    watch.observe(OLD, now=30.0)
    assert watch.catch_up_due(30.0 + CATCH_UP_DELAY_S)
