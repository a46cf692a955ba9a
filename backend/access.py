"""Who is asking and what they may do: bearer tokens, per-client rate limits, who may delete what,
model roots, job-id keys.

With `VITSCOPE_AUTH` off (the local stack on 127.0.0.1) every caller is a client named by its
address; with it on, a request must carry `Authorization: Bearer <token>` with one of
`VITSCOPE_AUTH_TOKENS`, and the token's name is the client that quotas and rate limits count and
that alone may cancel or delete what it wrote first.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from fastapi import Request

from backend.errors import ApiError
from backend.quota import Quota
from backend.settings import ApiSettings
from vitscope.contracts.specs import folder_refused, parse_model_spec
from vitscope.contracts.store import PREFIX, Store

JOB_ID_KEY = f"{PREFIX}:secret:job-id"
"""Redis key of the random job-id key made once when `job_id_secret` is not configured."""


@dataclass(frozen=True)
class Client:
    """The caller: a token's name when authentication is on, else `ip:<address>`."""

    name: str
    authenticated: bool


def identify(request: Request, settings: ApiSettings) -> Client:
    """Return the caller; raise `ApiError` 401 when authentication is on and no valid token came."""
    if not settings.auth:
        return Client(f"ip:{request.client.host if request.client else 'local'}", False)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    name = _token_name(token.strip(), settings) if scheme.lower() == "bearer" else None
    if name is None:
        raise ApiError(
            401,
            "this API needs a token: send the header 'Authorization: Bearer <token>' "
            "(the operator hands tokens out; they are set in VITSCOPE_AUTH_TOKENS)",
            headers={"WWW-Authenticate": 'Bearer realm="vitscope"'},
        )
    return Client(name, True)


def _token_name(token: str, settings: ApiSettings) -> str | None:
    found = None
    for known, name in settings.tokens().items():  # compare with every token: no timing oracle
        if hmac.compare_digest(known.encode(), token.encode()):
            found = name
    return found


def check_rate(store: Store, bucket: str, client: Client, per_minute: int, setting: str) -> None:
    """Count one `bucket` request of `client` in this minute; raise `ApiError` 429 past `per_minute`.

    A fixed one-minute window in Redis, shared by every API process (0: no limit).
    """
    if per_minute <= 0:
        return
    window = int(time.time() // 60)
    key = f"{PREFIX}:rate:{bucket}:{client.name}:{window}"
    pipe = store.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    if count > per_minute:
        retry = max(1, int(60 - time.time() % 60))
        raise ApiError(
            429,
            f"too many {bucket}: at most {per_minute} a minute per client ({setting}); retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def may_delete(client: Client, quota: Quota, key: str) -> bool:
    """Whether `client` may cancel or delete what `key` holds (`check_owner`'s rule)."""
    if not client.authenticated:
        return True
    owner = quota.owner(key)
    return owner is None or owner == client.name


def check_owner(client: Client, quota: Quota, key: str, refusal: str) -> None:
    """Raise `ApiError` 403 saying `refusal` when authentication is on and `key` is charged to another client.

    Only the client a job record or an upload is charged to (its first writer: submitting or uploading
    it again costs nothing and owns nothing) may cancel or delete it. With authentication off every
    caller may (one user, one machine); so may anyone when no charge is recorded (a key written
    before quotas existed).
    """
    if not may_delete(client, quota, key):
        raise ApiError(403, refusal)


def check_model_root(model: str, roots: list[str] | None) -> None:
    """Raise `ApiError` 422 when `model` is a folder outside every configured model root.

    The message is the same whether the folder is outside the roots or does not exist, so the
    API tells nobody which paths exist on its host.
    """
    if roots is None:
        return
    parsed = parse_model_spec(model, check_folder=False)
    if parsed.kind != "folder":
        return
    path = Path(parsed.name)
    allowed = [Path(root).expanduser().resolve() for root in roots]
    if not any(path.is_relative_to(root) and path != root for root in allowed) or not _is_dir(path):
        raise ApiError(422, folder_refused(model))


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def job_id_key(store: Store, configured: str) -> bytes:
    """Return the key job ids are hashed with: the configured secret, else a random one kept in Redis."""
    if configured:
        return configured.encode()
    key = cast(bytes | None, store.redis.get(JOB_ID_KEY))
    if key is None:
        store.redis.set(JOB_ID_KEY, secrets.token_hex(32), nx=True)  # the first API process makes it
        key = cast(bytes, store.redis.get(JOB_ID_KEY))
    return key
