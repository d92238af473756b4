"""``tfvae tune``: trials are run directories of the sampled settings, the study resumes after a
kill, pruning stops a trial that falls behind, bad space files are refused naming the key, and
trials.csv is the study's."""

import csv
import json
import re

import pytest

from conftest import run_cli

optuna = pytest.importorskip("optuna")

from tfvae import InputError  # noqa: E402
from tfvae.training import search  # noqa: E402

SPACE = {
    "params": {"learning_rate": {"low": 1e-6, "high": 3e-2, "log": True},
               "latent_dim": {"low": 2, "high": 4}},
    "fixed": {"name": "mnist", "train_examples": 300, "test_examples": 100, "epochs": 2,
              "hidden": 16, "batch_size": 50, "optimizer": "adam", "jit_compile": "off"},
    # Trial 1 on is compared with trial 0, from its first epoch on.
    "pruning": {"startup_trials": 1, "warmup_epochs": 0},
}


def _study(out):
    return optuna.load_study(study_name=search.STUDY, storage=f"sqlite:///{out / 'study.db'}")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_search_trains_run_directories_prunes_resumes_and_summarizes(tmp_path, capsys):
    import tfvae
    from tfvae.runs import RunDirectory

    out = tmp_path / "search"
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(SPACE))
    result = tfvae.tune(out, space_file, trials=1)
    printed = capsys.readouterr().out
    assert re.search(r"trial 0: complete, test_elbo -\d+\.\d\d after 2 epochs", printed), printed
    trial = _study(out).trials[0]
    run = RunDirectory(out / "trials" / "0000")
    config = run.read_config()
    # The run trained on the sampled settings and the fixed ones.
    assert config["train"]["learning_rate"] == trial.params["learning_rate"]
    assert config["model"]["latent_dim"] == trial.params["latent_dim"]
    assert (config["model"]["hidden"], config["data"]["train_examples"]) == (16, 300)
    rows0 = run.read_metrics()
    assert trial.value == max(r["test_elbo"] for r in rows0) == result.value
    assert result.best_trial == 0 and result.run_dir == run.path

    # A trial that learns nothing (rate 1e-6) falls behind trial 0 at epoch 1 and is pruned there.
    _study(out).enqueue_trial({"learning_rate": 1e-6, "latent_dim": 2})
    search.tune(out, trials=2, verbose=0)
    pruned = RunDirectory(out / "trials" / "0001")
    rows1 = pruned.read_metrics()
    assert rows1[0]["test_elbo"] < rows0[0]["test_elbo"]
    assert len(rows1) == 1
    assert pruned.read_state()["status"] == "pruned"
    assert pruned.read_state()["pruned"] == {"epoch": 1}
    assert _study(out).trials[1].state == optuna.trial.TrialState.PRUNED

    # A kill during a trial leaves it running: the next start records it as failed, removes
    # its run directory and tries its settings again, as the one new trial of three.
    study = _study(out)
    killed = study.ask()
    params = {name: search._suggest(killed, name, spec)
              for name, spec in search.check_space(SPACE)["params"].items()}
    (out / "trials" / "0002").mkdir()
    (out / "trials" / "0002" / "config.json").write_text("{}")
    search.tune(out, space_file, trials=3, verbose=0)
    trials = _study(out).trials
    states = optuna.trial.TrialState
    assert [t.state for t in trials[:3]] == [states.COMPLETE, states.PRUNED, states.FAIL]
    assert len(trials) == 4 and trials[3].params == params
    assert trials[3].state in (states.COMPLETE, states.PRUNED)
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001", "0003"]

    # trials.csv is the study's: state, objective, epochs and parameters of each trial.
    rows = _rows(out / "trials.csv")
    assert [int(r["trial"]) for r in rows] == [0, 1, 2, 3]
    for row, t in zip(rows, trials):
        assert row["state"] == t.state.name.lower()
        assert (float(row["objective"]) if row["objective"] else None) == t.value
        for name in SPACE["params"]:
            assert (float(row[name]) if row[name] else None) == t.params.get(name)
    assert [row["epochs"] for row in rows] == ["2", "1", "", str(len(
        RunDirectory(out / "trials" / "0003").read_metrics()))]
    assert (out / "trials.png").stat().st_size > 0

    # Three trials are done: the command trains nothing more, and names the best.
    done = run_cli("tune", "--out", out, "--trials", 3)
    assert done.returncode == 0, done.stderr
    best = max((t for t in trials if t.state == states.COMPLETE), key=lambda t: t.value)
    assert f"best: trial {best.number}, test_elbo {best.value:.2f}" in done.stdout
    assert len(_study(out).trials) == 4
    # The search's own space or none resumes it; another is refused, naming what differs.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**SPACE, "seed": 1}))
    with pytest.raises(InputError, match="space: expected the space the search .* got one "
                                         "whose seed differ"):
        search.tune(out, other, trials=4)


