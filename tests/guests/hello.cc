// hello: the smallest guest. Prints a greeting and debug-exits with 42 (VMM status 85).
#include "runtime.h"

int GuestMain(const rt::BootInfo&) {
  rt::Printf("hello from vireo guest\n");
  return 42;
}
