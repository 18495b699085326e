"""The worker's side of a file hand-off to Dask, run in this process: what a worker says when it
cannot sign in with its own Entra ID identity, and the dtypes every partition takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors.azure_blob.sas import WorkerCredential
from deepanalyze_jupyter.dask_handoff.files import FilePart, _blob_access, nullable, read_file_part
from deepanalyze_jupyter.errors import AuthenticationFailed, ConfigurationError


def test_a_worker_without_an_entra_id_identity_gets_one_line_naming_the_source() -> None:
    credential = WorkerCredential("entra_id", "https://127.0.0.1:9/devstoreaccount1")
    access = _blob_access({"connect_timeout": 1.0, "retries": 0}, credential, "box")
    assert access.secrets == {}
    part = FilePart(Session, "lake", access, "x.csv", {}, pd.DataFrame())
    with pytest.raises((ConfigurationError, AuthenticationFailed)) as raised:
        read_file_part(part)
    text = str(raised.value)
    assert text.startswith("lake: ")
    assert "\n" not in text
    # without azure-identity on the worker, that is what it lacks; with it, an identity
    assert "azure-identity" in text or "DefaultAzureCredential" in text


def test_numbers_take_nullable_dtypes_and_floats_keep_nan() -> None:
    frame = pd.DataFrame(
        {
            "i": np.array([1, 2], dtype="int32"),
            "u": np.array([1, 2], dtype="uint8"),
            "b": [True, False],
            "f": [1.5, np.nan],
            "t": pd.array(["x", None], dtype="string"),
        }
    )
    made = nullable(frame)
    assert [str(dtype) for dtype in made.dtypes] == ["Int32", "UInt8", "boolean", "Float64", "string"]
    assert made["f"].isna().tolist() == [False, False]  # NaN is a value, not a missing one
    assert made["i"].tolist() == [1, 2]
