"""The console's forms never send what they hold in an address: a form the page's script
handles is ``method="post"`` (or ``"dialog"``), so a submission before the script runs, or
without it, cannot put a password or a patient's name in a URL, its history or a log."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "broker" / "admin" / "templates"
FORM = re.compile(r"<form\b[^>]*>")
METHOD = re.compile(r'\bmethod="([a-z]+)"')
# forms meant to put their fields in the address: their fields hold no patient data
ADDRESS_FORMS = {("messages.html", "filters")}


def _forms() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(TEMPLATES.glob("*.html")):
        for tag in FORM.findall(path.read_text(encoding="utf-8")):
            ident = re.search(r'\bid="([^"]+)"', tag)
            method = METHOD.search(tag)
            found.append(
                (path.name, ident.group(1) if ident else "", method.group(1) if method else "")
            )
    return found


def test_every_form_posts_or_is_a_dialog_but_the_message_filters() -> None:
    forms = _forms()
    assert len(forms) > 10  # the templates were found
    for name, ident, method in forms:
        if (name, ident) in ADDRESS_FORMS:
            assert method == "get", (name, ident)
        else:
            assert method in ("post", "dialog"), (name, ident, method)


def test_the_message_filters_hold_no_patient_field() -> None:
    text = (TEMPLATES / "messages.html").read_text(encoding="utf-8")
    form = text[
        text.index('<form id="filters"') : text.index("</form>", text.index('id="filters"'))
    ]
    names = set(re.findall(r'\bname="([^"]+)"', form))
    # message header fields, outcome, time and paging only: a new field is added here
    # only if it cannot hold patient data
    assert names == {
        "sender", "facility", "type", "control_id", "outcome", "since", "until", "limit",
        "errors_only", "warnings_only",
    }  # fmt: skip
