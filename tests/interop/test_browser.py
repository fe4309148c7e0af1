"""A real headless Chromium goes through the whole sign-in: the client's
link → Tessera's /authorize → the upstream → Tessera's consent page (saved
as docs/consent.png) → click Allow → the client's redirect URI with a code."""

import os
import shutil
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, Tessera
from fake_upstream import FakeUpstream

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class ClientApp:
    """The relying party's callback: a page that shows what it received."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = b"<!doctype html><title>signed in</title><p id=done>back at the client</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.skipif(not os.path.exists(CHROMEDRIVER), reason="chromium-driver is not installed")
def test_a_person_signs_in_with_a_real_browser():
    upstream = FakeUpstream()
    tessera = Tessera("RS256", extra=upstream.vars())
    client_app = ClientApp()
    profile = tempfile.mkdtemp()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--disable-quic", f"--user-data-dir={profile}", "--window-size=480,800"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        registered = tessera.create_client({"client_name": "Photo Album", "redirect_uris": ["http://127.0.0.1/callback"],
                                            "grant_types": ["authorization_code", "refresh_token"]})
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": registered["client_id"], "redirect_uri": client_app.redirect_uri,
            "scope": "openid profile email", "state": "browser-state", "nonce": "browser-nonce",
            "code_challenge": "jFJ5owK9BMosC5BZe7GT7EBmwJC2OlXa1zyf-EDuX8U", "code_challenge_method": "S256"})
        driver.get(f"{tessera.issuer}/authorize?{query}")
        try:
            allow = WebDriverWait(driver, 15).until(
                lambda d: d.find_element(By.CSS_SELECTOR, 'button[name="decision"][value="allow"]'))
        except Exception as e:
            raise AssertionError(f"no consent page at {driver.current_url}: {driver.page_source[:500]}") from e
        assert "Photo Album" in driver.page_source
        driver.save_screenshot(os.path.join(ROOT, "docs", "consent.png"))
        allow.click()
        try:
            WebDriverWait(driver, 15).until(lambda d: d.current_url.startswith(client_app.redirect_uri))
        except Exception as e:
            raise AssertionError(f"not back at the client: {driver.current_url}: {driver.page_source[:300]}") from e
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(driver.current_url).query))
        assert params["state"] == "browser-state"
        assert params["iss"] == tessera.issuer
        assert len(params["code"]) == 43
    finally:
        driver.quit()
        tessera.stop()
        upstream.stop()
        client_app.server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
