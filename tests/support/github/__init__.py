"""A GitHub test double: a real HTTP server on loopback, held to GitHub's OpenAPI description.

Every request is routed by the spec's own path templates and validated against
the operation's parameters and request body; every response the double builds
is validated against the operation's response schema. Anything off-spec
answers 500 and lands in `violations`, which the fixture asserts is empty, so
neither the bot nor the double can drift from the real API unnoticed.

Repositories are real bare git repositories: the bot clones and pushes to
them, and a pull request's head sha is whatever its branch tip is right now.
"""

from __future__ import annotations

from .helpers import b64, jwt_claims, paginate, quote_path
from .objects import Objects
from .payloads import (
    SKIPPED_WEBHOOK_EXAMPLES,
    WEBHOOK_EXAMPLES,
    WEBHOOK_SCHEMA,
    PayloadBuilder,
    sign,
)
from .routes import ROUTES, Context, Result, route
from .server import GitHubDouble
from .state import (
    APP_EVENTS,
    APP_PERMISSIONS,
    DOCS,
    PREFIX,
    ROLE,
    SECONDARY_RATE_LIMIT,
    Comment,
    Delivery,
    Event,
    Fault,
    HTTPError,
    Pull,
    Recorded,
    Repo,
    RepoPaths,
    Review,
    Token,
    now,
)

__all__ = [
    "APP_EVENTS",
    "APP_PERMISSIONS",
    "DOCS",
    "PREFIX",
    "ROLE",
    "ROUTES",
    "SECONDARY_RATE_LIMIT",
    "SKIPPED_WEBHOOK_EXAMPLES",
    "WEBHOOK_EXAMPLES",
    "WEBHOOK_SCHEMA",
    "Comment",
    "Context",
    "Delivery",
    "Event",
    "Fault",
    "GitHubDouble",
    "HTTPError",
    "Objects",
    "PayloadBuilder",
    "Pull",
    "Recorded",
    "Repo",
    "RepoPaths",
    "Result",
    "Review",
    "Token",
    "b64",
    "jwt_claims",
    "now",
    "paginate",
    "quote_path",
    "route",
    "sign",
]
