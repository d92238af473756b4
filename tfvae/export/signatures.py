"""The signatures of an export as functions of the model: their names, inputs and outputs,
and what each computes; :mod:`tfvae.export.savedmodel` saves them, :mod:`tfvae.export.runtimes`
converts them.

Signatures (every input batched on dimension 0, so TF Serving's row format and request batching
work; ``B`` batch, ``E`` image shape [H, W, C], ``D`` latent dimension):

====================== ============================== ========================================
signature              inputs                         outputs
====================== ============================== ========================================
``encode`` (default)   ``x`` float32 [B, *E]          ``z_mean``, ``z_stddev`` [B, D]
``decode``             ``z`` float32 [B, D]           ``x_mean`` [B, *E]
``sample``             ``seed`` int64 [B]             ``z`` [B, D], ``x_mean`` [B, *E]
``reconstruct``        ``x`` float32 [B, *E]          ``x_mean`` [B, *E], ``z_mean`` [B, D]
``log_likelihood``     ``x``, ``seed`` int64 [B]      ``elbo``, ``log_px`` [B] (nats)
``score``              ``x``, ``seed`` int64 [B]      ``score`` [B]; ``anomaly`` int64 [B]
                                                      (with a threshold, see below)
``score_rows``         one input per column [B],      as ``score`` (a model trained on a table:
                       ``seed`` int64 [B]             see :mod:`tfvae.export.rows`)
``impute``             ``x`` with NaN where missing,  ``x_imputed`` [B, *E] (a model trained
                       ``seed`` int64 [B]             with ``allow_missing``)
====================== ============================== ========================================

A batch of no rows gets outputs of no rows from every signature.

A conditional model (``num_classes`` K) takes one more input in every signature: ``label`` int64
[B], each row's class in [0, K), after the inputs above; the metadata says ``conditional``.

``encode`` is also ``serving_default``. ``x_mean`` is the mean of p(x|z): Bernoulli
probabilities or Gaussian means. ``log_px`` is the importance-sampled estimate
log (1/k) sum_l p(x, z_l) / q(z_l|x) with k fixed at export. A model without a bound on log p(x)
(the autoencoder, whose ``z_stddev`` is 0) has every signature but ``log_likelihood`` and
``score``.

``impute`` fills each NaN of ``x`` by its conditional mean given the row's observed values, as
:func:`tfvae.applications.imputation.impute` does, from k draws of z (the ``log_likelihood``
signature's k); observed values pass through. A model trained with ``allow_missing`` takes NaN
in every signature that takes ``x``: a bound or score is then that of the observed values.

``score`` is the anomaly score of :func:`tfvae.evaluation.scores.score` (``method="elbo"``):
minus the ELBO, by the model's estimator, averaged over n draws of z, n fixed at export
(:class:`ScoreSettings`): the draws of the anomaly threshold the export's metadata carries
(``anomaly_threshold``, which ``tfvae threshold`` calibrates and
:func:`tfvae.export.versions.export_run` copies), else 16. With such a threshold (calibrated
by the ``elbo`` method) ``anomaly`` is 1 where the score lies above it, else 0; without one
there is no ``anomaly`` output, and a caller compares ``score`` with a threshold of its own. The
draws come from the row's seed, so they are not those of ``tfvae.score`` (TensorFlow's Philox):
the two are estimates of the same number that agree as the draws grow, and a threshold
calibrated on either flags at the same rate. The score's first draw is the ``elbo`` of
``log_likelihood`` for the same seed.

Seeds: row i draws all its noise from ``seed[i]`` alone, by the generator of
:class:`tfvae.noise.CounterSeed` (integer arithmetic that every runtime has, so the LiteRT and
ONNX files of :mod:`tfvae.export.runtimes` draw the same numbers). A row's result depends only on
its own input and seed: the same in every process, server, batch and format. ``sample``'s z is that
generator's draw, not ``VAE.sample``'s; its ``x_mean`` is the mean of ``model.decode(z)``. A
prior other than Gaussians, their mixtures and flows (a user's Student-t, say) is sampled by
TensorFlow's own stateless sampler instead: the SavedModel answers, the other formats cannot.

Inputs are checked inside the graph, so every loader (TF Serving included) answers bad input with
INVALID_ARGUMENT and a message naming the input: a trailing shape other than the model's, NaN or
infinite values, pixels outside [0, 1] for a Bernoulli model, and labels outside [0, K).
"""

import functools
import inspect
import math

import tensorflow as tf

from tfvae import estimators, noise
from tfvae.applications.imputation import imputed_mean
from tfvae.checks import check_count, check_int
from tfvae.data.graph_checks import check_images, check_labels, check_latents, check_seeds
from tfvae.export.metadata import ScoreSettings
from tfvae.options import EXPORT_LOG_LIKELIHOOD_SAMPLES as DEFAULT_NUM_SAMPLES

