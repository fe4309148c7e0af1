"""Starts the real `tessera` binary on free ports with a fresh SQLite
database and keys folder, the way an operator would."""

import base64
import os
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ADMIN_TOKEN = "interop-admin-token-0123456789"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tessera:
    def __init__(self, alg, extra=None):
        self.dir = tempfile.TemporaryDirectory()
        port, admin = free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "TESSERA_ISSUER": self.issuer,
            "TESSERA_LISTEN": f"127.0.0.1:{port}",
            "TESSERA_ADMIN_LISTEN": f"127.0.0.1:{admin}",
            "TESSERA_ADMIN_TOKEN": ADMIN_TOKEN,
            "TESSERA_DATABASE_URL": f"sqlite://{self.dir.name}/tessera.db",
            "TESSERA_KEYS_DIR": f"{self.dir.name}/keys",
            "TESSERA_ACCESS_TOKEN_ALG": alg,
            "TESSERA_RESOURCES": "https://api.example.com",
        }
        env.update(extra or {})
        binary = os.environ.get("TESSERA_BIN", os.path.join(ROOT, "target", "debug", "tessera"))
        self.proc = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if requests.get(f"{self.issuer}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("tessera did not become ready")

    def create_client(self, metadata):
        r = requests.post(f"{self.admin}/admin/clients", json=metadata,
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
        assert r.status_code == 201, r.text
        return r.json()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.dir.cleanup()


@pytest.fixture(scope="module", params=["RS256", "ES256", "EdDSA"])
def tessera(request):
    server = Tessera(request.param)
    server.alg = request.param
    yield server
    server.stop()
