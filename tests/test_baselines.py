"""Wake-sleep and Monte Carlo EM: what each phase updates, chains, step-size tuning, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import InputError, estimators, noise
from tfvae.baselines import MCEM, WakeSleep
from tfvae.data import make_pipeline

SHAPE = (4, 4, 1)


def _binary(n, seed):
    return (np.random.default_rng(seed).random((n, *SHAPE)) < 0.3).astype(np.float32)


def _wake_sleep(seed=0, **kwargs):
    model = WakeSleep(image_shape=SHAPE, latent_dim=2, hidden=8, seed=seed, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


def _weights(layer):
    return [v.numpy().copy() for v in layer.trainable_variables]


def test_wake_sleep_encoder_learns_only_from_dreams_and_decoder_only_from_data():
    # Two identical models, one step each on different data: the sleep phase never sees the
    # data, so the encoders must move identically; the wake phase fits the data, so the
    # decoders must not.
    a, b = _wake_sleep(), _wake_sleep()
    b.set_weights(a.get_weights())
    enc0, dec0 = _weights(a.encoder), _weights(a.decoder)
    a.train_on_batch(_binary(16, 1))
    b.train_on_batch(_binary(16, 2))
    for before, wa, wb in zip(enc0, _weights(a.encoder), _weights(b.encoder)):
        assert not np.allclose(before, wa)
        np.testing.assert_allclose(wa, wb, atol=1e-6)
    assert any(not np.allclose(wa, wb, atol=1e-4)
               for wa, wb in zip(_weights(a.decoder), _weights(b.decoder)))
    assert any(not np.allclose(w0, w) for w0, w in zip(dec0, _weights(a.decoder)))


def test_wake_sleep_decoder_step_is_the_gradient_of_log_p_x_given_z():
    # With SGD and the wake draw reproduced from a fixed seed, the decoder update must be
    # -lr * d(-mean log p(x|z))/d(theta) at z ~ q(z|x), z held fixed.
    model = _wake_sleep(seed=3)
    model._seed = lambda seed=None: tf.constant([11, 0], tf.int32)
    x = _binary(8, 4)
    wake_seed = noise.split(tf.constant([11, 0], tf.int32))[0]
    z = estimators.sample_posterior(model.encode(x), 1, wake_seed)
    decoder_vars = model.decoder.trainable_variables
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.decode(z).log_prob(x))
    grads = tape.gradient(loss, decoder_vars)
    expected = [v.numpy() - 0.1 * g.numpy() for v, g in zip(decoder_vars, grads)]
    model.train_on_batch(x)
    for want, got in zip(expected, _weights(model.decoder)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_wake_sleep_improves_its_bound_and_reports_both_phases():
    model = _wake_sleep(seed=5, weight_decay=1e-3)
    x = _binary(200, 6)
    model.compile(optimizer=keras.optimizers.Adagrad(0.1))
    history = model.fit(x, batch_size=50, epochs=15, verbose=0).history
    assert {"elbo", "wake", "sleep", "kl"} <= set(history)
    assert history["elbo"][-1] > history["elbo"][0] + 1.0
    assert history["sleep"][-1] > history["sleep"][0]
    # elbo = wake (E_q log p(x|z)) - kl, per example
    assert np.isclose(history["elbo"][-1], history["wake"][-1] - history["kl"][-1], atol=1e-3)


def test_wake_sleep_trains_into_a_run_directory_and_reports_its_test_bound(tmp_path):
    from tfvae.runs import RunDirectory
    from tfvae.training import train

    # The test pass has no wake or sleep phase: it reports the bound alone.
    result = train(tmp_path / "run", model="wake_sleep", epochs=2, batch_size=50, verbose=0,
                   model_config={"hidden": 16, "latent_dim": 2},
                   data_config={"name": "mnist", "train_examples": 300, "test_examples": 100})
    rows = RunDirectory(tmp_path / "run").read_metrics()
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(np.isfinite(row["test_elbo"]) for row in rows)
    assert result.metrics["test_elbo"] == rows[-1]["test_elbo"]


def test_wake_sleep_saves_and_reloads_with_its_optimizer(tmp_path):
    model = _wake_sleep(seed=7)
    model.compile(optimizer=keras.optimizers.Adagrad(0.05))
    model.fit(_binary(20, 8), batch_size=10, epochs=1, verbose=0)
    model.save(tmp_path / "ws.keras")
    again = keras.saving.load_model(tmp_path / "ws.keras")
    assert isinstance(again, WakeSleep)
    for a, b in zip(model.optimizer.variables, again.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    again.fit(_binary(20, 8), batch_size=10, epochs=1, verbose=0)  # keeps training


@pytest.mark.parametrize("options", [{}, {"likelihood": "gaussian", "posterior": "iaf"}])
def test_wake_sleep_steps_compiled_by_xla_match_uncompiled_ones(options):
    # Same weights and draws: XLA must compile the step (its optimizer slots created outside the
    # step's control dependencies) and dream what the uncompiled step dreams.
    x = _binary(40, 9)
    start = WakeSleep(image_shape=SHAPE, latent_dim=2, hidden=8, seed=4, **options).get_weights()
    models = []
    for jit in (False, True):
        model = WakeSleep(image_shape=SHAPE, latent_dim=2, hidden=8, seed=4, **options)
        model.set_weights(start)
        model.compile(optimizer=keras.optimizers.Adagrad(0.1), jit_compile=jit,
                      steps_per_execution=2)
        model.fit(x, batch_size=10, epochs=1, verbose=0, shuffle=False)
        models.append(model)
    for a, b, before in zip(models[0].get_weights(), models[1].get_weights(), start):
        assert not np.allclose(a, before)
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("option, value", [("objective", "iwae"), ("prior", "mog"),
                                           ("stochastic_layers", 2), ("beta", 0.5)])
def test_wake_sleep_refuses_what_it_cannot_train(option, value):
    with pytest.raises(InputError, match=f"^{option}: expected"):
        WakeSleep(image_shape=SHAPE, latent_dim=2, hidden=8, **{option: value})


def _mcem(n=40, **kwargs):
    model = MCEM(num_train=n, image_shape=SHAPE, latent_dim=2, hidden=8, seed=0, **kwargs)
    model.compile(optimizer=keras.optimizers.Adagrad(0.05))
    return model


def test_mcem_moves_only_the_chains_of_its_batch_and_makes_five_weight_updates():
    model = _mcem()
    x = _binary(40, 9)
    before = model.latents.numpy().copy()
    steps_before = model.step_sizes.numpy().copy()
    index = np.array([3, 7, 11, 20], np.int32)
    logs = model.train_on_batch(x[index], index, return_dict=True)
    after = model.latents.numpy()
    others = np.setdiff1d(np.arange(40), index)
    np.testing.assert_array_equal(after[others], before[others])
    np.testing.assert_array_equal(model.step_sizes.numpy()[others], steps_before[others])
    # Each visited log step size moved by 2 * (acceptance - 0.9): within [-1.8, 0.2].
    log_ratio = np.log(model.step_sizes.numpy()[index] / steps_before[index])
    assert np.all(log_ratio >= -1.8 - 1e-5) and np.all(log_ratio <= 0.2 + 1e-5)
    assert np.mean(0.9 + log_ratio / 2.0) == pytest.approx(logs["acceptance"], abs=1e-4)
    assert int(model.optimizer.iterations.numpy()) == 5
    assert np.isfinite(logs["log_joint"]) and 0 <= logs["acceptance"] <= 1


def test_mcem_tunes_acceptance_toward_ninety_percent():
    model = _mcem(adaptation_rate=2.0, initial_step_size=0.01)
    x = _binary(40, 10)
    data = make_pipeline(x, batch_size=20, shuffle=True, seed=0, with_index=True)
    history = model.fit(data, epochs=40, verbose=0).history
    assert history["acceptance"][0] > 0.97  # tiny steps: almost everything accepted
    assert abs(np.mean(history["acceptance"][-10:]) - 0.9) < 0.04
    assert history["step_size"][-1] > 5 * history["step_size"][0]
    assert history["log_joint"][-1] > history["log_joint"][0]


def test_mcem_saves_its_chains(tmp_path):
    model = _mcem()
    data = make_pipeline(_binary(40, 11), batch_size=20, shuffle=True, seed=0, with_index=True)
    model.fit(data, epochs=1, verbose=0)
    model.save(tmp_path / "mcem.keras")
    again = keras.saving.load_model(tmp_path / "mcem.keras")
    np.testing.assert_array_equal(again.latents.numpy(), model.latents.numpy())
    np.testing.assert_array_equal(again.step_sizes.numpy(), model.step_sizes.numpy())
    assert again.get_config()["num_train"] == 40


def test_mcem_needs_indices():
    model = _mcem()
    with pytest.raises(InputError, match="index"):
        model.fit(_binary(40, 12), batch_size=20, epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs, argument", [
    ({"num_train": 0}, "num_train"),
    ({"target_accept": 1.0}, "target_accept"),
    ({"leapfrog_steps": 0}, "leapfrog_steps"),
])
def test_mcem_bad_options_name_the_argument(kwargs, argument):
    with pytest.raises(InputError) as info:
        MCEM(**{"num_train": 10, "image_shape": SHAPE, "hidden": 4, **kwargs})
    assert info.value.argument == argument


def test_indexed_pipeline_pairs_each_example_with_its_row():
    x = np.random.default_rng(0).random((10, *SHAPE)).astype(np.float32)
    seen = []
    for xb, index in make_pipeline(x, batch_size=4, shuffle=True, seed=1, with_index=True):
        np.testing.assert_array_equal(xb.numpy(), x[index.numpy()])
        seen += list(index.numpy())
    assert sorted(seen) == list(range(10))


def test_mcem_weight_updates_are_sequential_gradient_steps_at_the_new_sample():
    # One train step = 5 SGD steps on -mean log p(x|z1), each from the weights the last one left.
    model = MCEM(num_train=20, image_shape=SHAPE, latent_dim=2, hidden=8, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    x, index = _binary(20, 3), np.arange(8, dtype=np.int32)
    start = [v.numpy().copy() for v in model.trainable_variables]
    model.train_on_batch(x[index], index)
    z1 = tf.constant(model.latents.numpy()[index])
    reference = MCEM(num_train=20, image_shape=SHAPE, latent_dim=2, hidden=8, seed=0)
    for v, w in zip(reference.trainable_variables, start):
        v.assign(w)
    first_step = None
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(reference.decode(z1).log_prob(x[index]))
        grads = tape.gradient(loss, reference.trainable_variables)
        first_step = first_step or [w - 5 * 0.5 * g.numpy() for w, g in zip(start, grads)]
        for v, g in zip(reference.trainable_variables, grads):
            v.assign(v - 0.5 * g)
    for got, want in zip(model.trainable_variables, reference.trainable_variables):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    # Five updates from one stale gradient would land elsewhere: the test tells them apart.
    assert max(np.abs(got.numpy() - stale).max()
               for got, stale in zip(model.trainable_variables, first_step)) > 1e-3
