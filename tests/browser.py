"""A real browser for the page tests: Debian's headless Chromium, run once per page.

``make test`` installs it (``apt-get install chromium``) when it is missing.  Every run gets a
fresh profile, and the flags that keep Chromium off the network (no background requests,
updates or sync), so a page that loads anything from the internet shows it as missing.

:func:`dump_dom` returns the DOM after the page's scripts ran, :func:`screenshot` a PNG;
:func:`fields` and :func:`rows` read the ``data-field`` / ``data-value`` attributes the pages
put on their figures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html import unescape
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run `make test`, or "
                    "`apt-get install chromium` (Debian)")
    return path


def _run(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def dump_dom(url: str, wait_ms: int | None = None) -> str:
    """The serialised DOM of ``url``; ``wait_ms`` lets timers (a refresh) run that long."""
    extra = (f"--virtual-time-budget={wait_ms}",) if wait_ms else ()
    return _run(url, *extra, "--dump-dom").stdout


def screenshot(url: str, out: Path, size: str = "1280,1600") -> Path:
    """A PNG of ``url`` at ``size`` (width,height)."""
    _run(url, f"--window-size={size}", f"--screenshot={out}")
    assert out.is_file(), f"chromium wrote no screenshot of {url}"
    return out


def distinct_colours(png: Path) -> int:
    from PIL import Image  # pillow comes with matplotlib

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24) or ())


def _attr(tag: str, name: str) -> str | None:
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    return None if found is None else unescape(found.group(1))


def fields(html: str) -> dict[str, str | None]:
    """``data-field`` -> ``data-value`` (None without one) of every tag in ``html``."""
    out = {}
    for tag in re.findall(r"<[a-z]+\b[^>]*\bdata-field=\"[^\"]*\"[^>]*>", html):
        out[_attr(tag, "data-field")] = _attr(tag, "data-value")
    return out


def cells_text(html: str) -> dict[str, str]:
    """``data-field`` -> the text inside each ``td``/``dd`` of ``html`` (tags stripped)."""
    out = {}
    for _tag, name, inner in re.findall(r"<(td|dd)\b[^>]*\bdata-field=\"([^\"]*)\"[^>]*>(.*?)</\1>",
                                       html, flags=re.S):
        out[name] = unescape(re.sub(r"<[^>]+>", "", inner)).strip()
    return out


def rows(html: str, key: str) -> list[tuple[str | None, str]]:
    """``(value of the row's attribute key, the row's inner HTML)`` of every ``<tr key=...>``."""
    return [(_attr(tag, key), inner)
            for tag, inner in re.findall(rf"(<tr\b[^>]*\b{key}=\"[^\"]*\"[^>]*>)(.*?)</tr>", html,
                                         flags=re.S)]


def section(html: str, ident: str) -> str:
    """The inner HTML of the element with ``id=ident`` (a ``section`` of the page)."""
    found = re.search(rf'<section\b[^>]*\bid="{ident}"[^>]*>(.*?)</section>', html, flags=re.S)
    assert found, f"no section #{ident} in the page"
    return found.group(1)
