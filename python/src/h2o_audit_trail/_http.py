"""HTTP for the client, on urllib from the standard library: JSON calls with
a bearer token, timeouts, and retries with backoff on 429 and 503."""

from __future__ import annotations

import email.utils
import json
import random
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from h2o_audit_trail._version import __version__
from h2o_audit_trail.exception import ApiException, CustomApiException, TimeoutException

USER_AGENT = f"audittrail-client-python/{__version__} (h2o_audit_trail)"

#: Seconds a request may wait for the server (connect, then each read).
DEFAULT_TIMEOUT = 60.0
#: How often a request answered with 429 or 503 is tried again.
DEFAULT_MAX_RETRIES = 3
RETRY_STATUSES = (429, 503)
_BACKOFF_BASE = 0.5  # seconds before the first retry, doubled each time
_BACKOFF_MAX = 30.0
#: A Retry-After longer than this is not waited for: the error is raised.
RETRY_AFTER_MAX = 120.0


def ssl_context(verify_ssl: bool = True, ssl_ca_cert: Optional[str] = None) -> ssl.SSLContext:
    """The TLS settings of the H2O client: the system trust store, or the CA
    bundle ssl_ca_cert; no verification at all when verify_ssl is False."""
    ctx = ssl.create_default_context(cafile=ssl_ca_cert)
    if not verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Headers(Mapping[str, str]):
    """Response headers: a read-only mapping with case-insensitive names."""

    def __init__(self, message: Optional[Message] = None) -> None:
        self._items: Dict[str, Tuple[str, str]] = {}
        for name, value in (message.items() if message is not None else []):
            key = name.lower()
            if key in self._items:  # repeated header: join the values
                value = self._items[key][1] + ", " + value
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass
class Response:
    status: int
    reason: str
    headers: Headers
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # the 3xx answer is returned as an error


def send(
    method: str,
    url: str,
    *,
    headers: Optional[Mapping[str, str]] = None,
    data: Optional[bytes] = None,
    context: Optional[ssl.SSLContext] = None,
    timeout: float = DEFAULT_TIMEOUT,
    follow_redirects: bool = False,
) -> Response:
    """One HTTP exchange. Any HTTP status is returned, not raised. A failure
    to connect raises ConnectionError; running out of time raises
    TimeoutException."""
    handlers: List[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    opener = urllib.request.build_opener(*handlers)
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    try:
        with opener.open(request, timeout=timeout) as resp:
            body = resp.read()
            return Response(resp.status, resp.reason, Headers(resp.headers), body.decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:
        try:
            body = e.read()
        except OSError:  # including timeouts
            body = b""
        finally:
            e.close()
        return Response(e.code, str(e.reason), Headers(e.headers), body.decode("utf-8", "replace"))
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise TimeoutException(message=f"{method} {url}: no answer within {timeout} s") from e
        raise ConnectionError(f"{method} {url}: cannot reach the server: {e.reason}") from e
    except (socket.timeout, TimeoutError) as e:
        raise TimeoutException(message=f"{method} {url}: no answer within {timeout} s") from e
    except OSError as e:  # e.g. reset while reading the answer
        raise ConnectionError(f"{method} {url}: {e}") from e


def retry_after_seconds(headers: Optional[Mapping[str, str]], now: Optional[datetime] = None) -> Optional[float]:
    """The wait a Retry-After header asks for (delta-seconds or an HTTP-date),
    or None when there is no usable header."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when: Optional[datetime] = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


class Transport:
    """Calls the Audit Trail REST API (grpc-gateway JSON) at base_url."""

    def __init__(
        self,
        base_url: str,
        token_provider: Callable[[], Any],
        *,
        context: Optional[ssl.SSLContext] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.base_url = base_url.rstrip("/")
        self.token_provider = token_provider
        self.context = context
        self.timeout = timeout
        self.max_retries = max_retries
        self._sleep = sleep

    def post(self, path: str, body: Any, query: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """POSTs body as JSON and returns the JSON answer. An error answer
        raises CustomApiException, after up to max_retries retries when it
        is 429 or 503."""
        return self._call("POST", path, json.dumps(body).encode("utf-8"), query)

    def get(self, path: str, query: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """GETs path and returns the JSON answer; errors as for post."""
        return self._call("GET", path, None, query)

    def _call(self, method: str, path: str, data: Optional[bytes], query: Optional[Dict[str, str]]) -> Dict[str, Any]:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        attempt = 0
        while True:
            headers = {"Authorization": f"Bearer {self.token_provider()}"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            resp = send(method, url, headers=headers, data=data, context=self.context, timeout=self.timeout)
            if 200 <= resp.status <= 299:
                try:
                    parsed = resp.json()
                except ValueError:
                    parsed = None
                if not isinstance(parsed, dict):
                    raise CustomApiException(
                        status=resp.status, reason="answer is not a JSON object", body=resp.body, headers=resp.headers
                    )
                return parsed
            if resp.status in RETRY_STATUSES and attempt < self.max_retries:
                wait = self._wait_before_retry(attempt, resp.headers)
                if wait is not None:
                    self._sleep(wait)
                    attempt += 1
                    continue
            raise CustomApiException(ApiException(resp.status, resp.reason, resp.body, resp.headers))

    def _wait_before_retry(self, attempt: int, headers: Mapping[str, str]) -> Optional[float]:
        asked = retry_after_seconds(headers)
        if asked is not None:
            return asked if asked <= RETRY_AFTER_MAX else None
        backoff = min(_BACKOFF_MAX, _BACKOFF_BASE * (2.0**attempt))
        return backoff * (0.5 + random.random() / 2)  # jitter: spread out clients that failed together


def probe_version(base_url: str, context: Optional[ssl.SSLContext], timeout: float) -> None:
    """GET <base_url>/version, unauthenticated, as login() does before it
    hands out a client; raises ConnectionError unless the answer is 2xx."""
    url = base_url.rstrip("/") + "/version"
    try:
        resp = send("GET", url, context=context, timeout=timeout, follow_redirects=True)
    except ConnectionError as e:
        raise ConnectionError(f"Server is not reachable: {e}") from e
    if not 200 <= resp.status <= 299:
        raise ConnectionError(f"Server is not reachable. Status code: {resp.status}, Response body: {resp.body}")
