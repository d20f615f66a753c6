"""Redaction: the one redactor for everything the control plane posts, records or logs.

The first line of defence is that credentials never reach the sandbox or the prompt;
this masks whatever slips through anyway: every secret the host holds (broker
credentials, the bot's own secrets, model keys, SQL DSNs) by value, and well-known
token formats by detect-secrets' maintained patterns. Build it once with
`Redactor.for_host`; records, evidence, comments, check runs, commit messages and
logs all go through the same instance.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import logging
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from bot.core.errors import AgentplaneError

if TYPE_CHECKING:
    from bot.core.policy import Policy

MASK = "[REDACTED]"
MIN_SECRET = 4
"""Shorter values would mask ordinary words; nothing that short is a real secret."""
MIN_GUESSED = 8
"""Values guessed from an env var's name must be longer, since the name may mislead."""

CREDENTIAL_PREFIX = "AGENTPLANE_CREDENTIAL_"
SQL_DSN = re.compile(r"^AGENTPLANE_SQL_[A-Z0-9_]+_DSN$")
BOT_SECRETS = ("AGENTPLANE_WEBHOOK_SECRET", "AGENTPLANE_APP_PRIVATE_KEY", "AGENTPLANE_GITHUB_TOKEN")
SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|ACCESS_KEY|SECRET(?:_KEY)?|TOKEN|PASSWORD)$")
"""Host variables named like a secret (OPENAI_API_KEY, ...): masked even when routing
does not name them, since a model or tool may still have echoed them."""
DIGEST = re.compile(r"(?:sha256:)?[0-9a-f]{40,64}")
"""Digests and commit ids: never masked by pattern, so a record's hashes stay intact."""

# Token formats from detect-secrets: only its detectors of fixed formats. Its keyword and
# entropy detectors flag ordinary code, and IPs are not secrets.
_DETECTORS = (
    "artifactory.ArtifactoryDetector",
    "aws.AWSKeyDetector",
    "azure_storage_key.AzureStorageKeyDetector",
    "basic_auth.BasicAuthDetector",
    "discord.DiscordBotTokenDetector",
    "github_token.GitHubTokenDetector",
    "gitlab_token.GitLabTokenDetector",
    "jwt.JwtTokenDetector",
    "mailchimp.MailchimpDetector",
    "npm.NpmDetector",
    "openai.OpenAIDetector",
    "private_key.PrivateKeyDetector",
    "pypi_token.PypiTokenDetector",
    "sendgrid.SendGridDetector",
    "slack.SlackDetector",
    "square_oauth.SquareOAuthDetector",
    "stripe.StripeDetector",
    "telegram_token.TelegramBotTokenDetector",
    "twilio.TwilioKeyDetector",
)
# Formats detect-secrets 1.5 lacks: GitHub's fine-grained tokens.
_EXTRA = (("GitHub Token", re.compile(r"github_pat_[A-Za-z0-9_]{22,}")),)


_GROUP_IS_SECRET = frozenset({"Basic Auth Credentials", "AWS Access Key", "NPM tokens"})
"""Detectors whose capturing group is the secret itself (a URL's password, the value of
`aws_secret_access_key = "..."`); elsewhere a group is only a prefix, so the whole match goes."""


@dataclass(frozen=True)
class TokenPattern:
    kind: str
    regex: re.Pattern[str]
    by_group: bool


@functools.cache
def token_patterns() -> tuple[TokenPattern, ...]:
    """detect-secrets' patterns, each run on its own: Python's re skips ahead on a pattern's
    literal prefix, which one alternation of them all defeats (15x slower, measured)."""
    import importlib  # detect-secrets takes ~0.2 s to import: only when first needed

    out = []
    for dotted in _DETECTORS:
        module, cls = dotted.rsplit(".", 1)
        detector = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), cls)
        kind = str(detector.secret_type)
        for p in detector.denylist:
            regex = p
            if kind == "Private Key":
                # The header is only where a key starts: mask through its END line (or the
                # end of the text, if the key is cut).
                regex = re.compile(rf"{p.pattern}[\s\S]*?(?:-----END [A-Z0-9 ]*-----|\Z)")
            out.append(TokenPattern(kind, regex, kind in _GROUP_IS_SECRET and p.groups > 0))
    out += [TokenPattern(kind, regex, False) for kind, regex in _EXTRA]
    return tuple(out)


