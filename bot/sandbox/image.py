"""Build the Docker sandbox image offline, from this host's own files.

No registry is needed: the root filesystem is assembled from the host's binaries
(each with the shared libraries `ldd` says it needs) and Debian's python3 standard
library, then built `FROM scratch`. A digest of every source file's path, size and
mtime labels the image, so a rebuild happens only when the inputs changed and
an up-to-date image costs one stat walk (`python -m bot.sandbox.image`).
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
import tarfile
import tempfile
from pathlib import Path

from bot.errors import SandboxError

IMAGE = os.environ.get("AGENTPLANE_SANDBOX_IMAGE", "agentplane-sandbox:local")
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
_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
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
_LDD_PATH = re.compile(r"(/\S+) \(0x")


def _usr(path: Path) -> Path:
    """The path under /usr on merged-/usr hosts, where /lib, /bin are symlinks."""
    return Path(os.path.realpath(path.parent)) / path.name


def _libraries(binary: Path) -> set[Path]:
    done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    return {Path(m.group(1)) for m in _LDD_PATH.finditer(done.stdout)}


def sources() -> dict[str, Path]:
    """rootfs path -> host file, for every file the image holds."""
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
    for dirpath, dirnames, filenames in os.walk(PYTHON_STDLIB):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_STDLIB)
        for name in filenames:
            path = Path(dirpath, name)
            files[str(path)] = path
            if name.endswith(".so"):
                elves.append(path)
    for elf in elves:
        for lib in _libraries(elf):
            files[str(_usr(lib))] = Path(os.path.realpath(lib))
    return dict(sorted(files.items()))


def digest(files: dict[str, Path]) -> str:
    h = hashlib.sha256(f"{BUILDER_VERSION}\n{DOCKERFILE}\n{ROOT_DIRS}\n{_ETC}".encode())
    for dest, src in files.items():
        st = src.stat()
        h.update(f"{dest}\0{src}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _dir(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info


def _context(files: dict[str, Path], tag: str, out: io.BufferedRandom) -> None:
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = DOCKERFILE.replace("@DIGEST@", tag).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
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
        for dest, src in files.items():
            info = tar.gettarinfo(str(src), arcname="rootfs" + dest)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with src.open("rb") as fh:
                tar.addfile(info, fh)


def ensure_image(client: object | None = None, tag: str = IMAGE, *, log: bool = False) -> str:
    """Build the image unless one with the same inputs exists; returns its id."""
    import docker
    import docker.errors

    api = client if client is not None else docker.from_env()
    assert isinstance(api, docker.DockerClient)
    files = sources()
    want = digest(files)
    old = None
    try:
        have = api.images.get(tag)
        if have.labels.get(DIGEST_LABEL) in (want, None):
            return str(have.id)  # up to date, or built by the user (Dockerfile.debian)
        old = have.id
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryFile() as ctx:
        _context(files, want, ctx)
        ctx.seek(0)
        try:
            image, _logs = api.images.build(
                fileobj=ctx, custom_context=True, tag=tag, rm=True, pull=False
            )
        except docker.errors.BuildError as exc:
            raise SandboxError(f"building the sandbox image {tag} failed: {exc}") from exc
    if old is not None and old != image.id:
        # The superseded build: left alone if a container still uses it.
        with contextlib.suppress(docker.errors.APIError):
            api.images.remove(old)
    if log:
        print(f"built {tag} ({len(files)} files, digest {want})", file=sys.stderr)
    return str(image.id)


if __name__ == "__main__":
    image_id = ensure_image(log=True)
    print(f"{IMAGE} {image_id}")
