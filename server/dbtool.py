"""``numerek-db``: check, back up and restore the server's database (docs/storage.md).

Why a tool and not ``sqlite3 .backup``: the copy must be private (the database holds the
password hashes; ``.backup`` writes a file readable by everyone under the default umask),
verified before it counts as a backup, rotated, and restorable without re-issuing numbers
already handed out today. The backup runs while the server runs (SQLite's online backup
reads a consistent snapshot; WAL lets the server write meanwhile); the restore needs the
server stopped and says so otherwise.

Numbering after a restore: a backup made at 11:00 and restored at 14:00 does not know the
numbers handed out in between. The restore reads the highest numbers of the current office
day from the database being replaced (it usually still reads, even when damaged elsewhere)
and writes them as a floor under the day's numbering, so the next ticket continues above
them. When that file cannot be read at all, ``--skip N`` sets the floor N above what the
backup has for the day; the tool refuses to guess.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.config import ConfigError, SiteConfig, load_config
from server.store import Store, StoreError

BACKUP_PREFIX = "numerek-"


class ToolError(RuntimeError):
    """A request the tool refuses; the message says why and what to do."""


# ---------------------------------------------------------------------- the server's lock


def lock_path(database: str) -> str:
    return database + ".lock"


@contextmanager
def exclusive(database: str, holder: str) -> Iterator[None]:
    """Hold the database's lock file (the running server holds it too: see :func:`server_lock`)."""
    fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ToolError(
                f"{database} is in use by a running numerek-server; stop it first (systemctl stop numerek-server)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder} {os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def server_lock(database: str) -> int:
    """Taken by numerek-server for as long as it runs: a second server on the same file, or a
    restore under a running server, is refused with a clear message instead of corrupting it.
    Returns the open descriptor (closing it releases the lock)."""
    fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ToolError(f"another numerek-server (or numerek-db restore) is using {database}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"numerek-server {os.getpid()}\n".encode())
    return fd


# ---------------------------------------------------------------------- check


def check(database: str) -> list[str]:
    """Problems ``PRAGMA integrity_check`` finds (empty if none)."""
    uri = Path(os.path.abspath(database)).as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


# ---------------------------------------------------------------------- backup


def backup(database: str, folder: str, keep: int, now: datetime | None = None) -> Path:
    """Copy the database into ``folder`` as a private, verified file; keep the newest ``keep``."""
    if not os.path.exists(database):
        raise ToolError(f"{database} does not exist")
    target_dir = Path(folder)
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S-%f")
    final = target_dir / f"{BACKUP_PREFIX}{stamp}.db"
    partial = target_dir / f".{final.name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private from the first byte
    os.close(fd)
    try:
        source = sqlite3.connect(Path(os.path.abspath(database)).as_uri() + "?mode=ro", uri=True)
        dest = sqlite3.connect(partial)
        try:
            source.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            problems = [r[0] for r in dest.execute("PRAGMA integrity_check(5)")]
        finally:
            dest.close()
            source.close()
        if problems != ["ok"]:
            raise ToolError(
                f"the copy of {database} failed its check ({'; '.join(problems)}); the old backups are kept"
            )
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(partial, 0o600)
        os.replace(partial, final)
        dir_fd = os.open(target_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if partial.exists():
            partial.unlink()
    backups = sorted(target_dir.glob(f"{BACKUP_PREFIX}*.db"))
    for old in backups[: max(0, len(backups) - keep)]:
        old.unlink()
    return final


# ---------------------------------------------------------------------- restore


def _office_day(cfg: SiteConfig, now: datetime) -> str:
    start = cfg.office.day_starts
    return (now.astimezone(cfg.office.tz) - timedelta(hours=start.hour, minutes=start.minute)).date().isoformat()


def _numbers_of_day(database: str, day: str) -> dict[str, int]:
    """The highest number per prefix handed out on ``day`` (raises sqlite3.Error if unreadable)."""
    uri = Path(os.path.abspath(database)).as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        rows = conn.execute("SELECT prefix, max(seq) FROM tickets WHERE day = ? GROUP BY prefix", (day,)).fetchall()
        floors = conn.execute("SELECT prefix, seq FROM numbering_floor WHERE day = ?", (day,)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table: numbering_floor" not in str(exc):
            raise
        floors = []
    finally:
        conn.close()
    out = {p: n for p, n in rows}
    for p, n in floors:
        out[p] = max(out.get(p, 0), n)
    return out


def restore(cfg: SiteConfig, backup_file: str, skip: int | None = None, now: datetime | None = None) -> list[str]:
    """Put ``backup_file`` in place of the configured database; returns what was done, line by line."""
    database = cfg.storage.database
    problems = check(backup_file)
    if problems:
        raise ToolError(f"{backup_file} is not a usable backup: {'; '.join(problems)}")
    day = _office_day(cfg, now or datetime.now(UTC))
    done = []
    with exclusive(database, "numerek-db restore"):
        try:
            handed_out = _numbers_of_day(database, day) if os.path.exists(database) else {}
            source = f"the database being replaced ({database})"
        except sqlite3.Error as exc:
            if skip is None:
                raise ToolError(
                    f"{database} cannot be read ({exc}), so the numbers handed out today ({day}) are unknown. "
                    "Run again with --skip N: today's numbering continues N above what the backup has "
                    "(choose N above the number of tickets issued since the backup)"
                ) from None
            handed_out = {p: n + skip for p, n in _numbers_of_day(backup_file, day).items()}
            for s in cfg.services:
                handed_out.setdefault(s.prefix, skip)
            source = f"--skip {skip}"
        aside = f"{database}.before-restore-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
        if os.path.exists(database):
            os.replace(database, aside)
            done.append(f"kept the replaced database as {aside}")
        for suffix in ("-wal", "-shm"):  # they belong to the replaced file, never to the backup
            if os.path.exists(database + suffix):
                os.replace(database + suffix, aside + suffix)
        fd = os.open(database + ".restoring", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        shutil.copyfile(backup_file, database + ".restoring")
        os.chmod(database + ".restoring", 0o600)
        os.replace(database + ".restoring", database)
        store = Store(database)  # migrates an older backup to this version's schema
        try:
            conn = store.conn
            conn.execute("BEGIN IMMEDIATE")
            for prefix, seq in sorted(handed_out.items()):
                conn.execute(
                    "INSERT INTO numbering_floor (day, prefix, seq) VALUES (?, ?, ?) "
                    "ON CONFLICT(day, prefix) DO UPDATE SET seq = max(seq, excluded.seq)",
                    (day, prefix, seq),
                )
            conn.execute("COMMIT")
        finally:
            store.close()
        done.append(f"restored {backup_file} into {database}")
        if handed_out:
            numbers = ", ".join(f"{p}{n:03d}" for p, n in sorted(handed_out.items()))
            done.append(f"today ({day}) numbering continues after {numbers} (from {source})")
        else:
            done.append(f"no ticket was handed out today ({day}) according to {source}")
    return done


# ---------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    from server.config import EXAMPLE_CONFIG

    p = argparse.ArgumentParser(prog="numerek-db", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(EXAMPLE_CONFIG), help="site config (its [storage] database)")
    p.add_argument("--database", help="override the database file")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="run SQLite's integrity check")
    b = sub.add_parser("backup", help="a private, verified copy (safe while the server runs)")
    b.add_argument("--to", required=True, help="folder for the backups")
    b.add_argument("--keep", type=int, default=14, help="how many backups to keep (default 14)")
    r = sub.add_parser("restore", help="replace the database with a backup (the server must be stopped)")
    r.add_argument("backup", help="a file made by 'numerek-db backup'")
    r.add_argument(
        "--skip",
        type=int,
        help="when the current database is unreadable: continue today's numbering N above the backup's",
    )
    args = p.parse_args(argv)
    os.umask(0o077)
    try:
        cfg = load_config(args.config)
        if args.database:
            cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"database": args.database})})
        database = cfg.storage.database
        if args.cmd == "check":
            problems = check(database)
            for line in problems or [f"{database}: ok"]:
                print(line)
            return 1 if problems else 0
        if args.cmd == "backup":
            print(backup(database, args.to, args.keep))
            return 0
        for line in restore(cfg, args.backup, args.skip):
            print(line)
        return 0
    except (ToolError, StoreError, ConfigError, OSError, sqlite3.Error) as exc:
        print(f"numerek-db: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
