"""Small edits of the bundled example register file, for tests that need a variant of it."""

from __future__ import annotations

from pathlib import Path

from annuaire.registre import EXAMPLE_FILE

EXAMPLE_TEXT = EXAMPLE_FILE.read_text(encoding="utf-8")

#: (activity id or None for the top of the file, text to find, replacement)
Edit = tuple[str | None, str, str]


def edited(edits: list[Edit], text: str = EXAMPLE_TEXT) -> str:
    """The example with each edit applied once, inside the ``[[activities]]`` block it names."""
    for activity_id, old, new in edits:
        start, end = _block(text, activity_id)
        block = text[start:end]
        assert block.count(old) == 1, f"{old!r} is not once in the block of {activity_id}"
        text = text[:start] + block.replace(old, new) + text[end:]
    return text


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registre.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _block(text: str, activity_id: str | None) -> tuple[int, int]:
    first = text.index("[[activities]]")
    if activity_id is None:
        return 0, first
    start = text.index(f'\nid = "{activity_id}"\n')
    following = text.find("[[activities]]", start)
    return start, len(text) if following == -1 else following
