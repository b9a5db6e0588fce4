"""How big an image is (sections, engine code per object, function and purpose), how much RAM a run
used, and where the instructions of a decode step go.
"""

import subprocess
from pathlib import Path

from .qemu import (
    CROSS_GCC,
    DEFAULT_TIMEOUT_S,
    EXIT_NAMES,
    EngineRun,
    FirmwareError,
    Image,
    engine_args,
    qemu_command,
)

# -- sizes -------------------------------------------------------------------------------------------------

def _tool(name: str) -> str:
    return CROSS_GCC.replace("gcc", name)


def _symbols(elf: Path) -> dict:
    out = subprocess.run([_tool("nm"), str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}


def section_sizes(path: Path) -> dict:
    """{section name: bytes} of an ELF file or object (arm-none-eabi-size -A)."""
    out = subprocess.run([_tool("size"), "-A", str(path)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = sizes.get(parts[0], 0) + int(parts[1])
    return sizes


def image_sizes(image: Image) -> dict:
    """Flash and static RAM of a linked image, with the engine's and the blob's shares."""
    s = section_sizes(image.elf)
    sym = _symbols(image.elf)
    out = {"vectors": s.get(".vectors", 0), "text": s.get(".text", 0), "rodata": s.get(".rodata", 0),
           "exidx": s.get(".ARM.exidx", 0), "data": s.get(".data", 0), "bss": s.get(".bss", 0)}
    out["engine_text"] = sym["__engine_text_end"] - sym["__engine_text_start"]
    out["engine_rodata"] = sym["__engine_rodata_end"] - sym["__engine_rodata_start"] if "__engine_rodata_end" in sym else 0
    out["runtime_text"] = sym["__runtime_text_end"] - sym["__runtime_text_start"]
    out["blob"] = image.blob_bytes
    out["flash"] = out["vectors"] + out["text"] + out["rodata"] + out["exidx"] + out["data"]
    out["static_ram"] = out["data"] + out["bss"]
    return out


def engine_object_sizes(image: Image) -> dict:
    """.text and .rodata of the engine's object files as compiled for the image's core
    (the whole library, before the linker drops what the firmware never calls)."""
    text = rodata = 0
    for obj in ("engine_atome.o", "engine_atome_load.o"):
        for name, size in section_sizes(image.dir / obj).items():
            if name == ".text" or name.startswith(".text."):
                text += size
            elif name == ".rodata" or name.startswith(".rodata."):
                rodata += size
    return {"text": text, "rodata": rodata}


def function_sizes(image: Image, start: str = "__engine_text_start", end: str = "__engine_text_end") -> dict:
    """{function: bytes} of the code linked between two of the linker script's symbols
    (default: the engine's .text)."""
    out = subprocess.run([_tool("nm"), "-S", str(image.elf)], capture_output=True, text=True, check=True).stdout
    sym = _symbols(image.elf)
    lo, hi = sym[start], sym[end]
    sizes = {}
    for parts in (line.split() for line in out.splitlines()):
        if len(parts) == 4 and parts[2] in "tT":
            addr, size = int(parts[0], 16) & ~1, int(parts[1], 16)
            if lo <= addr < hi:
                sizes[parts[3]] = sizes.get(parts[3], 0) + size
    return sizes


def ram_usage(run: EngineRun, sizes: dict) -> dict:
    """RAM of a run: static (.data, .bss), the engine's buffers in the work area, the stack peak.

    engine: what a product needs for this model, context and path (model view, state
    struct, decode arena, state, scratch, logits, stack); harness: the rest of .bss
    (the command-line and output buffers of this test firmware)."""
    r = run.ram
    engine_buffers = r["arena"] + r["state"] + r["scratch"] + r["logits"]
    views = r["model_view"] + r["state_struct"]
    stack = run.stack.get("used", 0)
    return {"data": sizes["data"], "bss": sizes["bss"], "state": r["state"], "scratch": r["scratch"],
            "arena": r["arena"], "logits": r["logits"], "views": views, "stack_peak": stack,
            "engine_ram": engine_buffers + views + stack + sizes["data"],
            "harness_ram": sizes["bss"] - views,
            "total_ram": sizes["data"] + sizes["bss"] + r["work_used"] + stack}


# -- where the instructions go ---------------------------------------------------------------------------------

def _function_instructions(image: Image, args: str, timeout: float) -> dict:
    """{function: guest instructions} of a whole run, from QEMU's log of every
    translation block it executes (-d in_asm,exec,nochain): about 10 bytes of log per
    instruction, so only for short runs."""
    import collections
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "qemu.log"
        cmd = qemu_command(image, args) + ["-d", "in_asm,exec,nochain", "-D", str(log)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired:
            raise FirmwareError(f"profiling run on {image.core} timed out after {timeout} s") from None
        if p.returncode != 0:
            raise FirmwareError(f"profiling run on {image.core} ended with {EXIT_NAMES.get(p.returncode)}")
        block_len, executed = {}, collections.Counter()
        start = n = None
        with open(log, errors="replace") as f:
            for line in f:
                if line.startswith("0x") and ":" in line[:12]:       # an instruction of a new block
                    if start is None:
                        start = int(line[2:10], 16)
                        n = 0
                    n += 1
                    block_len[start] = n
                elif line.startswith("Trace "):                      # one execution of a block
                    pc = int(line.split("[", 1)[1].split("/")[1], 16)
                    executed[(pc, line.rsplit(" ", 1)[-1].strip())] += 1
                    start = None
                elif line.startswith("IN:"):
                    start = None
    per_function = collections.Counter()
    for (pc, name), count in executed.items():
        per_function[name] += count * block_len.get(pc, 0)
    return dict(per_function)


def step_profile(image: Image, prompt, path: str = "i8", window: int = 128, config=None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> dict:
    """{function: guest instructions} of the last prompt token's atome_step + atome_argmax:
    the run over the whole prompt minus the run without its last token (reset, load,
    earlier steps cancel out; the few instructions printing one step line remain)."""
    ids = list(prompt)
    if len(ids) < 2:
        raise ValueError("step_profile needs a prompt of at least 2 tokens")
    longer = _function_instructions(image, engine_args(ids, 1, path, window, False, config), timeout)
    shorter = _function_instructions(image, engine_args(ids[:-1], 1, path, window, False, config), timeout)
    diff = {k: longer.get(k, 0) - shorter.get(k, 0) for k in set(longer) | set(shorter)}
    return {k: v for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v}


# -- the engine's functions by purpose ------------------------------------------------------------------------

DECODE_GROUP = "decode: step, ternary products, norms, attention, exp/tanh/rsqrt"

# (purpose, prefixes of c_engine/ function names); a function no prefix matches is decode code.
ENGINE_GROUPS = (
    (DECODE_GROUP, ()),
    ("blob validation and loading", ("parse_blob", "items", "scale_bytes", "atome_check_blob", "atome_load_blob",
                                     "config_valid", "rd16", "rd32")),
    ("packed-codec decoders (base3x5, dense, rANS)", ("decode_", "dense_", "group_bits", "put_code", "pow3",
                                                      "divide_small")),
    ("2-bit check", ("check_2bit",)),
    ("CRC-32", ("atome_crc32",)),
    ("ATOME01 loader", ("atome_load_atome01", "atome01_", "trit_item")),
    ("state and scratch layout", ("layout", "carve", "buffer_bytes", "atome_state_", "atome_scratch_",
                                  "atome_reset", "config_ok", "path_ok")),
)


def function_group(name: str) -> str:
    """The purpose (ENGINE_GROUPS) of one of the engine's functions, from its name."""
    for group, prefixes in ENGINE_GROUPS[1:]:
        if name.startswith(prefixes):
            return group
    return DECODE_GROUP


def group_sizes(functions: dict) -> dict:
    """{purpose: bytes} of {function: bytes} (as from function_sizes), every purpose of
    ENGINE_GROUPS in its order, 0 where nothing of it is linked."""
    out = {group: 0 for group, _ in ENGINE_GROUPS}
    for name, size in functions.items():
        out[function_group(name)] += size
    return out
