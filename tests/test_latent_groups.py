"""A deep hierarchy of latent groups in the top-down form (latent_groups=L on the resnet body):
its shapes, a group's KL against the closed form computed here, the whole hierarchy's log q and
log p against the per-group KLs, the bounds below the importance-sampled log p(x), training,
saving, sampling, the checks, and the command line's train and export."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import cli_env
from tfvae import estimators, log_likelihood, noise
from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.layers.groups import _UNIT, group_resolutions, group_shapes
from tfvae.models import VAE
from tfvae.runs import RunDirectory

SHAPE = (8, 8, 1)


def images(n=64, seed=0):
    """Binary 8x8 images: four prototypes with 10% of the pixels flipped."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((4, *SHAPE)) > 0.5
    x = prototypes[rng.integers(0, 4, n)] ^ (rng.random((n, *SHAPE)) < 0.1)
    return x.astype("float32")


def make(groups=3, **kwargs):
    return VAE(image_shape=SHAPE, latent_dim=2, hidden=8, architecture="resnet",
               activation="gelu", latent_groups=groups, seed=1, **kwargs)


@pytest.fixture(scope="module")
def trained():
    """A 3-group model trained briefly, with its per-epoch losses."""
    model = make()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(images(256), epochs=8, batch_size=32, verbose=0).history
    return model, history["loss"]


@pytest.mark.parametrize("groups", [2, 3, 7, 24])
def test_the_shapes_of_the_groups_and_of_every_method(groups):
    model = make(groups)
    x = images(3)
    assert group_resolutions(groups)[0] == 2 and sorted(set(group_resolutions(groups))) == (
        [1, 2] if groups == 2 else [0, 1, 2])
    sizes = [h * w * c for h, w, c in group_shapes(SHAPE, groups, 2)]
    assert model.layer_dims == tuple(sizes) and model.latent_dim == sum(sizes)
    q = model.encode(x)
    assert q.mean().shape == q.stddev().shape == (3, model.latent_dim)
    assert model.decode(q.sample(seed=(1, 2))).mean().shape == (3, *SHAPE)
    assert model.sample(4, seed=0).shape == (4, *SHAPE)
    terms = model.bound_terms(x, seed=0)
    assert all(terms[name].shape == (3,) for name in ("elbo", "reconstruction", "kl"))
    top = model.decoder.body.run(eps=tf.zeros([3, model.latent_dim]),
                                 features=model.encoder(x), posteriors=model.encoder.posteriors)
    assert top["kl"].shape == (3, groups) and top["h"].shape == (3, *SHAPE[:2], 8)


def test_a_few_dozen_groups_on_colour_photos_build_within_the_size_limit():
    model = VAE(image_shape=(64, 64, 3), latent_dim=4, hidden=32, architecture="resnet",
                latent_groups=30, likelihood="gaussian")
    # 10 groups at each of 16x16, 32x32 and 64x64, 4 channels each.
    assert model.latent_dim == 10 * 4 * (16 ** 2 + 32 ** 2 + 64 ** 2)
    assert len(model.decoder.body.group_blocks) == len(model.encoder.posteriors) == 30


def _randomize(layer, rng, scale=0.15):
    layer.set_weights([rng.normal(0, scale, w.shape).astype(np.float32)
                       for w in layer.get_weights()])


def perturbed(**kwargs):
    """A new model whose prior and posterior convolutions, which start at zero (q = p), and top
    state are random, so that every group's q and p differ."""
    model = make(**kwargs)
    rng = np.random.default_rng(0)
    for layer in [*model.decoder.body.priors, *(p.convs[-1] for p in model.encoder.posteriors)]:
        _randomize(layer, rng)
    top = model.decoder.body.top
    top.assign(rng.normal(0, 1, top.shape).astype(np.float32))
    return model


def test_the_first_groups_kl_is_the_closed_form_between_its_gaussians():
    model = perturbed()
    top, bottom_up = model.decoder.body, model.encoder
    x = images(5, seed=3)
    features = bottom_up(x)
    kl = top.run(eps=tf.zeros([5, model.latent_dim]), features=features,
                 posteriors=bottom_up.posteriors)["kl"].numpy()

    # By hand from the layers' outputs: the prior's (mu, sigma) from the top state, the
    # posterior's as its shift and scale.
    def softplus(v):
        return np.logaddexp(0.0, v)

    h = np.broadcast_to(top.top.numpy(), (5, *top.top.shape))
    gelu = keras.activations.get("gelu")
    mu_p, raw = np.split(top.priors[0](gelu(h)).numpy(), 2, axis=-1)
    sigma_p = softplus(raw + _UNIT) + 1e-4
    resolution = group_resolutions(3)[0]
    shift, factor = bottom_up.posteriors[0](tf.constant(h), features[resolution])
    mu_q, sigma_q = mu_p + shift.numpy(), sigma_p * factor.numpy()
    by_hand = np.sum(np.log(sigma_p / sigma_q)
                     + (sigma_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sigma_p ** 2) - 0.5,
                     axis=(1, 2, 3))
    assert by_hand.min() > 0.01  # q and p do differ
    np.testing.assert_allclose(kl[:, 0], by_hand, rtol=1e-4)


