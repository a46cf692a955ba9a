"""Two token holders of an API with authentication on, and what the quota records of who wrote what."""

from typing import Any

from backend.quota import BY_CLIENT, CHARGES, USED

TOKENS = "alice:tok-alice-123,bob:tok-bob-456"
"""`VITSCOPE_AUTH_TOKENS` of the `secured` fixture."""
ALICE = {"Authorization": "Bearer tok-alice-123"}
BOB = {"Authorization": "Bearer tok-bob-456"}


def quota_state(redis: Any) -> tuple[Any, ...]:
    """Everything the quota records (the total, each client's share, each key's charge), to compare."""
    return redis.get(USED), redis.hgetall(BY_CLIENT), redis.hgetall(CHARGES)


def charge_to(redis: Any, key: str, client: str) -> None:
    """Record `key` as charged to `client` (as if that client had written it first), its size kept."""
    size = redis.hget(CHARGES, key).split(b" ", 1)[0]
    redis.hset(CHARGES, key, size + b" " + client.encode())


def refused(client: Any, url: str, message: str, headers: dict[str, str] = BOB) -> None:
    """DELETE `url` as another token holder (bob) and check the 403 and its message."""
    response = client.delete(url, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["message"] == message


def changes_hands(monkeypatch: Any, route: Any, redis: Any, key: str) -> None:
    """Right after the route's first owner check, `key` passes to bob and is written again, as if its owner
    had deleted it and bob had written it again between that check and the change the check allowed."""
    check = route.check_owner
    calls = []

    def interleaved(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            charge_to(redis, key, "bob")
            redis.hset(key, "touched", "1")

    monkeypatch.setattr(route, "check_owner", interleaved)
