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

Modules: `qemu` (tools, images, runs, parity with the reference), `sizes` (code, RAM
and where the instructions go).
"""
from .qemu import (  # noqa: F401
    BUILD_DIR,
    CALIBRATION_ITERATIONS,
    CMDLINE_BYTES,
    CORES,
    CROSS_GCC,
    Core,
    DEFAULT_TIMEOUT_S,
    EXIT_NAMES,
    EngineRun,
    FIRMWARE_DIR,
    FirmwareError,
    FirmwareToolMissing,
    Image,
    PATHS,
    QEMU,
    QemuRun,
    Step,
    argmax_like_c,
    build_image,
    calibration,
    check_parity,
    compare,
    core_of,
    engine_args,
    expected_steps,
    fields,
    firmware_blob,
    instructions_per_tick,
    parse_engine_run,
    qemu_command,
    reference_steps,
    require_tools,
    run_engine,
    run_image,
    selftest,
    tool_problem,
)
from .sizes import (  # noqa: F401
    engine_object_sizes,
    function_sizes,
    image_sizes,
    ram_usage,
    section_sizes,
    step_profile,
)
