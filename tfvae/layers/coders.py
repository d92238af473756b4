"""The two networks of a latent-variable model: the encoder x -> q(z|x) and the decoder
z -> p(x|z), each a body (``tfvae.layers.bodies``) followed by a distribution head
(``tfvae.layers.likelihoods``), with a conditional model's class label joined to the inputs
of both (Sohn et al., 2015).

Shapes: ``B`` batch, ``S`` samples per datapoint, ``D`` latent dimension, ``E`` image shape,
``K`` classes.
"""

import keras
import numpy as np
import tensorflow as tf

from tfvae.layers.likelihoods import DiagonalGaussian


def images_with_labels(x, condition, spatial):
    """Images x [B, *E] joined with one-hot labels ``condition`` [B, K] (Sohn et al., 2015): as K
    constant channels [B, H, W, C + K] for a convolutional body (``spatial``), else after the
    flattened pixels [B, prod(E) + K]."""
    condition = tf.cast(condition, x.dtype)
    if spatial:
        maps = tf.tile(condition[:, None, None, :], [1, tf.shape(x)[1], tf.shape(x)[2], 1])
        return tf.concat([x, maps], axis=-1)
    return tf.concat([tf.reshape(x, [-1, int(np.prod(x.shape[1:]))]), condition], axis=-1)


def _joined_shape(input_shape, num_classes, spatial):
    """The shape ``images_with_labels`` gives for images of ``input_shape``."""
    if not num_classes:
        return input_shape
    if spatial:
        return (*input_shape[:-1], input_shape[-1] + num_classes)
    return (input_shape[0], int(np.prod(input_shape[1:])) + num_classes)


@keras.saving.register_keras_serializable(package="tfvae")
class Encoder(keras.Model):
    """x [B, *E] -> q(z|x), a diagonal Gaussian with batch [B] and event [D].

    With ``num_classes`` K, q(z|x, y) takes the one-hot label ``condition`` [B, K] too.
    ``posterior``: another head from hidden units to q(z|x) (a flow), event [D].
    """

    def __init__(self, body, latent_dim, num_classes=0, posterior=None, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        self.num_classes = num_classes
        self.posterior = posterior or DiagonalGaussian(latent_dim, name="posterior")

    @property
    def spatial(self):
        # A body that is not a tfvae.layers.bodies.Body is taken to read images as they are.
        return getattr(self.body, "spatial", True)

    def build(self, input_shape):
        input_shape = _joined_shape(input_shape, self.num_classes, self.spatial)
        self.body.build(input_shape)
        self.posterior.build(self.body.compute_output_shape(input_shape))

    def call(self, x, condition=None):
        if condition is not None:
            x = images_with_labels(x, condition, self.spatial)
        return self.posterior(self.body(x))


@keras.saving.register_keras_serializable(package="tfvae")
class Decoder(keras.Model):
    """z [*S, D] -> p(x|z) with batch [*S] and event E; leading sample dims are kept.

    With ``num_classes`` K, p(x|z, y) takes the one-hot label ``condition`` [B, K], B being the
    last leading dimension of z, joined to every z. ``reads``: p(x|z) reads the first ``reads``
    dimensions of z only (z1 of a model with two stochastic layers); None, all.
    """

    def __init__(self, body, likelihood, num_classes=0, reads=None, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        self.likelihood = likelihood
        self.num_classes = num_classes
        self.reads = reads

    def build(self, input_shape):
        dims = input_shape[-1] if self.reads is None else self.reads
        input_shape = (*input_shape[:-1], dims + self.num_classes)
        self.body.build(input_shape)
        self.likelihood.build(self.body.compute_output_shape(input_shape))

    def call(self, z, condition=None):
        # Bodies (convolutions in particular) take one batch dimension: flatten, then restore.
        batch_shape = tf.shape(z)[:-1]
        if self.reads is not None:
            z = z[..., :self.reads]
        if condition is not None:
            condition = tf.broadcast_to(tf.cast(condition, z.dtype),
                                        tf.concat([batch_shape, [self.num_classes]], 0))
            z = tf.concat([z, condition], axis=-1)
        h = self.body(tf.reshape(z, [-1, z.shape[-1]]))
        return self.likelihood(h, batch_shape=batch_shape)
