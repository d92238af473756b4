"""Tests of tfvae.data.tables: CSV and Parquet files read into numeric tables, their column types,
the refusals of bad files naming the file, row and column, and scoring-time encoding."""

import os
import threading

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from tfvae.data.tables import Column, column_names, encode_rows, read_table  # noqa: E402
from tfvae.errors import InputError  # noqa: E402

MIXED = """id,height,smoker,kids,owner,city,species
007,1.5,0,3,true,paris,cat
b2,-0.25,1,0,false,lyon,dog
c3,2,1,12,true,paris,cat
d4,100.125,0,1,false,nice,bird
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(path, **kwargs):
    """The message of the InputError that reading ``path`` raises."""
    with pytest.raises(InputError) as info:
        read_table(path, **kwargs)
    return str(info.value)


def test_types_are_inferred_for_a_mixed_table(tmp_path):
    table = read_table(write(tmp_path, "t.csv", MIXED), label="species")
    assert table.columns == (Column("height", "real"), Column("smoker", "binary"),
                             Column("kids", "count"), Column("owner", "binary"),
                             Column("city", "categorical", ("lyon", "nice", "paris")))
    assert table.values.dtype == np.float32 and table.values.shape == (4, 5)
    # Categories are coded in sorted order, labels too; ids keep their text ("007", not 7).
    assert table.values[:, 4].tolist() == [2, 0, 2, 1]
    assert table.labels.dtype == np.int64 and table.labels.tolist() == [1, 2, 1, 0]
    assert table.label_categories == ("bird", "cat", "dog")
    assert table.ids.tolist() == ["007", "b2", "c3", "d4"]


def test_values_are_the_raw_numbers(tmp_path):
    table = read_table(write(tmp_path, "t.csv", MIXED), exclude=["city"], label="species")
    expected = np.array([[1.5, 0, 3, 1], [-0.25, 1, 0, 0], [2, 1, 12, 1], [100.125, 0, 1, 0]],
                        np.float32)
    np.testing.assert_array_equal(table.values, expected)  # exact: no standardization


def test_ids_keep_their_text_even_when_numeric(tmp_path):
    table = read_table(write(tmp_path, "t.csv", "id,x\n007,1.5\n010,2.5\n"))
    assert table.ids.tolist() == ["007", "010"] and table.columns == (Column("x", "real"),)


def test_integer_labels_stay_as_they_are_and_no_id_column_gives_no_ids(tmp_path):
    table = read_table(write(tmp_path, "t.csv", "x,y\n0.5,3\n1.5,0\n2.5,7\n"), label="y")
    assert table.labels.tolist() == [3, 0, 7] and table.label_categories is None
    assert table.ids is None and table.columns == (Column("x", "real"),)


def test_types_override_the_inferred_ones(tmp_path):
    table = read_table(write(tmp_path, "t.csv", "zip,kids,smoker\n02139,3,0\n10001,1,1\n"),
                       column_types={"zip": "categorical", "kids": "real", "smoker": "count"})
    assert table.columns == (Column("zip", "categorical", ("02139", "10001")),
                             Column("kids", "real"), Column("smoker", "count"))
    np.testing.assert_array_equal(table.values, [[0, 3, 0], [1, 1, 1]])


def test_column_types_reach_a_table_dataset_from_python_and_the_command_line(tmp_path, capsys):
    from tfvae.cli import main
    from tfvae.data import load_dataset

    path = write(tmp_path, "t.csv", "zip,kids\n" + "".join(f"{10000 + i % 3},{i % 4}\n"
                                                            for i in range(40)))
    for given in ({"zip": "categorical"}, ["zip=categorical"]):
        dataset = load_dataset(str(path), column_types=given)
        assert dataset.columns == (Column("zip", "categorical", ("10000", "10001", "10002")),
                                   Column("kids", "count"))
        assert dataset.likelihood == "table"
    assert main(["train", "--out", str(tmp_path / "run"), "--dataset", str(path),
                 "--column-types", "zip", "--quiet"]) == 2
    assert "--column-types: expected" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="column_types: expected .* NAME=TYPE pairs"):
        read_table(path, column_types=["zip"])
    with pytest.raises(InputError, match="column_types"):
        load_dataset(str(tmp_path / "x.npz"), column_types=["a=real"])


def test_tsv_files_are_read_by_tabs(tmp_path):
    table = read_table(write(tmp_path, "t.tsv", "a\tb\n1\tx\n2\ty\n"))
    assert table.columns == (Column("a", "count"), Column("b", "categorical", ("x", "y")))


def test_parquet_gives_the_same_table_as_csv(tmp_path):
    csv_table = read_table(write(tmp_path, "t.csv", MIXED), label="species")
    arrow = pa.table({"id": ["007", "b2", "c3", "d4"], "height": [1.5, -0.25, 2.0, 100.125],
                      "smoker": [0, 1, 1, 0], "kids": [3, 0, 12, 1],
                      "owner": [True, False, True, False],
                      "city": pa.array(["paris", "lyon", "paris", "nice"]).dictionary_encode(),
                      "species": ["cat", "dog", "cat", "bird"]})
    pq.write_table(arrow, tmp_path / "t.parquet")
    parquet_table = read_table(tmp_path / "t.parquet", label="species")
    np.testing.assert_array_equal(parquet_table.values, csv_table.values)
    assert parquet_table.columns == csv_table.columns
    np.testing.assert_array_equal(parquet_table.labels, csv_table.labels)
    assert parquet_table.label_categories == csv_table.label_categories
    np.testing.assert_array_equal(parquet_table.ids, csv_table.ids)


def test_a_missing_value_in_parquet_names_its_row_counted_from_1(tmp_path):
    pq.write_table(pa.table({"a": [1.0, 2.0, None]}), tmp_path / "t.pq")
    message = refusal(tmp_path / "t.pq")
    assert "'t.pq' row 3, column 'a'" in message.replace(str(tmp_path) + os.sep, "")
    assert "allow_missing=True: empty cells are missing values" in message


# Bad files: (file name, its text, read_table's keyword arguments, what the message must hold
# besides the file's name).
BAD = {
    "ragged row": ("a,b,c\n1,2,3\n4,5\n", {}, ["row 3", "column 'c'"]),
    "long row": ("a,b\n1,2\n3,4\n5,6,7\n", {}, ["row 4", "column 'b'"]),
    "empty cell": ("a,b\n1,2\n3,\n", {}, ["row 3", "column 'b'", "missing values"]),
    "empty text cell": ("a,b\nx,1\n,2\n", {}, ["row 3", "column 'a'", "missing values"]),
    "blank line": ("a,b\n1,2\n\n3,4\n", {}, ["row 3", "column 'a'", "missing values"]),
    "text typed a count": ("a,b\n" + "1,2\n" * 10 + "3,x\n" + "4,y\n" * 5,
                           {"column_types": {"b": "count"}}, ["row 12", "column 'b'", "'x'"]),
    "fraction typed a count": ("a,b\n1,2\n3,2.5\n", {"column_types": {"b": "count"}},
                               ["row 3", "column 'b'", "2.5"]),
    "two typed binary": ("a\n1\n0\n2\n", {"column_types": {"a": "binary"}},
                         ["row 4", "column 'a'"]),
    "infinity": ("a\n1\ninf\n", {}, ["row 3", "column 'a'", "finite"]),
    "unknown exclude": ("a,b\n1,2\n", {"exclude": ["c"]}, ["exclude", "row 1", "'c'"]),
    "unknown label": ("a,b\n1,2\n", {"label": "y"}, ["label", "row 1", "'y'"]),
    "unknown typed column": ("a,b\n1,2\n", {"column_types": {"z": "real"}},
                             ["column_types", "row 1", "'z'"]),
    "unknown type name": ("a,b\n1,2\n", {"column_types": {"a": "ordinal"}},
                          ["column_types", "row 1", "column 'a'", "'ordinal'"]),
    "missing label": ("a,y\n1,2\n3,\n", {"label": "y"}, ["row 3", "column 'y'"]),
    "date column": ("a,b\n2020-01-01,1\n", {}, ["column 'a'", "exclude"]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_files_are_refused_naming_the_file_row_and_column(tmp_path, case):
    text, kwargs, parts = BAD[case]
    message = refusal(write(tmp_path, "t.csv", text), **kwargs)
    assert "t.csv" in message
    for part in parts:
        assert part in message


@pytest.mark.parametrize("name, text, part", [
    ("t.csv", "", "an empty file"),
    ("t.csv", "a,b\n", "at least one row"),
    ("t.txt", "a,b\n1,2\n", ".csv, .tsv, .parquet or .pq"),
    ("t.parquet", "a,b\n1,2\n", ".csv, .tsv, .parquet or .pq"),  # not Parquet inside
    ("t.csv", "a,a\n1,2\n", "column 'a' twice"),
])
def test_files_that_are_no_table_are_refused_naming_the_file(tmp_path, name, text, part):
    message = refusal(write(tmp_path, name, text))
    assert name in message and part in message and message.startswith("name:")


def test_column_names_are_read_from_the_header_alone(tmp_path):
    # A ragged row 4 MB in: past the first block, so only a reader of the whole file sees it.
    path = write(tmp_path, "t.csv", "a,b,c\n" + "1,2,3\n" * 700_000 + "4,5\n")
    assert column_names(path) == ["a", "b", "c"]
    assert "row 700002" in refusal(path)
    pq.write_table(pa.table({"x": [1.0], "id": ["7"]}), tmp_path / "t.pq")
    assert column_names(tmp_path / "t.pq") == ["x", "id"]
    # A ragged row in the first block too: the names, and read_table names the row.
    path = write(tmp_path, "near.csv", "a,b,c\n1,2\n")
    assert column_names(path) == ["a", "b", "c"] and "row 2" in refusal(path)


@pytest.mark.parametrize("name, text, part", [
    ("t.csv", "", "an empty file"),
    ("t.txt", "a,b\n1,2\n", ".csv, .tsv, .parquet or .pq"),
    ("t.parquet", "a,b\n1,2\n", ".csv, .tsv, .parquet or .pq"),  # not Parquet inside
])
def test_column_names_of_a_file_that_is_no_table_are_refused_naming_it(tmp_path, name, text,
                                                                        part):
    with pytest.raises(InputError) as error:
        column_names(write(tmp_path, name, text), "INPUT")
    message = str(error.value)
    assert message.startswith("INPUT:") and name in message and part in message


def test_the_argument_is_named_as_given(tmp_path):
    message = refusal(write(tmp_path, "t.csv", "a\n1\n\n2\n"), argument="data")
    assert message.startswith("data:")


def test_trailing_blank_lines_are_no_rows(tmp_path):
    table = read_table(write(tmp_path, "t.csv", "a,b\n1,2\n3,4\n\n\n"))
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4]])


def test_a_fifo_named_t_csv_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "t.csv"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_table(fifo)
        except InputError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # blocked opening the FIFO: a writer lets it go before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO blocked")
    assert outcome and "t.csv" in outcome[0] and "not a regular file" in outcome[0]


def test_scoring_codes_categories_as_in_training(tmp_path):
    training = read_table(write(tmp_path, "train.csv", MIXED), label="species")
    # Other columns, another order, only some categories, and a count column holding only 0/1
    # (which alone would be read as binary): read as in training.
    new = write(tmp_path, "new.csv", "city,extra,kids,owner,smoker,height\n"
                                     "nice,x,1,true,1,0.5\nparis,y,0,false,0,7\n")
    table = read_table(new, columns=training.columns)
    assert table.columns == training.columns
    np.testing.assert_array_equal(table.values, [[0.5, 1, 1, 1, 1], [7, 0, 0, 0, 2]])


def test_encode_rows_recodes_a_table_read_with_the_training_types(tmp_path):
    training = read_table(write(tmp_path, "train.csv", MIXED), label="species")
    new = write(tmp_path, "new.csv", "height,smoker,kids,owner,city\n1,0,2,true,paris\n"
                                     "2,1,3,false,lyon\n")
    rows = read_table(new, column_types={c.name: c.type for c in training.columns})
    assert rows.columns[-1].categories == ("lyon", "paris")
    encoded = encode_rows(rows, training.columns, "name")
    np.testing.assert_array_equal(encoded.values[:, -1], [2, 0])


def test_an_unknown_category_at_scoring_is_refused_naming_row_and_column(tmp_path):
    training = read_table(write(tmp_path, "train.csv", MIXED), label="species")
    new = write(tmp_path, "new.csv", "height,smoker,kids,owner,city\n1,0,2,true,paris\n"
                                     "2,1,3,false,rome\n")
    message = refusal(new, columns=training.columns)
    assert "new.csv" in message and "row 3, column 'city'" in message and "'rome'" in message


def test_a_training_column_missing_at_scoring_is_refused_naming_it(tmp_path):
    training = read_table(write(tmp_path, "train.csv", MIXED), label="species")
    new = write(tmp_path, "new.csv", "height,smoker,owner,city\n1,0,true,paris\n")
    message = refusal(new, columns=training.columns)
    assert "new.csv" in message and "'kids'" in message


def test_a_value_the_training_type_does_not_take_is_refused_at_scoring(tmp_path):
    training = read_table(write(tmp_path, "train.csv", MIXED), label="species")
    new = write(tmp_path, "new.csv", "height,smoker,kids,owner,city\n1,0,2,true,paris\n"
                                     "2,1,-3,false,lyon\n")
    message = refusal(new, columns=training.columns)
    assert "new.csv" in message and "row 3, column 'kids'" in message
