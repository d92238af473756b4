"""New samples from known ones: paths in z between two inputs, and augmentation from q(z|x).

- :func:`interpolate` decodes a linear or spherical path between the codes of two images (digits
  between digits, faces between expressions).
- :func:`augment` decodes draws of q(z|x) around each input: many similar-but-different samples
  from a few, each keeping its source's label.
- :func:`class_samples` draws new images of every class from a conditional model's p(x|z, y).
"""

import math

import numpy as np
import tensorflow as tf

from tfvae.checks import check_choice, check_count, check_number, check_seed
from tfvae.data import model_images
from tfvae.errors import InputError, arg
from tfvae.options import INTERPOLATION_PATHS


def lerp(z0, z1, t):
    """(1 - t) z0 + t z1 for each t of ``t`` [T]: [T, D]."""
    t = np.asarray(t, np.float64)[:, None]
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    return ((1 - t) * z0 + t * z1).astype(np.float32)


def slerp(z0, z1, t):
    """The great-circle path from z0 to z1 (White, 2016) for each t of ``t`` [T]: [T, D].

    Under a N(0, I) prior a linear path passes near the origin, where codes are atypically short;
    the spherical path keeps the norm between the two endpoints'. Falls back to the linear path
    when z0 and z1 are (nearly) parallel.
    """
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 == 0 or n1 == 0:
        return lerp(z0, z1, t[:, 0])
    omega = np.arccos(np.clip(np.dot(z0 / n0, z1 / n1), -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(z0, z1, t[:, 0])
    out = (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)
    return out.astype(np.float32)


def latent_path(z0, z1, steps, path="linear"):
    """``steps`` codes [steps, D] from z0 to z1 inclusive, along ``path``."""
    steps = check_count("steps", steps, np.size(z0), minimum=2, what="latents")
    check_choice("path", path, INTERPOLATION_PATHS)
    t = np.linspace(0.0, 1.0, steps)
    return lerp(z0, z1, t) if path == "linear" else slerp(z0, z1, t)


def interpolate(model, x0, x1, steps=10, path="linear"):
    """Images [steps, *E]: the decoder's mean along ``path`` between the codes of x0 and x1.

    The endpoints are the means of q(z|x0) and q(z|x1) (the codes, for an autoencoder), so the
    first and last images are the reconstructions of x0 and x1.
    """
    check_count("steps", steps, math.prod(model.image_shape), minimum=2, what="images")
    x = np.stack([np.asarray(x0, np.float32), np.asarray(x1, np.float32)])
    z = model.encode(x).mean().numpy()
    return model.decode(latent_path(z[0], z[1], steps, path)).mean().numpy()


def augment(model, x, y=None, *, per_example=10, temperature=1.0, seed=0, batch_size=1000):
    """``per_example`` decoded draws of q(z|x) around each image of ``x`` (of q(z|x, y), decoded
    by p(x|z, y), for a conditional model, which needs the labels ``y``).

    Each draw is z = mu(x) + temperature * sigma(x) * eps with eps ~ N(0, I), decoded to the mean
    of p(x|z); temperature 0 gives the reconstruction, 1 the posterior itself. Returns
    ``(images [N * per_example, *E], labels or None, source [N * per_example])``, where ``source``
    is the index in ``x`` each sample came from and the labels are ``y[source]``.
    """
    if not (model.has_encoder and model.has_bound):
        raise InputError("model", "a VAE (augmentation samples its posterior q(z|x))",
                         f"a {type(model).__name__}, whose code is deterministic")
    temperature = check_number("temperature", temperature, at_least=0)
    seed = check_seed("seed", seed)
    x = model_images(model, x, "x")
    per_example = check_count("per_example", per_example, len(x) * math.prod(x.shape[1:]),
                              what="samples of every input")
    if y is not None and len(y) != len(x):
        raise InputError("y", f"{len(x)} labels, one per image", f"{len(y)}")
    condition = y if model.conditional else None
    model.label_codes(condition, len(x), argument="y")
    rng = np.random.default_rng(seed)
    images = []
    for i in range(0, len(x), batch_size):
        labels = None if condition is None else np.asarray(condition[i:i + batch_size])
        q = model.encode(x[i:i + batch_size], labels)
        mu, sigma = q.mean().numpy(), q.stddev().numpy()
        eps = rng.standard_normal((len(mu), per_example, mu.shape[-1])).astype(np.float32)
        z = mu[:, None] + temperature * sigma[:, None] * eps
        # z [B, per_example, D]: the labels go with each draw's example, the last leading dim.
        z = np.swapaxes(z, 0, 1)
        decoded = model.decode(tf.constant(z), labels).mean().numpy()
        images.append(np.swapaxes(decoded, 0, 1).reshape(-1, *x.shape[1:]))
    source = np.repeat(np.arange(len(x)), per_example)
    labels = None if y is None else np.asarray(y)[source]
    return np.concatenate(images), labels, source


def class_samples(model, per_class, *, seed=0):
    """``per_class`` images of every class of a conditional model: the mean of p(x|z, y) for
    z ~ p(z). Returns ``(images [K * per_class, *E], labels [K * per_class])``, class by
    class."""
    if not getattr(model, "conditional", False):
        raise InputError("model", f"a conditional model (trained with {arg('conditional', True)})",
                         f"an unconditional {type(model).__name__}")
    per_class = check_count("per_class", per_class,
                            model.num_classes * math.prod(model.image_shape),
                            what="samples of every class")
    seed = check_seed("seed", seed)
    labels = np.repeat(np.arange(model.num_classes), per_class)
    return model.sample(len(labels), seed=seed, labels=labels).numpy(), labels


def draw_rows(model, num, seed=0, labels=None, temperature=1.0):
    """``num`` draws x ~ p(x|z), z ~ p(z) (at ``temperature``, as :meth:`prior_draws` takes
    it), float32 [num, *E]: values of the data's own kind (counts, 0/1, category codes), where
    :meth:`sample` gives the means of p(x|z)."""
    num = check_count("num", num, math.prod(model.image_shape), what="examples")
    seed = check_seed("seed", seed)
    z_seed, x_seed = np.random.SeedSequence(seed).generate_state(2) % 2 ** 31
    prior = model.prior
    z = model.prior_draws(num, tf.constant([z_seed, 0], tf.int32), temperature, prior)
    p_x = model.decode_from(prior, z, labels)
    return np.asarray(model.decoder.likelihood.draw(p_x, tf.constant([x_seed, 0], tf.int32)))
