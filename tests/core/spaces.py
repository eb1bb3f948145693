"""Search spaces used by the core's tests."""

from rung.space import Boolean, Choice, Condition, Fixed, Float, Int, SearchSpace

WIDE = SearchSpace(
    (
        Float("learning_rate", 1e-4, 1e-1, sampling="log"),
        Int("units", 16, 512, step=16),
        Choice("activation", ("relu", "tanh", "gelu")),
        Boolean("batch_norm"),
        Int("layers", 1, 4),
        Float("dropout", 0.0, 0.5, step=0.1),
        Float("momentum", 0.5, 0.99, sampling="reverse_log"),
        Int("filters", 8, 256, step=2, sampling="log"),
        Fixed("optimizer", "adam"),
    )
)

CONDITIONAL = SearchSpace(
    (
        Choice("model", ("mlp", "cnn")),
        Int("mlp_units", 32, 256, step=32, conditions=(Condition("model", ("mlp",)),)),
        Int("cnn_filters", 16, 64, step=16, conditions=(Condition("model", ("cnn",)),)),
        Choice("kernel", (3, 5, 7), conditions=(Condition("model", ("cnn",)),)),
        Boolean(
            "wide_kernel_bn",
            conditions=(Condition("model", ("cnn",)), Condition("kernel", (5, 7))),
        ),
        Float("learning_rate", 1e-4, 1e-2, sampling="log"),
    )
)

# 40 configurations: samples collide often, so the sampler's dedup is exercised.
COLLIDING = SearchSpace((Int("a", 1, 40),))
