"""A pytest plugin that fails the session when a fixture person's name or birth date is logged.

Requirement: no personal data in application logs. The guard learns the personal data the
suite itself imports, keeps every log line the session produces, and scans those lines at the
end: a name (usage, birth, first or other first name) or a birth date found in a log line fails
the session, with a report that masks the value it found.

What counts as a log, per source
    log records      every record reaching the root logger (a handler attached at session
                     start; the project's loggers ``aiguillage.*``, and ``annuaire``,
                     ``connectors``, ``alembic``, ``uvicorn.*``, are set to DEBUG so that their
                     INFO and DEBUG records are emitted too), formatted with exception text
                     and stack info, since a traceback can carry values.
    warnings         every warning pytest records (``pytest_warning_recorded``).
    server processes everything they print (stdout and stderr): uvicorn's and the app's logs.
                     Their fixtures pass it to :func:`record_output` when the server stops.
    CLI runs         stderr only (errors, logs, progress). Their stdout is what the operator
                     asked for (the ``runs`` table, an import report, a JSON export), not
                     logging. Subprocess runs call :func:`record_output`; typer/click
                     ``CliRunner`` results are recorded here, by wrapping ``invoke``.
    A test that starts a new kind of subprocess must pass its output to :func:`record_output`.

Where the personal data comes from
    ``annuaire.sync.engine.apply_run`` is wrapped at session start, and every module attribute
    of the project (``annuaire``, ``connectors``, ``tests``) holding the original function is
    pointed to the spy, so ``from annuaire.sync import apply_run`` sees it too. The spy wraps
    the ``items`` iterator (consumed once, as before) and returns what ``apply_run`` returns.
    Imports run by subprocesses (the conformance académie, CLI imports) never reach the spy:
    at session end, the ``person`` table of every SQLite file under the session's basetemp is
    read too. That second source also covers rows a test would insert straight into a SQLite
    table. Reading the fixture files again with the connectors instead would need to know
    which files each subprocess imported, and would miss rows inserted by hand.

Matching
    Names: whole words, case-insensitive, accent-sensitive; values shorter than
    :data:`MIN_NAME_LENGTH` and the few words of :data:`VOCABULARY` are ignored. Birth dates:
    ISO ``YYYY-MM-DD``, French ``DD/MM/YYYY`` and compact ``YYYYMMDD``; the compact form of a
    date that is also an AAF export's date (``..._Delta_20130122_...``, which the CLI prints as
    the export's date) is not counted: the fixtures' thousands of birth dates cover most days
    of the years the exports are dated in, and an export's date is not personal data.

A partial run scans what ran; a session that imported no person says so and scans nothing.

Under pytest-xdist
    Each worker captures and learns as above, reads the SQLite files under its own basetemp,
    and at its session end hands all of it (texts, names, birth dates, export dates) to the
    controller through ``workeroutput``; the controller scans the union, so a person one
    worker imported is found in the logs of another. A worker that sends nothing (it crashed)
    fails the session as a guard problem: its logs were not scanned.

Known gaps
    In the server subprocesses only uvicorn's loggers are configured (INFO): the app's own
    ``aiguillage.*`` INFO records are dropped there and its WARNINGs reach stderr through
    ``logging.lastResort``; the fixtures also turn the access log off. What a kit's
    ``--mutate-command`` prints ends up in the kit's report (stdout), which is not scanned.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "MIN_NAME_LENGTH",
    "VOCABULARY",
    "Finding",
    "KnownPersonalData",
    "PersonalDataGuard",
    "export_dates",
    "find_birth_dates",
    "find_names",
    "record_output",
]

NAME_FIELDS = ("usage_name", "birth_name", "first_name")
OTHER_FIRST_NAMES_FIELD = "other_first_names"
BIRTH_DATE_FIELD = "birth_date"
MIN_NAME_LENGTH = 4
#: Fixture names that are also words of the project's own log lines, so not evidence of a leak.
#: Kept to what was observed: each is a surname of the pseudonymised men-2013 sample AND a word
#: the logs print.
VOCABULARY = frozenset(
    {
        "fields",  # the ``fields=`` parameter of the example requests ``aiguillage serve`` prints
    }
)
LOGGERS = (
    "aiguillage",
    "annuaire",
    "connectors",
    "alembic",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
)
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
REPORT_LINES = 5  # offending lines shown per (kind, source)

_WORD = re.compile(r"\w+")
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_FRENCH = re.compile(r"(?<!\d)(\d{2})/(\d{2})/(\d{4})(?!\d)")
# Letters around 8 digits make them part of an id (a UUID's hex, a UAI), not a date.
_COMPACT = re.compile(r"(?<![0-9A-Za-z])(\d{4})(\d{2})(\d{2})(?![0-9A-Za-z])")
# AAF names its files <prefix>_<Complet|Delta>_<YYYYMMDD>_<category>_<chunk>.xml.
_EXPORT_DATE = re.compile(r"_(?:Complet|Delta)_(\d{4})(\d{2})(\d{2})_", re.IGNORECASE)


# -- what the fixtures hold --------------------------------------------------------------------


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


@dataclass
class KnownPersonalData:
    """Names (lower case, as written) and birth dates of every person the session imported."""

    names: set[str] = field(default_factory=set)
    birth_dates: set[dt.date] = field(default_factory=set)
    persons: int = 0

    def learn(self, data: Mapping[str, Any]) -> None:
        """Remember the personal fields of one person record (``NeutralRecord.data`` or a row)."""
        self.persons += 1
        values: list[object] = [data.get(name) for name in NAME_FIELDS]
        others = data.get(OTHER_FIRST_NAMES_FIELD) or ()
        if isinstance(others, str):  # a JSON column read back from SQLite
            try:
                others = json.loads(others)
            except ValueError:
                others = [others]
        values.extend(others)
        for value in values:
            if isinstance(value, str) and value.strip():
                self.names.add(value.strip().lower())
        if (born := _as_date(data.get(BIRTH_DATE_FIELD))) is not None:
            self.birth_dates.add(born)

    def scanned_names(self) -> set[str]:
        return {
            name for name in self.names if len(name) >= MIN_NAME_LENGTH and name not in VOCABULARY
        }


# -- the scanners ------------------------------------------------------------------------------


NameIndex = dict[str, list[tuple[str, ...]]]


def name_index(names: Iterable[str]) -> NameIndex:
    """Names by their first word, as word tuples (longest first), for :func:`find_names`."""
    index: NameIndex = {}
    for name in names:
        words = tuple(_WORD.findall(name.lower()))
        if words:
            index.setdefault(words[0], []).append(words)
    for candidates in index.values():
        candidates.sort(key=len, reverse=True)
    return index


def find_names(line: str, index: NameIndex) -> list[tuple[int, int]]:
    """Spans of ``line`` holding a known name as whole words (any separator between words)."""
    words = list(_WORD.finditer(line.lower()))
    spans: list[tuple[int, int]] = []
    position = 0
    while position < len(words):
        matched = 0
        for candidate in index.get(words[position].group(), ()):
            end = position + len(candidate)
            if end <= len(words) and all(
                words[position + i].group() == part for i, part in enumerate(candidate)
            ):
                matched = len(candidate)
                break
        if matched:
            spans.append((words[position].start(), words[position + matched - 1].end()))
            position += matched
        else:
            position += 1
    return spans


def export_dates(text: str) -> set[dt.date]:
    """The dates of the AAF exports whose file names ``text`` mentions."""
    found = set()
    for match in _EXPORT_DATE.finditer(text):
        try:
            found.add(dt.date(*(int(part) for part in match.groups())))
        except ValueError:
            continue
    return found


def find_birth_dates(
    line: str, dates: set[dt.date], exports: set[dt.date] | frozenset[dt.date] = frozenset()
) -> list[tuple[int, int]]:
    """Spans of ``line`` writing one of ``dates`` as YYYY-MM-DD, DD/MM/YYYY or YYYYMMDD.

    A compact date that is also the date of an AAF export in ``exports`` is that export's date
    (the CLI prints it, file names carry it): only its other two forms count.
    """
    if not dates or not any(c.isdigit() for c in line):
        return []
    spans = []
    for pattern, order in ((_ISO, (0, 1, 2)), (_FRENCH, (2, 1, 0)), (_COMPACT, (0, 1, 2))):
        for match in pattern.finditer(line):
            year, month, day = (int(match.group(1 + i)) for i in order)
            try:
                found = dt.date(year, month, day)
            except ValueError:
                continue
            if found in dates and not (pattern is _COMPACT and found in exports):
                spans.append(match.span())
    return sorted(spans)


def mask(line: str, spans: list[tuple[int, int]]) -> str:
    """``line`` with each span hidden but its first character and its shape."""
    out, last = [], 0
    for start, end in spans:
        hidden = re.sub(r"\w", "*", line[start + 1 : end])
        out += [line[last:start], line[start], hidden]
        last = end
    out.append(line[last:])
    return "".join(out)


# -- the guard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    kind: str  # "name" | "birth date"
    source: str  # a logger name, "warnings", or a subprocess described by its fixture
    line: str  # masked


class _LogCapture(logging.Handler):
    def __init__(self, texts: list[tuple[str, str]]) -> None:
        super().__init__(logging.DEBUG)
        self.texts = texts
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append((f"logger {record.name}", self.format(record)))
        except Exception:  # a record that cannot format is the test's problem, not ours
            self.handleError(record)


def _cli_runners() -> list[Any]:
    """The CliRunner classes in use: typer's has been its own class since typer vendored click."""
    import click.testing
    import typer.testing

    runners = [typer.testing.CliRunner, click.testing.CliRunner]
    # typer's ``invoke`` may end in click's: patch each method once.
    return [r for r in runners if "invoke" in vars(r)]