def test_log_q_and_log_p_of_the_whole_hierarchy_average_to_the_groups_kls():
    model = perturbed()
    x = images(6, seed=5)
    q, prior = model.encode(x), model.prior
    # E_q[log q(z|x) - log p(z)] over many draws, through the whole hierarchy's densities ...
    z = estimators.sample_posterior(q, 2000, tf.constant([3, 1]))
    sampled = tf.reduce_mean(q.log_prob(z) - prior.log_prob(z), axis=0).numpy()
    # ... against the KLs of each group given the draws above it, in closed form.
    many = make(num_samples=500)
    many.set_weights(model.get_weights())
    analytic = many.bound_terms(x, seed=2)["kl"].numpy()
    assert analytic.min() > 1.0
    np.testing.assert_allclose(sampled, analytic, rtol=0.1, atol=0.1)


def test_training_lowers_the_loss(trained):
    _, losses = trained
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 1.0


def test_the_bounds_lie_below_the_importance_sampled_log_likelihood(trained):
    model, _ = trained
    x = images(20, seed=9)
    elbo = make(num_samples=50)
    elbo.set_weights(model.get_weights())
    bound = elbo.bound_terms(x, seed=4)["elbo"].numpy()
    q = model.encode(x)
    iwae = estimators.iwae_terms(q, model.decode, model.prior, x, num_samples=50,
                                 seed=tf.constant([5, 0]))["iwae"].numpy()
    log_px = log_likelihood(model, x, 500, seed=1, batch_size=20).per_example
    assert np.all(np.isfinite(log_px))
    assert bound.mean() < iwae.mean() < log_px.mean() + 0.05
    assert log_px.mean() - bound.mean() > 0.01


def with_distinct_densities(model, x):
    """``model`` built on ``x``, random weights where they start at zero: the priors' and
    posteriors' last convolutions, which otherwise give q = p = N(0, 1) and every density the
    same."""
    rng = np.random.default_rng(4)
    model.encode(x)
    model.set_weights([rng.normal(0, 0.3, w.shape) if not w.any() else w
                       for w in model.get_weights()])
    return model


def test_the_one_pass_log_weights_are_those_of_the_three_densities():
    # model.log_weights reads log p(x|z), log p(z) and log q(z|x) off the pass that draws z;
    # the estimators' generic form evaluates q, p(z) and p(x|z) each on its own.
    x = tf.constant(images(5, seed=3))
    model = with_distinct_densities(make(), x)
    seed = tf.constant([8, 2])
    fused = model.log_weights(x, 7, seed)
    apart = estimators.log_weights(model.encode(x), model.decode, model.prior, x, 7, seed)
    for got, want in zip(fused, apart):
        assert got.shape == (7, 5)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert np.std(fused[1].numpy()) > 1.0  # log p(z) - log q(z|x) varies with the draw


@pytest.mark.parametrize("settings, bound", [({"objective": "iwae"}, "iwae"),
                                             ({"kl": "sampled"}, "elbo")])
