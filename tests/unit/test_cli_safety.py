"""What commands print or write from data others control: escaped, redacted, contained."""

from __future__ import annotations

import pytest

from broker.cli.common import printable
from broker.errors import BrokerError
from broker.store.connection import redact_url
from broker.store.mapping_versions import check_file_name


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Müller^Jürgen", "Müller^Jürgen"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("line\rover", "line\\x0dover"),
        ("bell\x07", "bell\\x07"),
        ("c1\x9bcsi", "c1\\x9bcsi"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
        ("tab\tsep", "tab\\x09sep"),
    ],
)
def test_printable_escapes_control_and_format_characters(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
        ("rediss://:pw@host", "rediss://:***@host"),
        ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
        ("unix:///run/r.sock?db=0&Password=pw", "unix:///run/r.sock?db=0&Password=***"),
        (
            "redis://u:pw@host/0?ssl_cert_reqs=none&token=t",
            "redis://u:***@host/0?ssl_cert_reqs=none&token=***",
        ),
        ("unix:///tmp/x.sock", "unix:///tmp/x.sock"),
    ],
)
def test_redact_url_hides_every_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
    assert "pw" not in redact_url(url).replace("passw", "")


@pytest.mark.parametrize("name", ["orders.yaml", "adt.yaml", "site-2_ct.v2.yaml"])
def test_plain_mapping_file_names_are_allowed(name: str) -> None:
    assert check_file_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["../evil.yaml", "/etc/cron.d/x.yaml", "sub/dir.yaml", ".hidden.yaml", "a..b.yaml",
     "orders.yml", "orders.yaml\n", "C:\\x.yaml", "", "x" * 101 + ".yaml"],
)  # fmt: skip
def test_names_that_could_leave_the_directory_are_refused(name: str) -> None:
    with pytest.raises(BrokerError, match="is not allowed"):
        check_file_name(name)
