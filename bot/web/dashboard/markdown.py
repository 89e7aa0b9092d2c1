"""Just enough Markdown for docs/rates.md on the dashboard: every character escaped first."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

_HEADING = re.compile(r"^(#{1,4})\s+(.*?)\s*#*\s*$")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_SAFE_URL = re.compile(r"^(https?://|/|#|\.{0,2}/?[\w.-]+(#[\w-]*)?$)")


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str


def slug(text: str) -> str:
    """A heading's anchor: lower case, runs of anything but letters and digits become '-'."""
    return re.sub(r"[^\w]+", "-", text.lower()).strip("-") or "section"


def _inline(text: str) -> str:
    html = escape(text, quote=True)
    html = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html)
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    html = _EM.sub(r"<em>\1</em>", html)

    def link(match: re.Match[str]) -> str:
        url = match.group(2)
        if not _SAFE_URL.match(url):
            return match.group(0)
        return f'<a href="{url}">{match.group(1)}</a>'

    return _LINK.sub(link, html)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def render_markdown(source: str) -> tuple[str, list[Heading]]:
    """HTML for the page and the headings (for anchors the rate tables link to)."""
    out: list[str] = []
    headings: list[Heading] = []
    used: set[str] = set()
    lines = source.splitlines()
    i = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + _inline(" ".join(paragraph)) + "</p>")
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            flush()
            i += 1
            code = []
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            out.append("<pre><code>" + escape("\n".join(code)) + "</code></pre>")
        elif match := _HEADING.match(line):
            flush()
            level, text = len(match.group(1)), match.group(2)
            anchor = base = slug(text)
            n = 1
            while anchor in used:
                n += 1
                anchor = f"{base}-{n}"
            used.add(anchor)
            headings.append(Heading(level, text, anchor))
            out.append(f'<h{level + 1} id="{anchor}">{_inline(text)}</h{level + 1}>')
        elif "|" in line and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            flush()
            head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(line))
            body = []
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])))
                i += 1
            out.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            )
            continue
        elif match := _LIST.match(line):
            flush()
            items = []
            while i < len(lines) and (m := _LIST.match(lines[i])):
                items.append(m.group(1))
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and not _LIST.match(lines[i]):
                    items[-1] += " " + lines[i].strip()
                    i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + "</ul>")
            continue
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
        i += 1
    flush()
    return "\n".join(out), headings
