"""The events the compatibility suite seeds: realistic and varied (several
principals, workspaces in resource names, actions ending in CREATE / DELETE /
GET, metadata, statuses and their absence, event types, private and public
source addresses, event times spread over the last four days with
microsecond precision, equal event times, several RFC 3339 spellings)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional

from compat_model import wire_time

# Principals; john.doe and alice.smith are the ones of the documentation examples.
JOHN = "users/john.doe"
ALICE = "users/alice.smith"
BOB = "users/a2b3b8a6-05c6-47d1-8ae1-774113404975"
CAROL = "users/6f1c2a9e-3b0d-4c55-9a57-2d4f0f3b8a11"
APPSTORE = "services/appstore"
USERS = [JOHN, ALICE, BOB, CAROL]

# Workspace ids; the first is the one of the documentation example.
W_DOC = "0eed0fc7-8a97-4cdf-8c4a-6af571aec864"
W_B = "8dcc8393-7b39-45f8-9f85-d1978adba483"
W_C = "5c2e6a77-1f0e-4b7a-9e3d-0a4b1c2d3e4f"
WORKSPACES = [W_DOC, W_B, W_C]

EM = "h2oai-enginemanager-server"
APPSTORE_SOURCE = "h2oai-appstore-server"
KEYCLOAK = "thirdparty-chainguard-bitnamikeycloak"

PUBLIC_IPS = ["203.0.113.10", "198.51.100.7", "2001:db8::1", "172.32.0.1", "8.8.4.4"]
PRIVATE_IPS = ["10.0.1.50", "192.168.1.100", "172.16.5.4", "127.0.0.1", "169.254.10.20",
               "fe80::1", "fd12:3456::1", "::1", "::ffff:10.1.2.3", "private"]

USER_AGENTS = ["h2o-cli/1.2.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "python-requests/2.32", ""]

TIME_STYLES = ["z", "utc-offset", "ist", "pdt", "ns", "ms", "s"]


@dataclass
class Seed:
    event_id: str
    event_time: datetime
    body: dict  # the Event JSON, lowerCamelCase, eventTime included


def _round_for(style: str, t: datetime) -> datetime:
    if style == "ms":
        return t.replace(microsecond=t.microsecond - t.microsecond % 1000)
    if style == "s":
        return t.replace(microsecond=0)
    return t


def make(t: datetime, style: str, *, source: str, action: str, read_only: bool, principal: str,
         ip: str, status: Optional[dict], resource: str = "", user_agent: str = "",
         request_parameters: Optional[dict] = None, metadata: Optional[dict] = None,
         type_: Optional[str] = "TYPE_API", workspace_override: Optional[str] = None,
         event_id: Optional[str] = None) -> Seed:
    t = _round_for(style, t)
    body = {
        "eventTime": wire_time(t, style),
        "eventSource": source,
        "action": action,
        "readOnly": read_only,
        "principal": principal,
        "sourceIpAddress": ip,
        "userAgent": user_agent,
        "resource": resource,
        "requestParameters": request_parameters or {},
        "metadata": metadata or {},
    }
    if status is not None:
        body["status"] = status
    if type_ is not None:  # omitted: TYPE_UNSPECIFIED
        body["type"] = type_
    if workspace_override is not None:
        body["workspaceOverride"] = workspace_override
    return Seed(event_id or str(uuid.uuid4()), t, body)


def engine_event(rng: random.Random, t: datetime, style: str, verb: str, principal: str) -> Seed:
    ws = rng.choice(WORKSPACES)
    kind = rng.choice(["daiEngines", "h2oEngines"])
    engine = f"engine-{rng.randrange(1000, 9999)}"
    collection = verb == "LIST"
    resource = f"//engine-manager/workspaces/{ws}/{kind}" + ("" if collection else f"/{engine}")
    code, msg = rng.choice([(0, ""), (0, ""), (0, ""), (3, "invalid engine version"),
                            (5, "engine not found"), (7, "permission denied"), (13, "internal error")])
    md = {}
    if rng.random() < 0.7:
        md["engine_version"] = rng.choice(["1.10.7", "1.10.6.2", "1.11.0", "2.0.1"])
    if rng.random() < 0.6:
        md["region"] = rng.choice(["us-east-1", "eu-west-1", "ap-south-1"])
    if rng.random() < 0.3:
        md["cluster_id"] = f"c{rng.randrange(1, 4)}"
    params = {"displayName": f"Engine {engine}", "cpu": str(rng.choice([2, 4, 8]))} if verb == "CREATE" else {}
    return make(
        t, style,
        source=EM,
        action=f"actions/enginemanager/{kind}/{verb}",
        read_only=verb in ("GET", "LIST"),
        principal=principal,
        ip=rng.choice(PUBLIC_IPS + PRIVATE_IPS),
        status={"code": code, "message": msg},
        resource=resource,
        user_agent=rng.choice(USER_AGENTS),
        request_parameters=params,
        metadata=md,
        type_=rng.choice(["TYPE_API"] * 5 + ["TYPE_SYSTEM", None]),
    )


def base_seeds(now: datetime) -> List[List[Seed]]:
    """Two batches of events, all in the past (the newest a minute ago)."""
    rng = random.Random(20261125)
    batch1: List[Seed] = []
    batch2: List[Seed] = []

    def when(min_s: float, max_s: float) -> datetime:
        return now - timedelta(seconds=rng.uniform(min_s, max_s), microseconds=rng.randrange(1, 1_000_000))

    def style() -> str:
        return TIME_STYLES[len(batch1 + batch2) % len(TIME_STYLES)]

    hour, day = 3600, 86400
    # Engine Manager traffic: spread over four days, some within the last
    # hour and the last 24 hours, for several principals.
    for i in range(28):
        if i < 5:
            t = when(90, hour - 300)
        elif i < 14:
            t = when(hour + 60, day - 600)
        else:
            t = when(day + 600, 4 * day)
        verb = ["CREATE", "DELETE", "GET", "LIST", "CREATE", "GET"][i % 6]
        principal = USERS[i % len(USERS)]
        batch1.append(engine_event(rng, t, style(), verb, principal))

    # App Store admin actions: resources without a workspace segment.
    for i in range(3):
        batch1.append(make(
            when(hour + 60, 3 * day), style(),
            source=APPSTORE_SOURCE, action="actions/appstore/apps/ADMIN_DELETE", read_only=False,
            principal=[ALICE, JOHN, BOB][i], ip=PUBLIC_IPS[i],
            status={"code": [0, 7, 0][i], "message": ["", "admin role required", ""][i]},
            resource=f"//appstore/apps/{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            user_agent="Mozilla/5.0", metadata={"region": "eu-west-1"} if i == 0 else {},
            type_="TYPE_API",
        ))

    # Keycloak logins: external source, no status, system events, empty resource.
    for i in range(4):
        batch1.append(make(
            when(120, 2 * day), style(),
            source=KEYCLOAK, action="actions/keycloak/users/LOGIN", read_only=False,
            principal=USERS[i], ip=PUBLIC_IPS[i], status=None,
            user_agent="Mozilla/5.0", metadata={"realm": "hac", "client_id": "hac_platform"},
            type_="TYPE_SYSTEM",
        ))

    # Three events at the very same instant, in one batch: newest first means
    # the one the server accepted last comes first.
    tie = now - timedelta(hours=30, microseconds=123457)
    for p in (ALICE, BOB, CAROL):
        batch1.append(make(
            tie, "z", source=EM, action="actions/enginemanager/daiEngines/GET", read_only=True,
            principal=p, ip="203.0.113.77", status={"code": 0, "message": ""},
            resource=f"//engine-manager/workspaces/{W_B}/daiEngines/tied", metadata={"region": "us-east-1"},
        ))

    # Second batch: one more event at the tie instant (higher sequence number),
    # and the workspace derivation / override cases.
    batch2.append(make(
        tie, "ist", source=EM, action="actions/enginemanager/daiEngines/DELETE", read_only=False,
        principal=JOHN, ip="203.0.113.77", status={"code": 0, "message": ""},
        resource=f"//engine-manager/workspaces/{W_B}/daiEngines/tied",
    ))
    ws_cases = [
        # (resource, workspaceOverride); expected workspace in the model
        ("workspaces/w1/daiEngine/e1", None),  # relative name
        (f"//engine-manager/workspaces/{W_C}/daiEngines/x/workspaces/nested", None),  # first pair wins
        ("//workspaces/workspaces/w9/things/t", None),  # service named "workspaces"
        ("//workspaces/w9/things/t", None),  # ... whose next segment is no workspace pair
        (f"//engine-manager/workspaces/{W_DOC}/daiEngines/e2", f"workspaces/{W_C}"),  # override wins
        (f"//engine-manager/workspaces/{W_DOC}/daiEngines/e3", ""),  # empty override: no workspace
        ("//appstore/apps/42", f"workspaces/{W_DOC}"),  # override without workspace in resource
        ("rsrc1", None),
    ]
    for i, (resource, override) in enumerate(ws_cases):
        batch2.append(make(
            when(hour + 60, 2 * day), style(),
            source=EM, action="actions/enginemanager/daiEngines/CREATE", read_only=False,
            principal=[CAROL, BOB][i % 2], ip=PRIVATE_IPS[i], status={"code": 0, "message": ""},
            resource=resource, workspace_override=override,
            metadata={"engine_version": "1.10.7", "region": "ap-south-1"} if i % 3 == 0 else {},
            type_=[None, "TYPE_API", "TYPE_SYSTEM", "TYPE_UNSPECIFIED"][i % 4],
        ))
    return [batch1, batch2]


BULK_SOURCE = "h2oai-bulk-loader"


def bulk_seeds(now: datetime, n: int) -> List[Seed]:
    """n events 20 days ago, one millisecond apart, for the page size limits."""
    t0 = now - timedelta(days=20)
    return [
        make(t0 + timedelta(milliseconds=i), "z", source=BULK_SOURCE,
             action="actions/bulkloader/records/IMPORT", read_only=False, principal="services/bulk-loader",
             ip="198.51.100.99", status={"code": 0, "message": ""}, type_="TYPE_SYSTEM",
             metadata={"batch": str(i // 1000)})
        for i in range(n)
    ]
