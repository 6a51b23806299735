// The common 64-bit start: everything the guests share before GuestMain runs.
#include "runtime.h"

extern "C" uint64_t rt_boot_protocol;
extern "C" uint64_t rt_boot_info_ptr;
extern "C" uint64_t rt_boot_magic;

namespace rt {

namespace {
BootInfo boot_info;
Spinlock print_lock;
}  // namespace

Spinlock& PrintLock() { return print_lock; }

void Pass(const char* name) {
  Printf("PASS %s\n", name);
  DebugExit(0);
}

void Fail(const char* name, uint32_t code, const char* why) {
  Printf("FAIL %s: %s\n", name, why);
  DebugExit(code);
}

}  // namespace rt

extern "C" void rt_main64() {
  using namespace rt;
  SerialInit();
  IdtInit();
  DisableLegacyPic();  // firmware may have left the PIT ticking through the PIC at vector 8
  UsermodeInit();
  auto protocol = static_cast<BootProtocol>(rt_boot_protocol);
  ParseBootInfo(protocol, rt_boot_info_ptr, static_cast<uint32_t>(rt_boot_magic), boot_info);
  AcpiInit(boot_info.rsdp_addr);
  int code = GuestMain(boot_info);
  DebugExit(static_cast<uint32_t>(code));
}
