"""The named errors of every model-file reader.

Each is a subclass of BlobError (a ValueError); the C engine's status codes
(c_engine/atome.h) carry the same names, and `atome_core.engine` maps one onto the other.
"""



# -- errors -------------------------------------------------------------------


class BlobError(ValueError):
    """A model file that cannot be read; the subclass says why."""


class BadMagicError(BlobError):
    """The file does not start with the expected magic bytes."""


class UnsupportedVersionError(BlobError):
    """A format version this reader does not know."""


class TruncatedBlobError(BlobError):
    """The file is shorter than its header (or its config) says."""


class TrailingBytesError(BlobError):
    """The file is longer than its header says."""


class ChecksumError(BlobError):
    """The CRC-32 stored at the end does not match the bytes."""


class BadHeaderError(BlobError):
    """A header or section-table field holds a value the format does not allow."""


class SectionBoundsError(BlobError):
    """A section (or the table) lies outside the file's data area, or is misaligned."""


class SectionOverlapError(BlobError):
    """Two sections share bytes."""


class ConfigMismatchError(BlobError):
    """The sections do not match the model config (missing, extra, duplicate, wrong shape or dtype)."""


class LegacySizeError(ConfigMismatchError):
    """An ATOME01/ATOME02 blob whose size is not the size its config implies."""


class CorruptSectionError(BlobError):
    """A section's payload does not decode (wrong length for its codec, invalid codes)."""
