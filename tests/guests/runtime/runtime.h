// The guest runtime: include this, define GuestMain, and the runtime does the rest.
//
// Boot: entry.S accepts the Linux 64-bit, PVH and multiboot entries, switches to the runtime's
// GDT and identity page tables, and calls rt_main64 (main.cc), which initialises COM1, the IDT and
// the TSS, normalises the boot info, parses ACPI, and calls GuestMain. GuestMain's return value
// goes to DebugExit, so the VMM exits with status (value << 1) | 1.
#pragma once

#include "acpi.h"
#include "apic.h"
#include "boot_info.h"
#include "cmos.h"
#include "exit.h"
#include "idt.h"
#include "io.h"
#include "ioapic.h"
#include "pit.h"
#include "power.h"
#include "serial.h"
#include "smp.h"
#include "spinlock.h"
#include "tsc.h"
#include "usermode.h"

// Defined by each guest.
int GuestMain(const rt::BootInfo& info);

namespace rt {

// The lock every CPU takes around its serial output.
Spinlock& PrintLock();

// The conventional "test passed" ending: prints "PASS <name>" and debug-exits with 0 (status 1).
[[noreturn]] void Pass(const char* name);
// Prints "FAIL <name>: <why>" and debug-exits with `code` (status (code << 1) | 1).
[[noreturn]] void Fail(const char* name, uint32_t code, const char* why);

}  // namespace rt
