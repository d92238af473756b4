"""Use a tfvae export from Python with only TensorFlow installed (no tfvae, no TFP, no Keras).

    python serving/examples/use_export.py export/mnist_vae/1 [--image DIGIT.png] [--seeds 0 1 2]

Draws one image per seed with the ``sample`` signature, encodes the image given (a grey PNG, JPEG
or BMP; by default the first sample), reconstructs it, estimates its log-likelihood and its
anomaly score (with the ``anomaly`` flag when the export carries the run's threshold), and prints
the results as one JSON object. The metadata is a plain file in the export,
``assets/tfvae.json``; programs in other languages read it the same way.
"""

import argparse
import json
import os

import tensorflow as tf


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", help="a version directory, e.g. export/mnist_vae/1")
    parser.add_argument("--image", help="a grey PNG/JPEG/BMP image of the model's size")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)

    with open(os.path.join(args.export_dir, "assets", "tfvae.json")) as f:
        metadata = json.load(f)
    model = tf.saved_model.load(args.export_dir)
    sample = model.signatures["sample"]
    encode = model.signatures["encode"]
    reconstruct = model.signatures["reconstruct"]
    log_likelihood = model.signatures["log_likelihood"]

    drawn = sample(seed=tf.constant(args.seeds, tf.int64))
    if args.image:
        # decode_image reads PNG, JPEG, GIF and BMP; one channel, pixels scaled to [0, 1].
        pixels = tf.io.decode_image(tf.io.read_file(args.image), channels=1,
                                    expand_animations=False)
        x = tf.cast(pixels, tf.float32)[tf.newaxis] / 255.0
    else:
        x = drawn["x_mean"][:1]
    code = encode(x=x)
    likelihood = log_likelihood(x=x, seed=tf.constant(args.seeds[:1], tf.int64))
    # score: minus the ELBO over the draws fixed at export; "anomaly" only with a threshold.
    scored = model.signatures["score"](x=x, seed=tf.constant(args.seeds[:1], tf.int64))

    print(json.dumps({
        "model": {key: metadata.get(key) for key in
                  ("dataset", "image_shape", "latent_dim", "likelihood", "test_elbo",
                   "log_likelihood_num_samples", "score_num_samples")},
        "sample": {"seed": args.seeds, "z": drawn["z"].numpy().tolist()},
        "encode": {"z_mean": code["z_mean"].numpy().tolist(),
                   "z_stddev": code["z_stddev"].numpy().tolist()},
        "reconstruction_mean_abs_error": float(
            tf.reduce_mean(tf.abs(reconstruct(x=x)["x_mean"] - x))),
        "log_likelihood": {"elbo": likelihood["elbo"].numpy().tolist(),
                           "log_px": likelihood["log_px"].numpy().tolist()},
        "score": {**{key: value.numpy().tolist() for key, value in scored.items()},
                  "threshold": (metadata.get("anomaly_threshold") or {}).get("threshold")},
    }))


if __name__ == "__main__":
    main()
