"""Which snapshot links are fetched, and the size limit of a fetch (a loopback server; no internet)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.snapshots import SnapshotFailed, SnapshotRefused, allowed, download

HOSTS = frozenset({"127.0.0.1:8080", "cameras.example"})


@pytest.mark.parametrize(("url", "expected"), [
    ("http://cameras.example/a.jpg", True),
    ("https://CAMERAS.example:8443/x.jpg", True),  # a host entry without a port allows any port
    ("http://127.0.0.1:8080/snap", True),
    ("http://127.0.0.1:8081/snap", False),  # host:port entries allow that port only
    ("http://127.0.0.1/snap", False),
    ("ftp://cameras.example/a.jpg", False),
    ("file:///etc/passwd", False),
    ("http://cameras.example.evil.test/a.jpg", False),
    ("http://evil.test/?u=http://cameras.example/", False),
    ("http://cameras.example@evil.test/a.jpg", False),  # user info is not the host
    ("http://127.0.0.1:99999/x", False),  # a port Python cannot parse
    ("not a url", False),
])
def test_only_http_links_on_the_list_are_fetched(url: str, expected: bool) -> None:
    assert allowed(url, HOSTS) is expected


@given(st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True),
       st.sampled_from(["http", "https"]), st.integers(min_value=1, max_value=65535) | st.none())
def test_a_host_not_on_the_list_is_never_allowed(host: str, scheme: str, port: int | None) -> None:
    url = f"{scheme}://{host}{f':{port}' if port else ''}/snap.jpg"
    on_list = host in HOSTS or (port is not None and f"{host}:{port}" in HOSTS)
    assert allowed(url, HOSTS) is on_list


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"x" * 10_000
            self.send_response(302 if self.path == "/redirect" else 200)
            if self.path == "/redirect":
                self.send_header("Location", "/big")
            if self.path != "/chunked":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_body_over_the_limit_is_refused_whether_declared_or_not(server: str) -> None:
    for path in ("/big", "/chunked"):
        with pytest.raises(SnapshotFailed):
            download(f"http://{server}{path}", hosts={server}, timeout_s=5, max_bytes=2048)
    assert len(download(f"http://{server}/big", hosts={server}, timeout_s=5, max_bytes=20_000)) == 10_000


def test_redirects_are_not_followed_and_other_hosts_are_not_asked(server: str) -> None:
    with pytest.raises(SnapshotFailed, match="HTTP 302"):
        download(f"http://{server}/redirect", hosts={server}, timeout_s=5, max_bytes=20_000)
    with pytest.raises(SnapshotRefused):
        download(f"http://localhost:{server.rsplit(':', 1)[1]}/big", hosts={server}, timeout_s=5, max_bytes=20_000)
