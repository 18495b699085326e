"""``--to``: a query's (or a read's) rows written batch by batch to a local file or into a path of a
local or blob source, on the real PostgreSQL and Azurite."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter import Session

from .conftest import run, usage_error
from .test_services import lake, warehouse  # noqa: F401  (the fixtures)


def test_dsquery_to_writes_the_file_and_needs_overwrite_to_replace_it(
    shell: InteractiveShell,
    warehouse: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    target = tmp_path / "orders.parquet"
    cell = "SELECT id, region FROM orders WHERE region = :region ORDER BY id"
    shell.user_ns["region"] = "EU"
    ran = run(shell, f"%%dsquery warehouse --to {target}\n{cell}")
    assert ran.error is None, ran.text
    assert ran.out.strip() == f"warehouse: 2 row(s) written to {target} (parquet)"
    assert pq.read_table(target).to_pydict() == {"id": [1, 3], "region": ["EU", "EU"]}
    again = run(shell, f"%%dsquery warehouse --to {target}\n{cell}")
    assert again.text.strip().endswith("exists: nothing was written; pass --overwrite to replace it")
    assert "Traceback" not in again.text
    shell.user_ns["region"] = "US"
    replaced = run(shell, f"%%dsquery warehouse --to {target} --overwrite\n{cell}")
    assert replaced.error is None, replaced.text
    assert pq.read_table(target).to_pydict() == {"id": [2], "region": ["US"]}


def test_dsquery_to_refuses_a_format_it_cannot_write(
    shell: InteractiveShell,
    warehouse: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    ran = run(shell, f"%%dsquery warehouse --to {tmp_path / 'x.xlsx'}\nSELECT 1 AS a")
    assert "cannot tell the format" in ran.text
    assert "Traceback" not in ran.text
    assert list(tmp_path.iterdir()) == []


def test_dsquery_partition_on_reads_the_same_rows(
    shell: InteractiveShell,
    warehouse: str,  # noqa: F811
) -> None:
    ran = run(
        shell, "%%dsquery warehouse --partition-on id --partitions 3 -o parts\nSELECT id, region FROM orders"
    )
    assert ran.error is None, ran.text
    assert sorted(shell.user_ns["parts"]["id"].tolist()) == [1, 2, 3, 4]


def test_dsquery_to_a_blob_source_path(
    shell: InteractiveShell,
    warehouse: str,  # noqa: F811
    lake: str,  # noqa: F811
) -> None:
    run(shell, "%datasource update lake --read-only false --no-test")
    ran = run(
        shell,
        "%%dsquery warehouse --to dsrc://lake/exports/orders.parquet\nSELECT id FROM orders ORDER BY id",
    )
    assert ran.error is None, ran.text
    assert ran.out.strip() == "lake: 4 row(s) written to exports/orders.parquet (parquet)"
    back = run(shell, "%datasource read lake exports/orders.parquet -o back")
    assert back.error is None, back.text
    assert shell.user_ns["back"]["id"].tolist() == [1, 2, 3, 4]
    again = run(shell, "%%dsquery warehouse --to dsrc://lake/exports/orders.parquet\nSELECT 1 AS id")
    assert "exports/orders.parquet exists: nothing was written" in again.text
    assert "Traceback" not in again.text


def test_reads_go_to_a_path_batch_by_batch(
    shell: InteractiveShell,
    lake: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    target = tmp_path / "all.parquet"
    ran = run(shell, f"%datasource read lake 2024/*.csv --source-column file --to {target}")
    assert ran.error is None, ran.text
    assert ran.out.strip() == f"lake: 3 row(s) written to {target} (parquet)"
    assert pq.read_table(target).to_pydict() == {
        "file": ["2024/feb.csv", "2024/jan.csv", "2024/jan.csv"],
        "id": [3, 1, 2],
        "amount": [30, 10, 20],
        "region": ["EU", "EU", "US"],
    }
    cell = run(shell, f"%%dsquery lake --to {tmp_path / 'mar.jsonl'}\n2025/mar.csv")
    assert cell.error is None, cell.text
    assert (tmp_path / "mar.jsonl").read_text() == '{"id": 4, "amount": 40, "region": "APAC"}\n'
    refused = usage_error(shell, "%datasource read lake 2025/mar.csv --to dsrc://lake/copy.csv")
    assert refused.startswith("lake: the source is read-only: nothing was written")
    mixed = usage_error(shell, f"%datasource read lake 2025/mar.csv --limit 1 --to {tmp_path / 'one.csv'}")
    assert mixed == "lake: --to writes every row to a file; --limit cannot go with it"
    assert not (tmp_path / "one.csv").exists()


def test_the_export_bar_counts_rows_and_bytes(shell: InteractiveShell, session: Session) -> None:
    progress = session.registry.progress(
        "out: writing x.csv", total_bytes=None, total_items=None, items="rows"
    )
    assert type(progress).__name__ == "TqdmProgress"
    progress.update(nbytes=1000, items=5000)
    progress.update(nbytes=24, items=1)
    bar = progress._bar  # type: ignore[attr-defined]
    assert bar.n == 1024
    assert bar.postfix == "5,001 rows"
    progress.close()


def test_sql_over_files_goes_to_a_source_path_and_a_local_path(
    shell: InteractiveShell,
    lake: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    sql = "SELECT id, amount FROM read_csv('20*/*.csv') WHERE region = 'EU' ORDER BY id"
    target = tmp_path / "eu.csv"
    local = run(shell, f"%%dsquery lake --to {target}\n{sql}")
    assert local.error is None, local.text
    assert local.out.strip() == f"lake: 2 row(s) written to {target} (csv)"
    assert target.read_text() == '"id","amount"\n1,10\n3,30\n'
    run(shell, "%datasource update lake --read-only false --no-test")
    ran = run(shell, f"%%dsquery lake --to dsrc://lake/exports/eu.parquet\n{sql}")
    assert ran.error is None, ran.text
    assert ran.out.strip() == "lake: 2 row(s) written to exports/eu.parquet (parquet)"
    back = run(shell, "%datasource read lake exports/eu.parquet -o back")
    assert back.error is None, back.text
    assert shell.user_ns["back"].to_dict("list") == {"id": [1, 3], "amount": [10, 30]}
    escape = run(shell, f"%%dsquery lake --to {tmp_path / 'no.csv'}\nSELECT * FROM read_text('/etc/passwd')")
    assert "refused" in escape.text
    assert "Traceback" not in escape.text
    assert not (tmp_path / "no.csv").exists()
