"""A real console for browser tests: a small Django project with the stock admin, served by
`manage.py runserver` (HTTP/1.1, keep-alive) on 127.0.0.1.

Built in the test's own directory: settings, a SQLite database migrated fresh, a
superuser whose password is the test's canary, and one user (bob) to edit. A witness
middleware appends `METHOD path status` for every request the server answers, so a test
counts from the server's side what reached it. The admin logs in with a form (session
cookie, CSRF token per form), as most consoles do.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SETTINGS = """
SECRET_KEY = "agentplane-test-only-not-a-secret-0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "witness.Witness",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
STATIC_URL = "/static/"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""
URLS = """
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
"""
WITNESS = """
from pathlib import Path

LOG = Path(__file__).with_name("witness.log")


class Witness:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        with LOG.open("a") as log:
            log.write(f"{request.method} {request.path} {response.status_code}\\n")
        return response
"""
USERS = """
from django.contrib.auth.models import User
User.objects.create_superuser("admin", "admin@example.com", {password!r})
User.objects.create_user("bob", "bob@example.com", "bob-own-password-1")
"""

LOGIN_FORM = """
form:
  url: /admin/login/
  username: {label: "Username:"}
  password: {label: "Password:"}
  submit: {role: button, name: Log in}
  success: {url: "/admin/*", text: Site administration}
"""
"""Policy's entry for the admin's credential: Django's own login form."""


@dataclass
class DjangoSite:
    root: Path
    password: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _manage(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            check=True,
            capture_output=True,
            input=stdin.encode() if stdin else None,
            timeout=120,
        )

    def build(self) -> DjangoSite:
        self.root.mkdir(parents=True, exist_ok=True)
        files = {
            "settings.py": SETTINGS,
            "urls.py": URLS,
            "witness.py": WITNESS,
            "manage.py": "import sys\nfrom django.core.management import execute_from_command_line"
            "\nexecute_from_command_line(sys.argv)\n",
        }
        for name, text in files.items():
            (self.root / name).write_text(textwrap.dedent(text))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AGENTPLANE_")},
            "DJANGO_SETTINGS_MODULE": "settings",
            "PYTHONPATH": str(self.root),
        }
        self._manage("migrate", "-v0")
        self._manage("shell", "-c", USERS.format(password=self.password))
        return self

    def start(self) -> DjangoSite:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # Without --insecure, DEBUG off: no CSS or JS (their requests answer 404 at
        # once), so each page is one request, and a loaded machine still serves it in
        # time. The forms, cookies, CSRF and redirects are the admin's own.
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/admin/login/", timeout=2).close()
                (self.root / "witness.log").unlink(missing_ok=True)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("Django's runserver did not answer in 30 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def reset(self) -> None:
        """A fresh witness log and bob's own email, for the next test on this server."""
        (self.root / "witness.log").unlink(missing_ok=True)
        self.db("update auth_user set email = 'bob@example.com' where username = 'bob'")

    def log(self) -> list[str]:
        """`METHOD path status`, one per request the server answered, in order."""
        path = self.root / "witness.log"
        return path.read_text().splitlines() if path.exists() else []

    def db(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.root / "db.sqlite3") as conn:
            return list(conn.execute(sql, args))

    def email_of(self, username: str) -> str:
        ((email,),) = self.db("select email from auth_user where username = ?", username)
        return str(email)

    def user_id(self, username: str) -> int:
        ((uid,),) = self.db("select id from auth_user where username = ?", username)
        return int(str(uid))

    def session_keys(self) -> list[str]:
        return [str(k) for (k,) in self.db("select session_key from django_session")]