def test_the_iwae_bound_and_estimator_a_train_on_the_three_densities(settings, bound):
    x = tf.constant(images(5, seed=3))
    model = with_distinct_densities(make(num_samples=4, **settings), x)
    layout = noise.batch_layout(5)
    want = estimators.iwae_terms(model.encode(x), model.decode, model.prior, x, num_samples=4,
                                 seed=model._seed(6), layout=layout)[bound]
    np.testing.assert_allclose(model.bound_terms(x, seed=6)["bound"], want, rtol=1e-4,
                               atol=1e-3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    assert np.isfinite(model.fit(images(64), epochs=1, batch_size=32, verbose=0)
                       .history["loss"]).all()


def test_save_and_load_give_identical_outputs(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.get_config() == model.get_config() and loaded.latent_groups == 3
    x = images(4, seed=2)
    for method in (lambda m: m.encode(x).mean(), lambda m: m.encode(x).stddev(),
                   lambda m: m.reconstruct(x), lambda m: m.sample(3, seed=5),
                   lambda m: m.bound_terms(x, seed=3)["elbo"],
                   lambda m: m.prior.log_prob(m.encode(x).mean())):
        np.testing.assert_array_equal(method(loaded), method(model))


def test_reconstruct_and_sample_decode_the_features_of_the_pass_that_made_z(trained,
                                                                          monkeypatch):
    model, _ = trained
    x = images(4, seed=2)
    z_mean = model.encode(x).mean()
    z = model.prior_draws(3, seed=5)
    want = (model.decode(z_mean).mean(), model.decode(z).mean())
    # One top-down pass each, that of q's mean or of the prior's draw: decode would run another.
    body = model.decoder.body
    passes = []
    monkeypatch.setattr(body, "run", lambda **kw: passes.append(1) or type(body).run(body, **kw))
    reconstructed, sampled = model.reconstruct(x), model.sample(3, seed=5)
    assert len(passes) == 2
    np.testing.assert_allclose(reconstructed, want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sampled, want[1], rtol=1e-5, atol=1e-6)
    # Given a z that no pass made, the distribution runs the pass given z.
    q = model.encode(x)
    np.testing.assert_allclose(model.decode_from(q, z_mean).mean(), want[0], rtol=1e-5,
                               atol=1e-6)


def test_sample_draws_the_whole_hierarchy_from_the_seed(trained):
    model, _ = trained
    first = model.sample(6, seed=11).numpy()
    np.testing.assert_array_equal(model.sample(6, seed=11), first)
    assert not np.allclose(model.sample(6, seed=12), first)
    # Every group is drawn: the lower groups vary between draws of the same top group.
    z = model.prior.sample(4, seed=(1, 1)).numpy()
    assert np.all(z.std(axis=0) > 0)


def test_free_bits_floor_each_groups_kl_at_its_size():
    model = make(free_bits=1.0)
    model.compile(optimizer="adam")
    terms = model.bound_terms(images(4))
    assert terms["kl_dims"].shape == (4, 3)
    floor = sum(model.layer_dims)  # 1 nat per dimension: far above a new model's KL
    np.testing.assert_allclose(model.training_loss(terms),
                               -np.mean(terms["reconstruction"]) + floor, rtol=1e-5)


@pytest.mark.parametrize("settings, argument", [
    ({"latent_groups": 0}, "latent_groups"),
    ({"latent_groups": 65}, "latent_groups"),
    ({"latent_groups": 1.5}, "latent_groups"),
    ({"architecture": "conv"}, "latent_groups"),
    ({"prior": "mog"}, "latent_groups"),
    ({"num_classes": 3}, "latent_groups: expected 1 for a conditional model"),
    ({"stochastic_layers": 2}, "latent_groups"),
    ({"kl": "sampled", "free_bits": 0.5}, "free_bits"),
    ({"image_shape": (10, 8, 1)}, "architecture 'resnet'"),
])
def test_bad_settings_are_refused_naming_the_argument(settings, argument):
    arguments = {"image_shape": SHAPE, "latent_dim": 2, "hidden": 8, "architecture": "resnet",
                 "latent_groups": 3, **settings}
    with pytest.raises(InputError) as error:
        VAE(**arguments)
    assert argument.startswith(error.value.argument) and "\n" not in str(error.value)
    assert str(error.value).startswith(argument), str(error.value)


def test_one_group_is_the_model_of_one_latent():
    model = make(1)
    assert model.layer_dims == (2,) and model.gaussian_latents
    assert model.encode(images(2)).mean().shape == (2, 2)


def test_the_command_trains_and_exports_it(tmp_path, capsys):
    np.savez(tmp_path / "tiny.npz", x_train=images(64), x_test=images(32, seed=1))
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--dataset", str(tmp_path / "tiny.npz"),
                 "--architecture", "resnet", "--latent-groups", "3", "--latent-dim", "2",
                 "--hidden", "8", "--activation", "gelu", "--epochs", "1", "--batch-size", "32",
                 "--optimizer", "adam", "--learning-rate", "1e-3", "--kl-warmup-epochs", "1",
                 "--free-bits", "0.01", "--clip-norm", "100", "--skip-norm", "1e6",
                 "--ema", "0.9", "--jit-compile", "off", "--quiet"]) == 0
    assert RunDirectory(run_dir).read_config()["model"]["latent_groups"] == 3
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--log-likelihood", "--num-samples", "16"]) == 0
    out = capsys.readouterr().out
    elbo = float(out.split("test elbo: ")[1].split()[0])
    log_px = float(out.split("test log p(x): ")[1].split()[0])
    assert np.isfinite(log_px) and elbo < log_px < 0
    assert main(["export", str(run_dir), "--model-name", "groups", "--base-dir",
                 str(tmp_path / "export"), "--num-samples", "4"]) == 0
    capsys.readouterr()
    model = RunDirectory(run_dir).load_model()
    signatures = tf.saved_model.load(str(tmp_path / "export" / "groups" / "1")).signatures
    x = images(3, seed=4)
    encoded = signatures["encode"](x=tf.constant(x))
    np.testing.assert_allclose(encoded["z_mean"], model.encode(x).mean(), rtol=1e-4, atol=1e-5)
    seeds = tf.constant([0, 1, 0], tf.int64)
    drawn = signatures["sample"](seed=seeds)
    assert drawn["z"].shape == (3, model.latent_dim) and drawn["x_mean"].shape == (3, *SHAPE)
    np.testing.assert_array_equal(drawn["z"][0], drawn["z"][2])
    np.testing.assert_allclose(drawn["x_mean"], model.decode(drawn["z"]).mean(), rtol=1e-4,
                               atol=1e-5)
    # The per-row loop runs one row at a time (estimators.map_in_turn).
    graph = signatures["log_likelihood"].graph.as_graph_def()
    nodes = [*graph.node, *(node for f in graph.library.function for node in f.node_def)]
    loops = [node for node in nodes if node.op in ("While", "StatelessWhile")]
    assert loops and all(node.attr["parallel_iterations"].i == 1 for node in loops)
    bound = signatures["log_likelihood"](x=tf.constant(x), seed=seeds)
    assert np.all(np.isfinite(bound["log_px"])) and np.all(bound["log_px"] <= 0)
    assert np.all(np.isfinite(signatures["score"](x=tf.constant(x), seed=seeds)["score"]))


