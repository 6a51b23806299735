# Two entry points for a fresh machine: `make run` and `make test` (see README).
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build run run-linux-emu test test-asan test-linux-emu bench clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/vireo run $(ARGS)

# Debian's kernel and a busybox shell on Vireo's software CPU (--accel emu, no /dev/kvm
# needed); the kernel and initramfs come from Debian's archive on first use.
run-linux-emu: build
	scripts/run-linux-emu.sh $(BUILD) $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same tests with AddressSanitizer and UBSan (unit tests and the sanitized vireo in
# every whole-VM test). CI runs it after `make test`.
test-asan: deps
	cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVIREO_SANITIZE=ON -DVIREO_BENCH=OFF
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS)

# Debian's kernel and a busybox initramfs booted by Vireo's software CPU (--accel emu, 2 vCPUs):
# minutes of CPU, so not part of `make test` (tests/e2e/README.md).
test-linux-emu: build
	tests/e2e/linux_boot_test.sh --accel emu $(BUILD)/vireo $(BUILD)/e2e

bench:
	@scripts/install-deps.sh --bench
	$(MAKE) build
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)
