"""Files: written atomically, read with a clear error.

`write_atomic` is the one way this package writes a file others read: a temporary file
beside the target, then a rename, so a reader never sees half a file, and mode 0644 so
an exported model or a published result is readable by others (a bare temporary file would be 0600).
"""
import os
import tempfile
from pathlib import Path


def write_atomic(path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write to a temporary file beside `path`, then rename: never a half-written file.
    Text is written as UTF-8. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def read_safetensors(path) -> tuple[dict, dict]:
    """(metadata, tensors) of a safetensors file. Any failure becomes SafetensorsReadError
    carrying the library's reason; callers re-raise it in their own words."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise SafetensorsReadError(str(e)) from None


class SafetensorsReadError(ValueError):
    pass
