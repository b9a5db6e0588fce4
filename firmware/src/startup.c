/* startup.c: the vector table, reset, fault handlers, the instruction counter and
 * the stack gauge, for Cortex-M0 (ARMv6-M) and Cortex-M3/M4/M7 (ARMv7-M). */
#include "board.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[], __stack_limit[];
int main(void);

/* System control registers (ARMv6-M/ARMv7-M architecture manuals) */
#define REG(addr) (*(volatile uint32_t *)(addr))
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SCB_ICSR REG(0xE000ED04u)
#define SCB_CCR REG(0xE000ED14u)
#define SCB_CPACR REG(0xE000ED88u)
#define CCR_UNALIGN_TRP (1u << 3)
#define SCB_CFSR REG(0xE000ED28u) /* ARMv7-M only, as are the next three */
#define SCB_HFSR REG(0xE000ED2Cu)
#define SCB_MMFAR REG(0xE000ED34u)
#define SCB_BFAR REG(0xE000ED38u)
#define ICSR_PENDSTSET (1u << 26)
#define SYST_RELOAD 0xFFFFFFu      /* SysTick is a 24-bit down counter */

#define STACK_PAINT 0x5AFEC0DEu

/* --- the instruction counter ----------------------------------------------------------- */

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

static void ticks_start(void) {
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7; /* core clock, interrupt on wrap, enabled */
}

uint64_t ticks_now(void) {
    uint32_t primask, wraps, count;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask) :: "memory");
    wraps = systick_wraps;
    count = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) { /* wrapped, handler not run yet: count again after it */
        count = SYST_CVR;
        wraps++;
    }
    __asm volatile("msr primask, %0" :: "r"(primask) : "memory");
    return ((uint64_t)wraps << 24) + (SYST_RELOAD - count);
}

void calibrate_loop(uint32_t iterations) {
    if (iterations == 0) return;
    /* GCC hands inline assembly to Thumb-1 targets in divided syntax */
    __asm volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b" : "+l"(iterations) :: "cc");
}

/* --- the stack gauge ---------------------------------------------------------------------- */

uint32_t stack_bytes_total(void) { return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit); }

uint32_t stack_bytes_used(void) {
    const uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

/* A frame can skip words (a local array it never fills), so a guard band of paint
 * at the bottom must be intact, not just the lowest word. */
#define STACK_GUARD_WORDS 64

int stack_overflowed(void) {
    int i;
    for (i = 0; i < STACK_GUARD_WORDS; i++)
        if (__stack_limit[i] != STACK_PAINT) return 1;
    return 0;
}

/* --- reset ---------------------------------------------------------------------------------- */

void Reset_Handler(void) {
    uint32_t *p, *sp;
#if __ARM_ARCH_6M__
    /* ARMv6-M code runs on QEMU's Cortex-M3 (the mps2-an385 board has no M0): trap
     * unaligned accesses as a real M0 does (its CCR reads UNALIGN_TRP as 1). */
    SCB_CCR |= CCR_UNALIGN_TRP;
#endif
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* full access to CP10 and CP11: the FPU */
    __asm volatile("dsb\n isb" ::: "memory");
#endif
    for (p = __data_start; p < __data_end; p++) *p = __data_load[p - __data_start];
    for (p = __bss_start; p < __bss_end; p++) *p = 0;
    /* paint everything below this frame; the words above it are in use now */
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (p = __stack_limit; p < sp - 8; p++) *p = STACK_PAINT;
    ticks_start();
    {
        int code = main();
        if (stack_overflowed()) {
            sh_puts("\nSTACK overflow: the paint at the bottom of the stack is gone\n");
            code = EXIT_STACK_OVERFLOW;
        }
        sh_exit(code);
    }
}

/* --- faults ----------------------------------------------------------------------------------- */

static const char *const FAULT_NAMES[] = {"unexpected exception", "NMI", "HardFault", "MemManage",
                                          "BusFault", "UsageFault"};

/* frame: the exception frame on the main stack (r0-r3, r12, lr, pc, xpsr) */
__attribute__((used, noreturn)) void fault_report(const uint32_t *frame, uint32_t kind) {
    sh_flush();
    sh_puts("\nFAULT ");
    sh_puts(FAULT_NAMES[kind < 6 ? kind : 0]);
    sh_puts(" pc=");
    sh_put_hex32(frame[6]);
    sh_puts(" lr=");
    sh_put_hex32(frame[5]);
    sh_puts(" xpsr=");
    sh_put_hex32(frame[7]);
#if __ARM_ARCH >= 7
    sh_puts(" cfsr=");
    sh_put_hex32(SCB_CFSR);
    sh_puts(" hfsr=");
    sh_put_hex32(SCB_HFSR);
    sh_puts(" mmfar=");
    sh_put_hex32(SCB_MMFAR);
    sh_puts(" bfar=");
    sh_put_hex32(SCB_BFAR);
#endif
    sh_puts("\n");
    sh_exit(EXIT_FAULT);
}

/* Each handler hands the main stack pointer (the program never uses the process
 * stack) and its kind to fault_report; ldr/bx reach it on ARMv6-M too. */
#define FAULT_HANDLER(name, kind)                                                         \
    __attribute__((naked)) void name(void) {                                              \
        __asm volatile(".syntax unified\n mrs r0, msp\n movs r1, #" #kind "\n ldr r2, =fault_report\n bx r2\n .ltorg"); \
    }
FAULT_HANDLER(Default_Handler, 0)
FAULT_HANDLER(NMI_Handler, 1)
FAULT_HANDLER(HardFault_Handler, 2)
FAULT_HANDLER(MemManage_Handler, 3)
FAULT_HANDLER(BusFault_Handler, 4)
FAULT_HANDLER(UsageFault_Handler, 5)

/* --- the vector table ---------------------------------------------------------------------------- */

typedef void (*vector)(void);

__attribute__((section(".vectors"), used)) const vector vector_table[16 + 32] = {
    (vector)(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    /* 32 external interrupts, none enabled: any that fires is reported as a fault */
    [16 ... 47] = Default_Handler,
};
