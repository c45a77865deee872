"""H2O AI Cloud discovery, as login() needs it.

Where the discovery service is (first found wins, as in h2o_discovery's
code; its docstring lists the first two the other way round):
  1. the ``environment`` argument of login();
  2. the environment variable H2O_CLOUD_DISCOVERY (the discovery URL itself);
  3. the environment variable H2O_CLOUD_ENVIRONMENT;
  4. ``Endpoint`` of the H2O CLI configuration file.
From an environment URL the discovery URL is ``<environment>/.ai.h2o.cloud.discovery``.

The configuration file is ``config_path``, else the environment variable
H2OCONFIG, else ``~/.h2oai/h2o-cli-config.toml`` when it exists. It is TOML;
the keys read are Endpoint, ClientID, Token, PlatformClientID, PlatformToken.

Read from the service (GET, JSON, paged by pageToken / nextPageToken):
``v1/environment`` (issuer URL), ``v1/services`` (``services/audit-trail``
has the Audit Trail URL) and ``v1/clients`` (``clients/platform`` has the
OAuth client id).

The refresh token of a client ``clients/<name>`` is the environment variable
``H2O_CLOUD_CLIENT_<NAME>_TOKEN`` (for example H2O_CLOUD_CLIENT_PLATFORM_TOKEN),
else the configuration file's token for that client's OAuth client id, taken
only when the file's Endpoint is the discovered environment.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from h2o_audit_trail import _http

DEFAULT_CONFIG_PATH = "~/.h2oai/h2o-cli-config.toml"
WELL_KNOWN_PATH = ".ai.h2o.cloud.discovery"
DISCOVERY_TIMEOUT = 5.0
_MAX_PAGES = 1000


@dataclass(frozen=True)
class Environment:
    h2o_cloud_environment: str
    issuer_url: str
    h2o_cloud_platform_oauth2_scope: str = ""
    h2o_cloud_version: Optional[str] = None


@dataclass(frozen=True)
class Service:
    name: str
    display_name: str
    uri: str
    version: Optional[str] = None
    oauth2_scope: Optional[str] = None


@dataclass(frozen=True)
class Client:
    name: str
    display_name: str
    oauth2_client_id: str


@dataclass(frozen=True)
class Discovery:
    uri: str
    environment: Environment
    services: Dict[str, Service] = field(default_factory=dict)  # by key: "audit-trail"
    clients: Dict[str, Client] = field(default_factory=dict)  # by key: "platform"
    credentials: Dict[str, str] = field(default_factory=dict)  # client key -> refresh token


@dataclass(frozen=True)
class CliConfig:
    endpoint: Optional[str] = None
    tokens: Dict[str, str] = field(default_factory=dict)  # OAuth client id -> refresh token


def discover(
    environment: Optional[str] = None,
    config_path: Optional[str] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    timeout: float = DISCOVERY_TIMEOUT,
) -> Discovery:
    """Reads the configuration file and the discovery service."""
    cfg = load_cli_config(config_path_to_use(config_path))
    uri = discovery_uri(environment, cfg.endpoint)
    env_doc = _get_json(uri, "v1/environment", ssl_context, timeout)
    env = env_doc.get("environment") if isinstance(env_doc, dict) else None
    if not isinstance(env, dict) or not env.get("issuerUrl") or "h2oCloudEnvironment" not in env:
        raise LookupError(f"{uri}/v1/environment is not an H2O AI Cloud discovery answer: {env_doc!r}")
    environment_ = Environment(
        h2o_cloud_environment=env["h2oCloudEnvironment"],
        issuer_url=env["issuerUrl"],
        h2o_cloud_platform_oauth2_scope=env.get("h2oCloudPlatformOauth2Scope") or "",
        h2o_cloud_version=env.get("h2oCloudVersion"),
    )
    services = {}
    for s in _list(uri, "v1/services", "services", ssl_context, timeout):
        key = _key(s.get("name", ""), "services/")
        services[key] = Service(
            name=s["name"],
            display_name=s.get("displayName", ""),
            uri=s.get("uri", ""),
            version=s.get("version"),
            oauth2_scope=s.get("oauth2Scope"),
        )
    clients = {}
    for c in _list(uri, "v1/clients", "clients", ssl_context, timeout):
        key = _key(c.get("name", ""), "clients/")
        clients[key] = Client(name=c["name"], display_name=c.get("displayName", ""),
                              oauth2_client_id=c.get("oauth2ClientId", ""))
    return Discovery(
        uri=uri,
        environment=environment_,
        services=services,
        clients=clients,
        credentials=_credentials(environment_, clients, cfg),
    )


def discovery_uri(environment: Optional[str], config_endpoint: Optional[str]) -> str:
    if environment:
        return environment.rstrip("/") + "/" + WELL_KNOWN_PATH
    explicit = os.environ.get("H2O_CLOUD_DISCOVERY")
    if explicit:
        return explicit.rstrip("/")
    for env in (os.environ.get("H2O_CLOUD_ENVIRONMENT"), config_endpoint):
        if env:
            return env.rstrip("/") + "/" + WELL_KNOWN_PATH
    raise LookupError(
        "Cannot determine the H2O AI Cloud discovery URL: pass environment=..., set H2O_CLOUD_ENVIRONMENT "
        "or H2O_CLOUD_DISCOVERY, or configure the H2O CLI (~/.h2oai/h2o-cli-config.toml or H2OCONFIG). "
        "For a standalone server use login(endpoint=..., token=...)."
    )


def config_path_to_use(config_path: Optional[str]) -> Optional[str]:
    if config_path is not None:
        return os.fspath(config_path)
    from_env = os.environ.get("H2OCONFIG")
    if from_env:
        return from_env
    default = os.path.expanduser(DEFAULT_CONFIG_PATH)
    return default if os.path.isfile(default) else None


def load_cli_config(path: Optional[str]) -> CliConfig:
    """The H2O CLI configuration; FileNotFoundError when a path is given that
    does not exist, ValueError when the file is not valid TOML."""
    if not path:
        return CliConfig()
    with open(path, "rb") as f:
        data = parse_toml(f.read().decode("utf-8"))
    tokens = {}
    for id_key, token_key in (("ClientID", "Token"), ("PlatformClientID", "PlatformToken")):
        if isinstance(data.get(id_key), str) and isinstance(data.get(token_key), str):
            tokens[data[id_key]] = data[token_key]
    endpoint = data.get("Endpoint")
    return CliConfig(endpoint=endpoint if isinstance(endpoint, str) else None, tokens=tokens)


def parse_toml(text: str) -> Dict[str, Any]:
    """TOML with tomllib (Python 3.11+) or tomli when available; otherwise the
    flat ``Key = "string"`` subset the H2O CLI writes."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)  # TOMLDecodeError is a ValueError
    try:
        import tomli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _parse_flat_toml(text)
    return tomli.loads(text)  # type: ignore[no-any-return, unused-ignore]