MAX_ZIP_UNPACKED = 512 << 20
"""Traces unpack to a few MB; one that claims more is refused, never unpacked."""


class RedactionError(AgentplaneError):
    pass


class Redactor:
    """Masks known secret values, then token formats. Immutable: widen with `with_secrets`."""

    def __init__(self, secrets: Iterable[str | None] = (), patterns: bool = True) -> None:
        # Longest first, so a secret containing another is masked whole.
        self.secrets: tuple[str, ...] = tuple(
            sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
        )
        self._known = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None
        self._patterns = patterns

    @classmethod
    def for_host(
        cls,
        environ: Mapping[str, str],
        extra_secrets: Iterable[str | None] = (),
        policy: Policy | None = None,
    ) -> Redactor:
        """Everything this host knows that must never be shown: broker credentials (whole
        and their password), the bot's own secrets, model keys routing names
        (`os.environ/NAME`), SQL DSNs and their passwords, and variables named like secrets."""
        return cls([*host_secrets(environ, policy), *extra_secrets])

    def with_secrets(self, extra: Iterable[str | None]) -> Redactor:
        return Redactor([*self.secrets, *extra], self._patterns)

    def __call__(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(MASK, text)
        if not self._patterns or len(text) < MIN_GUESSED:
            return text
        return _mask_tokens(text)

    def known(self, text: str) -> str:
        """Only the known values masked: for text whose token-like parts must stay as they
        are (a browser run's recorded steps, which apply replays)."""
        return text if self._known is None else self._known.sub(MASK, text)

    def zip(self, data: bytes) -> bytes:
        """A zip (a Playwright trace) with the known secrets masked in every text member;
        binary members (screenshots) and the archive's structure are kept, so it still opens.
        A page that showed a secret, or a field the model typed it into, leaves it in the
        trace's network and action logs."""
        if self._known is None:
            return data
        try:
            source = zipfile.ZipFile(io.BytesIO(data))
            infos = source.infolist()
            if sum(i.file_size for i in infos) > MAX_ZIP_UNPACKED:
                raise RedactionError(
                    f"a zip artifact unpacks to over {MAX_ZIP_UNPACKED} bytes: refused, as "
                    "it cannot be checked for secrets"
                )
            members = [(info, source.read(info)) for info in infos]
        except (zipfile.BadZipFile, OSError, ValueError):
            return data  # not a zip after all: stored as it came (binary, never decoded)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as target:
            for info, body in members:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    target.writestr(info, body)
                    continue
                target.writestr(info, self.known(text).encode("utf-8"))
        return out.getvalue()

    def knows(self, text: str) -> bool:
        """Does text hold a secret the control plane knows (not a mere token shape)?"""
        return self._known is not None and self._known.search(text) is not None

    def token_kinds(self, text: str) -> list[str]:
        """The token formats text matches (for flags: names, never values)."""
        return sorted(
            {tp.kind for tp in token_patterns() for m in tp.regex.finditer(text) if not _digest(m)}
        )

    def json(self, value: Any) -> Any:
        """A JSON-shaped value with every string (keys too) redacted, its structure kept.
        Digests and commit ids are left whole, so a record still verifies."""
        if isinstance(value, str):
            return value if DIGEST.fullmatch(value) else self(value)
        if isinstance(value, dict):
            return {self.json(k): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value


def _digest(m: re.Match[str]) -> bool:
    return DIGEST.fullmatch(m.group(0)) is not None


def _mask_tokens(text: str) -> str:
    for tp in token_patterns():
        if tp.regex.search(text) is None:  # the common case: no copy of the text at all
            continue
        text = tp.regex.sub(functools.partial(_mask, tp), text)
    return text


def _mask(tp: TokenPattern, m: re.Match[str]) -> str:
    whole = m.group(0)
    if _digest(m):
        return whole
    if tp.by_group:
        out, at = [], m.start()
        for g in range(1, (m.re.groups or 0) + 1):
            if m.group(g) and m.start(g) >= at:
                out += [m.string[at : m.start(g)], MASK]
                at = m.end(g)
        out.append(m.string[at : m.end()])
        return "".join(out)
    # Some detectors take a delimiter either side (`"AKC..."`): keep those.
    lead = len(whole) - len(whole.lstrip(" \t\n=:\"'"))
    trail = len(whole) - len(whole.rstrip(" \t\n\"'"))
    return whole[:lead] + MASK + whole[len(whole) - trail :]


def host_secrets(environ: Mapping[str, str], policy: Policy | None = None) -> list[str]:
    """Secret values on this host, each with its parts that could leak alone."""
    from bot.families.sql.connections import env_name

    out: list[str] = []
    dsn_vars = {k for k in environ if SQL_DSN.match(k)}
    model_vars: set[str] = set()
    files = [environ.get("AGENTPLANE_APP_PRIVATE_KEY_PATH")]
    if policy is not None:
        for name, conn in policy.sql_connections.items():
            dsn_vars.add(conn.dsn_env or env_name(name))
            files.append(conn.secrets_file)
        for entry in policy.models.entries():
            model_vars |= _env_refs(entry.litellm_params)
            out += _literal_keys(entry.litellm_params)
    for name, value in environ.items():
        if not value:
            continue
        if name.startswith(CREDENTIAL_PREFIX):
            # user:password@https://origin: the password alone leaks as much as the whole,
            # and so does HTTP Basic's token for it (base64 of user:password), which every
            # request Chromium sends with the credential carries (a HAR, a trace).
            userinfo = value.rpartition("@")[0]
            password = userinfo.partition(":")[2]
            out += [value, password, *_basic_tokens(userinfo), *_encodings(password)]
        elif name == BOT_SECRETS[0]:
            out += [s.strip() for s in value.split(",")]
        elif name in BOT_SECRETS or name in model_vars:
            out.append(value)
        elif name in dsn_vars:
            out += _dsn_secrets(value)
        elif SECRET_NAME.search(name) and len(value) >= MIN_GUESSED and not value.isspace():
            out.append(value)
    for path in filter(None, files):
        try:
            # The host's own configuration (policy from the default branch), not the repo's.
            text = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError):
            continue  # resolve() reports an unreadable secrets file where it is used
        out += _dsn_secrets(text)  # the whole text, and a DSN's password if it is one
    return out


def _encodings(password: str) -> list[str]:
    """The password as a form body, a URL and HTML spell it: the broker types a form
    credential into its login form, and a page or a log may echo it back so."""
    if not password:
        return []
    forms = {
        quote_plus(password),
        quote_plus(password, safe="*").replace("~", "%7E"),  # a browser's form encoding
        quote(password, safe=""),
        html.escape(password),
        json.dumps(password)[1:-1],
    }
    return sorted(forms - {password})


def _basic_tokens(userinfo: str) -> list[str]:
    """`Authorization: Basic` tokens of user:password, with and without base64 padding
    (a token cut at its padding still decodes)."""
    if ":" not in userinfo:
        return []
    token = base64.b64encode(userinfo.encode()).decode()
    return [token, token.rstrip("=")]


def _dsn_secrets(dsn: str) -> list[str]:
    from bot.core.policy import SqlConnectionPolicy
    from bot.families.sql.connections import SqlConnection  # psycopg: only when needed

    return SqlConnection("", SqlConnectionPolicy.model_validate({}), "", dsn.strip()).secrets()


def _env_refs(params: Any) -> set[str]:
    """litellm's `os.environ/NAME` references, anywhere in a deployment's params."""
    if isinstance(params, str):
        return {params.removeprefix("os.environ/")} if params.startswith("os.environ/") else set()
    if isinstance(params, dict):
        return set().union(*(_env_refs(v) for v in params.values()))
    if isinstance(params, list):
        return set().union(*(_env_refs(v) for v in params))
    return set()


def _literal_keys(params: Mapping[str, Any]) -> list[str]:
    """A key written into policy itself (not via os.environ/) is a secret all the same."""
    return [
        v
        for k, v in params.items()
        if isinstance(v, str)
        and not v.startswith("os.environ/")
        and re.search(r"key|token|secret|password", k, re.IGNORECASE)
    ]


class RedactingFilter(logging.Filter):
    """Rewrites each log record's message (and traceback) through the redactor."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def redact_logs(redact: Redactor, prefix: str = "agentplane") -> RedactingFilter:
    """Install the filter on every `agentplane*` logger and on the root's handlers.

    A logger's filter does not see its children's records, hence each logger by name;
    the root's handlers catch records of libraries (litellm, PyGithub) too."""
    flt = RedactingFilter(redact)
    names = [n for n in logging.Logger.manager.loggerDict if n.split(".")[0] == prefix]
    for name in {prefix, *names}:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(old)
        logger.addFilter(flt)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(flt)
    return flt