class _Model:
    stop_training = False


def test_the_report_callback_prunes_a_trial_behind_the_median_and_no_other():
    from tfvae.training.callbacks import TrialReport

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(
        n_startup_trials=1, n_warmup_steps=2))
    first = study.ask()
    for epoch, value in ((1, -150.0), (2, -120.0), (3, -110.0)):
        first.report(value, epoch)
    study.tell(first, -110.0)

    def run(values, epochs=3):
        report, model = TrialReport(study.ask()), _Model()
        report.set_model(model)
        report.set_params({"epochs": epochs})
        for epoch, value in enumerate(values):
            report.on_epoch_end(epoch, {"loss": 1.0, "val_elbo": value})
            if model.stop_training:
                break
        return report.pruned_at, model.stop_training

    # Behind at epoch 1 but not pruned before epoch 2 (the warm-up), then pruned there.
    assert run([-200.0, -130.0, -100.0]) == (2, True)
    # Nor at the run's last epoch, which a stop would not shorten.
    assert run([-200.0, -130.0], epochs=2) == (None, False)
    assert run([-140.0, -115.0, -105.0]) == (None, False)
    # A non-finite epoch is the divergence stop's, never reported.
    assert run([float("nan")]) == (None, False)


@pytest.mark.parametrize("change, key, expected", [
    ({"params": {"learning_rat": {"low": 0.1, "high": 1}}}, "params.learning_rat",
     "a setting of train"),
    ({"params": {"activation": {"low": 0, "high": 1}}}, "params.activation", "choices"),
    ({"params": {"latent_dim": {"low": 5, "high": 2}}}, "params.latent_dim.high",
     "at least low"),
    ({"params": {"latent_dim": {"low": 2.5, "high": 4}}}, "params.latent_dim.low",
     "a value of type int"),
    ({"params": {"learning_rate": {"low": 0, "high": 1, "log": True}}},
     "params.learning_rate.low", "above 0 for a log scale"),
    ({"params": {"prior": {"choices": ["normal", "cauchy"]}}}, "params.prior.choices",
     "one of normal, mog, vamp"),
    ({"params": {"beta": {"low": 1, "hi": 2}}}, "params.beta", "the keys low, high"),
    ({"params": {}}, "params", "at least one setting"),
    ({"fixed": {"epochs": "ten"}}, "fixed.epochs", "a value of type int"),
    ({"fixed": {"latent_dim": 3}}, "params.latent_dim", "not also fixed"),
    ({"objective": {"metric": "test_kl"}}, "objective.metric", "one of test_elbo"),
    ({"pruning": {"startup_trials": -1}}, "pruning.startup_trials", "0 or more"),
    ({"sampler": "tpe"}, "sampler", "one of the keys params"),
])
def test_bad_space_files_are_refused_naming_the_file_and_the_key(tmp_path, change, key,
                                                                 expected):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({**SPACE, **change}))
    with pytest.raises(InputError) as caught:
        search.read_space(path)
    message = str(caught.value)
    assert message.startswith(f"space {path}, {key}: expected "), message
    assert expected in message, message
    # Nothing was started.
    assert not (tmp_path / "out").exists()


def test_the_command_refuses_a_bad_space_and_a_directory_that_is_no_search(tmp_path):
    (tmp_path / "space.json").write_text(json.dumps({**SPACE, "fixed": {"epochs": 0.5}}))
    bad = run_cli("tune", "--space", tmp_path / "space.json", "--out", tmp_path / "out",
                  "--trials", 2)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (f"tfvae tune: error: --space {tmp_path / 'space.json'}, "
                                  "fixed.epochs: expected a value of type int, got 0.5")
    assert not (tmp_path / "out").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="out_dir: expected a new or empty directory, or a "
                                         "search directory"):
        search.tune(other, SPACE, trials=1)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
