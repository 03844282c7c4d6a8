"""torch overrides: the fused normalization kernels (batch, group, layer
and RMS normalization), the collective, the time loop and the
local-response channel window, the steps of the BNLSTM (training) and
the layer-normalized LSTM."""

from keras_norms.native.torch.distributed import (
    cross_replica_all_gather as cross_replica_all_gather,
)
from keras_norms.native.torch.local_response import (
    channel_window_mean as channel_window_mean,
)
from keras_norms.native.torch.loops import scan as scan
from keras_norms.native.torch.normalization import (
    batch_normalization_training as batch_normalization_training,
)
from keras_norms.native.torch.normalization import (
    group_normalization as group_normalization,
)
from keras_norms.native.torch.normalization import (
    layer_normalization as layer_normalization,
)
from keras_norms.native.torch.normalization import (
    rms_normalization as rms_normalization,
)
from keras_norms.native.torch.recurrent import (
    batch_normalized_lstm_step as batch_normalized_lstm_step,
)
from keras_norms.native.torch.recurrent import (
    layer_normalized_lstm_step as layer_normalized_lstm_step,
)
