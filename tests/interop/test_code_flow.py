"""authlib as the relying party: the authorization-code flow with PKCE
against Tessera (signing in through a fake upstream), the ID token checked
by authlib's own OpenID Connect validation (iss, aud, exp, nonce, at_hash),
then a refresh."""

import re

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey
from authlib.jose import jwt as ajwt
from authlib.oidc.core import CodeIDToken

from conftest import Tessera
from fake_upstream import FakeUpstream

REDIRECT = "http://127.0.0.1/callback"  # loopback: any port, never contacted


@pytest.fixture(scope="module", params=["RS256", "ES256", "EdDSA"])
def signed_in(request):
    upstream = FakeUpstream()
    server = Tessera(request.param, extra=upstream.vars())
    server.alg = request.param
    yield server
    server.stop()
    upstream.stop()


def browse(url, browser):
    """Follows redirects like a browser; answers the consent page with Allow."""
    response = browser.get(url, allow_redirects=False)
    while True:
        if response.status_code in (302, 303):
            location = response.headers["Location"]
            if location.startswith("http://127.0.0.1/callback"):
                return location
            response = browser.get(location, allow_redirects=False)
        elif response.status_code == 200 and 'name="decision"' in response.text:
            ticket = re.search(r'name="ticket" value="([^"]+)"', response.text).group(1)
            action = url.split("/authorize")[0] + "/consent"
            response = browser.post(action, data={"ticket": ticket, "decision": "allow"}, allow_redirects=False)
        else:
            raise AssertionError(f"{response.status_code}: {response.text[:300]}")


def test_authlib_runs_the_code_flow_with_pkce_and_validates_the_id_token(signed_in):
    tessera = signed_in
    meta = requests.get(f"{tessera.issuer}/.well-known/openid-configuration", timeout=5).json()
    assert "S256" in meta["code_challenge_methods_supported"]
    registered = tessera.create_client({
        "client_name": "authlib RP", "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "id_token_signed_response_alg": tessera.alg,
    })
    client = OAuth2Session(registered["client_id"], registered["client_secret"], scope="openid profile email",
                           redirect_uri=REDIRECT, code_challenge_method="S256")
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    callback = browse(url, requests.Session())
    assert f"iss={requests.utils.quote(tessera.issuer, safe='')}" in callback  # RFC 9207
    token = client.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state)

    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    claims = ajwt.decode(token["id_token"], keys, claims_cls=CodeIDToken,
                         claims_options={"iss": {"values": [tessera.issuer]}},
                         claims_params={"nonce": nonce, "client_id": registered["client_id"],
                                        "access_token": token["access_token"]})
    claims.validate(leeway=5)
    assert claims["email"] == "py@example.com"

    userinfo = client.get(meta["userinfo_endpoint"]).json()
    assert userinfo["sub"] == claims["sub"]

    refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    again = ajwt.decode(refreshed["id_token"], keys, claims_cls=CodeIDToken,
                        claims_options={"iss": {"values": [tessera.issuer]}},
                        claims_params={"client_id": registered["client_id"], "access_token": refreshed["access_token"]})
    again.validate(leeway=5)
    assert again["sub"] == claims["sub"]
