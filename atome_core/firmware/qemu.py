"""The engine as firmware under QEMU: build an image, run it, check it bit for bit.

An image is one core's build of firmware/ (startup, semihosting, the C engine from
c_engine/) with one blob linked read-only into flash. QEMU runs it on the MPS2 board
for that core:

    core   board        CPU QEMU runs   compiled for
    m0     mps2-an385   Cortex-M3       -mcpu=cortex-m0 (ARMv6-M; unaligned accesses trap, as on an M0)
    m3     mps2-an385   Cortex-M3       -mcpu=cortex-m3, soft float
    m4f    mps2-an386   Cortex-M4       -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard
    m7     mps2-an500   Cortex-M7       -mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard

QEMU 7.2's mps2-an385 accepts only its Cortex-M3, so Cortex-M0 code runs on it.

The firmware prints one line per decode step: the input token, the instruction
ticks, a CRC-32 of the logits' bytes and their argmax (optionally the logits
themselves). The host runs the NumPy reference (atome_core.engine.Reference) over the
same tokens and compares every logit's float32 bits and every token.

Instructions are counted deterministically: QEMU runs with `-icount shift=0`, so its
virtual clock advances exactly 1 ns per guest instruction, and the firmware reads
SysTick, which counts the boards' 25 MHz core clock: one tick is 40 instructions.
`instructions_per_tick` measures that ratio with a loop of known length rather than
assuming it. (DWT CYCCNT reads 0 under QEMU; the TCG insn plugin would need QEMU's
source to build.) These are guest instructions, not cycles: QEMU models no pipeline.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import engine as E
from .. import formats
from ..paths import PACKAGE_DIR

FIRMWARE_DIR = PACKAGE_DIR.parent / "firmware"
BUILD_DIR = FIRMWARE_DIR / "build"
CROSS_GCC = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
PATHS = ("f32", "i8")
DEFAULT_TIMEOUT_S = 120
CMDLINE_BYTES = 2048            # main.c's command-line buffer
CALIBRATION_ITERATIONS = 1_000_000   # selftest.c: calibrate_loop(1000000), 2 instructions each


@dataclass(frozen=True)
class Core:
    name: str
    label: str
    board: str
    fpu: str | None


CORES = {
    "m0": Core("m0", "Cortex-M0", "mps2-an385", None),
    "m3": Core("m3", "Cortex-M3", "mps2-an385", None),
    "m4f": Core("m4f", "Cortex-M4F", "mps2-an386", "FPv4-SP-D16"),
    "m7": Core("m7", "Cortex-M7", "mps2-an500", "FPv5-D16"),
}

# firmware/src/board.h; QEMU itself exits with 1 for a stop semihosting does not describe
EXIT_NAMES = {0: "ok", 1: "qemu stop", 2: "usage", 3: "engine error", 4: "out of RAM",
              5: "check failed", 6: "stack overflow", 13: "fault"}


class FirmwareError(RuntimeError):
    """A build or run of the firmware failed (the message says how)."""


class FirmwareToolMissing(FirmwareError):
    """The cross compiler, newlib or QEMU is not installed."""


def core_of(name: str) -> Core:
    if name not in CORES:
        raise ValueError(f"unknown core {name!r}; choose one of {', '.join(CORES)}")
    return CORES[name]


# -- tools ---------------------------------------------------------------------------------

def tool_problem() -> str | None:
    """None when everything needed is installed, else what is missing and its Debian package."""
    missing = []
    if shutil.which(CROSS_GCC) is None:
        missing.append(f"{CROSS_GCC} (Debian: gcc-arm-none-eabi)")
    else:
        nano = subprocess.run([CROSS_GCC, "-mcpu=cortex-m3", "-mthumb", "-print-file-name=libc_nano.a"],
                              capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(nano):
            missing.append("newlib for arm-none-eabi (Debian: libnewlib-arm-none-eabi)")
    if shutil.which(QEMU) is None:
        missing.append(f"{QEMU} (Debian: qemu-system-arm)")
    if shutil.which("make") is None:
        missing.append("make (Debian: make)")
    if not missing:
        return None
    return ("firmware tools missing: " + "; ".join(missing) +
            ". Install with: apt-get install --no-install-recommends gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi qemu-system-arm (or run `make sysdeps`)")


def require_tools() -> None:
    problem = tool_problem()
    if problem:
        raise FirmwareToolMissing(problem)


# -- building ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Image:
    core: str
    app: str          # "engine" or "selftest"
    elf: Path
    blob_bytes: int
    opt: str
    minimal: bool = False   # the engine built with ATOME_MINIMAL: i8 path, 2-bit trits only

    @property
    def dir(self) -> Path:
        return self.elf.parent


def _blob_bytes(blob) -> bytes:
    if blob is None:
        return b""
    if isinstance(blob, (str, Path)):
        return Path(blob).read_bytes()
    return bytes(blob)


def build_image(core: str, blob=None, app: str = "engine", opt: str = "-Os",
                stack_size: int = 0x4000, minimal: bool = False) -> Image:
    """Build (or reuse) the image of `app` for `core` with `blob` (bytes or a file) in flash.

    minimal: the engine built with ATOME_MINIMAL (c_engine/atome.h): the integer path
    only and 2-bit trit sections only, validation and CRC kept."""
    require_tools()
    core_of(core)
    if app not in ("engine", "selftest"):
        raise ValueError(f"app must be 'engine' or 'selftest', got {app!r}")
    data = _blob_bytes(blob)
    blob_format = "atome01" if data[:7] == formats.ATOME01_MAGIC else "atmb"
    key = hashlib.sha256(data).hexdigest()[:16]
    out = BUILD_DIR / f"{app}-{core}-{opt.lstrip('-')}-{stack_size:x}{'-min' if minimal else ''}-{key}"
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / ".lock", "w") as lock:   # one build at a time in this tree
        fcntl.flock(lock, fcntl.LOCK_EX)
        out.mkdir(exist_ok=True)
        blob_file = out / "blob.bin"
        if not blob_file.is_file() or blob_file.read_bytes() != data:
            blob_file.write_bytes(data)
        cmd = ["make", "-s", "-C", str(FIRMWARE_DIR), f"CORE={core}", f"APP={app}", f"OPT={opt}",
               f"BLOB={blob_file}", f"FORMAT={blob_format}", f"OUT={out}", f"STACK_SIZE={stack_size:#x}",
               f"MINIMAL={int(minimal)}"]
        run = subprocess.run(cmd, capture_output=True, text=True)
    elf = out / "image.elf"
    if run.returncode != 0 or not elf.is_file():
        raise FirmwareError(f"building {app} for {core} failed:\n{run.stdout}{run.stderr}")
    return Image(core=core, app=app, elf=elf, blob_bytes=len(data), opt=opt, minimal=minimal)


# -- running ------------------------------------------------------------------------------------

@dataclass
class QemuRun:
    exit_code: int | None     # None: killed by the timeout
    outcome: str              # EXIT_NAMES, or "timeout"
    stdout: str
    stderr: str
    wall_s: float
    command: list

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def lines(self, tag: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.split(" ", 1)[0] == tag]


def qemu_command(image: Image, args: str) -> list[str]:
    return [QEMU, "-machine", CORES[image.core].board, "-nographic", "-monitor", "none", "-serial", "none",
            "-chardev", "stdio,id=semihost",
            "-semihosting-config", "enable=on,target=native,chardev=semihost",
            "-icount", "shift=0", "-kernel", str(image.elf), "-append", args]


def run_image(image: Image, args: str = "", timeout: float = DEFAULT_TIMEOUT_S) -> QemuRun:
    """Run an image to its semihosting exit; a run past `timeout` seconds is killed."""
    require_tools()
    cmd = qemu_command(image, args)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return QemuRun(None, "timeout", out, err, time.perf_counter() - t0, cmd)
    return QemuRun(p.returncode, EXIT_NAMES.get(p.returncode, f"exit {p.returncode}"), p.stdout, p.stderr,
                   time.perf_counter() - t0, cmd)


def fields(line: str) -> dict:
    """`TAG a=1 b=x` -> {'a': 1, 'b': 'x'} (integers converted)."""
    out = {}
    for word in line.split()[1:]:
        if "=" in word:
            k, v = word.split("=", 1)
            out[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return out


# -- the platform self-test ------------------------------------------------------------------------

def selftest(core: str, data: bytes = b"", args: str = "crc", timeout: float = 30) -> dict:
    """Run firmware/src/selftest.c on `core` with `data` linked in flash."""
    image = build_image(core, data, app="selftest")
    run = run_image(image, args, timeout=timeout)
    out = {"core": core, "exit_code": run.exit_code, "outcome": run.outcome, "run": run}
    calib = run.lines("CALIB")
    if calib:
        out["calibration_ticks"] = fields(calib[0])["ticks"]
    crc = run.lines("CRC")
    if crc:
        f = fields(crc[0])
        out.update(crc32=int(f["crc32"], 16), crc_bytes=f["bytes"], crc_address=int(f["at"], 16),
                   crc_ticks=f["ticks"])
    stack = run.lines("STACK")
    if stack:
        out["stack_used"] = fields(stack[0])["used"]
    return out


@lru_cache(maxsize=None)
def calibration(core: str) -> dict:
    """Ticks of a loop of exactly 2 x CALIBRATION_ITERATIONS instructions, and the ratio."""
    r = selftest(core, b"", args="")
    if r["exit_code"] != 0 or "calibration_ticks" not in r:
        raise FirmwareError(f"calibration on {core} failed ({r['outcome']}):\n{r['run'].stdout}{r['run'].stderr}")
    ticks = r["calibration_ticks"]
    return {"ticks": ticks, "instructions": 2 * CALIBRATION_ITERATIONS,
            "instructions_per_tick": 2 * CALIBRATION_ITERATIONS / ticks}


def instructions_per_tick(core: str = "m3") -> int:
    """Guest instructions per SysTick tick, measured (the loop's own few extra
    instructions make the raw ratio a hair under a whole number)."""
    return round(calibration(core)["instructions_per_tick"])


# -- the engine on a core ------------------------------------------------------------------------------

@dataclass
class Step:
    index: int
    token: int        # the step's input token
    ticks: int        # atome_step + atome_argmax
    crc: int          # CRC-32 of the logits' little-endian bytes
    argmax: int
    logits: np.ndarray | None = None


@dataclass
class EngineRun:
    core: str
    path: str
    window: int
    prompt: list
    n_new: int
    run: QemuRun
    steps: list = field(default_factory=list)
    load: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    ram: dict = field(default_factory=dict)
    stack: dict = field(default_factory=dict)
    check: dict = field(default_factory=dict)   # the firmware's own check of expected CRCs
    errors: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.run.ok and len(self.steps) == expected_steps(len(self.prompt), self.n_new)

    @property
    def generated(self) -> list[int]:
        """The greedy continuation: the argmax after the last prompt token and after each new one."""
        return [s.argmax for s in self.steps[len(self.prompt) - 1:]][:self.n_new]


def expected_steps(n_prompt: int, n_new: int) -> int:
    return n_prompt + max(n_new, 1) - 1


def engine_args(prompt_ids, n_new: int, path: str, window: int, full_logits: bool, config=None,
                expect_crcs=None) -> str:
    words = [f"path={path}", f"window={window}", f"new={n_new}", f"logits={'full' if full_logits else 'crc'}",
             "prompt=" + "".join(f"{t:04x}" for t in prompt_ids)]
    if expect_crcs is not None:
        words.append("expect=" + "".join(f"{c:08x}" for c in expect_crcs))
    if config is not None:
        c = formats.as_config(config)
        words.append(f"config={c.vocab},{c.d_model},{c.n_layers},{c.d_head},{c.top_k},{c.kernel}")
    return " ".join(words)


def parse_engine_run(run: QemuRun, core: str, path: str, window: int, prompt, n_new: int) -> EngineRun:
    r = EngineRun(core=core, path=path, window=window, prompt=list(prompt), n_new=n_new, run=run)
    lines = run.stdout.splitlines()
    for i, line in enumerate(lines):
        tag = line.split(" ", 1)[0]
        if tag == "S":
            idx, tok, ticks, crc, nxt = line.split()[1:6]
            r.steps.append(Step(int(idx), int(tok), int(ticks), int(crc, 16), int(nxt)))
        elif tag == "L" and r.steps:
            r.steps[-1].logits = np.frombuffer(bytes.fromhex(line[2:].strip()), dtype="<f4").astype(np.float32)
        elif tag == "LOAD":
            r.load = fields(line)
        elif tag == "RUN":
            r.config = fields(line)
        elif tag == "RAM":
            r.ram = fields(line)
        elif tag == "STACK":
            r.stack = fields(line)
        elif tag == "CHECK":
            r.check = fields(line)
        elif tag in ("ERROR", "FAULT", "MISMATCH"):
            r.errors.append(line)
    return r


def run_engine(image: Image, prompt, n_new: int, path: str = "i8", window: int = 128,
               full_logits: bool = True, config=None, timeout: float = DEFAULT_TIMEOUT_S,
               expect_crcs=None) -> EngineRun:
    """Run the engine image on a prompt (text, bytes or token ids) and parse what it printed.

    expect_crcs: the reference's CRC-32 per step; the firmware then checks every step
    itself and exits with "check failed" (5) on any difference."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    ids = [int(t) for t in (prompt.encode() if isinstance(prompt, str) else prompt)]
    if not ids:
        raise ValueError("the prompt is empty: give at least one token")
    if n_new < 0 or window < 1:
        raise ValueError(f"need n_new >= 0 and window >= 1, got {n_new}, {window}")
    args = engine_args(ids, n_new, path, window, full_logits, config, expect_crcs)
    if len(args) + len(str(image.elf)) + 2 > CMDLINE_BYTES:
        raise ValueError(f"the command line ({len(ids)} prompt tokens at 4 hex digits each"
                         + (f", {len(expect_crcs)} expected CRCs at 8" if expect_crcs is not None else "")
                         + f") is too long for the firmware's {CMDLINE_BYTES}-byte buffer")
    run = run_image(image, args, timeout=timeout)
    return parse_engine_run(run, image.core, path, window, ids, n_new)


