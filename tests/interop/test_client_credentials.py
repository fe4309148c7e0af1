"""authlib as the client, PyJWT as the resource server: the client-credentials
grant and offline validation against /jwks, with no Tessera-specific code."""

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session


def discover(tessera):
    meta = requests.get(f"{tessera.issuer}/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == tessera.issuer
    return meta


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_gets_a_token_that_pyjwt_validates(tessera, method):
    meta = discover(tessera)
    assert method in meta["token_endpoint_auth_methods_supported"]
    client = tessera.create_client({"grant_types": ["client_credentials"], "scope": "api:read api:write",
                                    "token_endpoint_auth_method": method})
    session = OAuth2Session(client["client_id"], client["client_secret"],
                            token_endpoint_auth_method=method, scope="api:read")
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "api:read"
    assert "refresh_token" not in token

    access = token["access_token"]
    assert jwt.get_unverified_header(access)["typ"] == "at+jwt"
    key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(access)
    claims = jwt.decode(access, key, algorithms=[tessera.alg], issuer=tessera.issuer,
                        audience=tessera.issuer, options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]})
    assert claims["sub"] == client["client_id"] == claims["client_id"]
    assert claims["scope"] == "api:read"


def test_a_resource_indicator_sets_the_audience(tessera):
    meta = discover(tessera)
    client = tessera.create_client({"grant_types": ["client_credentials"], "scope": "api:read"})
    session = OAuth2Session(client["client_id"], client["client_secret"])
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials",
                                resource="https://api.example.com")
    key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token["access_token"])
    claims = jwt.decode(token["access_token"], key, algorithms=[tessera.alg], issuer=tessera.issuer,
                        audience="https://api.example.com")
    assert claims["aud"] == "https://api.example.com"
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token["access_token"], key, algorithms=[tessera.alg], audience=tessera.issuer)


def test_authlib_sees_the_oauth_error_of_a_wrong_secret(tessera):
    meta = discover(tessera)
    client = tessera.create_client({"grant_types": ["client_credentials"], "scope": "api:read"})
    session = OAuth2Session(client["client_id"], "not-the-secret")
    from authlib.integrations.base_client.errors import OAuthError
    with pytest.raises(OAuthError) as err:
        session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert err.value.error == "invalid_client"


def test_authlib_introspects_and_revokes_through_the_advertised_endpoints(tessera):
    """RFC 7662 and RFC 7009 as authlib speaks them: a resource server
    introspects, the client revokes, the resource server sees it."""
    meta = discover(tessera)
    client = tessera.create_client({"grant_types": ["client_credentials"], "scope": "api:read"})
    rs = tessera.create_client({"grant_types": ["client_credentials"], "scope": "introspect"})
    session = OAuth2Session(client["client_id"], client["client_secret"])
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    access = token["access_token"]

    resource_server = OAuth2Session(rs["client_id"], rs["client_secret"])
    answer = resource_server.introspect_token(meta["introspection_endpoint"], token=access).json()
    assert answer["active"] is True
    assert answer["client_id"] == client["client_id"]
    assert answer["token_type"] == "Bearer"
    assert answer["scope"] == "api:read"

    r = session.revoke_token(meta["revocation_endpoint"], token=access, token_type_hint="access_token")
    assert r.status_code == 200
    answer = resource_server.introspect_token(meta["introspection_endpoint"], token=access).json()
    assert answer == {"active": False}
