"""The local-folder connector, on real files in a temporary folder."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError, FormatError, ItemNotFound
from deepanalyze_jupyter.frames import arrow_to_frame, is_truncated
from deepanalyze_jupyter.progress import Progress

LISTING_COLUMNS = ["name", "kind", "size", "last_modified", "content_type", "etag"]


def _parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder of files, with a secret file next to it (outside)."""
    folder = tmp_path / "data"
    (folder / "sales" / "2024").mkdir(parents=True)
    (folder / "logs").mkdir()
    (folder / "empty").mkdir()
    (folder / "sales" / "2024" / "q1.csv").write_text("region,amount\nEU,10\nUS,20\n")
    (folder / "sales" / "2024" / "q2.csv").write_text("region,amount\nEU,30\n")
    (folder / "sales" / "notes.tsv").write_text("a\tb\n1\tx\n")
    (folder / "products.parquet").write_bytes(_parquet(pd.DataFrame({"id": [1, 2], "name": ["tea", "cake"]})))
    (folder / "stores.json").write_text(json.dumps([{"id": 1, "city": "Lisbon"}, {"id": 2, "city": None}]))
    events = "\n".join(json.dumps({"n": n, "kind": "view"}) for n in range(5)) + "\n"
    (folder / "logs" / "events.jsonl.gz").write_bytes(gzip.compress(events.encode()))
    (folder / "readme.txt").write_text("not data")
    (tmp_path / "secret.csv").write_text("password\nhunter2\n")
    return folder


@pytest.fixture
def files(session: Session, root: Path) -> Session:
    session.add("files", "local", path=str(root))
    return session


# -- registration ---------------------------------------------------------------------------------


def test_add_checks_the_folder_and_describes_it(files: Session, root: Path) -> None:
    assert files.test("files") == f"Local folder {root} (6 entries)"


def test_relative_folder_is_made_absolute(
    session: Session, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root.parent)
    assert session.add("files", "local", path="data").options["path"] == str(root)


def test_missing_folder_is_refused(session: Session, tmp_path: Path) -> None:
    with pytest.raises(ItemNotFound, match=r"^files: folder .*nowhere does not exist$"):
        session.add("files", "local", path=str(tmp_path / "nowhere"))
    assert not session.registry.exists("files")


def test_a_file_is_not_a_folder(session: Session, root: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"^files: .*readme\.txt is a file, not a folder$"):
        session.add("files", "local", path=str(root / "readme.txt"))


def test_path_option_is_required(session: Session) -> None:
    with pytest.raises(ConfigurationError, match="missing required option 'path'"):
        session.add("files", "local")


# -- listing --------------------------------------------------------------------------------------


def test_folder_style_listing_of_the_top(files: Session) -> None:
    items = files.list_items("files")
    assert list(items.columns) == LISTING_COLUMNS
    assert items["name"].tolist() == [
        "empty/",
        "logs/",
        "products.parquet",
        "readme.txt",
        "sales/",
        "stores.json",
    ]
    kinds = dict(zip(items["name"], items["kind"], strict=True))
    assert kinds["sales/"] == "folder"
    assert kinds["stores.json"] == "file"
    assert items["size"].dtype == "Int64"
    assert pd.isna(items.set_index("name").loc["sales/", "size"])
    assert items["last_modified"].dt.tz is not None
    assert str(items["last_modified"].dt.tz) == "UTC"
    assert items["etag"].isna().all()
    assert not is_truncated(items)


def test_listing_sizes_and_content_types(files: Session, root: Path) -> None:
    items = files.list_items("files", recursive=True).set_index("name")
    assert items.loc["stores.json", "size"] == (root / "stores.json").stat().st_size
    assert items.loc["stores.json", "content_type"] == "application/json"
    assert items.loc["sales/2024/q1.csv", "content_type"] == "text/csv"
    assert items.loc["logs/events.jsonl.gz", "content_type"] == "application/gzip"


@pytest.mark.parametrize("prefix", ["sales", "sales/", "./sales", "sales//"])
def test_listing_a_folder_shows_its_contents(files: Session, prefix: str) -> None:
    assert files.list_items("files", prefix)["name"].tolist() == ["sales/2024/", "sales/notes.tsv"]


def test_prefix_that_is_not_a_folder_filters_names(files: Session) -> None:
    assert files.list_items("files", "sales/2024/q")["name"].tolist() == [
        "sales/2024/q1.csv",
        "sales/2024/q2.csv",
    ]
    assert files.list_items("files", "st")["name"].tolist() == ["stores.json"]