class PersonalDataGuard:
    """Captures texts and learns personal data during a session; :meth:`scan` compares them."""

    def __init__(self) -> None:
        self.known = KnownPersonalData()
        self.texts: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.exports: set[dt.date] = set()  # AAF export dates seen (file names)
        self._handler = _LogCapture(self.texts)
        self._levels: dict[str, int] = {}
        self._patched: list[tuple[object, str, object]] = []
        self._real_apply_run: Callable[..., Any] | None = None
        self._spy: Callable[..., Any] | None = None
        self._invoking = False

    # capture

    def record_output(self, source: str, text: str | bytes | None) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text:
            self.texts.append((source, text))

    def spy(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """``real`` (``apply_run``), learning every person record of the stream it reads."""

        @functools.wraps(real)
        def apply_run(engine: Any, scope: Any, items: Iterable[Any], *args: Any, **kw: Any) -> Any:
            for file in kw.get("files") or ():
                self.exports |= export_dates(Path(file).name)
            return real(engine, scope, self._observed(items), *args, **kw)

        return apply_run

    def _observed(self, items: Iterable[Any]) -> Iterator[Any]:
        from annuaire.schema import EntityKind, NeutralRecord

        for item in items:
            if isinstance(item, NeutralRecord) and item.kind == EntityKind.PERSON:
                self.known.learn(item.data)
            yield item

    def install(self) -> None:
        logging.getLogger().addHandler(self._handler)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            if logger.getEffectiveLevel() > logging.DEBUG:
                logger.setLevel(logging.DEBUG)
        from annuaire.sync import engine

        self._real_apply_run = engine.apply_run
        self._spy = self.spy(engine.apply_run)
        self.point_importers_to_spy()
        for runner in _cli_runners():
            self._patch(runner, "invoke", self._recording_invoke(runner.invoke))

    def point_importers_to_spy(self) -> None:
        """Every project module attribute bound to the real ``apply_run`` now holds the spy."""
        for name, module in list(sys.modules.items()):
            if module is None or name.split(".")[0] not in ("annuaire", "connectors", "tests"):
                continue
            for attribute, value in list(vars(module).items()):
                if value is self._real_apply_run:
                    self._patch(module, attribute, self._spy)

    def _patch(self, owner: object, attribute: str, value: object) -> None:
        self._patched.append((owner, attribute, getattr(owner, attribute)))
        setattr(owner, attribute, value)

    def _recording_invoke(self, invoke: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(invoke)
        def recording(runner: Any, cli: Any, args: Any = None, *more: Any, **kw: Any) -> Any:
            if self._invoking:  # a subclass's invoke calling its base's: record once
                return invoke(runner, cli, args, *more, **kw)
            self._invoking = True
            try:
                result = invoke(runner, cli, args, *more, **kw)
            finally:
                self._invoking = False
            command = " ".join(args) if isinstance(args, list | tuple) else str(args or "")
            self.record_output(f"CliRunner stderr ({command[:60]})", result.stderr_bytes)
            return result

        return recording

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        for owner, attribute, value in reversed(self._patched):
            setattr(owner, attribute, value)
        self._patched.clear()

    def learn_from_sqlite(self, root: Path) -> int:
        """Learn the persons of every SQLite file under ``root``; how many files had some."""
        columns = ", ".join((*NAME_FIELDS, OTHER_FIRST_NAMES_FIELD, BIRTH_DATE_FIELD))
        found = 0
        for path in sorted(p for p in root.rglob("*") if p.suffix in SQLITE_SUFFIXES):
            try:
                connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            except sqlite3.Error:
                continue
            try:
                connection.row_factory = sqlite3.Row
                rows = connection.execute(f"SELECT {columns} FROM person").fetchall()
            except sqlite3.DatabaseError as exc:
                if "no such column" in str(exc):  # the schema moved: the guard must follow
                    self.problems.append(f"cannot read persons of {path}: {exc}")
                continue  # not a database, or not migrated
            finally:
                connection.close()
            found += bool(rows)
            for row in rows:
                self.known.learn(dict(row))
        return found

    # scan

    def scan(self) -> list[Finding]:
        index = name_index(self.known.scanned_names())
        dates = self.known.birth_dates
        exports = set(self.exports)
        for _, text in self.texts:
            exports |= export_dates(text)
        findings: list[Finding] = []
        for source, text in self.texts:
            for line in text.splitlines():
                names, born = find_names(line, index), find_birth_dates(line, dates, exports)
                if not (names or born):
                    continue
                masked = mask(line, sorted(names + born))[:300]
                findings.extend(
                    Finding(kind, source, masked)
                    for kind, spans in (("name", names), ("birth date", born))
                    if spans
                )
        return findings

    def line_count(self) -> int:
        return sum(text.count("\n") + 1 for _, text in self.texts)

    # across processes (pytest-xdist)

    def to_wire(self) -> dict[str, Any]:
        """What this guard captured and learned, in types execnet can send."""
        return {
            "texts": [[source, text] for source, text in self.texts],
            "names": sorted(self.known.names),
            "birth_dates": sorted(born.isoformat() for born in self.known.birth_dates),
            "persons": self.known.persons,
            "exports": sorted(day.isoformat() for day in self.exports),
            "problems": list(self.problems),
        }

    def absorb(self, wire: Mapping[str, Any]) -> None:
        """Add what another process's guard sent (:meth:`to_wire`) to this one."""
        self.texts.extend((source, text) for source, text in wire["texts"])
        self.known.names.update(wire["names"])
        self.known.birth_dates.update(dt.date.fromisoformat(d) for d in wire["birth_dates"])
        self.known.persons += wire["persons"]
        self.exports.update(dt.date.fromisoformat(d) for d in wire["exports"])
        self.problems.extend(wire["problems"])


def report(guard: PersonalDataGuard, findings: list[Finding], seconds: float) -> list[str]:
    """The summary line, then the findings grouped by kind and source (values masked)."""
    known = (
        f"{guard.line_count():,} log lines scanned, {len(guard.known.scanned_names()):,} names "
        f"and {len(guard.known.birth_dates):,} birth dates known"
    )
    lines = [
        f"personal-data guard: {known}, "
        + (f"{len(findings):,} line(s) with personal data" if findings else "none found")
        + f" ({seconds:.2f} s)"
    ]
    groups: dict[tuple[str, str], list[str]] = {}
    for finding in findings:
        groups.setdefault((finding.kind, finding.source), []).append(finding.line)
    for (kind, source), found in sorted(groups.items()):
        lines.append(f"  {kind} in {source}: {len(found)} line(s), first ones:")
        lines.extend(f"    {line}" for line in found[:REPORT_LINES])
    return lines


# -- the plugin --------------------------------------------------------------------------------

_guard: PersonalDataGuard | None = None
_basetemp: Path | None = None
_summary: list[str] = []
_failed = False
#: True in the controller of an xdist run, which runs no test and scans what its workers send.
_controller = False
#: The key of ``workeroutput`` under which an xdist worker sends its guard's data.
WORKER_OUTPUT_KEY = "personal_data_guard"
_workers_down: set[str] = set()


def record_output(source: str, text: str | bytes | None) -> None:
    """Hand what a subprocess printed (as logs) to the guard; a no-op when it is disabled."""
    if _guard is not None:
        _guard.record_output(source, text)


def active_guard() -> PersonalDataGuard | None:
    return _guard


def pytest_sessionstart(session: pytest.Session) -> None:
    global _guard, _controller
    _controller = session.config.pluginmanager.has_plugin("dsession")
    _guard = PersonalDataGuard()
    _guard.install()


def pytest_collection_finish(session: pytest.Session) -> None:
    if _guard is not None:  # test modules bound ``apply_run`` while being collected
        _guard.point_importers_to_spy()


@pytest.fixture(scope="session", autouse=True)
def _personal_data_guard_basetemp(tmp_path_factory: pytest.TempPathFactory) -> None:
    global _basetemp
    _basetemp = tmp_path_factory.getbasetemp()


def pytest_warning_recorded(warning_message: warnings.WarningMessage) -> None:
    if _controller:  # xdist replays its workers' warnings here: they sent them already
        return
    record_output("warnings", f"{warning_message.category.__name__}: {warning_message.message}")


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, called in the controller
def pytest_testnodedown(node: Any, error: object | None) -> None:
    worker = getattr(getattr(node, "gateway", None), "id", "?")
    if _guard is None or worker in _workers_down:  # a node may be reported down twice
        return
    _workers_down.add(worker)
    sent = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    if sent is None:
        _guard.problems.append(
            f"xdist worker {worker} sent no logs to scan ({error or 'it ran no guard'})"
        )
        return
    _guard.absorb(sent)


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown (runner's sessionfinish)
def pytest_sessionfinish(session: pytest.Session) -> None:
    global _guard, _failed
    guard, _guard = _guard, None
    if guard is None:
        return
    guard.uninstall()
    started = time.perf_counter()
    if _basetemp is not None:
        guard.learn_from_sqlite(_basetemp)
    workeroutput = getattr(session.config, "workeroutput", None)  # on xdist workers only
    if workeroutput is not None:
        workeroutput[WORKER_OUTPUT_KEY] = guard.to_wire()
        return
    if not guard.known.persons:
        _summary[:] = [
            f"personal-data guard: no person imported in this session, nothing to scan "
            f"({guard.line_count():,} log lines captured)"
        ]
        return
    findings = guard.scan()
    _summary[:] = [
        *report(guard, findings, time.perf_counter() - started),
        *(f"  guard problem: {problem}" for problem in guard.problems),
    ]
    _failed = bool(findings or guard.problems)
    if _failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _summary:
        return
    if _failed:
        terminalreporter.write_sep("=", "personal data in the logs", red=True)
    for line in _summary:
        terminalreporter.write_line(line, red=_failed)
