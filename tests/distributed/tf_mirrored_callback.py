"""RecomputeBatchStatistics in fit under tf.distribute.MirroredStrategy on
2 logical CPU devices: the statistics (and validation loss) are those of
the global batches. Exits non-zero on any mismatch with the oracle."""

import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

from test_recompute_callback import BATCH  # noqa: E402
from test_recompute_callback import callback_data  # noqa: E402
from test_recompute_callback import callback_model  # noqa: E402
from test_recompute_callback import expected_loss  # noqa: E402
from test_recompute_callback import expected_statistics  # noqa: E402
from test_recompute_callback import weights_of  # noqa: E402

from keras_norms.callbacks import RecomputeBatchStatistics  # noqa: E402

strategy = tf.distribute.MirroredStrategy(
    [d.name for d in tf.config.list_logical_devices("CPU")]
)
assert strategy.num_replicas_in_sync == 2
x, y = callback_data()
x_val, y_val = callback_data(seed=1)
with strategy.scope():
    model = callback_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
history = model.fit(
    x,
    y,
    batch_size=BATCH,  # global: 8 samples per replica
    epochs=2,
    validation_data=(x_val, y_val),
    callbacks=[RecomputeBatchStatistics(x, batch_size=BATCH, verbose=0)],
    verbose=0,
)
weights = weights_of(model)
mean, variance = expected_statistics(weights, x, BATCH)
layer = model.get_layer("bn")
for name, variable, want in (
    ("moving_mean", layer.moving_mean, mean),
    ("moving_variance", layer.moving_variance, variance),
):
    for replica, value in enumerate(
        strategy.experimental_local_results(variable.value)
    ):
        np.testing.assert_allclose(
            np.asarray(value), want, rtol=1e-4, err_msg=f"{name}[{replica}]"
        )
# No training after the last validation: it used these statistics.
np.testing.assert_allclose(
    history.history["val_loss"][-1],
    expected_loss(weights, x_val, y_val, mean, variance),
    rtol=1e-4,
)
print("OK tensorflow MirroredStrategy: RecomputeBatchStatistics in fit")