# The decoder in a loop whose iterations run at once, as two requests to one export do.
PARALLEL_DECODES = """
import numpy as np, tensorflow as tf
from tfvae.models import VAE
model = VAE(image_shape=(8, 8, 1), latent_dim=2, hidden=8, architecture="resnet",
            activation="gelu", latent_groups=3, seed=1)
x = tf.constant(np.random.default_rng(0).random((3, 8, 8, 1)) > 0.5, tf.float32)

@tf.function
def decode_rows(x):
    def one(row):
        z = tf.tile(model.encode(row[tf.newaxis]).mean(), [4, 1])
        return tf.reduce_sum(model.decode(z).mean())
    return tf.map_fn(one, x, fn_output_signature=tf.float32, parallel_iterations=10)

for _ in range(400):
    decode_rows(x)
"""


def test_the_decoder_runs_in_parallel_loop_iterations():
    """oneDNN fused the 1x1 convolution from z_i with its addition to the state, and two
    iterations running that op at once crashed the process (a segmentation fault, within 200
    calls here): the child process's exit status says whether it did."""
    done = subprocess.run([sys.executable, "-c", PARALLEL_DECODES], capture_output=True,
                          text=True, env=cli_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_mixed_precision_trains_in_bfloat16_and_a_resume_continues_the_run_exactly(tmp_path):
    from tfvae.training.pipeline import train

    np.savez(tmp_path / "tiny.npz", x_train=images(96), x_test=images(32, seed=1))
    settings = {"model_config": {"architecture": "resnet", "latent_groups": 3, "latent_dim": 2,
                                 "hidden": 8, "activation": "gelu"},
                "data_config": {"name": str(tmp_path / "tiny.npz")}, "batch_size": 32,
                "optimizer": "adam", "learning_rate": 1e-3, "mixed_precision": "bfloat16",
                "jit_compile": False, "verbose": 0}
    whole = train(tmp_path / "whole", epochs=2, **settings).model
    top = whole.decoder.body
    assert top.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in whole.trainable_variables)
    features = whole.encoder(images(4))
    out = top.run(eps=tf.zeros([4, whole.latent_dim]), features=features,
                  posteriors=whole.encoder.posteriors)
    assert out["kl"].dtype == tf.float32 and out["h"].dtype == tf.bfloat16
    rows = RunDirectory(tmp_path / "whole").read_metrics()
    assert all(np.isfinite(r["train_elbo"]) and np.isfinite(r["test_elbo"]) for r in rows)
    train(tmp_path / "parts", epochs=1, **settings)
    resumed = train(tmp_path / "parts", epochs=2, resume=True, verbose=0).model
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
