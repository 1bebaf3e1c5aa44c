# Front door. `make demo` and `make test` work on a fresh Debian 12 machine: each
# runs scripts/bootstrap (installs what is missing), configures, builds.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=
# Empty = the preset's RelWithDebInfo; CI passes Check (-O1, no debug info: see CMakeLists.txt).
BUILD_TYPE ?=
CTEST_ARGS ?=

.PHONY: all bootstrap configure build test test-all demo clean gpu-build

all: build

bootstrap:
	@scripts/bootstrap --quiet

$(BUILD)/build.ninja:
	cmake --preset default -B $(BUILD) $(if $(BUILD_TYPE),-DCMAKE_BUILD_TYPE=$(BUILD_TYPE)) $(CMAKE_ARGS)

configure: bootstrap $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Everything but the gpu label (those run on the GPU machine: scripts/gpu-build).
test: build
	cd $(BUILD) && ctest -LE gpu --output-on-failure -j 2 --timeout 900 $(CTEST_ARGS)

demo: build
	scripts/demo $(BUILD)

gpu-build:
	scripts/gpu-build

clean:
	rm -rf $(BUILD)
