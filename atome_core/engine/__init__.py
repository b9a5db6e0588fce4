"""The C engine (c_engine/) from Python, its reference in NumPy, and the catalogue of bad blobs.

- `binding`: ctypes binding of c_engine/libatome.so (`Engine`, `Model`), built on demand.
- `reference`: the same arithmetic in NumPy, operation for operation, bit for bit.
- `parity`: the two compared logit by logit (equal float32 bits, not a tolerance).
- `conformance`: every malformed blob both readers must refuse alike, and fuzz seeds.
- `bench`: decode speed and code size.
"""
from .bench import (  # noqa: F401
    library_code_bytes,
    tokens_per_second,
)
from .binding import (  # noqa: F401
    DEFAULT_WINDOW,
    ENGINE_DIR,
    LIBRARIES,
    PATHS,
    STATUS_ERRORS,
    STATUS_NAMES,
    Config,
    Engine,
    EngineBuildError,
    EngineError,
    Model,
    _buffer,
    _ptr,
    atome01_config,
    blob_kind,
    build_library,
    check_prompt,
    error_for,
    f32,
    load_library,
    status_name,
)
from .conformance import (  # noqa: F401
    FUZZ_CONFIGS,
    _entry,
    _with_crc,
    c_verdict,
    fuzz_seeds,
    malformed_cases,
    python_verdict,
    random_tensors,
    same_verdict,
    selfcheck,
)
from .parity import (  # noqa: F401
    bits_equal,
    next_token_loss,
    parity,
    ulp_distance,
)
from .reference import (  # noqa: F401
    EXP_LN2_HI,
    EXP_LN2_LO,
    EXP_LOG2E,
    EXP_TAYLOR,
    INV127,
    LN_EPS,
    MASK64,
    QF,
    QP,
    ROUND_MAGIC,
    SAT,
    TANH_POLY,
    TWO_M16,
    TWO_M32,
    Q,
    Reference,
    dequant_ref,
    exp_ref,
    fixed_ref,
    int_to_f32,
    lane_sum,
    layer_norm_q_ref,
    layer_norm_ref,
    multiplier_ref,
    quantize_q_ref,
    rsqrt_ref,
    sample_ref,
    sat32,
    scale_by_ref,
    shift_round,
    softmax3_ref,
    splitmix64,
    tanh_ref,
)