SIGNATURES = ("encode", "decode", "sample", "reconstruct", "log_likelihood", "score", "impute")
DEFAULT_SIGNATURE = "encode"
# The signatures of a bound on log p(x), which a model without one (the autoencoder) lacks.
_BOUND_SIGNATURES = ("log_likelihood", "score")


# The streams of an export's noise (tfvae.noise.CounterSeed). The score draws from the ELBO's
# stream: its first draw is log_likelihood's elbo.
SAMPLE_STREAM, ELBO_STREAM, LOG_PX_STREAM, IMPUTE_STREAM = 0, 1, 2, 3


def model_signatures(model):
    """The names of the signatures ``model`` has: all, less ``log_likelihood`` and ``score``
    without a bound."""
    return tuple(s for s in SIGNATURES if (model.has_bound or s not in _BOUND_SIGNATURES)
                 and (s != "impute" or _imputes(model)))


def _imputes(model):
    """Whether ``model`` has the ``impute`` signature: an unconditional VAE trained with missing
    values (``tfvae.applications.imputation``)."""
    return model.has_bound and model.allow_missing and not model.conditional


def signature_outputs(model, score=None):
    """The names of each signature's outputs: name -> tuple (``score``'s depend on ``score``,
    a :class:`ScoreSettings`)."""
    score = score or ScoreSettings()
    outputs = {**_OUTPUTS, "score": score.outputs()}
    return {name: outputs[name] for name in model_signatures(model)}


def input_specs(model):
    """The signatures' inputs: name -> list of ``tf.TensorSpec`` (named as in the SignatureDef)."""
    image = tf.TensorSpec([None, *model.image_shape], tf.float32, name="x")
    seed = tf.TensorSpec([None], tf.int64, name="seed")
    # A conditional model's class labels, last in every signature.
    label = [tf.TensorSpec([None], tf.int64, name="label")] if model.conditional else []
    specs = {
        "encode": [image, *label],
        "decode": [tf.TensorSpec([None, model.latent_dim], tf.float32, name="z"), *label],
        "sample": [seed, *label],
        "reconstruct": [image, *label],
        "log_likelihood": [image, seed, *label],
        "score": [image, seed, *label],
        "impute": [image, seed],
    }
    return {name: specs[name] for name in model_signatures(model)}


