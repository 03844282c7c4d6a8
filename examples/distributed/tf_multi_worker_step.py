r"""Synchronized BatchNormalization across processes with
tf.distribute.MultiWorkerMirroredStrategy.

Run one copy per worker, each with TF_CONFIG naming all the workers and
its own index. Two workers on this machine:

    export KERAS_BACKEND=tensorflow
    CLUSTER='"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}'
    TF_CONFIG="{$CLUSTER, \"task\": {\"type\": \"worker\", \"index\": 0}}" \
        python examples/distributed/tf_multi_worker_step.py &
    TF_CONFIG="{$CLUSTER, \"task\": {\"type\": \"worker\", \"index\": 1}}" \
        python examples/distributed/tf_multi_worker_step.py

Each worker trains on its own shard of the data, with a training step
under ``strategy.run``.
"""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

# Create the strategy first: it starts TensorFlow's cluster from TF_CONFIG.
strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_norms  # noqa: E402

GLOBAL_BATCH = 16

with strategy.scope():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, use_bias=False),
            # Statistics of the global batch of 16, not of each worker's 8.
            keras_norms.layers.BatchNormalization(synchronized=True),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)


def dataset(context):
    # Every worker builds the same data and keeps its own shard of it.
    rng = np.random.default_rng(0)
    images = rng.normal(size=(128, 8, 8, 3)).astype("float32")
    labels = rng.normal(size=(128, 1)).astype("float32")
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shard(context.num_input_pipelines, context.input_pipeline_id)
        .batch(context.get_per_replica_batch_size(GLOBAL_BATCH))
    )


@tf.function
def train_step(images, labels):
    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            loss = tf.reduce_sum(
                keras.losses.mean_squared_error(labels, predictions)
            ) / float(GLOBAL_BATCH)
        gradients = tape.gradient(loss, model.trainable_variables)
        # Sums the gradients over all replicas, then updates.
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    losses = strategy.run(replica_step, args=(images, labels))
    return strategy.reduce("SUM", losses, axis=None)


for images, labels in strategy.distribute_datasets_from_function(dataset):
    loss = train_step(images, labels)
task = strategy.cluster_resolver.task_id
print(
    f"worker {task}: trained on {strategy.num_replicas_in_sync} replicas, "
    f"last loss {float(loss):.4f}"
)
