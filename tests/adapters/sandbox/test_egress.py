"""The egress allowlist: rules, the proxy on its own, and the proxy as each sandbox's only way out.

Every server here listens on 127.0.0.1; names are resolved by the proxy (from
/etc/hosts, or by a scripted resolver), and 127.0.0.1 is reachable only when a test
opts in with egress_private_ok, as no job's allowlist can.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.sandbox.egress import Allowlist, normalise_host, parse_rule
from bot.adapters.sandbox.proxy import EgressProxy
from bot.adapters.sandbox.spec import ExecResult, Limits, SandboxBackend, SandboxSpec
from bot.core.errors import SandboxError

LOCAL = ("127.0.0.1/32",)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the origin\n" * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def origin() -> Iterator[int]:
    yield from _serve()


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    yield from _serve(ctx)


# --- rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "[::1]", "::ffff:7f00:1",
     "017700000001", "", "a..b", "exa mple.com", "*.example.com"],
)  # fmt: skip
def test_ip_literals_and_junk_are_not_names(host: str) -> None:
    assert normalise_host(host) is None


def test_rules_exact_wildcard_and_ports() -> None:
    allow = Allowlist(["example.com", "*.pypi.org:443", "api.test:8443"])
    assert allow.check_name("Example.COM.", 443).allowed
    assert allow.check_name("example.com", 80).allowed
    assert not allow.check_name("example.com", 22).allowed
    assert not allow.check_name("www.example.com", 443).allowed
    assert allow.check_name("files.pypi.org", 443).allowed
    assert allow.check_name("a.b.pypi.org", 443).allowed
    assert not allow.check_name("pypi.org", 443).allowed  # *.x is subdomains only
    assert not allow.check_name("evilpypi.org", 443).allowed
    assert not allow.check_name("files.pypi.org", 80).allowed
    assert allow.check_name("api.test", 8443).rule == "allow_domains[2]=api.test:8443"
    assert allow.check_name("other.test", 443).rule == "default-deny"


def test_address_rules_match_one_canonical_address() -> None:
    allow = Allowlist(["10.0.0.7", "[fd00::7]:8443", "10.0.0.8:*", "any.test:*"])
    assert allow.check_name("10.0.0.7", 443).rule == "allow_domains[0]=10.0.0.7"
    assert not allow.check_name("10.0.0.7", 8080).allowed  # no port: 80 and 443, as names
    assert allow.check_name("[fd00::7]", 8443).allowed
    assert allow.check_name("10.0.0.8", 5432).allowed and allow.check_name("any.test", 22).allowed
    for other in ("10.0.0.9", "010.0.0.7", "10.7", "167772167", "[fd00:0::7]", "fd00::7"):
        assert not allow.check_name(other, 443).allowed, other
    # A name that is spelled like an address never matches a name rule, nor the reverse.
    assert not Allowlist(["any.test:*"]).check_name("10.0.0.8", 80).allowed


@pytest.mark.parametrize(
    "rule",
    [
        "1.2.3.4.5",
        "127.1",
        "010.0.0.1",
        "::1",
        "[::1",
        "*",
        "*.com*",
        "a.b:0",
        "a.b:x",
        "*.1.2.3.4",
    ],
)
def test_bad_rules_are_refused(rule: str) -> None:
    with pytest.raises(SandboxError, match="allowed domain"):
        parse_rule(rule)


@pytest.mark.parametrize(
    ("addresses", "ok"),
    [
        (["93.184.216.34"], True),
        (["127.0.0.1"], False),
        (["10.1.2.3"], False),
        (["169.254.169.254"], False),  # cloud metadata
        (["::1"], False),
        (["::ffff:127.0.0.1"], False),
        (["fd00::1"], False),
        (["93.184.216.34", "192.168.1.1"], False),  # one bad answer spoils the lot
    ],
)
def test_only_public_addresses(addresses: list[str], ok: bool) -> None:
    assert Allowlist([]).check_addresses(addresses).allowed is ok


# --- the proxy on its own ----------------------------------------------------


def request(proxy: tuple[str, int], head: str) -> str:
    with socket.create_connection(proxy, timeout=5) as s:
        s.sendall(head.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def test_allowed_request_is_forwarded_and_logged(origin: int) -> None:
    with EgressProxy([f"localhost:{origin}"], private_ok=LOCAL) as proxy:
        addr = proxy.serve_tcp()
        head = f"GET http://localhost:{origin}/x HTTP/1.1\r\nHost: localhost:{origin}\r\n"
        reply = request(addr, head + "Connection: close\r\n\r\n")
    assert reply.startswith("HTTP/1.1 200") and "hello from the origin" in reply
    (event,) = proxy.log
    assert (event.host, event.port, event.decision) == ("localhost", origin, "allow")
    assert event.rule == f"allow_domains[0]=localhost:{origin}" and event.address == "127.0.0.1"
    assert event.bytes_up > 0 and event.bytes_down > 2000
    assert (event.method, event.url) == ("GET", f"http://localhost:{origin}/x")


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("other.test:443", "default-deny"),
        ("127.0.0.1:{port}", "default-deny"),  # an address, and no rule names it
        ("2130706433:{port}", "not-a-dns-name"),
        ("0x7f.1:{port}", "not-a-dns-name"),
        ("[::1]:{port}", "default-deny"),
        ("[::1:{port}", "not-a-dns-name"),
        ("localhost.:{port}", "non-public-address=127.0.0.1"),  # allowed name, private answer
    ],
)
def test_denied_connects_are_refused_and_logged(origin: int, target: str, rule: str) -> None:
    target = target.format(port=origin)
    with EgressProxy([f"localhost:{origin}"]) as proxy:
        reply = request(proxy.serve_tcp(), f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")
    (event,) = proxy.log
    assert reply.startswith("HTTP/1.1 403"), reply
    assert event.decision == "deny" and rule in event.rule
    assert event.bytes_up == event.bytes_down == 0


def test_an_allowed_destination_that_does_not_answer_is_a_502_not_a_denial() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # bound, never listening: connections are refused
        with EgressProxy([f"127.0.0.1:{port}"], private_ok=LOCAL) as proxy:
            head = f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            reply = request(proxy.serve_tcp(), head)
    assert reply.startswith("HTTP/1.1 502"), reply
    (event,) = proxy.log
    assert event.decision == "unreachable" and "connect failed" in event.rule
    assert event.address == "127.0.0.1"


def test_an_address_rule_needs_its_network_opened_too(origin: int) -> None:
    """`127.0.0.1:PORT` is named exactly, yet private: only private_ok lets it through."""
    head = f"GET http://127.0.0.1:{origin}/ HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n"
    head += "Connection: close\r\n\r\n"
    with EgressProxy([f"127.0.0.1:{origin}"]) as closed:
        refused = request(closed.serve_tcp(), head)
    with EgressProxy([f"127.0.0.1:{origin}"], private_ok=LOCAL) as opened:
        fetched = request(opened.serve_tcp(), head)
    assert refused.startswith("HTTP/1.1 403")
    assert closed.log[0].rule.endswith("non-public-address=127.0.0.1")
    assert fetched.startswith("HTTP/1.1 200")
    assert opened.log[0].address == "127.0.0.1" and opened.log[0].decision == "allow"


def test_dns_rebinding_cannot_redirect_the_connection(origin: int) -> None:
    """Resolve once, check, connect to what was checked: a second answer is never used."""
    answers = [["127.0.0.1"], ["10.9.9.9"]]
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    with EgressProxy([f"rebind.test:{origin}"], private_ok=LOCAL, resolve=resolve) as proxy:
        addr = proxy.serve_tcp()
        head = f"GET http://rebind.test:{origin}/ HTTP/1.1\r\nHost: rebind.test:{origin}\r\n"
        first = request(addr, head + "Connection: close\r\n\r\n")
        second = request(addr, head + "Connection: close\r\n\r\n")
    log = proxy.log
    assert first.startswith("HTTP/1.1 200")
    assert second.startswith("HTTP/1.1 403")  # the rebound answer is checked, not trusted
    allowed, denied = sorted(log, key=lambda e: e.decision)
    assert allowed.address == "127.0.0.1" and denied.address == ""
    assert denied.rule.endswith("non-public-address=10.9.9.9")
    assert calls == ["rebind.test", "rebind.test"]  # once per connection, never twice


def test_mixed_answers_are_refused(origin: int) -> None:
    with EgressProxy(
        [f"mixed.test:{origin}"], private_ok=LOCAL, resolve=lambda h, p: ["127.0.0.1", "10.0.0.1"]
    ) as proxy:
        head = f"CONNECT mixed.test:{origin} HTTP/1.1\r\nHost: mixed.test:{origin}\r\n\r\n"
        reply = request(proxy.serve_tcp(), head)
    assert reply.startswith("HTTP/1.1 403")


# --- the proxy as the sandbox's only way out (both backends) -----------------

FETCH = """
import ssl, sys, urllib.request
ctx = ssl._create_unverified_context()
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10, context=ctx) as r:
        print("fetched", r.status, len(r.read()))
