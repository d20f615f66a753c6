"""Before/after pictures of changed sheets, passages and slides, drawn by LibreOffice.

LibreOffice parses the same hostile files, so it runs in a sandbox of its own (started by
this family, as the browser starts Chromium's): no network, no host environment, a uid of
its own, a throwaway profile with macros disabled and link updates off, a wall-clock
limit. Its PNGs come back through safefs and are re-encoded by Pillow (cropped to the ink)
under a pixel cap, so what is stored is a plain image we wrote.

`soffice --convert-to png` draws the first page only, so each picture is of a copy made for
it: the sheet first with a print area over the changed cells (those highlighted), only the
changed passage of a document, only the one slide.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from bot.adapters import safefs
from bot.adapters.sandbox.spec import Limits, SandboxBackend, SandboxSpec
from bot.core.errors import AgentplaneError

RENDER_SECONDS = 90.0
MAX_JOBS = 12
"""Documents drawn per run (each picture is one); the evidence says when more were left."""
MAX_PNG_BYTES = 8 << 20
MAX_PIXELS = 6000 * 6000
INSTALL_HINT = (
    "apt-get install libreoffice-calc-nogui libreoffice-writer-nogui libreoffice-impress-nogui"
)
_CONFIG_DIRS = (Path("/etc/fonts"), Path("/etc/libreoffice"))
"""What LibreOffice reads under /etc (fontconfig, its own registry); the sandbox shows only
a handful of /etc files by default."""

# A fresh profile per render, so nothing (a trusted location, a macro setting) carries
# over; these are the settings that matter for a hostile file. Calc's link modes are
# 0 always, 1 never, 2 on request; Writer's are 0 manual, 1 always, 2 never.
_SCRIPTING = "/org.openoffice.Office.Common/Security/Scripting"
_SETTINGS = (
    (_SCRIPTING, "MacroSecurityLevel", "3"),
    (_SCRIPTING, "DisableMacrosExecution", "true"),
    (_SCRIPTING, "BlockUntrustedRefererLinks", "true"),
    ("/org.openoffice.Office.Calc/Content/Update", "Link", "1"),
    ("/org.openoffice.Office.Writer/Content/Update", "Link", "2"),
)


def profile_settings() -> str:
    """registrymodifications.xcu for the throwaway profile."""
    items = "".join(
        f'<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse">'
        f"<value>{value}</value></prop></item>\n"
        for path, name, value in _SETTINGS
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f"{items}</oor:items>\n"
    )


class RenderFailed(AgentplaneError):
    """LibreOffice could not draw the pictures; the evidence says they are missing."""


@dataclass(frozen=True)
class Job:
    name: str
    """Unique per render, [a-z0-9-]: the input's and the picture's file name."""
    ext: str
    data: bytes
    crop: bool = True


def soffice(environ: Mapping[str, str] = os.environ) -> str | None:
    """LibreOffice's launcher: $AGENTPLANE_SOFFICE, else soffice on PATH; None if absent."""
    found = environ.get("AGENTPLANE_SOFFICE") or shutil.which("soffice")
    return found if found and os.access(found, os.X_OK) else None


def pictures_unavailable(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why this host cannot draw document pictures, or None: for `agentplane doctor`."""
    if soffice(environ) is None:
        return f"LibreOffice is not installed (no soffice on PATH): {INSTALL_HINT}"
    from bot.adapters.sandbox.bwrap import BwrapBackend

    ok, why = BwrapBackend().available()
    return None if ok else f"no bwrap sandbox to draw document pictures in: {why}"


def renderer_label(launcher: str) -> str:
    return f"LibreOffice ({Path(launcher).name}) in a bwrap sandbox, no network, macros off"


def render(jobs: list[Job], launcher: str, backend: SandboxBackend) -> dict[str, bytes]:
    """name -> PNG for every job LibreOffice drew; RenderFailed when it drew none."""
    if not jobs:
        return {}
    real = Path(os.path.realpath(launcher))
    ro = [d for d in _CONFIG_DIRS if d.is_dir()]
    if not real.is_relative_to("/usr"):
        ro.append(real.parent.parent)  # an install outside /usr (/opt/libreoffice...)
    with tempfile.TemporaryDirectory(prefix="agentplane-render-") as tmp:
        ws = Path(tmp)
        (ws / "in").mkdir()
        for job in jobs:
            (ws / "in" / f"{job.name}.{job.ext}").write_bytes(job.data)
        (ws / "profile" / "user").mkdir(parents=True)
        (ws / "profile" / "user" / "registrymodifications.xcu").write_text(profile_settings())
        spec = SandboxSpec(
            ws,
            ("out/", "profile/"),
            limits=Limits(
                cpu_seconds=int(RENDER_SECONDS),
                memory_bytes=2 << 30,
                pids=64,
                wall_seconds=RENDER_SECONDS,
                file_size_bytes=64 << 20,
            ),
            ro_paths=tuple(ro),
        )
        argv = [
            str(real), "--headless", "--invisible", "--nodefault", "--nologo", "--norestore",
            "--nolockcheck", "-env:UserInstallation=file:///workspace/profile",
            "--convert-to", "png", "--outdir", "/workspace/out",
            *(f"in/{job.name}.{job.ext}" for job in jobs),
        ]  # fmt: skip
        try:
            with backend.start(spec) as box:
                result = box.exec(argv, timeout=RENDER_SECONDS)
        except AgentplaneError as exc:
            raise RenderFailed(f"the render sandbox did not start: {exc}") from None
        drawn = _collect(ws, jobs)
    if not drawn:
        if result.timed_out:
            raise RenderFailed(f"LibreOffice did not finish within {RENDER_SECONDS:.0f} s")
        said = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RenderFailed(f"LibreOffice drew nothing (exit {result.exit_code}: {said[0][:200]})")
    return drawn


def _collect(ws: Path, jobs: list[Job]) -> dict[str, bytes]:
    drawn: dict[str, bytes] = {}
    with safefs.root(ws) as fd:
        for job in jobs:
            try:
                data = safefs.read_bytes(fd, f"out/{job.name}.png", MAX_PNG_BYTES + 1)
            except (OSError, safefs.UnsafePath):
                continue  # not drawn, or not a plain file: no picture
            if len(data) <= MAX_PNG_BYTES and (png := cropped(data, job.crop)) is not None:
                drawn[job.name] = png
    return drawn


def cropped(data: bytes, crop: bool = True, margin: int = 12) -> bytes | None:
    """The picture re-encoded, cut to its ink plus a margin when crop; None if it is no
    sane PNG."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG" or img.width * img.height > MAX_PIXELS:
                return None
            # Onto white: a transparent page would turn black without its alpha.
            page = Image.new("RGBA", img.size, "white")
            rgb = Image.alpha_composite(page, img.convert("RGBA")).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    box = ImageOps.invert(rgb.convert("L")).getbbox() if crop else None
    if box is not None:
        left, top, right, bottom = box
        rgb = rgb.crop(
            (
                max(0, left - margin),
                max(0, top - margin),
                min(rgb.width, right + margin),
                min(rgb.height, bottom + margin),
            )
        )
    out = io.BytesIO()
    rgb.save(out, "PNG", optimize=True)
    return out.getvalue()
