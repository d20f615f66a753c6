"""Build the Docker sandbox images offline, from this host's own files.

No registry is needed. The base image (`IMAGE`) is assembled from the host's
binaries (each with the shared libraries `ldd` says it needs) and Debian's python3
standard library, then built `FROM scratch`. The browser image (`BROWSER_IMAGE`) is
built `FROM` the base and adds Debian's Chromium: its /usr/lib/chromium tree, the
libraries that tree needs, the NSS modules Chromium dlopens, fontconfig and fonts.

A digest of every source file's path, size and mtime (and, for the browser, the
base image's id) labels each image, so a rebuild happens only when the inputs
changed and an up-to-date image costs one stat walk (`python -m bot.adapters.sandbox.image`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bot.core.errors import SandboxError

IMAGE = os.environ.get("AGENTPLANE_SANDBOX_IMAGE", "agentplane-sandbox:local")
BROWSER_IMAGE = os.environ.get("AGENTPLANE_BROWSER_IMAGE", "agentplane-browser:local")
DIGEST_LABEL = "agentplane.rootfs-digest"
BUILDER_VERSION = "1"

_COMMANDS = """
sh dash bash cat ls head tail tr env sleep touch mkdir rm rmdir mv cp ln true false id wc
sort uniq cut stat chmod pwd readlink realpath uname tee seq yes nohup date basename dirname
dd df du timeout printf echo test expr find xargs grep sed diff cmp python3 python3.11
prlimit mount umount unshare setpriv nsenter kill ps pgrep whoami
"""
COMMANDS = tuple(_COMMANDS.split())
"""What a tool call can run; `mount`, `unshare` and friends so the escape suite can try."""
PYTHON_STDLIB = Path("/usr/lib/python3.11")
_SKIP_STDLIB = frozenset({"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "__pycache__"})
PYTHON_WHEELS = Path(sysconfig.get_config_var("WHEEL_PKG_DIR") or "/usr/share/python-wheels")
"""The pip and setuptools wheels ensurepip installs from (Debian keeps them out of the
stdlib): with them `python3 -m venv` makes a venv with pip offline, as under bwrap."""
_ETC = {
    "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}
DOCKERFILE = f"""FROM scratch
COPY rootfs/ /
LABEL {DIGEST_LABEL}=@DIGEST@
USER 65534:65534
WORKDIR /workspace
CMD ["sleep", "infinity"]
"""
ROOT_DIRS = ("tmp", "workspace", "proc", "dev", "sys", "etc", "usr/lib64")

CHROMIUM_DIR = Path("/usr/lib/chromium")
CHROMIUM = CHROMIUM_DIR / "chromium"
"""The browser binary itself; /usr/bin/chromium is Debian's wrapper script."""
LIBDIR = Path("/usr/lib", sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
_DLOPENED = """
libsoftokn3.so libsoftokn3.chk libfreebl3.so libfreebl3.chk libfreeblpriv3.so
libfreeblpriv3.chk libnssckbi.so libnssdbm3.so libnssdbm3.chk
"""
DLOPENED = tuple(_DLOPENED.split())
"""NSS's modules (and their FIPS checksums) that Chromium dlopens, so `ldd` never lists
them; looked up in LIBDIR and LIBDIR/nss."""
GSCHEMAS = Path("/usr/share/glib-2.0/schemas/gschemas.compiled")
"""GLib's compiled settings schemas: without them GIO logs a CRITICAL as Chromium starts."""
BROWSER_TREES = (CHROMIUM_DIR, Path("/etc/fonts"), Path("/usr/share/fonts"))
"""Copied whole; fontconfig's configuration and fonts so that pages render text."""
FC_CACHE = Path("/usr/bin/fc-cache")
"""fontconfig's cache builder, run once at build time: without a system cache every
Chromium start scans every font (about 0.25 s) into a throwaway user cache."""
BROWSER_DOCKERFILE = f"""FROM @BASE@
COPY rootfs/ /
USER 0:0
RUN ["/usr/bin/mkdir", "-p", "/var/cache/fontconfig"]
RUN ["{FC_CACHE}", "--system-only"]
USER 65534:65534
LABEL {DIGEST_LABEL}=@DIGEST@
"""
_LDD_PATH = re.compile(r"(/\S+) \(0x")


def _usr(path: Path) -> Path:
    """The path under /usr on merged-/usr hosts, where /lib, /bin are symlinks."""
    return Path(os.path.realpath(path.parent)) / path.name


def _libraries(binary: Path) -> set[Path]:
    done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    return {Path(m.group(1)) for m in _LDD_PATH.finditer(done.stdout)}


def _closure(elves: Iterable[Path]) -> dict[str, Path]:
    """rootfs path -> host file, for every shared library the ELF files need."""
    return {str(_usr(lib)): Path(os.path.realpath(lib)) for e in elves for lib in _libraries(e)}


def _walk(root: Path, skip: frozenset[str] = frozenset()) -> Iterator[Path]:
    """Every file under root, except in directories named in skip."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in sorted(filenames):
            yield Path(dirpath, name)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def sources() -> dict[str, Path]:
    """rootfs path -> host file, for every file the base image holds."""
    files: dict[str, Path] = {}
    elves: list[Path] = []
    for name in COMMANDS:
        found = shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin")
        if found is None:
            continue  # optional tools; python3 and sh are checked below
        files[str(_usr(Path(found)))] = Path(os.path.realpath(found))
        elves.append(Path(found))
    if "/usr/bin/python3" not in files or "/usr/bin/sh" not in files:
        raise SandboxError("the sandbox image needs /usr/bin/python3 and /bin/sh on this host")
    for path in _walk(PYTHON_STDLIB, _SKIP_STDLIB):
        files[str(path)] = path
        if path.name.endswith(".so"):
            elves.append(path)
    if PYTHON_WHEELS.is_dir():
        files.update((str(path), path) for path in _walk(PYTHON_WHEELS))
    files.update(_closure(elves))
    return dict(sorted(files.items()))


def browser_sources() -> dict[str, Path]:
    """rootfs path -> host file, for everything Chromium needs (base files included)."""
    if not CHROMIUM.is_file():
        raise SandboxError(f"the browser image needs Debian's chromium package ({CHROMIUM})")
    files: dict[str, Path] = {}
    for tree in BROWSER_TREES:
        for path in _walk(tree):
            real = Path(os.path.realpath(path))  # fontconfig's conf.d is all symlinks
            if real.is_file():
                files[str(path)] = real
    if not FC_CACHE.is_file():
        raise SandboxError(f"the browser image needs Debian's fontconfig package ({FC_CACHE})")
    optional = [*(d / name for name in DLOPENED for d in (LIBDIR, LIBDIR / "nss")), GSCHEMAS]
    files.update((str(path), path) for path in optional if path.is_file())
    files[str(FC_CACHE)] = FC_CACHE
    files.update(_closure(Path(src) for src in files.values() if _is_elf(src)))
    return dict(sorted(files.items()))


@dataclass(frozen=True)
class Flavour:
    """One image this module builds."""

    tag: str
    dockerfile: str
    """With @DIGEST@ for the digest label and @BASE@ for the base image's id."""
    sources: Callable[[], dict[str, Path]]
    base: Flavour | None = None
    """Built first and used as `FROM`; its files are not copied again. Without a base
    the image is `FROM scratch` and gets the root skeleton (ROOT_DIRS, _ETC, links)."""


SANDBOX = Flavour(IMAGE, DOCKERFILE, sources)
BROWSER = Flavour(BROWSER_IMAGE, BROWSER_DOCKERFILE, browser_sources, base=SANDBOX)


def digest(files: dict[str, Path], flavour: Flavour = SANDBOX, base_id: str = "") -> str:
    h = hashlib.sha256(f"{BUILDER_VERSION}\n{flavour.dockerfile}\n{ROOT_DIRS}\n{_ETC}".encode())
    h.update(base_id.encode())  # a rebuilt base is built upon again
    for dest, src in files.items():
        st = src.stat()
        h.update(f"{dest}\0{src}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _dir(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info


def _skeleton(tar: tarfile.TarFile) -> None:
    """What a `FROM scratch` root needs besides files: directories, links, /etc."""
    for d in ROOT_DIRS:
        tar.addfile(_dir(f"rootfs/{d}", 0o1777 if d == "tmp" else 0o755))
    for link in ("bin", "sbin", "lib", "lib64"):
        if os.path.islink(f"/{link}"):
            info = tarfile.TarInfo(f"rootfs/{link}")
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(f"/{link}")
            tar.addfile(info)
    for name, text in _ETC.items():
        data = text.encode()
        info = tarfile.TarInfo(f"rootfs/etc/{name}")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def _context(
    files: dict[str, Path], dockerfile: str, skeleton: bool, out: io.BufferedRandom
) -> None:
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        if skeleton:
            _skeleton(tar)
        for dest, src in files.items():
            info = tar.gettarinfo(str(src), arcname="rootfs" + dest)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with src.open("rb") as fh:
                tar.addfile(info, fh)


@dataclass(frozen=True)
class Built:
    tag: str
    id: str
    files: dict[str, Path]
    """Every file the image holds, its base's included."""


def _ensure(api: object, flavour: Flavour, log: bool) -> list[Built]:
    """Ensure flavour's base, then flavour itself; one entry per image, base first."""
    import docker
    import docker.errors

    assert isinstance(api, docker.DockerClient)
    chain = [] if flavour.base is None else _ensure(api, flavour.base, log)
    below, base_id = (chain[-1].files, chain[-1].id) if chain else ({}, "")
    files = {dest: src for dest, src in flavour.sources().items() if dest not in below}
    want = digest(files, flavour, base_id)
    old = None
    try:
        have = api.images.get(flavour.tag)
        if have.labels.get(DIGEST_LABEL) in (want, None):
            # up to date, or built by the user (Dockerfile.debian)
            return [*chain, Built(flavour.tag, str(have.id), below | files)]
        old = have.id
    except docker.errors.ImageNotFound:
        pass
    dockerfile = flavour.dockerfile.replace("@DIGEST@", want).replace("@BASE@", base_id)
    with tempfile.TemporaryFile() as ctx:
        _context(files, dockerfile, flavour.base is None, ctx)
        ctx.seek(0)
        try:
            image, _logs = api.images.build(
                fileobj=ctx, custom_context=True, tag=flavour.tag, rm=True, pull=False
            )
        except docker.errors.BuildError as exc:
            raise SandboxError(f"building the image {flavour.tag} failed: {exc}") from exc
    if old is not None and old != image.id:
        # The superseded build: left alone if a container (or a child image) still uses it.
        with contextlib.suppress(docker.errors.APIError):
            api.images.remove(old)
    if log:
        print(f"built {flavour.tag} ({len(files)} files, digest {want})", file=sys.stderr)
    return [*chain, Built(flavour.tag, str(image.id), below | files)]


def _client(client: object | None) -> object:
    import docker

    return client if client is not None else docker.from_env()


def ensure_image(client: object | None = None, tag: str = IMAGE, *, log: bool = False) -> str:
    """Build the base image unless one with the same inputs exists; returns its id."""
    return _ensure(_client(client), replace(SANDBOX, tag=tag), log)[-1].id


def ensure_browser_image(client: object | None = None, *, log: bool = False) -> str:
    """Build the base, then the browser image, each unless up to date; the browser's id."""
    return _ensure(_client(client), BROWSER, log)[-1].id


def main() -> None:
    """Build both images, base first; just the base if Chromium is not installed."""
    have_chromium = CHROMIUM.is_file()
    for built in _ensure(_client(None), BROWSER if have_chromium else SANDBOX, log=True):
        print(f"{built.tag} {built.id}")
    if not have_chromium:
        print(f"{CHROMIUM} not found; skipped the browser image {BROWSER_IMAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