except Exception as e:
    print("blocked", type(e).__name__, e)
"""

DIRECT = """
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as e:
    print("blocked", e)
"""


def allowlisted(backend: SandboxBackend, workspace: Path, *domains: str, private: bool = True):  # type: ignore[no-untyped-def]
    spec = SandboxSpec(
        workspace,
        network="allowlist",
        allow_domains=domains,
        egress_private_ok=LOCAL if private else (),
        limits=Limits(wall_seconds=30),
    )
    return backend.start(spec)


def fetch(sb: object, url: str) -> ExecResult:
    result: ExecResult = sb.exec(["python3", "-c", FETCH, url])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result
    return result


@pytest.mark.escape("allowlist: reach a non-allowed name")
def test_sandbox_reaches_allowed_names_only(
    backend: SandboxBackend, workspace: Path, origin: int, tls_origin: int
) -> None:
    with allowlisted(backend, workspace, f"localhost:{origin}", f"localhost:{tls_origin}") as sb:
        http_ok = fetch(sb, f"http://localhost:{origin}/")
        https_ok = fetch(sb, f"https://localhost:{tls_origin}/")
        other = fetch(sb, "https://example.com/")
    log = sb.egress_log()
    assert http_ok.stdout.startswith("fetched 200"), http_ok
    assert https_ok.stdout.startswith("fetched 200"), https_ok
    assert other.stdout.startswith("blocked") and "403" in other.stdout
    assert [(e.host, e.decision, e.method) for e in log] == [
        ("localhost", "allow", "GET"),
        ("localhost", "allow", "CONNECT"),  # a tunnel, not intercepted: judged once
        ("example.com", "deny", "CONNECT"),
    ]
    assert log[1].bytes_down > 2000 and log[2].rule == "default-deny"


@pytest.mark.escape("allowlist: bypass the proxy")
def test_direct_connections_bypassing_the_proxy_fail(
    backend: SandboxBackend, workspace: Path, origin: int
) -> None:
    with allowlisted(backend, workspace, f"localhost:{origin}") as sb:
        control = fetch(sb, f"http://localhost:{origin}/")
        direct = [sb.exec(["python3", "-c", DIRECT, h, str(origin)]) for h in ("127.0.0.1", "::1")]
        internet = sb.exec(["python3", "-c", DIRECT, "1.1.1.1", "443"])
        no_proxy = sb.exec(
            [
                "sh",
                "-c",
                f"unset HTTP_PROXY http_proxy ALL_PROXY; python3 -c '{FETCH}' http://localhost:{origin}/",
            ]
        )
    assert control.stdout.startswith("fetched 200")
    for result in [*direct, internet]:
        assert result.stdout.startswith("blocked"), result
    assert no_proxy.stdout.startswith("blocked"), no_proxy


@pytest.mark.escape("allowlist: IP literal through the proxy")
def test_ip_literals_through_the_proxy_fail(
    backend: SandboxBackend, workspace: Path, origin: int
) -> None:
    with allowlisted(backend, workspace, f"localhost:{origin}") as sb:
        attempts = [
            fetch(sb, f"http://{host}:{origin}/")
            for host in ("127.0.0.1", "2130706433", "0x7f.1", "[::1]", "127.1")
        ]
    log = sb.egress_log()
    for result in attempts:
        assert result.stdout.startswith("blocked"), result
    assert {e.decision for e in log} == {"deny"}


@pytest.mark.escape("allowlist: allowed name resolving inside (rebinding)")
def test_allowed_name_resolving_to_a_private_address_fails(
    backend: SandboxBackend, workspace: Path, origin: int
) -> None:
    # localhost stands in for a rebinding name: allowed by the job, private by DNS.
    with allowlisted(backend, workspace, f"localhost:{origin}", private=False) as sb:
        attempt = fetch(sb, f"http://localhost:{origin}/")
    (event,) = sb.egress_log()
    assert attempt.stdout.startswith("blocked"), attempt
    assert event.decision == "deny" and "non-public-address" in event.rule