def test_recursive_listing_is_flat_and_holds_files_only(files: Session) -> None:
    names = files.list_items("files", recursive=True)["name"].tolist()
    assert names == [
        "logs/events.jsonl.gz",
        "products.parquet",
        "readme.txt",
        "sales/2024/q1.csv",
        "sales/2024/q2.csv",
        "sales/notes.tsv",
        "stores.json",
    ]
    assert files.list_items("files", "sales", recursive=True)["name"].tolist() == [
        "sales/2024/q1.csv",
        "sales/2024/q2.csv",
        "sales/notes.tsv",
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("sales/2024/*.csv", ["sales/2024/q1.csv", "sales/2024/q2.csv"]),
        ("**/*.csv", ["sales/2024/q1.csv", "sales/2024/q2.csv"]),
        ("sales/*/q?.csv", ["sales/2024/q1.csv", "sales/2024/q2.csv"]),
        ("*.json", ["stores.json"]),
        ("**/*.gz", ["logs/events.jsonl.gz"]),
        ("*.xlsx", []),
        ("sales/*", ["sales/2024/", "sales/notes.tsv"]),
        ("s*", ["sales/", "stores.json"]),
    ],
)
def test_glob_listing(files: Session, pattern: str, expected: list[str]) -> None:
    assert files.list_items("files", pattern)["name"].tolist() == expected


def test_listing_limit_marks_truncation(files: Session) -> None:
    items = files.list_items("files", recursive=True, limit=3)
    assert len(items) == 3
    assert is_truncated(items)
    assert not is_truncated(files.list_items("files", recursive=True, limit=7))


def test_listing_a_missing_folder_is_item_not_found(files: Session) -> None:
    with pytest.raises(ItemNotFound, match=r"^files: no folder 'nope/'$"):
        files.list_items("files", "nope/x")


def test_describe_a_file(files: Session, root: Path) -> None:
    described = files.describe("files", "logs/events.jsonl.gz")
    assert described.index.name == "property"
    assert described.columns.tolist() == ["value"]
    properties = described.attrs["properties"]
    assert described["value"].to_dict() == properties
    assert properties["name"] == "logs/events.jsonl.gz"
    assert properties["kind"] == "file"
    assert properties["size"] == (root / "logs" / "events.jsonl.gz").stat().st_size
    assert properties["content_type"] == "application/gzip"
    assert properties["last_modified"].tzinfo is not None
    assert (properties["format"], properties["compression"]) == ("jsonl", "gzip")
    assert files.describe("files", "readme.txt").attrs["properties"]["format"] is None


def test_describe_a_folder(files: Session) -> None:
    properties = files.describe("files", "sales").attrs["properties"]
    assert properties["name"] == "sales/"
    assert properties["kind"] == "folder"
    assert properties["size"] is None
    assert "format" not in properties


def test_describe_a_missing_item(files: Session) -> None:
    with pytest.raises(ItemNotFound, match=r"^files: no file or folder 'nope\.csv'$"):
        files.describe("files", "nope.csv")


# -- reading --------------------------------------------------------------------------------------


def test_read_one_file_of_each_format(files: Session) -> None:
    assert files.read("files", "sales/2024/q1.csv")["amount"].tolist() == [10, 20]
    assert files.read("files", "sales/notes.tsv").columns.tolist() == ["a", "b"]
    parquet = files.read("files", "products.parquet")
    assert parquet["name"].tolist() == ["tea", "cake"]
    assert parquet["id"].dtype == "int64"
    stores = files.read("files", "stores.json")
    assert stores["city"].isna().tolist() == [False, True]
    events = files.read("files", "logs/events.jsonl.gz")
    assert events["n"].tolist() == [0, 1, 2, 3, 4]


def test_read_glob_combines_files_in_order_with_a_source_column(files: Session) -> None:
    frame = files.read("files", "sales/**/*.csv", source_column="file")
    assert frame.columns.tolist() == ["file", "region", "amount"]
    assert frame["file"].tolist() == ["sales/2024/q1.csv", "sales/2024/q1.csv", "sales/2024/q2.csv"]
    assert frame["amount"].tolist() == [10, 20, 30]
    assert frame.attrs["source"] == "files"


def test_read_a_folder_reads_every_file_below_it(files: Session) -> None:
    frame = files.read("files", "sales/2024/")
    assert frame["amount"].tolist() == [10, 20, 30]


def test_read_several_paths_without_duplicates(files: Session) -> None:
    frame = files.read("files", ["sales/2024/q2.csv", "sales/2024/*.csv"], source_column="file")
    assert frame["file"].tolist() == ["sales/2024/q2.csv", "sales/2024/q1.csv", "sales/2024/q1.csv"]


