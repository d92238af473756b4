"""The latent code as input to other learners: features, a linear probe, and an encoder's weights
as the starting point of a supervised network.

- :func:`latent_means` gives the mean of q(z|x) (a VAE) or the code f(x) (an autoencoder), [N, D].
- :func:`linear_probe` trains softmax regression on features and returns its test accuracy.
- :func:`classifier_from_encoder` builds a classifier whose hidden layers start from an encoder's.
- :func:`labelled_subset` picks a class-balanced set of labelled examples, the semi-supervised
  setting in which features learned without labels are worth the most.
"""

import keras
import numpy as np
import tensorflow as tf

from tfvae.checks import check_int
from tfvae.data import model_images
from tfvae.errors import InputError
from tfvae.layers.standardize import Standardize


def latent_means(model, x, batch_size=1000, labels=None):
    """The mean of the model's code distribution for each image of ``x`` (given the ``labels``
    of a conditional model): float32 [N, D]."""
    x = model_images(model, x, "x")
    model.label_codes(labels, len(x))  # refuses labels missing, unwanted or out of range
    out = [model.encode(x[i:i + batch_size],
                        None if labels is None else labels[i:i + batch_size]).mean().numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32)


def labelled_subset(y, num, seed=0):
    """Indices of ``num`` examples of ``y``, as close to equally many per class as possible.

    ``num=None`` keeps every example. The choice is random (seeded) within each class.
    """
    y = np.asarray(y)
    if num is None:
        return np.arange(len(y))
    classes = np.unique(y)
    num = check_int("labels", num, len(classes), len(y))
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    quota = np.full(len(classes), num // len(classes))
    quota[rng.permutation(len(classes))[:num % len(classes)]] += 1
    if any(q > len(idx) for q, idx in zip(quota, per_class)):
        # A class too small for its share: take the shortfall from the others, in random order.
        chosen = np.concatenate([idx[:q] for q, idx in zip(quota, per_class)])
        rest = rng.permutation(np.setdiff1d(np.arange(len(y)), chosen))
        return np.sort(np.concatenate([chosen, rest[:num - len(chosen)]]))
    return np.sort(np.concatenate([idx[:q] for q, idx in zip(quota, per_class)]))


def standardize(reference, *arrays):
    """Each array shifted and scaled by the per-feature mean and spread of ``reference``.

    Features that hardly vary in ``reference`` (the always-black border pixels) keep scale 1
    rather than being blown up by a near-zero standard deviation.
    """
    reference = np.asarray(reference, np.float32).reshape(len(reference), -1)
    mean = reference.mean(axis=0)
    std = reference.std(axis=0)
    std = np.where(std < 1e-3, 1.0, std)
    return [((np.asarray(a, np.float32).reshape(len(a), -1) - mean) / std).astype(np.float32)
            for a in arrays]


def fit_classifier(classifier, x, y, *, steps=2000, batch_size=256, learning_rate=1e-3, seed=0):
    """Train ``classifier`` (softmax outputs) by cross-entropy for ``steps`` minibatch steps.

    A fixed number of steps, rather than epochs, gives 100 and 60,000 labels the same budget of
    updates.
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    data = (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .repeat().batch(min(batch_size, len(x))).prefetch(tf.data.AUTOTUNE))
    classifier.compile(optimizer=keras.optimizers.Adam(learning_rate),
                       loss="sparse_categorical_crossentropy")
    classifier.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return classifier


def accuracy(classifier, x, y, batch_size=1000):
    """The fraction of ``x`` whose most probable class under ``classifier`` is ``y``."""
    probs = classifier.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probs, axis=-1) == np.asarray(y)))


def linear_classifier(num_features, num_classes, weight_decay=1e-3):
    """Softmax regression: one Dense layer from ``num_features`` to ``num_classes`` probabilities,
    with an L2 penalty ``weight_decay`` on the weights."""
    return keras.Sequential([
        keras.Input((num_features,)),
        keras.layers.Dense(num_classes, activation="softmax",
                           kernel_regularizer=keras.regularizers.L2(weight_decay), name="classes"),
    ], name="softmax_regression")


def linear_probe(train_features, train_labels, test_features, test_labels, *, unlabelled=None,
                 num_classes=None, steps=2000, learning_rate=1e-2, weight_decay=1e-3, seed=0):
    """Test accuracy of softmax regression trained on (``train_features``, ``train_labels``).

    Features are standardized by the mean and spread of ``unlabelled`` (all training inputs,
    labelled or not; default ``train_features``), so z and raw pixels are probed alike.
    """
    test_labels = np.asarray(test_labels)
    if len(test_features) != len(test_labels):
        raise InputError("labels", "one label per example",
                         f"{len(test_labels)} labels for {len(test_features)} test examples")
    num_classes = num_classes or int(max(np.max(train_labels), test_labels.max())) + 1
    score = softmax_regression(train_features, train_labels, unlabelled=unlabelled,
                               num_classes=num_classes, steps=steps,
                               learning_rate=learning_rate, weight_decay=weight_decay, seed=seed)
    return score(test_features, test_labels)


def softmax_regression(train_features, train_labels, *, unlabelled=None, num_classes=None,
                       steps=2000, learning_rate=1e-2, weight_decay=1e-3, seed=0):
    """Softmax regression trained on (``train_features``, ``train_labels``), standardized as
    :func:`linear_probe` says; returns ``score(features, labels)``, its accuracy on any features
    (a test set, or a generative model's samples of given classes)."""
    train_labels = np.asarray(train_labels)
    if len(train_features) != len(train_labels):
        raise InputError("labels", "one label per example",
                         f"{len(train_labels)} labels for {len(train_features)} train examples")
    num_classes = num_classes or int(train_labels.max()) + 1
    reference = train_features if unlabelled is None else unlabelled
    (train_x,) = standardize(reference, train_features)
    keras.utils.set_random_seed(seed)
    classifier = linear_classifier(train_x.shape[1], num_classes, weight_decay)
    fit_classifier(classifier, train_x, train_labels, steps=steps, learning_rate=learning_rate,
                   seed=seed)

    def score(features, labels):
        (x,) = standardize(reference, features)
        return accuracy(classifier, x, labels)

    return score


def classifier_from_encoder(model, num_classes, *, copy_weights=True, name="classifier"):
    """A classifier x [B, *E] -> class probabilities [B, num_classes] built on ``model``'s encoder.

    It is a fresh copy of the encoder's body (the hidden layers below the code) followed by a new
    softmax layer. With ``copy_weights`` the body starts from the trained encoder's weights (the
    use of the code as "initial weights for a supervised network"); without, from a random initialization of
    the same architecture, the baseline to compare with. Training the classifier never changes
    ``model``.
    """
    num_classes = check_int("num_classes", num_classes, minimum=2)
    encoder = getattr(model, "encoder", None)
    source = getattr(encoder, "body", None)
    if source is None:
        raise InputError("model", "a tfvae.VAE or tfvae.Autoencoder (a model with encoder.body)",
                         type(model).__name__)
    body = type(source).from_config(source.get_config())
    inputs = keras.Input(tuple(model.image_shape), name="x")
    # The encoder's own view of x: standardized by the model's feature statistics, if any.
    seen = Standardize(getattr(model, "feature_mean", None), getattr(model, "feature_scale", None),
                       name="standardize")(inputs)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", name="classes")(
        body(seen))
    classifier = keras.Model(inputs, outputs, name=name)
    if copy_weights:
        body.set_weights(source.get_weights())
    return classifier


# ------------------------------------------------------------------------------ experiments


def _labelled(dataset):
    if dataset.y_train is None or dataset.y_test is None:
        raise InputError("dataset", "a dataset with labels", f"{dataset.name}, which has none")
    return dataset.y_train, dataset.y_test


def probe(model, dataset, labels=(100, 1000, None), *, steps=2000, seed=0):
    """Test accuracy of softmax regression on latent means and on raw pixels.

    For each count in ``labels`` (``None``: every training label) a class-balanced labelled subset
    is drawn (seeded); both probes see the same examples. Returns a list of dicts
    ``{"labels", "z", "pixels"}``.
    """
    y_train, y_test = _labelled(dataset)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    z_train, z_test = latent_means(model, dataset.x_train), latent_means(model, dataset.x_test)
    pixels_train = dataset.x_train.reshape(len(dataset.x_train), -1)
    pixels_test = dataset.x_test.reshape(len(dataset.x_test), -1)
    rows = []
    for num in labels:
        idx = labelled_subset(y_train, num, seed)
        row = {"labels": len(idx)}
        for key, train, test in (("z", z_train, z_test), ("pixels", pixels_train, pixels_test)):
            row[key] = linear_probe(train[idx], y_train[idx], test, y_test, unlabelled=train,
                                    num_classes=num_classes, steps=steps, seed=seed)
        rows.append(row)
    return rows


def finetune(model, dataset, labels=(100, 1000), *, steps=1000, learning_rate=1e-3, seed=0):
    """Test accuracy of :func:`classifier_from_encoder` trained on a few labels, starting from the
    encoder's weights and from a random initialization of the same network.

    Returns a list of dicts ``{"labels", "encoder", "random"}``.
    """
    y_train, y_test = _labelled(dataset)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    rows = []
    for num in labels:
        idx = labelled_subset(y_train, num, seed)
        row = {"labels": len(idx)}
        for key in ("encoder", "random"):
            keras.utils.set_random_seed(seed)
            classifier = classifier_from_encoder(model, num_classes, copy_weights=key == "encoder")
            fit_classifier(classifier, dataset.x_train[idx], y_train[idx], steps=steps,
                           learning_rate=learning_rate, seed=seed)
            row[key] = accuracy(classifier, dataset.x_test, y_test)
        rows.append(row)
    return rows
