"""Finding elements the way the model names them, and what an element is (role, name, form).

Shared by the propose session, apply's replay and the broker's form login.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page

from bot.families.browser.errors import BrowserError
from bot.families.browser.model import ElementInfo, Target

ACTION_TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 30_000
"""A page load (goto, and the wait in a held-then-released click): a console's page on a
busy host may take longer than finding an element should."""
FORM_INFO_JS = """el => {
  const form = el.form || el.closest('form');
  const type = (el.getAttribute('type') || '').toLowerCase();
  const tag = el.tagName.toLowerCase();
  const submits = !!form && (
    (tag === 'button' && (type === '' || type === 'submit')) ||
    (tag === 'input' && (type === 'submit' || type === 'image')));
  return {
    tag,
    submits,
    method: form ? (el.getAttribute('formmethod') || form.method || 'get') : null,
    action: form ? (el.hasAttribute('formaction') ? el.formAction : form.action) : null,
  };
}"""
_SNAPSHOT_LINE = re.compile(r'^- (?P<role>[\w-]+)(?: "(?P<name>(?:[^"\\]|\\.)*)")?')


def locate(page: Page, target: Target) -> Locator:
    if target.selector:
        return page.locator(target.selector)
    if target.label:
        return page.get_by_label(target.label, exact=True)
    if target.role:
        return page.get_by_role(target.role, name=target.name, exact=True)  # type: ignore[arg-type]
    if target.name:
        return page.get_by_text(target.name, exact=True)
    raise BrowserError("name an element: role (+ name), label or selector")


async def element_info(locator: Locator) -> ElementInfo:
    """Role and accessible name from Playwright's accessibility tree, plus its form."""
    snapshot = await locator.aria_snapshot(timeout=ACTION_TIMEOUT_MS)
    m = _SNAPSHOT_LINE.match(snapshot.strip().splitlines()[0] if snapshot.strip() else "")
    form: dict[str, Any] = await locator.evaluate(FORM_INFO_JS)
    return ElementInfo(
        role=m.group("role") if m else "generic",
        name=(m.group("name") or "").replace('\\"', '"') if m else "",
        tag=str(form["tag"]),
        submits_form=bool(form["submits"]),
        form_method=str(form["method"]).upper() if form["method"] else None,
        form_action=str(form["action"]) if form["action"] else None,
    )


PASSWORD_MASK = "[password field: masked]"
PASSWORD_VALUES_JS = """() => Array.from(document.querySelectorAll('input[type=password]'))
  .map(el => el.value).filter(v => v)"""
PASSWORD_NAMES_JS = """el => Array.from(
  (el.form || el.closest('form') || document).querySelectorAll('input[type=password]'))
  .map(p => p.name).filter(n => n).concat(el.type === 'password' && el.name ? [el.name] : [])"""
_TEXTBOX_VALUE = re.compile(r'^(?P<head>\s*- textbox(?: "(?:[^"\\]|\\.)*")?[^:]*: )(?P<value>.*)$')


async def is_password_field(locator: Locator) -> bool:
    kind: str = await locator.evaluate(
        "el => el.tagName.toLowerCase() + ':' + (el.getAttribute('type') || '').toLowerCase()"
    )
    return kind == "input:password"


async def password_names(locator: Locator) -> list[str]:
    """Names of the password fields in the element's form (the element's own, if it is one)."""
    try:
        names: list[str] = await locator.evaluate(PASSWORD_NAMES_JS)
    except PlaywrightError:
        return []
    return [str(n) for n in names]


async def password_values(page: Page) -> list[str]:
    values: list[str] = await page.evaluate(PASSWORD_VALUES_JS)
    return [str(v) for v in values]


def mask_password_values(snapshot: str, values: list[str]) -> str:
    """Playwright's aria snapshot shows a password field's value as text: masked here,
    so `read` never gives back what a password field holds."""
    if not values:
        return snapshot
    out = []
    for line in snapshot.splitlines():
        m = _TEXTBOX_VALUE.match(line)
        if m is not None and m["value"].strip().strip('"') in values:
            line = m["head"] + PASSWORD_MASK
        out.append(line)
    return "\n".join(out)


def mask_fields(
    form: list[tuple[str, str]] | None, secret: list[str]
) -> list[tuple[str, str]] | None:
    """A held form with its password fields' values masked (the body digest still binds
    them): what the reviewer reads and browser-run.json keeps."""
    if form is None:
        return None
    return [(k, PASSWORD_MASK if k in secret and v else v) for k, v in form]


BOXES_JS = """el => {
  const form = el.form || el.closest('form');
  const box = (node) => {
    const r = node.getBoundingClientRect();
    return {x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
  };
  return {element: box(el), form: form ? box(form) : null};
}"""


async def element_boxes(locator: Locator) -> dict[str, Any] | None:
    """The element's and its form's boxes, in page coordinates (None if it has none)."""
    try:
        boxes: dict[str, Any] = await locator.evaluate(BOXES_JS)
    except PlaywrightError:
        return None
    return boxes
