"""Model files: packing codecs, our ATMB blob format, the published ATOME01/ATOME02 layouts,
inspection, and the one model-file contract.

- `errors`: the named errors every reader raises (the C engine's status codes map onto them).
- `routed_shape`: the routed model's tensors as plain NumPy data (names, shapes, presets);
  `blob_config` is the one conversion from the model's RoutedConfig to the blob's config.
- `packing`: trit codecs (2-bit, base-3x5, dense, rANS).
- `atmb`: ATMB version 1, writer and reader.
- `legacy`: ATOME01 / ATOME02, the published layouts.
- `inspect`: what a blob holds and what each section costs.
- `model_file`: the one model-file contract (weights + family + config + tokenizer), and
  any file a routed model lives in read as blob tensors.
- `published`: the importer of the Atome kit's published .pt checkpoints and blob.
- `atto_json`: chapter 1's dependency-free JSON export of the atto models.
"""
from .atmb import (  # noqa: F401
    ALIGN,
    CODEC_NAMES,
    CODEC_RAW,
    CRC_BYTES,
    DEFAULT_CODEC,
    DTYPE_F16,
    DTYPE_F32,
    DTYPE_NAMES,
    DTYPE_TRIT,
    ENTRY,
    ENTRY_FIELDS,
    FLOAT_DTYPES,
    HEADER,
    HEADER_FIELDS,
    MAGIC,
    SECTIONS,
    SECTIONS_BY_ID,
    TRIT_SECTION_NAMES,
    VERSION,
    Entry,
    Header,
    SectionSpec,
    read_blob,
    write_blob,
)
from .errors import (  # noqa: F401
    BadHeaderError,
    BadMagicError,
    BlobError,
    ChecksumError,
    ConfigMismatchError,
    CorruptSectionError,
    LegacySizeError,
    SectionBoundsError,
    SectionOverlapError,
    TrailingBytesError,
    TruncatedBlobError,
    UnsupportedVersionError,
)
from .inspect import (  # noqa: F401
    BlobInfo,
    format_inspection,
    inspect_blob,
)
from .legacy import (  # noqa: F401
    ATOME01_MAGIC,
    ATOME02_MAGIC,
    LEGACY_CODECS,
    atome01_to_blob,
    blob_to_atome01,
    legacy_config,
    legacy_item_sizes,
    legacy_layout,
    legacy_size,
    read_atome01,
    read_atome02,
    read_legacy,
    write_atome01,
    write_atome02,
    write_legacy,
)
from .model_file import (  # noqa: F401
    FORMAT,
    ModelFile,
    blob_of,
    config_from_dict,
    load_model,
    load_routed_tensors,
    parse_config_arg,
    read_model_file,
    save_model,
)
from .routed_shape import (  # noqa: F401
    ARCH_ROUTED,
    MAX_DIM,
    PRESETS,
    RoutedBlobConfig,
    as_config,
    blob_config,
    check_tensors,
    config_from_state_dict,
    expected_shapes,
    layer_trit_names,
    scale_key,
    tensors_from_state_dict,
    trit_weight_names,
    vector_names,
)
