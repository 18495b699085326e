"""Arrow to pandas: the dtypes users expect, whatever the source."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from deepanalyze_jupyter.frames import arrow_to_frame, is_truncated, mark_result


def test_integers_stay_integers() -> None:
    frame = arrow_to_frame(pa.table({"a": pa.array([1, 2], pa.int64()), "b": pa.array([1, 2], pa.int32())}))
    assert frame.dtypes.astype(str).tolist() == ["int64", "int32"]


@pytest.mark.parametrize(
    ("arrow_type", "dtype"),
    [
        (pa.int8(), pd.Int8Dtype()),
        (pa.int16(), pd.Int16Dtype()),
        (pa.int32(), pd.Int32Dtype()),
        (pa.int64(), pd.Int64Dtype()),
        (pa.uint8(), pd.UInt8Dtype()),
        (pa.uint64(), pd.UInt64Dtype()),
    ],
)
def test_integers_with_nulls_become_nullable_integers(arrow_type: pa.DataType, dtype: object) -> None:
    frame = arrow_to_frame(pa.table({"n": pa.array([1, None, 3], arrow_type)}))
    assert frame["n"].dtype == dtype
    assert frame["n"].isna().tolist() == [False, True, False]
    assert frame["n"].iloc[2] == 3


def test_large_integers_keep_their_precision_with_nulls() -> None:
    big = 2**62 + 1
    frame = arrow_to_frame(pa.table({"n": pa.array([big, None], pa.int64())}))
    assert frame["n"].iloc[0] == big


def test_booleans() -> None:
    frame = arrow_to_frame(pa.table({"plain": [True, False], "nullable": pa.array([True, None])}))
    assert frame["plain"].dtype == bool
    assert frame["nullable"].dtype == pd.BooleanDtype()
    assert frame["nullable"].isna().tolist() == [False, True]


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string()])
def test_text_is_pyarrow_backed_string(arrow_type: pa.DataType) -> None:
    frame = arrow_to_frame(pa.table({"s": pa.array(["x", None], arrow_type)}))
    assert frame["s"].dtype == pd.StringDtype("pyarrow")
    assert frame["s"].iloc[0] == "x"
    assert frame["s"].iloc[1] is pd.NA


def test_timestamps_keep_their_time_zone() -> None:
    moment = datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)
    frame = arrow_to_frame(pa.table({"t": pa.array([moment, None], pa.timestamp("us", tz="Europe/Paris"))}))
    assert isinstance(frame["t"].dtype, pd.DatetimeTZDtype)
    assert str(frame["t"].dt.tz) == "Europe/Paris"
    assert frame["t"].iloc[0] == pd.Timestamp(moment)
    assert frame["t"].isna().tolist() == [False, True]


def test_decimals_stay_exact() -> None:
    values = [Decimal("12345678901234567890.123456789"), None]
    frame = arrow_to_frame(pa.table({"d": pa.array(values, pa.decimal128(38, 9))}))
    assert frame["d"].iloc[0] == values[0]
    assert isinstance(frame["d"].iloc[0], Decimal)
    assert frame["d"].dtype == pd.ArrowDtype(pa.decimal128(38, 9))
    assert frame["d"].isna().tolist() == [False, True]


def test_floats_with_nulls_are_missing() -> None:
    frame = arrow_to_frame(pa.table({"f": pa.array([1.5, None])}))
    assert frame["f"].dtype == "Float64"
    assert frame["f"].isna().tolist() == [False, True]


def test_a_nan_is_not_a_null() -> None:
    frame = arrow_to_frame(
        pa.table({"f": pa.array([float("nan"), None, 2.0]), "g": [float("nan"), 1.0, 2.0]})
    )
    assert frame["f"].dtype == "Float64"
    assert frame["f"].isna().tolist() == [False, True, False]
    assert np.isnan(frame["f"].array.to_numpy(na_value=0.0)[0])
    assert frame["g"].dtype == "float64"  # no NULL: plain floats, NaN as it is
    frame.loc[1, "f"] = 3.0  # the frame's own memory
    assert frame["f"].tolist()[1] == 3.0


def test_duplicate_column_names_are_kept() -> None:
    table = pa.table([pa.array([1, None]), pa.array(["a", "b"])], names=["x", "x"])
    frame = arrow_to_frame(table)
    assert list(frame.columns) == ["x", "x"]
    assert frame.iloc[:, 0].dtype == pd.Int64Dtype()
    assert frame.iloc[:, 1].dtype == pd.StringDtype("pyarrow")


def test_an_empty_table_keeps_its_columns_and_dtypes() -> None:
    schema = pa.schema([("n", pa.int64()), ("s", pa.string()), ("b", pa.bool_())])
    frame = arrow_to_frame(schema.empty_table())
    assert list(frame.columns) == ["n", "s", "b"]
    assert len(frame) == 0
    assert frame["n"].dtype == "int64"
    assert frame["s"].dtype == pd.StringDtype("pyarrow")


def test_record_batches_convert_the_same_way() -> None:
    batch = pa.record_batch({"n": pa.array([1, None], pa.int32())})
    assert arrow_to_frame(batch)["n"].dtype == pd.Int32Dtype()


def test_mark_result_and_is_truncated() -> None:
    frame = pd.DataFrame({"n": [1, 2]})
    assert not is_truncated(frame)
    assert mark_result(frame, source="shop", truncated=True, limit=2) is frame
    assert frame.attrs == {"source": "shop", "truncated": True, "row_limit": 2}
    assert is_truncated(frame)
    mark_result(frame, source="shop", truncated=False, limit=None)
    assert not is_truncated(frame)


def _every_kind_of_column() -> pa.Table:
    moment = datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)
    return pa.table(
        {
            "i": pa.array([1, 2], pa.int64()),
            "ni": pa.array([1, None], pa.int32()),
            "f": pa.array([1.5, None]),
            "b": [True, False],
            "nb": pa.array([True, None]),
            "s": pa.array(["x", None]),
            "d": pa.array([Decimal("1.25"), None], pa.decimal128(5, 2)),
            "ts": pa.array([moment.replace(tzinfo=None), None], pa.timestamp("us")),
            "tz": pa.array([moment, None], pa.timestamp("us", tz="Europe/Paris")),
            "tz_full": pa.array([moment, moment], pa.timestamp("us", tz="UTC")),
            "date": pa.array([moment.date(), None], pa.date32()),
            "dur": pa.array([1_000_000, None], pa.duration("us")),
            "bin": pa.array([b"\x00", None], pa.binary()),
            "list": pa.array([[1, 2], None], pa.list_(pa.int64())),
        }
    )


def test_every_column_kind_converts_as_pyarrow_does_with_the_nullable_dtypes() -> None:
    table = _every_kind_of_column()
    frame = arrow_to_frame(table)
    for name in ["b", "ts", "date", "dur", "bin"]:  # the types pandas' own defaults already suit
        expected = table.column(name).to_pandas()
        assert frame[name].dtype == expected.dtype, name
        assert frame[name].isna().tolist() == expected.isna().tolist(), name
    assert frame["f"].dtype == "Float64"  # floats with NULLs: nullable, so that NaN stays apart
    assert frame["f"].isna().tolist() == table.column("f").is_null().to_pylist()
    assert frame["date"].iloc[0] == table.column("date")[0].as_py()
    assert frame["list"].iloc[0].tolist() == [1, 2]
    assert frame["dur"].iloc[0] == pd.Timedelta(seconds=1)


def test_every_column_of_a_frame_can_be_edited_in_place() -> None:
    """Columns must not be read-only views of Arrow memory (assigning into them would fail)."""
    frame = arrow_to_frame(_every_kind_of_column())
    for position in range(frame.shape[1]):
        frame.iat[0, position] = frame.iat[1, position]
    assert frame.iloc[0].isna().tolist() == frame.iloc[1].isna().tolist()


def test_columns_split_in_chunks_convert_whole() -> None:
    table = pa.table({"n": pa.chunked_array([[1, 2], [3]]), "s": pa.chunked_array([["a"], ["b", None]])})
    frame = arrow_to_frame(table)
    assert frame["n"].tolist() == [1, 2, 3]
    assert frame["s"].tolist()[:2] == ["a", "b"]
    assert frame["s"].isna().tolist() == [False, False, True]
