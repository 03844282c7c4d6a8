"""TensorFlow overrides: the fused batch norm, the custom-gradient
mechanism, the collective, the time loop, run-time shape checks and the
local-response pooling layout."""

from keras_norms.native.tensorflow.checks import (
    check_dimension as check_dimension,
)
from keras_norms.native.tensorflow.distributed import (
    cross_replica_all_gather as cross_replica_all_gather,
)
from keras_norms.native.tensorflow.distributed import (
    keras_synchronizes_batch_statistics as keras_synchronizes_batch_statistics,
)
from keras_norms.native.tensorflow.gradients import (
    custom_gradient as custom_gradient,
)
from keras_norms.native.tensorflow.local_response import (
    channel_window_mean as channel_window_mean,
)
from keras_norms.native.tensorflow.loops import (
    read_before_loop as read_before_loop,
)
from keras_norms.native.tensorflow.loops import scan as scan
from keras_norms.native.tensorflow.normalization import (
    batch_normalization_training as batch_normalization_training,
)
