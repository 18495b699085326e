"""Sources files: what is written, where, with which permissions; bad files; two writers at once."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import DataSourceError

from .conftest import Places, read_toml

CANARY = "Saved-Canary-Secret-7f3a9c21"


def _pg(session: Session, source_id: str = "warehouse") -> None:
    session.add(
        source_id,
        "postgresql",
        host="db.internal",
        dbname="sales",
        user="analyst",
        secrets={"password": CANARY},
        test=False,
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_save_writes_references_only_owner_only(places: Places, session: Session, shop_db: Path) -> None:
    _pg(session)
    session.add("shop", "sqlite", path=str(shop_db), name="Shop")
    session.save("shop")
    written = session.save("warehouse", references={"password": "env:PGPASSWORD"})

    assert written == places.user_file
    document = read_toml(written)
    assert document["sources"]["warehouse"] == {
        "type": "postgresql",
        "options": {"host": "db.internal", "dbname": "sales", "user": "analyst"},
        "secrets": {"password": "env:PGPASSWORD"},
    }
    assert document["sources"]["shop"] == {
        "type": "sqlite",
        "name": "Shop",
        "options": {"path": str(shop_db)},
    }
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    for path in places.written():
        assert CANARY not in path.read_text(errors="replace"), path


def test_save_refuses_a_typed_secret_without_a_reference(places: Places, session: Session) -> None:
    _pg(session)
    with pytest.raises(DataSourceError) as refused:
        session.save("warehouse")
    message = str(refused.value)
    assert message.startswith("warehouse: its password was typed")
    assert "env:VAR" in message
    assert CANARY not in message
    assert not places.user_file.exists()


def test_save_refuses_a_value_given_as_a_reference(places: Places, session: Session) -> None:
    _pg(session)
    with pytest.raises(DataSourceError) as refused:
        session.save("warehouse", references={"password": CANARY})
    assert "is not a reference" in str(refused.value)
    assert str(refused.value).endswith("this value is not shown and nothing was saved")
    assert CANARY not in str(refused.value)
    assert not places.user_file.exists()


def test_save_refuses_a_secret_in_an_option_saying_nothing_was_saved(
    places: Places, session: Session
) -> None:
    session.add(
        "warehouse",
        "postgresql",
        host="db.internal",
        dbname="sales",
        user="analyst",
        application_name=f"postgresql://u:{CANARY}@db/x",
        test=False,
    )
    with pytest.raises(DataSourceError) as refused:
        session.save("warehouse", references={"password": "env:PGPASSWORD"})
    message = str(refused.value)
    assert message.startswith("warehouse: option 'application_name' holds a secret")
    assert message.endswith("the value is not shown and nothing was saved")
    assert "not loaded" not in message
    assert CANARY not in message
    assert not places.user_file.exists()


def test_project_file_wins_and_load_connects_nothing(places: Places, session: Session, shop_db: Path) -> None:
    session.add("shop", "sqlite", path=str(shop_db), name="user copy")
    session.save("shop")
    session.remove("shop")
    session.add("shop", "sqlite", path=str(shop_db), name="project copy")
    assert session.save("shop", project=True) == places.project_file

    with Session() as fresh:
        lines = fresh.load()
        assert lines == [
            f"shop: defined in {places.user_file} and in {places.project_file}; "
            f"the one in {places.project_file} is used",
            f"shop: loaded from {places.project_file}",
        ]
        assert fresh.sources()["name"].tolist() == ["project copy"]
        assert fresh.registry.status("shop") == "not connected"
        assert fresh.query("shop", "SELECT count(*) AS n FROM orders")["n"].tolist() == [2]


def test_load_does_not_replace_a_source_of_the_kernel(
    places: Places, session: Session, shop_db: Path
) -> None:
    session.add("shop", "sqlite", path=str(shop_db), name="saved")
    session.save("shop")
    with Session() as fresh:
        fresh.add("shop", "sqlite", path=":memory:", name="in the kernel")
        lines = fresh.load()
        assert lines == ["shop: already in this kernel; the saved definition was not loaded"]
        assert fresh.sources()["name"].tolist() == ["in the kernel"]
        assert fresh.saved_sources()["status"].tolist() == ["in this kernel; ready"]


def test_forget_removes_from_the_file_not_from_the_kernel(
    places: Places, session: Session, shop_db: Path
) -> None:
    session.add("shop", "sqlite", path=str(shop_db))
    session.add("other", "sqlite", path=str(shop_db))
    session.save(all_sources=True)
    session.forget("shop")
    assert list(read_toml(places.user_file)["sources"]) == ["other"]
    assert session.registry.exists("shop")
    with pytest.raises(DataSourceError, match="shop: not saved in"):
        session.forget("shop")


BAD_ENTRIES = {
    "unknown type": ('[sources.bad]\ntype = "oracle"\n', "bad: unknown source type 'oracle'"),
    "unknown option": (
        '[sources.bad]\ntype = "sqlite"\n[sources.bad.options]\npath = "x.db"\ncolour = "red"\n',
        "bad: unknown option 'colour' for a sqlite source",
    ),
    "unknown key": ('[sources.bad]\ntype = "sqlite"\ncolour = "red"\n', "bad: unknown key 'colour'"),
    "secret value": (
        f'[sources.bad]\ntype = "postgresql"\n[sources.bad.secrets]\npassword = "{CANARY}"\n',
        "bad: the value of secret 'password' is not a reference",
    ),
    "secret in options": (
        f'[sources.bad]\ntype = "postgresql"\n[sources.bad.options]\npassword = "{CANARY}"\n',
        "bad: option 'password' holds a secret",
    ),
    "secret in a connection string": (
        f'[sources.bad]\ntype = "postgresql"\n[sources.bad.options]\nhost = "db"\n'
        f'options = "-c x=1"\napplication_name = "postgresql://u:{CANARY}@db/x"\n',
        "bad: option 'application_name' holds a secret",
    ),
    "a secret typed as an option name": (
        f'[sources.bad]\ntype = "sqlite"\n[sources.bad.options]\npath = "x.db"\n"{CANARY}" = "x"\n',
        "bad: unknown option (not repeated here: its name has characters no option name has)",
    ),
    "a secret typed as a key": (
        f'[sources.bad]\ntype = "sqlite"\n"{CANARY}" = "x"\n',
        "bad: unknown key (not repeated here: its name has characters no key name has)",
    ),
    "none where the options need a value": (
        '[sources.bad]\ntype = "azure_blob"\n[sources.bad.options]\n'
        'account_url = "https://acct.blob.core.windows.net"\nauth = "account_key"\n'
        '[sources.bad.secrets]\naccount_key = "none"\n',
        'bad: account_key = "none" gives it no value, and a azure_blob source with these options needs one',
    ),
    "an array where text belongs": (
        '[sources.bad]\ntype = "sqlite"\n[sources.bad.options]\npath = ["x.db"]\n',
        "bad: option 'path' must be text (a quoted \"string\"), not an array; the source is not loaded",
    ),
    "a table where text belongs": (
        f'[sources.bad]\ntype = "postgresql"\n[sources.bad.options]\nhost = {{x = "{CANARY}"}}\n',
        "bad: option 'host' must be text (a quoted \"string\"), not a table; the source is not loaded",
    ),
    "a number where a URL belongs": (
        '[sources.bad]\ntype = "azure_blob"\n[sources.bad.options]\naccount_url = 5\nauth = "entra_id"\n',
        "bad: option 'account_url' must be text (a quoted \"string\"), not a whole number",
    ),
    "nan for a timeout": (
        '[sources.bad]\ntype = "sqlite"\n[sources.bad.options]\npath = "x.db"\ntimeout = nan\n',
        "bad: option 'timeout' must be a number, not nan; the source is not loaded",
    ),
    "text that is no number": (
        f'[sources.bad]\ntype = "postgresql"\n[sources.bad.options]\nhost = "db"\nport = "{CANARY}"\n',
        "bad: option 'port' must be a whole number, not text that does not read as one",
    ),
    "a number in an array of text": (
        '[sources.bad]\ntype = "postgresql"\n[sources.bad.options]\nhost = "db"\nset = ["a=1", 2]\n',
        "bad: option 'set' must be text (a quoted \"string\"), or an array of such, not a whole number",
    ),
    "an id holding a connection string": (
        f'[sources."postgresql://u:{CANARY}@h/d"]\ntype = "postgresql"\n',
        f"source 2 of the file has an invalid id ({len(CANARY) + 19} characters, not shown: it may hold "
        "a secret): use letters, digits",
    ),
    "an id holding a secret, with a bad key": (
        f'[sources."{CANARY} x"]\ntype = "sqlite"\ncolour = "red"\n',
        "source 2 of the file has an invalid id (",
    ),
    "not a secret field": (
        '[sources.bad]\ntype = "sqlite"\n[sources.bad.options]\npath = "x.db"\n[sources.bad.secrets]\n'
        'password = "env:X"\n',
        "bad: 'password' is not a secret field of a sqlite source",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_a_bad_source_is_left_out_with_one_line(places: Places, shop_db: Path, case: str) -> None:
    text, expected = BAD_ENTRIES[case]
    good = f'[sources.shop]\ntype = "sqlite"\n[sources.shop.options]\npath = "{shop_db}"\n\n'
    _write(places.user_file, good + text)
    with Session() as fresh:
        lines = fresh.load()
        assert fresh.registry.source_ids == ["shop"]
        problems = [line for line in lines if not line.startswith("shop: loaded")]
        assert len(problems) == 1, lines
        assert problems[0].startswith(f"{places.user_file}: {expected}"), problems
        assert "\n" not in problems[0]
        assert CANARY not in problems[0]
        listed = fresh.saved_sources()
        assert listed["id"].tolist() == ["shop"]
        assert listed.attrs["problems"] == problems


def test_options_of_their_kinds_load_and_text_that_reads_as_one_too(places: Places, shop_db: Path) -> None:
    _write(
        places.user_file,
        f'[sources.shop]\ntype = "sqlite"\n[sources.shop.options]\npath = "{shop_db}"\ntimeout = 2\n'
        '[sources.pg]\ntype = "postgresql"\n[sources.pg.options]\nhost = "db"\nport = "5433"\n'
        'set = ["a.b=1"]\n',
    )
    with Session() as fresh:
        assert fresh.load() == [f"{name}: loaded from {places.user_file}" for name in ("shop", "pg")]
        assert fresh.registry.get_config("shop").options["timeout"] == 2.0
        assert fresh.registry.get_config("pg").options["port"] == 5433
        assert fresh.registry.get_config("pg").options["set"] == ["a.b=1"]


def test_a_malformed_file_names_its_line_and_the_other_file_still_loads(
    places: Places, shop_db: Path
) -> None:
    _write(places.user_file, '[sources.shop]\ntype = "sqlite"\npath = \n')
    _write(
        places.project_file, f'[sources.lake]\ntype = "sqlite"\n[sources.lake.options]\npath = "{shop_db}"\n'
    )
    with Session() as fresh:
        lines = fresh.load()
        assert fresh.registry.source_ids == ["lake"]
    problem = lines[0]
    assert problem.startswith(f"{places.user_file}: not valid TOML: ")
    assert "(at line 3, column 8)" in problem
    assert problem.endswith("nothing was loaded from it")


def test_saving_into_a_malformed_file_changes_nothing(
    places: Places, session: Session, shop_db: Path
) -> None:
    broken = '[sources.mine]\ntype = "sqlite"\npath = \n'
    _write(places.user_file, broken)
    session.add("shop", "sqlite", path=str(shop_db))
    with pytest.raises(DataSourceError, match=r"not valid TOML.*line 3.*nothing was written"):
        session.save("shop")
    assert places.user_file.read_text() == broken


def test_an_unreadable_file_gives_one_line(places: Places, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(places.user_file, '[sources.shop]\ntype = "sqlite"\n')
    places.user_file.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the read fail as it does for a user
        original = Path.read_text

        def denied(path: Path, *args: object, **kwargs: object) -> str:
            if path == places.user_file:
                raise PermissionError(13, "Permission denied")
            return original(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Path, "read_text", denied)
    with Session() as fresh:
        assert fresh.load() == [
            f"{places.user_file}: cannot be read (permission denied); nothing was loaded from it"
        ]
        assert len(fresh.registry) == 0


def _save_many(config_dir: str, database: str, prefix: str, count: int) -> None:
    os.environ["JUPYTER_CONFIG_DIR"] = config_dir
    with Session(discover=False) as session:
        for number in range(count):
            source_id = f"{prefix}{number}"
            session.add(source_id, "sqlite", path=database, test=False)
            session.save(source_id)


def test_two_kernels_saving_at_once_lose_no_write(
    places: Places, shop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An IPython shell made by another test replaces __main__ with a module spawn cannot read.
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_save_many, args=(str(places.config_dir), str(shop_db), prefix, 25))
        for prefix in ("a", "b", "c")
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    saved = read_toml(places.user_file)["sources"]
    assert sorted(saved) == sorted(f"{prefix}{number}" for prefix in "abc" for number in range(25))
    assert [path.name for path in places.user_file.parent.iterdir()] == ["sources.toml"]


def test_a_reference_for_no_secret_field_is_refused(places: Places, session: Session, shop_db: Path) -> None:
    session.add("shop", "sqlite", path=str(shop_db))
    with pytest.raises(DataSourceError, match=r"^'pasword' is not a secret field of shop; nothing"):
        session.save("shop", references={"pasword": "env:X"})
    assert not places.user_file.exists()


def test_references_are_given_for_one_source_at_a_time(
    places: Places, session: Session, shop_db: Path
) -> None:
    _pg(session)
    session.add("shop", "sqlite", path=str(shop_db))
    with pytest.raises(DataSourceError, match=r"^references are given for one source at a time, .* names 2"):
        session.save("warehouse", "shop", references={"password": "env:WAREHOUSE_PASSWORD"})
    with pytest.raises(DataSourceError, match="nothing was saved"):
        session.save(all_sources=True, references={"password": "env:WAREHOUSE_PASSWORD"})
    assert not places.user_file.exists()
    session.save("warehouse", references={"password": "env:WAREHOUSE_PASSWORD"})
    session.save("shop")
    assert 'password = "env:WAREHOUSE_PASSWORD"' in places.user_file.read_text()
    assert places.user_file.read_text().count("env:WAREHOUSE_PASSWORD") == 1


def test_a_secret_replaced_after_loading_is_not_saved_with_its_old_reference(
    places: Places, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pg(session)
    session.save("warehouse", references={"password": "env:OLD_PASSWORD"})
    with Session() as fresh:
        fresh.load()
        fresh.save("warehouse")  # the reference it was loaded with
        fresh.update("warehouse", secrets={"password": CANARY}, test=False)
        with pytest.raises(DataSourceError, match=r"^warehouse: its password was typed"):
            fresh.save("warehouse")
        fresh.update("warehouse", secrets={"password": ""}, test=False)
        fresh.save("warehouse")
    assert "secrets" not in read_toml(places.user_file)["sources"]["warehouse"]


def test_a_sources_file_that_is_a_link_is_written_through_it(
    places: Places, session: Session, shop_db: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "dotfiles" / "sources.toml"  # a file kept elsewhere, linked into place
    kept.parent.mkdir()
    kept.write_text('[sources.old]\ntype = "sqlite"\n[sources.old.options]\npath = "old.db"\n')
    places.user_file.parent.mkdir(parents=True)
    places.user_file.symlink_to(kept)
    session.add("shop", "sqlite", path=str(shop_db))
    session.save("shop")
    assert places.user_file.is_symlink()
    assert sorted(read_toml(kept)["sources"]) == ["old", "shop"]
    assert [path.name for path in kept.parent.iterdir()] == ["sources.toml"]


def _no_space(descriptor: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _denied(*args: object, **kwargs: object) -> None:
    raise PermissionError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not UTF-8", "cannot be read (UnicodeDecodeError); nothing was written"),
        ("disk full", "cannot be written (No space left on device); nothing was written"),
        ("folder not writable", "cannot be written (Permission denied); nothing was written"),
    ],
)
def test_a_file_that_cannot_be_saved_into_gives_one_line_and_stays(
    places: Places, session: Session, shop_db: Path, monkeypatch: pytest.MonkeyPatch, case: str, expected: str
) -> None:
    before = b'[sources.old]\ntype = "sqlite"\n# caf\xe9 (Latin-1)\n[sources.old.options]\npath = "o.db"\n'
    if case != "not UTF-8":
        before = before.replace(b"\xe9", b"e")
    places.user_file.parent.mkdir(parents=True)
    places.user_file.write_bytes(before)
    session.add("shop", "sqlite", path=str(shop_db))
    if case == "disk full":
        monkeypatch.setattr(os, "fsync", _no_space)
    elif case == "folder not writable":  # as root may write anywhere, the refusal is made here
        monkeypatch.setattr(tempfile, "mkstemp", _denied)
    with pytest.raises(DataSourceError) as refused:
        session.save("shop")
    assert str(refused.value) == f"{places.user_file}: {expected}"
    with pytest.raises(DataSourceError, match=r"nothing was written$"):
        session.forget("old")
    assert places.user_file.read_bytes() == before
    assert [path.name for path in places.user_file.parent.iterdir()] == ["sources.toml"]


def test_a_sources_file_that_links_to_itself_gives_one_line(
    places: Places, session: Session, shop_db: Path
) -> None:
    places.user_file.parent.mkdir(parents=True)
    places.user_file.symlink_to(places.user_file)
    session.add("shop", "sqlite", path=str(shop_db))
    loops = r"sources\.toml: a symbolic link that loops; nothing was written$"
    with pytest.raises(DataSourceError, match=loops):
        session.save("shop")
    assert places.user_file.is_symlink()
