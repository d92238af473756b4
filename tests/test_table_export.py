"""A table model's export takes the rows a user has: ``score_rows`` codes them in the graph as
training coded them, and refuses what training would have refused, naming the column."""

import csv

import numpy as np
import pytest
import tensorflow as tf

from serving_double import ModelServer
from tfvae.cli import main
from tfvae.data.tables import Column, read_table
from tfvae.export.client import Client, ServingError
from tfvae.export.metadata import read_metadata
from tfvae.export.rows import input_names
from tfvae.export.signatures import serving_functions
from tfvae.export.versions import export_run
from tfvae.runs import RunDirectory

HEADER = "amount,flag,visits,colour of car"
NEW_ROWS = "48.0,0,2,green\n51.5,1,40,red\n49.0,1,3,blue\n"


@pytest.fixture(scope="module")
def table_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    n = 300
    amount = rng.normal(50.0, 10.0, n)
    visits = rng.poisson(3.0, n)
    colour = np.array(["red", "green", "blue"])[rng.integers(0, 3, n)]
    lines = [HEADER] + [f"{a:.3f},{int(a > 50)},{v},{c}" for a, v, c in zip(amount, visits, colour)]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    (root / "new.csv").write_text(HEADER + "\n" + NEW_ROWS)
    run_dir = root / "run"
    assert main(["train", "--out", str(run_dir), "--dataset", str(root / "train.csv"),
                 "--latent-dim", "2", "--hidden", "16", "--epochs", "2", "--batch-size", "50",
                 "--quiet"]) == 0
    path = export_run(run_dir, "table", base_dir=root / "export", num_samples=8)
    columns = RunDirectory(run_dir).read_config()["table_columns"]
    coded = read_table(root / "new.csv", columns=[
        Column(c["name"], c["type"], c["categories"] and tuple(c["categories"]))
        for c in columns]).values
    return {"root": root, "run_dir": run_dir, "path": path, "columns": columns, "coded": coded}


def _raw_inputs(text, seeds):
    """The score_rows inputs of CSV rows ``text``: numbers as floats, categories as text."""
    rows = list(csv.reader(text.splitlines()))
    names = input_names([{"name": n} for n in HEADER.split(",")])
    inputs = {name: tf.constant([float(row[j]) for row in rows], tf.float32)
              for j, name in enumerate(names[:3])}
    inputs[names[3]] = tf.constant([row[3] for row in rows])
    inputs["seed"] = tf.constant(seeds, tf.int64)
    return inputs


def test_score_rows_codes_raw_rows_as_training_did(table_export):
    loaded = tf.saved_model.load(str(table_export["path"]))
    seeds = [3, 4, 5]
    by_rows = loaded.signatures["score_rows"](**_raw_inputs(NEW_ROWS, seeds))["score"].numpy()
    by_codes = loaded.signatures["score"](x=tf.constant(table_export["coded"]),
                                          seed=tf.constant(seeds, tf.int64))["score"].numpy()
    np.testing.assert_array_equal(by_rows, by_codes)
    # The Python API's score signature on the rows read from the file gives the same numbers.
    model = RunDirectory(table_export["run_dir"]).load_model()
    in_process = serving_functions(model)["score"](tf.constant(table_export["coded"]),
                                                   tf.constant(seeds, tf.int64))["score"]
    np.testing.assert_allclose(by_rows, in_process.numpy(), rtol=1e-5)
    assert by_rows[1] > by_rows[0]  # 40 visits where about 3 are usual
    info = read_metadata(table_export["path"])
    assert [c["input"] for c in info["table_columns"]] == ["amount", "flag", "visits",
                                                           "colour_of_car"]
    assert info["signatures"]["score_rows"]["inputs"] == ["amount", "flag", "visits",
                                                          "colour_of_car", "seed"]


@pytest.mark.parametrize("column, value, message", [
    ("colour_of_car", "purple", "colour_of_car: expected a category seen in training"),
    ("visits", 2.5, "visits: expected an integer from 0"),
    ("visits", -1.0, "visits: expected an integer from 0"),
    ("flag", 0.5, "flag: expected 0 or 1"),
    ("amount", float("nan"), "amount: expected a finite number"),
])
def test_score_rows_refuses_a_value_its_column_does_not_take(table_export, column, value,
                                                             message):
    loaded = tf.saved_model.load(str(table_export["path"]))
    inputs = _raw_inputs(NEW_ROWS, [0, 0, 0])
    values = inputs[column].numpy().tolist()
    values[2] = value
    inputs[column] = tf.constant(values, inputs[column].dtype)
    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
        loaded.signatures["score_rows"](**inputs)
    assert message in str(refused.value) and "got in row" in str(refused.value)
    assert "[2]" in str(refused.value)  # the first bad row


def test_served_table_rows_and_the_client_reading_a_csv(table_export, tmp_path, capsys):
    base = table_export["path"].parent.parent
    server = ModelServer({"table": base / "table"}).start()
    try:
        client = Client(server.rest_url, "table")
        row = {"amount": 48.0, "flag": 0.0, "visits": 2.0, "colour_of_car": "green", "seed": 3}
        got = client.predict({k: np.array([v]) for k, v in row.items()}, "score_rows")
        want = tf.saved_model.load(str(table_export["path"])).signatures["score_rows"](
            **_raw_inputs(NEW_ROWS.splitlines()[0], [3]))["score"].numpy()
        np.testing.assert_allclose(got["score"], want, rtol=1e-6)
        by_grpc = Client(server.grpc_url, "table").score_rows(
            {k: np.array([v]) for k, v in row.items() if k != "seed"}, seeds=3)
        np.testing.assert_allclose(by_grpc["score"], want, rtol=1e-6)
        # A column missing from the request: TF Serving names it.
        del row["visits"]
        with pytest.raises(ServingError, match="visits"):
            client.predict({k: np.array([v]) for k, v in row.items()}, "score_rows")
        # tfvae client score reads a table file by the served columns' names, in any order.
        (tmp_path / "new.csv").write_text("colour of car,visits,flag,amount,id\n"
                                          "green,2,0,48.0,a\nred,40,1,51.5,b\n")
        out = tmp_path / "scores.csv"
        assert main(["client", "score", str(tmp_path / "new.csv"), "--url", server.rest_url,
                     "--model-name", "table", "--seed", "3", "--out", str(out)]) == 0
        table = list(csv.DictReader(out.open()))
        assert [r["id"] for r in table] == ["a", "b"]
        np.testing.assert_allclose(float(table[0]["score"]), want[0], rtol=1e-6)
        (tmp_path / "bad.csv").write_text("colour of car,flag,amount\ngreen,0,48.0\n")
        assert main(["client", "score", str(tmp_path / "bad.csv"), "--url", server.rest_url,
                     "--model-name", "table"]) == 2
        err = capsys.readouterr().err
        assert "bad.csv" in err and "visits" in err
    finally:
        server.stop()
