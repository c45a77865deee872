"""login() and login_custom(): the refresh-token grant at a real (in-process)
OIDC token endpoint, discovery from an in-process discovery service, the H2O
CLI configuration file, and the standalone login(endpoint=..., token=...).
The H2O AI Cloud flows run with both clients."""

from __future__ import annotations

import time

import pytest
from _idp import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, PUBLIC_CLIENT

import h2o_audit_trail

H2O_VARS = ("H2OCONFIG", "H2O_CLOUD_DISCOVERY", "H2O_CLOUD_ENVIRONMENT", "H2O_CLOUD_TOKEN_ENDPOINT_URL",
            "H2O_CLOUD_CLIENT_PLATFORM_TOKEN")


@pytest.fixture
def clean_env(monkeypatch, tmp_path, idp):
    """No H2O environment variables, and a home without CLI configuration."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in H2O_VARS:
        monkeypatch.delenv(name, raising=False)
    return idp


def fn(flavour, name):
    return getattr(flavour.module("h2o_audit_trail.login"), name)


def assert_can_search(clients):
    resp = clients.event_client.search_events(page_size=1)
    assert len(resp.events) == 1


def write_config(path, endpoint, token, client_id=PUBLIC_CLIENT):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# written by the tests, like `h2o config setup`\n"
        f'Endpoint = "{endpoint}"\n'
        'ClientID = "hac-cli"\n'
        'Token = "unused-cli-token"\n'
        f'PlatformClientID = "{client_id}"\n'
        f'PlatformToken = "{token}"\n'
    )
    return path


# --- login_custom: the refresh-token grant ------------------------------------------------


def test_login_custom_does_the_refresh_token_grant(flavour, clean_env, server, world):
    idp = clean_env
    refresh = idp.new_refresh_token()
    clients = fn(flavour, "login_custom")(
        endpoint=server.public + "/", refresh_token=refresh, issuer_url=idp.issuer, client_id=PUBLIC_CLIENT,
    )
    assert_can_search(clients)
    assert_can_search(clients)
    assert [g.form for g in idp.grants] == [
        {"grant_type": "refresh_token", "client_id": PUBLIC_CLIENT, "refresh_token": refresh}
    ], "one grant: the access token is valid for 300 s"
    assert "GET /auth/realms/hac/.well-known/openid-configuration" in idp.requests


def test_login_custom_with_client_secret(flavour, clean_env, server, world):
    idp = clean_env
    refresh = idp.new_refresh_token(CONFIDENTIAL_CLIENT)
    clients = fn(flavour, "login_custom")(server.public, refresh, idp.issuer, CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET)
    assert_can_search(clients)
    assert idp.grants[0].form["client_secret"] == CONFIDENTIAL_SECRET
    assert idp.grants[0].status == 200


def test_login_custom_refreshes_before_expiry_and_rotates(flavour, clean_env, server, world):
    """expires_in 6 s: 5 s before expiry, i.e. after 1 s, the next call
    refreshes with the rotated refresh token (the issuer accepts each
    refresh token once)."""
    idp = clean_env
    idp.expires_in = 6
    refresh = idp.new_refresh_token(reusable=False)
    clients = fn(flavour, "login_custom")(server.public, refresh, idp.issuer, PUBLIC_CLIENT)
    assert_can_search(clients)
    assert len(idp.grants) == 1
    for n in (2, 3):
        time.sleep(1.3)
        assert_can_search(clients)
        assert len(idp.grants) == n
        previous, latest = idp.grants[-2], idp.grants[-1]
        assert latest.status == 200
        assert latest.form["refresh_token"] == previous.issued_refresh_token, "the rotated refresh token is used"


def test_login_custom_with_bad_refresh_token_fails(flavour, clean_env, server):
    idp = clean_env
    with pytest.raises(Exception, match="invalid_grant") as exc:
        fn(flavour, "login_custom")(server.public, "rt-unknown", idp.issuer, PUBLIC_CLIENT)
    if flavour.name == "ours":
        from h2o_audit_trail.auth import TokenEndpointError

        assert isinstance(exc.value, TokenEndpointError)
        assert (exc.value.error, exc.value.error_description, exc.value.status) == (
            "invalid_grant", "Token is not active", 400)
        assert str(exc.value) == "invalid_grant: Token is not active"


# --- login: discovery ---------------------------------------------------------------------


def assert_discovered(idp, platform_token):
    paths = [r.split("?")[0] for r in idp.requests]
    for p in ("GET /.ai.h2o.cloud.discovery/v1/environment", "GET /.ai.h2o.cloud.discovery/v1/services",
              "GET /.ai.h2o.cloud.discovery/v1/clients"):
        assert p in paths
    assert "GET /.ai.h2o.cloud.discovery/v1/services?pageToken=page-2" in idp.requests, "second page of services"
    assert [(g.form["client_id"], g.form["refresh_token"], g.status) for g in idp.grants] == [
        (PUBLIC_CLIENT, platform_token, 200)
    ]


def test_login_from_environment_variables(flavour, cloud_env, server, world):
    clients = fn(flavour, "login")()
    assert_can_search(clients)
    assert_discovered(cloud_env, cloud_env.platform_token)


def test_login_with_arguments(flavour, clean_env, server, world):
    idp = clean_env
    token = idp.new_refresh_token()
    clients = fn(flavour, "login")(environment=idp.base + "/", platform_token=token)
    assert_can_search(clients)
    assert_discovered(idp, token)


def test_login_with_discovery_url_variable(flavour, clean_env, monkeypatch, server, world):
    idp = clean_env
    monkeypatch.setenv("H2O_CLOUD_DISCOVERY", idp.base + "/.ai.h2o.cloud.discovery")
    monkeypatch.setenv("H2O_CLOUD_ENVIRONMENT", "http://127.0.0.1:9/not-used")
    monkeypatch.setenv("H2O_CLOUD_CLIENT_PLATFORM_TOKEN", idp.platform_token)
    assert_can_search(fn(flavour, "login")())
    assert_discovered(idp, idp.platform_token)


def test_login_environment_argument_wins_over_discovery_variable(flavour, clean_env, monkeypatch, server, world):
    # h2o_discovery 3.3.0's determine_uri: the environment argument comes
    # before H2O_CLOUD_DISCOVERY (its docstring, and the spec's 7.2, say the
    # reverse; the code is what the H2O client runs).
    idp = clean_env
    token = idp.new_refresh_token()
    monkeypatch.setenv("H2O_CLOUD_DISCOVERY", "http://127.0.0.1:9/not-used/.ai.h2o.cloud.discovery")
    clients = fn(flavour, "login")(environment=idp.base, platform_token=token)
    assert_can_search(clients)
    assert_discovered(idp, token)


@pytest.mark.parametrize("how", ["config_path", "H2OCONFIG", "default path"])
def test_login_with_cli_config_file(flavour, clean_env, monkeypatch, tmp_path, server, world, how):
    idp = clean_env
    token = idp.new_refresh_token()
    if how == "default path":
        write_config(tmp_path / ".h2oai" / "h2o-cli-config.toml", idp.base, token)
        clients = fn(flavour, "login")()
    elif how == "H2OCONFIG":
        monkeypatch.setenv("H2OCONFIG", str(write_config(tmp_path / "cfg.toml", idp.base, token)))
        clients = fn(flavour, "login")()
    else:
        clients = fn(flavour, "login")(config_path=str(write_config(tmp_path / "cfg.toml", idp.base, token)))
    assert_can_search(clients)
    assert_discovered(idp, token)


def test_login_with_token_provider(flavour, cloud_env, server, world):
    calls = []

    def provider():
        calls.append(1)
        return server.reader_token

    clients = fn(flavour, "login")(token_provider=provider)
    assert_can_search(clients)
    assert len(calls) >= 2, "called once at login, then before each request"
    assert cloud_env.grants == []


def test_login_when_audit_trail_is_not_registered(flavour, cloud_env):
    cloud_env.register_audit_trail = False
    with pytest.raises(Exception, match="Audit Trail service is not registered in discovery service"):
        fn(flavour, "login")()


def test_login_without_any_configuration(flavour, clean_env):
    with pytest.raises(LookupError):
        fn(flavour, "login")()


# --- ours only ------------------------------------------------------------------------------


def test_standalone_login_with_endpoint_and_token(server, world, clean_env):
    clients = h2o_audit_trail.login(endpoint=server.public + "/", token=server.reader_token)
    assert_can_search(clients)
    assert clients.event_client.audit_trail_url == server.public
    assert clean_env.requests == [], "no discovery, no issuer"


def test_standalone_login_argument_errors(server):
    with pytest.raises(ValueError, match="needs token"):
        h2o_audit_trail.login(endpoint=server.public)
    with pytest.raises(ValueError, match="cannot be combined"):
        h2o_audit_trail.login(endpoint=server.public, token="t", environment="https://cloud.h2o.ai")
    with pytest.raises(ValueError, match="either token or token_provider"):
        h2o_audit_trail.login(endpoint=server.public, token="t", token_provider=lambda: "t")


def test_standalone_login_probes_version(idp):
    with pytest.raises(ConnectionError, match="Server is not reachable. Status code: 404"):
        h2o_audit_trail.login(endpoint=idp.base, token="t")  # the issuer has no /version


def test_token_endpoint_from_environment_variable(clean_env, monkeypatch, server, world):
    idp = clean_env
    monkeypatch.setenv("H2O_CLOUD_TOKEN_ENDPOINT_URL", idp.token_endpoint)
    clients = h2o_audit_trail.login_custom(server.public, idp.new_refresh_token(), "http://127.0.0.1:9/unused",
                                           PUBLIC_CLIENT)
    assert_can_search(clients)
    assert not any("openid-configuration" in r for r in idp.requests)


def test_wrong_client_secret(clean_env, server):
    from h2o_audit_trail.auth import TokenEndpointError

    idp = clean_env
    with pytest.raises(TokenEndpointError) as exc:
        h2o_audit_trail.login_custom(server.public, idp.new_refresh_token(CONFIDENTIAL_CLIENT), idp.issuer,
                                     CONFIDENTIAL_CLIENT, "wrong")
    assert (exc.value.error, exc.value.status) == ("unauthorized_client", 401)


def test_missing_expires_in_uses_30_seconds(clean_env, server, world):
    idp = clean_env
    idp.expires_in = None
    clients = h2o_audit_trail.login_custom(server.public, idp.new_refresh_token(), idp.issuer, PUBLIC_CLIENT)
    assert_can_search(clients)
    assert len(idp.grants) == 1


def test_config_tokens_of_another_environment_are_not_used(clean_env, tmp_path):
    idp = clean_env
    cfg = write_config(tmp_path / "cfg.toml", "https://other.example.com", idp.platform_token)
    with pytest.raises(ValueError, match="platform_token"):
        h2o_audit_trail.login(environment=idp.base, config_path=str(cfg))


def test_config_path_that_does_not_exist(clean_env, tmp_path):
    with pytest.raises(FileNotFoundError):
        h2o_audit_trail.login(config_path=str(tmp_path / "missing.toml"))


def test_flat_toml_parser_for_python_before_3_11():
    from h2o_audit_trail._discovery import _parse_flat_toml

    text = (
        '# comment\nEndpoint = "https://cloud.h2o.ai"  # trailing\nPlatformToken = \'lit\\eral\'\n'
        'N = 3\nB = true\nEsc = "a\\"b\\u00e9"\n[section]\nIgnored = "x"\n'
    )
    assert _parse_flat_toml(text) == {"Endpoint": "https://cloud.h2o.ai", "PlatformToken": "lit\\eral", "N": 3,
                                      "B": True, "Esc": 'a"bé'}
    with pytest.raises(ValueError, match="line 1"):
        _parse_flat_toml("not toml")