# -- the reference and the comparison ------------------------------------------------------------------------

def argmax_like_c(logits: np.ndarray) -> int:
    """atome_argmax: the first maximum; a NaN best is replaced by the next element."""
    best = 0
    for i in range(1, len(logits)):
        if logits[i] > logits[best] or logits[best] != logits[best]:
            best = i
    return best


def reference_steps(blob: bytes, prompt, n_new: int, path: str, window: int, config=None) -> list[Step]:
    """The firmware's loop in NumPy: prompt, then greedy; the same Steps (ticks 0)."""
    ref = E.Reference.from_blob(blob, config, window=window, path=path)
    ids = list(prompt)
    steps, token = [], ids[0]
    for i in range(expected_steps(len(ids), n_new)):
        logits = ref.step(token)
        nxt = argmax_like_c(logits)
        steps.append(Step(i, token, 0, zlib.crc32(logits.astype("<f4").tobytes()), nxt, logits))
        token = ids[i + 1] if i + 1 < len(ids) else nxt
    return steps


def compare(run: EngineRun, reference: list[Step]) -> dict:
    """Every step's logits (bits, or CRC when only CRCs were printed) and tokens."""
    n = min(len(run.steps), len(reference))
    crc_equal = sum(run.steps[i].crc == reference[i].crc for i in range(n))
    inputs_equal = sum(run.steps[i].token == reference[i].token for i in range(n))
    max_ulp, unequal, compared = None, None, 0
    if n and all(s.logits is not None for s in run.steps[:n]):
        fw = np.stack([s.logits for s in run.steps[:n]])
        ref = np.stack([s.logits for s in reference[:n]])
        max_ulp = int(E.ulp_distance(fw, ref).max())
        unequal = int((fw.view(np.uint32) != ref.view(np.uint32)).sum())
        compared = int(fw.size)
    n_prompt = len(run.prompt)
    ref_generated = [s.argmax for s in reference[n_prompt - 1:]][:run.n_new]
    generated = run.generated
    tokens_equal = sum(a == b for a, b in zip(generated, ref_generated))
    bit_exact = (run.ok and n == len(reference) and crc_equal == n and inputs_equal == n
                 and (max_ulp in (None, 0)) and generated == ref_generated)
    return {"core": run.core, "path": run.path, "window": run.window, "steps": n,
            "steps_expected": len(reference), "outcome": run.run.outcome,
            "firmware_check": run.check.get("mismatches"),
            "logits_compared": compared, "max_ulp": max_ulp, "unequal_logits": unequal,
            "crc_equal_steps": crc_equal, "tokens_equal": tokens_equal, "tokens": len(ref_generated),
            "generated": generated, "reference_generated": ref_generated, "bit_exact": bool(bit_exact)}