def test_read_limit_stops_early_and_marks_truncation(files: Session) -> None:
    frame = files.read("files", "sales/2024/*.csv", limit=1)
    assert frame["amount"].tolist() == [10]
    assert is_truncated(frame)
    whole = files.read("files", "sales/2024/*.csv", limit=3)
    assert len(whole) == 3
    assert not is_truncated(whole)


def test_explicit_format_wins_over_the_extension(files: Session, root: Path) -> None:
    (root / "data.txt").write_text("x,y\n1,2\n")
    assert files.read("files", "data.txt", format="csv").to_dict("records") == [{"x": 1, "y": 2}]


def test_reader_options_reach_the_parser(files: Session) -> None:
    frame = files.read("files", "sales/2024/q1.csv", columns=["amount"], dtype={"amount": "float64"})
    assert frame.columns.tolist() == ["amount"]
    assert frame["amount"].dtype == "float64"


def test_unknown_format_is_refused_before_reading(files: Session) -> None:
    with pytest.raises(FormatError, match=r"^files: cannot tell the format of readme\.txt"):
        files.read("files", "readme.txt")


def test_malformed_file_is_a_format_error(files: Session, root: Path) -> None:
    (root / "broken.json").write_text("{not json")
    with pytest.raises(FormatError, match=r"^files: cannot parse broken\.json as json"):
        files.read("files", "broken.json")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope.csv", r"^files: no file 'nope\.csv'$"),
        ("sales/*.parquet", r"^files: no files match 'sales/\*\.parquet'$"),
        ("empty/", r"^files: no files in folder 'empty/'$"),
        ("nope/*.csv", r"^files: no files match 'nope/\*\.csv'$"),
        ("nope/**/*.csv", r"^files: no files match 'nope/\*\*/\*\.csv'$"),
        ("sales/notes.tsv/*.csv", r"^files: no files match 'sales/notes\.tsv/\*\.csv'$"),
        ("nope/x.csv", r"^files: no file 'nope/x\.csv'$"),
    ],
)
def test_missing_files_are_item_not_found(files: Session, path: str, message: str) -> None:
    with pytest.raises(ItemNotFound, match=message):
        files.read("files", path)


@pytest.mark.parametrize("pattern", ["nope/*.csv", "nope/**", "sales/notes.tsv/*"])
def test_a_glob_under_a_missing_folder_lists_nothing(files: Session, pattern: str) -> None:
    """Like a glob that matches nothing in a folder that exists: an empty listing, no error."""
    assert files.list_items("files", pattern).empty


def test_progress_is_reported_and_closed(root: Path) -> None:
    reports: list[tuple[str, int | None, int | None]] = []
    updates: list[tuple[int, int]] = []
    closed: list[bool] = []

    class Recorder:
        def update(self, nbytes: int = 0, items: int = 0) -> None:
            updates.append((nbytes, items))

        def close(self) -> None:
            closed.append(True)

    def factory(description: str, *, total_bytes: int | None, total_items: int | None) -> Progress:
        reports.append((description, total_bytes, total_items))
        return Recorder()

    with Session(progress=factory) as session:
        session.add("files", "local", path=str(root))
        session.read("files", "sales/2024/*.csv")
    sizes = [(root / "sales" / "2024" / name).stat().st_size for name in ("q1.csv", "q2.csv")]
    assert reports == [("Reading 2 file(s) from files", sum(sizes), 2)]
    assert updates == [(sizes[0], 1), (sizes[1], 1)]
    assert closed == [True]