_TOML_LINE = re.compile(
    r"""^\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(true|false|[+-]?\d+))\s*(?:\#.*)?$"""
)


def _parse_flat_toml(text: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            break  # tables: the keys login() needs are top-level
        m = _TOML_LINE.match(line)
        if m is None:
            raise ValueError(f"invalid TOML in the H2O CLI configuration, line {n}: {line!r}")
        key, basic, literal, other = m.groups()
        if basic is not None:
            out[key] = json.loads('"' + basic + '"')
        elif literal is not None:
            out[key] = literal
        elif other in ("true", "false"):
            out[key] = other == "true"
        else:
            out[key] = int(other)
    return out


def _credentials(env: Environment, clients: Dict[str, Client], cfg: CliConfig) -> Dict[str, str]:
    same_env = cfg.endpoint is not None and cfg.endpoint.rstrip("/") == env.h2o_cloud_environment.rstrip("/")
    tokens = cfg.tokens if same_env else {}
    out = {}
    for key, client in clients.items():
        token = os.environ.get(f"H2O_CLOUD_CLIENT_{key.upper()}_TOKEN") or tokens.get(client.oauth2_client_id)
        if token:
            out[key] = token
    return out


def _key(name: str, prefix: str) -> str:
    if not name.startswith(prefix):
        raise LookupError(f"invalid name in the discovery answer: {name!r} (expected {prefix}...)")
    return name[len(prefix):]


def _get_json(uri: str, path: str, ctx: Optional[ssl.SSLContext], timeout: float,
              page_token: Optional[str] = None) -> Any:
    url = f"{uri}/{path}"
    if page_token:
        url += "?" + urllib.parse.urlencode({"pageToken": page_token})
    resp = _http.send("GET", url, context=ctx, timeout=timeout, follow_redirects=True)
    if not 200 <= resp.status <= 299:
        raise ConnectionError(
            f"H2O AI Cloud discovery: GET {url} answered {resp.status}: {resp.body[:300]!r}. Is the environment "
            "URL right, and does it run the discovery service?"
        )
    try:
        return resp.json()
    except ValueError:
        raise ConnectionError(f"H2O AI Cloud discovery: GET {url} did not answer JSON: {resp.body[:300]!r}") from None


def _list(uri: str, path: str, key: str, ctx: Optional[ssl.SSLContext], timeout: float) -> Iterator[Dict[str, Any]]:
    token: Optional[str] = None
    for _ in range(_MAX_PAGES):
        page = _get_json(uri, path, ctx, timeout, token)
        items: List[Any] = (page.get(key) or []) if isinstance(page, dict) else []
        for item in items:
            if isinstance(item, dict):
                yield item
        token = page.get("nextPageToken") if isinstance(page, dict) else None
        if not token:
            return
    raise ConnectionError(f"H2O AI Cloud discovery: {uri}/{path} did not stop paging")
