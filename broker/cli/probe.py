"""``mwl-broker probe live|ready``: ask the running broker on this host whether it is alive
or ready, for a container's HEALTHCHECK, a Kubernetes exec probe or a monitoring script.

It reads the same settings as ``serve`` (``--config``, the environment) to find the
admin listener (``admin_host``, ``admin_port``; HTTPS with ``admin_tls_cert``) and
asks ``GET /healthz`` (``live``: the process answers) or ``GET /readyz`` (``ready``:
Redis answers, every listener is up, a mapping version is loaded). A listener on every
address (``0.0.0.0``, ``::``) is asked on loopback, so the admin console can stay on
``127.0.0.1`` while the probe runs inside the container or pod. Over HTTPS the
certificate is not checked: the probe talks to a listener of its own host and reads
only the status, and a site's certificate seldom names ``127.0.0.1``.

Exit status 0 when alive (or ready), 1 when not, with the broker's reason on stderr;
2 for a configuration error (no admin listener to ask).
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import sys

from broker.cli.common import Command, Subparsers
from broker.cli.options import command_options, settings_from
from broker.common import jsontext
from broker.errors import ConfigError
from broker.settings import Settings

__all__ = ["COMMAND", "probe_url"]

_PATHS = {"live": "/healthz", "ready": "/readyz"}
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 (asked, never bound)


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "probe",
        parents=[command_options()],
        help="is the broker on this host alive, or ready? (exit status 0 or 1)",
        description=(
            "Ask the running broker's admin listener (admin_host, admin_port) for /healthz "
            "(live) or /readyz (ready). Exit status 0: yes; 1: no, with the reason; 2: no "
            "admin listener configured. For HEALTHCHECK lines and exec probes."
        ),
    )
    p.add_argument("what", choices=sorted(_PATHS), help="live: the process answers; ready: "
                   "Redis, the listeners and a mapping version are there")  # fmt: skip
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (5)")


def probe_url(s: Settings, what: str) -> str:
    """Where the probe asks (``ConfigError`` naming the setting when it cannot)."""
    if not s.admin_enabled:
        raise ConfigError("admin_enabled", "the probe asks the admin listener; it is off")
    if "admin" not in s.roles:
        raise ConfigError(
            "roles", "the probe asks the admin listener; this process has no admin role"
        )
    if s.admin_port == 0:
        raise ConfigError("admin_port", "0 (any free port): the probe cannot know which")
    host = _ANY.get(s.admin_host, s.admin_host)
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if s.admin_tls_cert is not None else "http"
    return f"{scheme}://{host}:{s.admin_port}{_PATHS[what]}"


def run(args: argparse.Namespace) -> int:
    """Ask, print the answer; 0 when alive or ready, 1 when not."""
    url = probe_url(settings_from(args), args.what)
    status, detail = _ask(url, args.timeout)
    if status == 200:
        print(f"{args.what}: yes")
        return 0
    print(f"mwl-broker probe: {args.what}: no ({detail})", file=sys.stderr)
    return 1


def _ask(url: str, timeout: float) -> tuple[int, str]:
    """The answer's status and its reason (a problem's detail, or what failed)."""
    scheme, rest = url.split("://", 1)
    authority, path = rest.split("/", 1)
    host, port = authority.rsplit(":", 1)
    host = host.strip("[]")
    conn: http.client.HTTPConnection
    if scheme == "https":
        unchecked = ssl.create_default_context()
        unchecked.check_hostname = False
        unchecked.verify_mode = ssl.CERT_NONE  # its own host's listener (module docstring)
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=unchecked)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/" + path)
        answer = conn.getresponse()
        body = answer.read(64 * 1024)
    except (OSError, http.client.HTTPException) as e:
        return 0, f"no answer from {url}: {type(e).__name__}"
    finally:
        conn.close()
    if answer.status == 200:
        return 200, ""
    try:
        problem = jsontext.loads(body)
    except ValueError:
        problem = None
    detail = str(problem.get("detail", "")) if isinstance(problem, dict) else ""
    return answer.status, f"HTTP {answer.status}" + (f": {detail}" if detail else "")


COMMAND = Command("probe", add_parser, run)
