"""The names a user chooses among, in a module without heavy imports: the command line checks its
options against them before it loads torch or starts anything."""

DECODES = ("annealed-mean", "argmax", "top-k", "mean", "confident")
UPSAMPLES = ("guided", "bilinear")
ENGINES = ("torch", "openvino")  # what runs the network (colorize_core.engines)
ENGINE_PRECISIONS = ("float32", "bfloat16")


def engine_parts(text: str) -> tuple[str, str]:
    """'torch', 'openvino bfloat16' ... -> (engine, precision); the precision defaults to float32."""
    name, _, precision = text.strip().partition(" ")
    precision = precision.strip() or "float32"
    if name not in ENGINES or precision not in ENGINE_PRECISIONS:
        raise ValueError(f"engine {text!r}: expected one of {' | '.join(ENGINES)}, optionally followed by {' | '.join(ENGINE_PRECISIONS)}")
    return name, precision
