"""API keys: the scope matrix of every keyed endpoint, public endpoints, parsing, no key in logs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.security import KeyRing, fingerprint
from tests.conftest import ADMIN, API_KEYS, INGEST, KEYS, unique

ROOT = Path(__file__).resolve().parent.parent
UNKNOWN_KEY = "not-a-configured-key-7f3a"


def _event_batch(ids: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "event_id": unique("e"),
            "user_id": ids["user"],
            "type": "view",
            "item_id": ids["item"],
            "timestamp": datetime.now(UTC).isoformat(),
        }
    ]


# (method, path template, scope needed, body builder, success status)
ENDPOINTS: list[tuple[str, str, str, Callable[[dict[str, str]], Any] | None, int]] = [
    ("POST", "/v1/events", "ingest", _event_batch, 202),
    ("POST", "/v1/items", "ingest", lambda ids: [{"item_id": unique("i")}], 200),
    ("GET", "/v1/items/{item}", "read", None, 200),
    ("POST", "/v1/users", "ingest", lambda ids: [{"user_id": unique("u")}], 200),
    ("GET", "/v1/users/{user}", "read", None, 200),
    ("POST", "/v1/campaigns", "ingest", lambda ids: [{"campaign_id": unique("c")}], 200),
    ("GET", "/v1/campaigns/{campaign}", "read", None, 200),
]
# Who calls: the X-API-Key value (None: header left out) and the scopes that key holds.
CALLERS: dict[str, tuple[str | None, frozenset[str]]] = {
    "no-key": (None, frozenset()),
    "empty-key": ("", frozenset()),
    "unknown-key": (UNKNOWN_KEY, frozenset()),
    "wrong-case": (KEYS["admin"].upper(), frozenset()),
    "ingest": (KEYS["ingest"], frozenset({"ingest"})),
    "read": (KEYS["read"], frozenset({"read"})),
    "ingest+read": (KEYS["both"], frozenset({"ingest", "read"})),
    "admin": (KEYS["admin"], frozenset({"admin"})),
}


@pytest.fixture(scope="module")
async def ids(client: httpx.AsyncClient) -> dict[str, str]:
    """An item, user and campaign that exist, so authorised GETs answer 200."""
    made = {"item": unique("i"), "user": unique("u"), "campaign": unique("c")}
    for path, key in (("items", "item"), ("users", "user"), ("campaigns", "campaign")):
        resp = await client.post(f"/v1/{path}", json=[{f"{key}_id": made[key]}], headers=ADMIN)
        assert resp.status_code == 200, resp.text
    return made


def expected_status(scopes: frozenset[str], needed: str, success: int) -> int:
    if not scopes:
        return 401
    return success if needed in scopes or "admin" in scopes else 403


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize(
    ("method", "template", "needed", "body", "success"),
    ENDPOINTS,
    ids=[f"{m} {t}" for m, t, *_ in ENDPOINTS],
)
async def test_scope_matrix(
    client: httpx.AsyncClient,
    ids: dict[str, str],
    caller: str,
    method: str,
    template: str,
    needed: str,
    body: Callable[[dict[str, str]], Any] | None,
    success: int,
) -> None:
    key, scopes = CALLERS[caller]
    headers = {} if key is None else {"X-API-Key": key}
    json = body(ids) if body else None
    resp = await client.request(method, template.format(**ids), json=json, headers=headers)
    want = expected_status(scopes, needed, success)
    assert resp.status_code == want, resp.text
    if want == 401:
        assert resp.headers["www-authenticate"] == "ApiKey"
    if want >= 400:
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["status"] == want
        if want == 403:
            assert needed in resp.json()["detail"]


async def test_auth_is_checked_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    """Unauthorised callers learn nothing about validation: 401/403, never 400/413/422."""
    for headers, status in (({}, 401), ({"X-API-Key": KEYS["read"]}, 403)):
        for content in (b"not json", b"[{}]", b"[" + b" " * (9 * 1024 * 1024) + b"]"):
            resp = await client.post("/v1/events", content=content, headers=headers)
            assert resp.status_code == status


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics", "/openapi.json"])
async def test_public_endpoints_need_no_key(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status_code == 200, resp.text


async def test_openapi_documents_the_key_header(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= next(
        iter(schemes.values())
    ).items()
    assert doc["paths"]["/v1/events"]["post"]["security"]
    assert "security" not in doc["paths"]["/health/live"]["get"]


def test_keyring_parses_scopes() -> None:
    ring = KeyRing(" a:ingest , b:read+ingest,,c:admin, d:with:colon:read ,e : read")
    assert len(ring) == 5
    a, b, c = ring.authenticate("a"), ring.authenticate("b"), ring.authenticate("c")
    assert a is not None and a.allows("ingest") and not a.allows("read")
    assert b is not None and b.allows("read") and b.allows("ingest") and not b.allows("admin")
    assert c is not None and all(c.allows(s) for s in ("ingest", "read", "admin"))
    assert ring.authenticate("d:with:colon") is not None  # only the last ':' splits
    assert ring.authenticate("e") is not None  # padding around the key is ignored
    assert ring.authenticate("A") is None and ring.authenticate("") is None
    assert ring.authenticate(None) is None
    assert a.fingerprint == fingerprint("a") and a.fingerprint != "a"
    assert len(KeyRing("")) == 0 and KeyRing("").authenticate("a") is None


@pytest.mark.parametrize(
    "spec",
    [
        "secretkey",
        ":read",
        "   :read",
        "secretkey:",
        "secretkey:+",
        "secretkey:write",
        "secretkey:read+superuser",
        "secretkey:read,secretkey:ingest",
        "ok:read,secretkey",
    ],
)
def test_keyring_rejects_bad_specs_without_echoing_keys(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        KeyRing(spec)
    assert "secretkey" not in str(info.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_keys_never_appear_in_logs(settings: Settings, tmp_path: Path) -> None:
    """A real server at DEBUG level: its whole log output never contains a key."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "BRANDLIFT_API_KEYS": API_KEYS,
        "LOG_LEVEL": "DEBUG",
        "LOG_JSON": "true",
        "PORT": str(port),
    }
    env.pop("REDIS_URL", None)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    log_file = tmp_path / "server.log"
    with log_file.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from app.cli import main; main()",
                "serve",
                "--host",
                "127.0.0.1",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _exercise_server(f"http://127.0.0.1:{port}", server)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
    logs = log_file.read_text()
    # The rejections were logged (so the capture works), by fingerprint only.
    assert fingerprint(UNKNOWN_KEY) in logs
    assert fingerprint(KEYS["read"]) in logs
    for key in (*KEYS.values(), UNKNOWN_KEY):
        assert key not in logs


def _exercise_server(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=base, timeout=5) as http:
        while True:
            assert server.poll() is None, "server exited early"
            try:
                if http.get("/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        ids = {"item": unique("i"), "user": unique("u")}
        assert http.post("/v1/events", json=_event_batch(ids), headers=INGEST).status_code == 202
        assert http.get(f"/v1/items/{ids['item']}", headers=ADMIN).status_code == 200
        assert http.get(f"/v1/users/{ids['user']}", headers={"X-API-Key": KEYS["both"]}).is_success
        assert (
            http.post("/v1/items", json=[], headers={"X-API-Key": KEYS["read"]}).status_code == 403
        )
        assert http.get("/v1/items/x", headers={"X-API-Key": UNKNOWN_KEY}).status_code == 401
        assert http.post("/v1/events", content=b"bad", headers=INGEST).status_code == 400