# -- paths cannot leave the folder ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["../secret.csv", "sales/../../secret.csv", "..", "sales/..", "./../secret.csv", "..\\secret.csv"],
)
def test_dot_dot_is_refused(files: Session, path: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^files: .* leads outside the folder \('\.\.'\)$"):
        files.read("files", path)
    with pytest.raises(ConfigurationError, match="leads outside the folder"):
        files.list_items("files", path)


def test_absolute_paths_are_refused(files: Session, root: Path) -> None:
    for path in (str(root.parent / "secret.csv"), str(root / "stores.json"), "/etc/passwd"):
        with pytest.raises(ConfigurationError, match=r"^files: .* is an absolute path; give paths relative"):
            files.read("files", path)
    with pytest.raises(ConfigurationError, match="is an absolute path"):
        files.describe("files", "/etc")


def test_symlink_to_a_file_outside_is_refused(files: Session, root: Path) -> None:
    (root / "shortcut.csv").symlink_to(root.parent / "secret.csv")
    with pytest.raises(ConfigurationError, match=r"^files: 'shortcut\.csv' leads outside the folder"):
        files.read("files", "shortcut.csv")
    names = files.list_items("files", refresh=True)["name"].tolist()
    assert "shortcut.csv" not in names
    with pytest.raises(ConfigurationError, match="leads outside the folder"):
        files.describe("files", "shortcut.csv")


def test_symlinked_folder_outside_is_refused(files: Session, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "leak.csv").write_text("x\n1\n")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigurationError, match=r"^files: 'linked/leak\.csv' leads outside the folder"):
        files.read("files", "linked/leak.csv")
    with pytest.raises(ConfigurationError, match="leads outside the folder"):
        files.list_items("files", "linked/")
    assert "linked/leak.csv" not in files.list_items("files", recursive=True, refresh=True)["name"].tolist()
    with pytest.raises(ItemNotFound):
        files.read("files", "linked*/*.csv")  # globs never follow a link out


def test_a_folder_that_becomes_a_link_after_the_path_was_checked_is_not_followed(
    files: Session, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path is checked, then its file opened: a folder on its way that a link to the outside
    replaced in between must not lead the read there."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "q1.csv").write_text("region,amount\nSECRET,0\n")
    connector = files.run(files.registry.get_connector("files"))
    checked = connector.resolve("sales/2024/q1.csv")
    (root / "sales" / "2024").rename(tmp_path / "moved")
    (root / "sales" / "2024").symlink_to(outside, target_is_directory=True)
    monkeypatch.setattr(connector, "resolve", lambda path: checked)  # the check, made before the swap
    with pytest.raises(ConfigurationError, match=r"^files: cannot read 'sales/2024/q1\.csv': "):
        connector.open_direct("sales/2024/q1.csv")


def test_symlinks_inside_the_folder_are_fine(files: Session, root: Path) -> None:
    (root / "latest.csv").symlink_to(root / "sales" / "2024" / "q2.csv")
    (root / "current").symlink_to(root / "sales" / "2024", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    assert files.read("files", "latest.csv")["amount"].tolist() == [30]
    assert files.read("files", "current/q1.csv")["amount"].tolist() == [10, 20]
    listing = files.list_items("files", recursive=True, refresh=True)["name"].tolist()
    assert "latest.csv" in listing
    assert not any(name.startswith("loop/") for name in listing)  # a link cycle is not walked


def test_the_root_itself_may_be_a_symlink(session: Session, root: Path, tmp_path: Path) -> None:
    link = tmp_path / "data-link"
    link.symlink_to(root, target_is_directory=True)
    session.add("files", "local", path=str(link))
    assert session.read("files", "sales/2024/q2.csv")["amount"].tolist() == [30]


# -- partition folders ----------------------------------------------------------------------------


@pytest.fixture
def flights(root: Path) -> Path:
    """``flights/month=1..12/part.parquet`` (two rows each) and a string key in ``carrier=``."""
    for month in range(1, 13):
        folder = root / "flights" / f"month={month}" / f"carrier={'AA' if month % 2 else 'B%2FC'}"
        folder.mkdir(parents=True)
        (folder / "part.parquet").write_bytes(_parquet(pd.DataFrame({"delay": [month * 10, month * 10 + 1]})))
    return root / "flights"


@pytest.mark.parametrize("path", ["flights/", "flights/**/*.parquet", "flights"])
def test_partition_folders_become_columns_read_in_natural_order(
    files: Session, flights: Path, path: str
) -> None:
    frame = files.read("files", path, limit=5)
    assert is_truncated(frame)
    assert frame["month"].tolist() == [1, 1, 2, 2, 3]  # not month=1, 10, 11, ...
    assert frame["delay"].tolist() == [10, 11, 20, 21, 30]
    whole = files.read("files", path, limit=None)
    expected = arrow_to_frame(ds.dataset(flights, format="parquet", partitioning="hive").to_table())
    pd.testing.assert_frame_equal(
        whole.sort_values("delay", ignore_index=True), expected.sort_values("delay", ignore_index=True)
    )
    assert whole["carrier"].tolist()[:4] == ["AA", "AA", "B/C", "B/C"]  # URL-decoded, as pyarrow does


def test_partition_columns_can_be_selected(files: Session, flights: Path) -> None:
    frame = files.read("files", "flights/", columns=["month", "delay"], limit=3)
    assert list(frame.columns) == ["month", "delay"]
    assert frame["month"].tolist() == [1, 1, 2]
