"""The documentation holds together: every relative link in a Markdown file reaches a file of the
repository (and a heading, when it names one), and the README stays short."""

import re
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 10 * 1024

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+).+?\1")
# [text](target "title") and ![alt](target), and reference definitions: [label]: target
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_TARGET = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    """Tracked Markdown files, and new ones not ignored: what a clone will hold."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    return sorted(
        ROOT / name for name in set(listed.split("\0")) if name and (ROOT / name).exists()
    )


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def link_targets(text: str) -> list[str]:
    """Where the links outside code (blocks and spans) point."""
    targets = []
    for line in (CODE_SPAN.sub("", line) for line in prose_lines(text)):
        targets += INLINE_LINK.findall(line) + HTML_TARGET.findall(line)
        if reference := REFERENCE.match(line):
            targets.append(reference.group(1))
    return targets


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text in lower case, without punctuation other than
    hyphens and underscores, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a Markdown file: its headings' slugs (a repeated one gets -1, -2, ...)
    and any explicit `<a id>`."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text()):
        found.update(HTML_ANCHOR.findall(line))
        if heading := HEADING.match(line):
            slug = github_slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in link_targets(path.read_text()):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # another site: not checked offline
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part.split("?")[0])
        if file_part.startswith("/"):
            resolved = root / file_part.lstrip("/")  # GitHub: from the repository's root
        else:
            resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists() or not resolved.is_relative_to(root):
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_readme_stays_short() -> None:
    assert (ROOT / "README.md").stat().st_size <= README_MAX_BYTES


def test_links_are_checked_against_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## How it works (in short)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Page\n\n"
        "[ok](other.md) [ok](other.md#how-it-works-in-short) [ok](#page-1) [ok](https://x.y/z)\n"
        "[bad](missing.md) [bad](other.md#nowhere) `[code](missing.md)`\n"
        "```\n[code block](missing.md)\n```\n"
        "[bad]: gone.md\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "missing.md: no such file",
        "other.md#nowhere: no such heading",
        "gone.md: no such file",
    ]
