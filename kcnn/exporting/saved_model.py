"""TensorFlow SavedModel: serves raw uint8 images, encoded files and floats.

The SavedModel needs neither kcnn nor Keras to run: `tf.saved_model.load(path)`
or TensorFlow Serving. Its signatures (names are stable):

- `serving_default`: `images`, uint8 of shape (batch, height, width, channels),
  one size within a call, any size and 1 or 3 channels (2 and 4: the alpha
  is dropped) from call to call. The model's own preprocessing runs inside,
  from its metadata record, as `kcnn.predict` does it: resize, centre crop,
  grayscale/RGB conversion, normalisation, channels-first when the model is.
- `serving_encoded`: `image_bytes`, a batch of encoded JPEG/PNG/GIF/BMP
  files (tf.string), as REST clients send them; images may differ in size.
- `serving_preprocessed`: `inputs`, float32 batches exactly as the model
  takes them (already preprocessed).

All three return `probabilities` (batch, classes), `top_k_indices` (int32),
`top_k_probabilities` and `top_k_names` (the class names as strings), k =
min(top_k, classes). A model without a classifier (`include_top=False`)
returns `features` instead. The SavedModel also keeps Keras's own `serve`
endpoint (float input `args_0`, output `output_0`), which
`keras.layers.TFSMLayer` calls.
"""

import os

import keras

from kcnn.exporting import metadata as metadata_lib


def write(model, out, *, top_k=5, verbose=False):
    """Write the SavedModel with the signatures of this module's docstring."""
    import tensorflow as tf

    from kcnn.data import augment as ops
    from kcnn.data.pipeline import check_preprocessing, eval_image
    from kcnn.models._common import ends_in_softmax

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"export serves models with one image input and one output; "
                         f"{model.name!r} has {len(model.inputs)} inputs and "
                         f"{len(model.outputs)} outputs.")
    metadata = getattr(model, "metadata", None) or {}
    if "preprocessing" not in metadata:
        raise ValueError(f"model {model.name!r} has no kcnn metadata record (the "
                         "preprocessing the serving signatures need); build it with a "
                         "kcnn builder or train it with kcnn.train.")
    record, channels = check_preprocessing(metadata["preprocessing"],
                                           metadata.get("channels"))
    height, width = record["crop"]
    channels_first = metadata_lib.data_format(model) == "channels_first"
    input_shape = tuple(model.inputs[0].shape)
    classifier = metadata_lib.is_classifier(model, metadata)
    names = metadata_lib.class_names(model, metadata) if classifier else None
    softmax = classifier and ends_in_softmax(model)

    archive = keras.export.ExportArchive()
    model_fn = archive.track_and_add_endpoint(
        "serve", model,
        input_signature=[keras.InputSpec(shape=input_shape, dtype="float32")])

    def outputs(x):
        y = tf.cast(model_fn(x), tf.float32)
        if not classifier:
            return {"features": y}
        probabilities = y if softmax else tf.nn.softmax(y, axis=-1)
        top = tf.math.top_k(probabilities, k=min(top_k, len(names)))
        return {"probabilities": probabilities,
                "top_k_probabilities": top.values,
                "top_k_indices": top.indices,
                "top_k_names": tf.gather(tf.constant(names), top.indices)}

    def prepare(image):
        """One uint8 (h, w, c) image to the model's crop, as kcnn.predict does."""
        return eval_image(image, record, channels)

    crop_spec = tf.TensorSpec([height, width, channels], tf.uint8)

    def finish(crops):
        x = ops.normalize(crops, record)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        return outputs(x)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8,
                                                name="images")])
    def serving_default(images):
        return finish(tf.map_fn(prepare, images, fn_output_signature=crop_spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_encoded(image_bytes):
        def decode(data):
            image = tf.io.decode_image(data, channels=0, expand_animations=False)
            return prepare(image)

        return finish(tf.map_fn(decode, image_bytes, fn_output_signature=crop_spec))

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32, name="inputs")])
    def serving_preprocessed(inputs):
        return outputs(inputs)

    archive.add_endpoint("serving_default", serving_default)
    archive.add_endpoint("serving_encoded", serving_encoded)
    archive.add_endpoint("serving_preprocessed", serving_preprocessed)
    archive.write_out(out, verbose=verbose)
    # assets.extra/ holds files the graph does not read (TensorFlow Serving's
    # warm-up requests live there too).
    os.makedirs(os.path.join(out, "assets.extra"))
    metadata_lib.write_json(model, os.path.join(out, "assets.extra", "kcnn.json"),
                            "saved_model")


def open(path):
    """A function of a preprocessed float32 batch to the model's raw output
    (Keras's `serve` endpoint: probabilities or logits, as the model ends)."""
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serve"]
    return lambda x: next(iter(serve(tf.constant(x, tf.float32)).values())).numpy()


def read_metadata(path):
    return metadata_lib.read_json(os.path.join(path, "assets.extra", "kcnn.json"))