def serving_functions(model, num_samples=DEFAULT_NUM_SAMPLES, *, checked=True, score=None):
    """The signatures as plain functions of ``model``: name -> fn(*tensors) -> dict of outputs.

    Exported as traced graphs; called eagerly they give the in-process answers an export must
    reproduce. ``checked=False`` leaves out the input checks (``tfvae.export.runtimes`` puts its
    own). ``score``: the :class:`ScoreSettings` of the ``score`` signature (16 draws and no
    threshold by default).
    """
    check_int("num_samples", num_samples)
    score_settings = score or ScoreSettings()
    support = model.decoder.likelihood.support  # the values p(x|z) gives a density to

    def images(x):
        return (check_images(x, model.image_shape, support, model.allow_missing) if checked
                else x)

    def seeds(seed, x=None):
        return check_seeds(seed, x) if checked else seed

    def labels(label, rows):
        """A conditional model's (checked) labels, one per row of ``rows``; None otherwise."""
        if not model.conditional:
            return None
        return check_labels(label, model.num_classes, rows) if checked else label

    def encode(x, label=None):
        x = images(x)
        q = model.encode(x, labels(label, x))
        return {"z_mean": q.mean(), "z_stddev": q.stddev()}

    def decode(z, label=None):
        z = check_latents(z, model.latent_dim) if checked else z
        return {"x_mean": model.decode(z, labels(label, z)).mean()}

    def sample(seed, label=None):
        seed = seeds(seed)
        label = labels(label, seed)
        rows = noise.CounterSeed(seed, SAMPLE_STREAM)
        prior = model.prior
        z = estimators.draw_from_noise(prior, rows.normals(model.latent_dim),
                                       rows.substream(1).uniform(1)[:, 0])
        if z is None:  # a prior of another family: TF's sampler, per row (SavedModel only)
            z = estimators.map_in_turn(lambda s: prior.sample(seed=_stateless_seed(s)),
                                       seed, tf.TensorSpec([model.latent_dim], tf.float32))
        return {"z": z, "x_mean": model.decode_from(prior, z, label).mean()}

    def reconstruct(x, label=None):
        x = images(x)
        label = labels(label, x)
        q = model.encode(x, label)
        z_mean = q.mean()
        return {"x_mean": model.decode_from(q, z_mean, label).mean(), "z_mean": z_mean}

    def log_likelihood(x, seed, label=None):
        x = images(x)
        seed = seeds(seed, x)
        label = labels(label, x)
        # A row's label rides along as [1] (an unconditional model's as a placeholder).
        rows = tf.zeros_like(seed)[:, tf.newaxis] if label is None else label[:, tf.newaxis]

        # One row at a time: memory stays that of one image's importance samples.
        def one(args):
            image, s, row_label = args
            image, s = image[tf.newaxis], s[tf.newaxis]
            row_label = row_label if model.conditional else None
            elbo = model.bound_terms(image, seed=noise.CounterSeed(s, ELBO_STREAM),
                                     labels=row_label)["elbo"]
            log_px = estimators.importance_log_px(
                lambda size, seed: model.log_weights(image, size, seed, row_label),
                num_samples=num_samples, seed=noise.CounterSeed(s, LOG_PX_STREAM))
            return tf.stack([elbo[0], log_px[0]])

        out = estimators.map_in_turn(one, (x, seed, rows), tf.TensorSpec([2], tf.float32))
        return {"elbo": out[:, 0], "log_px": out[:, 1]}

    # The ELBO of the model's estimator (the bound's own for an IWAE model: its elbo term is
    # estimator A's), by num_samples * L draws of z at once: the mean of num_samples ELBOs of L
    # draws each, as tfvae.score averages them.
    # A KL of the whole z that has no closed form (latent groups: one per group, along the
    # drawn z) is sampled.
    kl = getattr(model, "kl", "sampled") if (getattr(model, "objective", "elbo") == "elbo"
                                             and getattr(model, "gaussian_latents", True)) \
        else "sampled"
    # A row's draws are decoded at once: checked as log_likelihood's k is.
    draws = check_count("score num_samples",
                        score_settings.num_samples * getattr(model, "num_samples", 1),
                        math.prod(model.image_shape), what="images")

    def score(x, seed, label=None):
        x = images(x)
        seed = seeds(seed, x)
        label = labels(label, x)
        seed = noise.CounterSeed(seed, ELBO_STREAM)
        if kl == "sampled":  # the model's log-weights: a hierarchy's in one pass per draw
            elbo = estimators.weight_terms(*model.log_weights(x, draws, seed, label))["elbo"]
        else:
            elbo = estimators.elbo_terms(model.encode(x, label), lambda z: model.decode(z, label),
                                         model.prior, x, kl=kl, num_samples=draws,
                                         seed=seed)["elbo"]
        out = {"score": -elbo}
        if score_settings.threshold is not None:
            threshold = tf.constant(score_settings.float32_threshold(), tf.float32)
            out["anomaly"] = tf.cast(out["score"] > threshold, tf.int64)
        return out

    def impute(x, seed):
        x = images(x)
        seed = seeds(seed, x)

        # One row at a time, as log_likelihood: memory stays that of one row's draws.
        def one(args):
            row, s = args[0][tf.newaxis], args[1][tf.newaxis]
            return imputed_mean(model, row, noise.CounterSeed(s, IMPUTE_STREAM), num_samples)[0]

        return {"x_imputed": estimators.map_in_turn(
            one, (x, seed), tf.TensorSpec(model.image_shape, tf.float32))}

    functions = {"encode": encode, "decode": decode, "sample": sample,
                 "reconstruct": reconstruct, "log_likelihood": log_likelihood, "score": score,
                 "impute": impute}
    return {name: functions[name] for name in model_signatures(model)}


def answering_no_rows(fn):
    """``fn`` (a signature's function: every input and output per row) answering a batch of no
    rows with no rows. TensorFlow's oneDNN convolutions give an empty batch their input's shape,
    not their output's, in a graph, and the next layer refuses it: so an empty batch runs as one
    row of zeros, of which nothing is returned."""

    @functools.wraps(fn)  # keeps fn's parameters, which name the signature's inputs
    def run(*args, **kwargs):
        inputs = inspect.signature(fn).bind(*args, **kwargs).arguments
        rows = tf.shape(next(iter(inputs.values())))[0]
        extra = tf.cast(tf.equal(rows, 0), tf.int32)

        def padded(t):
            return t if t is None else tf.concat(
                [t, tf.zeros(tf.concat([[extra], tf.shape(t)[1:]], 0), t.dtype)], 0)

        outputs = fn(**{name: padded(t) for name, t in inputs.items()})
        return {name: out[:rows] for name, out in outputs.items()}

    return run


def _stateless_seed(seed):
    """int64 seed [] -> a stateless int32 seed [2]: its value modulo 2^31 and the rest."""
    seed = tf.cast(seed, tf.int64)
    return tf.cast(tf.stack([tf.math.floormod(seed, 2 ** 31),
                             tf.math.floormod(tf.math.floordiv(seed, 2 ** 31), 2 ** 31)]),
                   tf.int32)


_OUTPUTS = {"encode": ("z_mean", "z_stddev"), "decode": ("x_mean",), "sample": ("z", "x_mean"),
            "reconstruct": ("x_mean", "z_mean"), "log_likelihood": ("elbo", "log_px"),
            "impute": ("x_imputed",)}
