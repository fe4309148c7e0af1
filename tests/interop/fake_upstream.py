"""A tiny OpenID provider standing in for Google in the interop tests:
discovery, JWKS, an authorization endpoint that signs the user in at once,
and a token endpoint that checks the code and PKCE and returns an RS256 ID
token signed with its own key."""

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "tessera-at-python-idp"
CLIENT_SECRET = "python-idp-secret"


class FakeUpstream:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def vars(self):
        return {
            "TESSERA_GOOGLE_ISSUER": self.issuer,
            "TESSERA_GOOGLE_CLIENT_ID": CLIENT_ID,
            "TESSERA_GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        }

    def stop(self):
        self.server.shutdown()

    def _handler(self):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    i = upstream.issuer
                    return self._json(200, {
                        "issuer": i, "authorization_endpoint": f"{i}/authorize", "token_endpoint": f"{i}/token",
                        "jwks_uri": f"{i}/jwks", "id_token_signing_alg_values_supported": ["RS256"],
                        "response_types_supported": ["code"], "subject_types_supported": ["public"]})
                if url.path == "/jwks":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(upstream.key.public_key()))
                    jwk.update({"kid": "py1", "alg": "RS256", "use": "sig"})
                    return self._json(200, {"keys": [jwk]})
                if url.path == "/authorize":
                    code = secrets.token_urlsafe(16)
                    upstream.codes[code] = q
                    location = q["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": q["state"]})
                    self.send_response(302)
                    self.send_header("Location", location)
                    self.end_headers()
                    return None
                return self._json(404, {})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                auth = self.headers.get("Authorization", "")
                basic = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
                if basic != f"{CLIENT_ID}:{CLIENT_SECRET}" and (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                    return self._json(401, {"error": "invalid_client"})
                request = upstream.codes.pop(form.get("code", ""), None)
                if request is None:
                    return self._json(400, {"error": "invalid_grant"})
                challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if challenge != request["code_challenge"]:
                    return self._json(400, {"error": "invalid_grant"})
                now = int(time.time())
                id_token = jwt.encode({
                    "iss": upstream.issuer, "aud": CLIENT_ID, "sub": "py-user-1", "iat": now, "exp": now + 600,
                    "nonce": request["nonce"], "email": "py@example.com", "email_verified": True, "name": "Py User"},
                    upstream.key, algorithm="RS256", headers={"kid": "py1"})
                return self._json(200, {"access_token": "x", "token_type": "Bearer", "expires_in": 600, "id_token": id_token})

        return Handler