def check_parity(core: str, blob: bytes, prompt, n_new: int, path: str = "i8", window: int = 128,
                 config=None, full_logits: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
                 minimal: bool = False) -> dict:
    """Build, run and compare in one call: the parity row of one core x path. The
    firmware checks the reference's CRCs itself (its exit code) and the host compares
    every logit's bits and every token (the returned row). minimal: the ATOME_MINIMAL image."""
    blob = _blob_bytes(blob)
    if E.blob_kind(blob) == "ATOME01":
        config = E.atome01_config(blob, config)
    image = build_image(core, blob, app="engine", minimal=minimal)
    ids = list(prompt.encode() if isinstance(prompt, str) else prompt)
    reference = reference_steps(blob, ids, n_new, path, window, config)
    run = run_engine(image, ids, n_new, path=path, window=window, full_logits=full_logits,
                     config=config, timeout=timeout, expect_crcs=[s.crc for s in reference])
    if not run.run.ok and run.run.outcome != "check failed":
        raise FirmwareError(f"the firmware on {core} ended with {run.run.outcome}: "
                            f"{' | '.join(run.errors) or run.run.stderr.strip()[-500:]}")
    result = compare(run, reference)
    result["run"] = run
    result["image"] = image
    return result


# -- the command line ---------------------------------------------------------------------------------------

def firmware_blob(path, config=None) -> tuple[bytes, object, str]:
    """(blob bytes for the firmware, ATOME01 config or None, a note). ATMB blobs whose
    trits are packed tighter than 2 bits are re-encoded as 2-bit so the engine reads the
    weights in place in flash (a packed blob would be decoded into RAM); other model
    files (checkpoints, ATOME02) become 2-bit ATMB."""
    data = Path(path).read_bytes()
    if data[:7] == formats.ATOME01_MAGIC:
        return data, E.atome01_config(data, config), "ATOME01, weights read in place"
    cfg, tensors, kind = formats.load_routed_tensors(path, config)
    if data[:4] == formats.MAGIC:
        info = formats.inspect_blob(data)
        if info.ok and all(s["codec"] in ("raw", "2bit") for s in info.sections):
            return data, None, "ATMB 2-bit, weights read in place"
    return formats.write_blob(cfg, tensors, codec="2bit"), None, f"{kind} re-encoded as 2-bit ATMB for flash"
