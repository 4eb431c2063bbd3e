"""The GM's de-duplication by envelope id in Redis."""

import pytest
import redis

from broker.dedup import Dedup
from broker.envelope import new_message_id
from broker.localservices import RedisService
from broker.store import StoreUnavailable, connect_redis
from tests.services import wait_for


def test_an_id_is_new_once_until_it_expires(redis_client: redis.Redis, unique_name: str) -> None:
    dedup = Dedup(redis_client, ttl=0.2, key_prefix=unique_name)
    first, second = new_message_id(), new_message_id()
    assert dedup.seen_before(first) is False
    assert dedup.seen_before(first) is True
    assert dedup.seen_before(second) is False
    wait_for(lambda: not redis_client.exists(f"{unique_name}:{first}"), what="expiry")
    assert dedup.seen_before(first) is False


def test_forget_releases_a_claim(redis_client: redis.Redis, unique_name: str) -> None:
    dedup = Dedup(redis_client, key_prefix=unique_name)
    message_id = new_message_id()
    assert dedup.seen_before(message_id) is False
    dedup.forget(message_id)
    assert dedup.seen_before(message_id) is False
    assert dedup.seen_before(message_id) is True


def test_claims_survive_a_redis_restart(redis_service: RedisService) -> None:
    dedup = Dedup(connect_redis(redis_service.url))
    before, after = new_message_id(), new_message_id()
    assert dedup.seen_before(before) is False
    redis_service.restart()
    assert dedup.seen_before(before) is True
    assert dedup.seen_before(after) is False


def test_a_bounded_wait_for_redis_ends_with_a_clear_error(redis_service: RedisService) -> None:
    dedup = Dedup(connect_redis(redis_service.url), timeout=0.3)
    redis_service.stop()
    with pytest.raises(StoreUnavailable, match=r"dedup claim: redis did not answer within 0\.3s"):
        dedup.seen_before(new_message_id())


def test_bad_arguments_are_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        Dedup(redis_client, ttl=0)
    with pytest.raises(ValueError, match="message id must be non-empty"):
        Dedup(redis_client).seen_before("")
