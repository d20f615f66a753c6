"""A per-run certificate authority, so the egress proxy can read HTTPS requests.

The proxy terminates each CONNECT it intercepts with a leaf certificate for the
name it checked, issued by this CA, and opens its own verified TLS connection
upstream. Only the sandboxed Chromium trusts it, and only by the leaf key's SPKI
(`--ignore-certificate-errors-spki-list`), so no trust store anywhere changes. Every
leaf shares one key: Chromium matches the SPKI against the served chain, and one
published digest then covers every name of the run.

The keys live in this process's memory; PEM files exist only for the moment
`ssl` needs them to load a chain, in a 0700 directory of the host's own, never in
anything bound into a sandbox.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import ssl
import tempfile
import threading
import weakref
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.core.errors import SandboxError

_LIFETIME = datetime.timedelta(days=2)
_SKEW = datetime.timedelta(hours=1)
_ALPN = ["http/1.1"]  # the proxy parses HTTP/1.1 only; h2 would be opaque to it


_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class RunCA:
    """Made per run with create(); close() (or garbage collection) removes its directory."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        cert: x509.Certificate,
        leaf_key: ec.EllipticCurvePrivateKey,
        upstream_cafile: str | None,
    ) -> None:
        self._key = key
        self._cert = cert
        self._leaf_key = leaf_key
        self._upstream_cafile = upstream_cafile
        self._dir = tempfile.mkdtemp(prefix="agentplane-ca-")
        os.chmod(self._dir, 0o700)
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._leaves: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(cls, upstream_cafile: str | Path | None = None) -> RunCA:
        """A fresh CA and leaf key. upstream_cafile adds roots the proxy trusts upstream
        besides the system store (a test's local HTTPS server)."""
        if upstream_cafile is not None and not Path(upstream_cafile).is_file():
            raise SandboxError(f"upstream CA file {upstream_cafile} does not exist")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name(f"agentplane run CA {secrets.token_hex(8)}")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        cafile = None if upstream_cafile is None else str(upstream_cafile)
        return cls(key, cert, ec.generate_private_key(ec.SECP256R1()), cafile)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (public): for a client that trusts by CA rather than by SPKI."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def spki_sha256_b64(self) -> str:
        """base64(sha256(SPKI)) of the key every leaf carries, as Chromium's
        --ignore-certificate-errors-spki-list wants it."""
        spki = self._leaf_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")

    def leaf(self, host: str) -> ssl.SSLContext:
        """A server-side context presenting a certificate for host (a checked name, or an
        address rule's `10.0.0.7` / `[fd00::7]`), issued by this CA."""
        with self._lock:
            ctx = self._leaves.get(host)
            if ctx is None:
                ctx = self._leaves[host] = self._issue(host)
            return ctx

    def _issue(self, host: str) -> ssl.SSLContext:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(bare))
        except ValueError:
            san = x509.DNSName(bare)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(bare[:64]))
            .issuer_name(self._cert.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self._key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(_ALPN)

        def only_this_name(_sock: object, name: str | None, _ctx: object) -> int | None:
            # SNI for another name than the one checked: the client means another site.
            if name is None or name.lower().removesuffix(".") == bare.lower():
                return None
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

        ctx.sni_callback = only_this_name
        # ssl loads chains from files only: they live here just long enough to be read.
        fd, path = tempfile.mkstemp(dir=self._dir, suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(chain + _pem_key(self._leaf_key))
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
        return ctx

    def upstream(self) -> ssl.SSLContext:
        """A client context for the proxy's own connection upstream: the system's roots
        (plus upstream_cafile), host name checked."""
        ctx = ssl.create_default_context(cafile=self._upstream_cafile)
        if self._upstream_cafile is not None:
            ctx.load_default_certs()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(_ALPN)
        return ctx

    def close(self) -> None:
        self._cleanup()
