"""The events the tests seed through the internal listener: several
principals (john.doe and alice.smith of the documentation examples), actions
ending in CREATE / DELETE / GET / LIST, the workspace of the documentation
example, events without status (Keycloak logins), system events, private
source addresses, metadata, spread over the last four days at microsecond
precision, and a bulk of events ten days ago for pagination.

Event ages keep clear of the "last hour" and "last 24 hours" boundaries, so a
test a few minutes later still sees each event on the same side."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import List, Optional

from _oracle import Rec

JOHN = "users/john.doe"
ALICE = "users/alice.smith"
BOB = "users/a2b3b8a6-05c6-47d1-8ae1-774113404975"
CAROL = "users/6f1c2a9e-3b0d-4c55-9a57-2d4f0f3b8a11"
USERS = [JOHN, ALICE, BOB, CAROL]

W_DOC = "0eed0fc7-8a97-4cdf-8c4a-6af571aec864"  # the workspace of the Quick Start
W_B = "8dcc8393-7b39-45f8-9f85-d1978adba483"
W_C = "5c2e6a77-1f0e-4b7a-9e3d-0a4b1c2d3e4f"
WORKSPACES = [W_DOC, W_B, W_C]

EM = "h2oai-enginemanager-server"
APPSTORE = "h2oai-appstore-server"
KEYCLOAK = "thirdparty-chainguard-bitnamikeycloak"
BULK = "h2oai-pytest-bulk"
PUBLIC_IPS = ["203.0.113.10", "198.51.100.7", "2001:db8::1", "8.8.4.4"]
PRIVATE_IPS = ["10.0.1.50", "192.168.1.100", "127.0.0.1", "fd12:3456::1"]  # stored as "private"


@dataclass
class Seed:
    body: dict  # the Event JSON sent
    rec: Rec  # what the server must store


def make(t: datetime, *, source: str, action: str, read_only: bool, principal: str, ip: str,
         status: Optional[tuple] = (0, ""), workspace_id: Optional[str] = None, resource: Optional[str] = None,
         user_agent: str = "", params: Optional[dict] = None, metadata: Optional[dict] = None,
         type_: str = "TYPE_API") -> Seed:
    event_id = str(uuid.uuid4())
    if resource is None:
        resource = f"//engine-manager/workspaces/{workspace_id}/daiEngines/e-{event_id[:8]}" if workspace_id else ""
    body = {
        "eventTime": t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "eventSource": source,
        "action": action,
        "readOnly": read_only,
        "principal": principal,
        "sourceIpAddress": ip,
        "userAgent": user_agent,
        "resource": resource,
        "requestParameters": params or {},
        "metadata": metadata or {},
        "type": type_,
    }
    if status is not None:
        body["status"] = {"code": status[0], "message": status[1]}
    rec = Rec(
        event_id=event_id, event_time=t, event_source=source, action=action, read_only=read_only, status=status,
        principal=principal, source_ip_address="private" if ip in PRIVATE_IPS else ip, user_agent=user_agent,
        resource=resource, workspace=f"workspaces/{workspace_id}" if workspace_id else "",
        request_parameters=dict(params or {}), metadata=dict(metadata or {}), type=type_,
    )
    return Seed(body, rec)


def base_seeds(now: datetime) -> List[Seed]:
    rng = random.Random(20261125)
    seeds: List[Seed] = []
    minute, hour, day = 60, 3600, 86400
    used = set()

    def at(min_age: float, max_age: float) -> datetime:
        while True:  # distinct instants, microsecond precision
            t = now - timedelta(seconds=rng.uniform(min_age, max_age), microseconds=rng.randrange(1, 10**6))
            if t not in used:
                used.add(t)
                return t

    # Engine Manager: within the last hour, the last day, the last four days.
    ages = [(3 * minute, 40 * minute)] * 6 + [(75 * minute, 22 * hour)] * 14 + [(26 * hour, 4 * day)] * 12
    verbs = ["CREATE", "DELETE", "GET", "LIST", "CREATE", "GET"]
    for i, (lo, hi) in enumerate(ages):
        verb = verbs[i % len(verbs)]
        code, msg = rng.choice([(0, ""), (0, ""), (0, ""), (3, "invalid engine version"), (7, "permission denied")])
        md = {}
        if rng.random() < 0.6:
            md["region"] = rng.choice(["us-east-1", "eu-west-1"])
        if rng.random() < 0.5:
            md["engine_version"] = rng.choice(["1.10.7", "1.11.0"])
        seeds.append(make(
            at(lo, hi), source=EM, action=f"actions/enginemanager/daiEngines/{verb}", read_only=verb in ("GET", "LIST"),
            principal=USERS[i % len(USERS)], ip=rng.choice(PUBLIC_IPS + PRIVATE_IPS), status=(code, msg),
            workspace_id=WORKSPACES[i % len(WORKSPACES)], user_agent=rng.choice(["h2o-cli/1.2.0", "Mozilla/5.0", ""]),
            params={"displayName": f"engine {i}", "cpu": "4"} if verb == "CREATE" else {}, metadata=md,
            type_="TYPE_SYSTEM" if i % 7 == 3 else "TYPE_API",
        ))
    # App Store admin actions: no workspace in the resource.
    for i, p in enumerate([ALICE, JOHN, BOB]):
        seeds.append(make(
            at(2 * hour, 3 * day), source=APPSTORE, action="actions/appstore/apps/ADMIN_DELETE", read_only=False,
            principal=p, ip=PUBLIC_IPS[i], status=[(0, ""), (7, "admin role required"), (0, "")][i],
            resource=f"//appstore/apps/app-{i}", metadata={"region": "eu-west-1"} if i == 0 else {},
        ))
    # Keycloak logins: no status, system events, no resource.
    for i, p in enumerate(USERS):
        seeds.append(make(
            at(5 * minute, 2 * day), source=KEYCLOAK, action="actions/keycloak/users/LOGIN", read_only=False,
            principal=p, ip=PUBLIC_IPS[i], status=None, metadata={"realm": "hac"}, type_="TYPE_SYSTEM",
            user_agent="Mozilla/5.0",
        ))
    # An unspecified type, and an event from the documentation's workspace by john.doe.
    seeds.append(make(at(30 * hour, 40 * hour), source=EM, action="actions/enginemanager/h2oEngines/CREATE",
                      read_only=False, principal=BOB, ip="203.0.113.99", type_="TYPE_UNSPECIFIED"))
    seeds.append(make(at(10 * minute, 20 * minute), source=EM, action="actions/enginemanager/daiEngines/CREATE",
                      read_only=False, principal=JOHN, ip="203.0.113.5", workspace_id=W_DOC,
                      metadata={"region": "us-east-1"}))
    return seeds


def bulk_seeds(now: datetime, n: int) -> List[Seed]:
    """n events ten days ago, one millisecond apart: more than one page."""
    t0 = (now - timedelta(days=10)).replace(microsecond=0)
    return [
        make(t0 + timedelta(milliseconds=i), source=BULK, action="actions/bulkloader/records/IMPORT",
             read_only=False, principal="services/bulk-loader", ip="198.51.100.99", type_="TYPE_SYSTEM",
             metadata={"batch": str(i // 100)})
        for i in range(n)
    ]
