# Thin wrapper over CMake. The README's Quick start uses `make dev` and
# `make test`; both install what they need first (deploy/install-deps.sh).
#
#   make dev     build (release, hardened) and run the whole system on its
#                embedded default in the foreground (deploy/dev.sh)
#   make test    sanitizer build (clang, ASan + UBSan, libFuzzer harnesses)
#                and every test through ctest
#   make build   the release build only, into build/
#   make fuzz    every libFuzzer harness for FUZZ_SECONDS each
#   make bench   both benchmarks, MDA then MTA (bench/README.md); one alone:
#                make bench-mda (bench/run.sh), make bench-mta (bench/mta_run.sh)
#   make deb     the Debian package, from the release build, into build/deb/
#   make test-deploy  the deployment tests against that package: a clean
#                Debian 12 root (debootstrap, cached in .cache/), provisioning,
#                the units under systemd-nspawn (docs/operations.md)

BUILD_DIR      ?= build
TEST_BUILD_DIR ?= build-test
JOBS           ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS   ?= 300
CTEST_ARGS     ?=

.PHONY: all deps build dev test test-build fuzz bench bench-mda bench-mta clean deb test-deploy

all: build

deps:
	@./deploy/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

dev: build
	@MG_BUILD_DIR=$(BUILD_DIR) ./deploy/dev.sh

test-build: deps
	@CC=clang cmake -S . -B $(TEST_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug \
		-DMG_SANITIZE=ON -DMG_FUZZ=ON >/dev/null
	@cmake --build $(TEST_BUILD_DIR) -j $(JOBS)

test: test-build build
	@cd $(TEST_BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

fuzz: test-build
	@./tests/fuzz/run-all.sh $(TEST_BUILD_DIR)/fuzz $(FUZZ_SECONDS)

# Both run even when the first misses a target; the status says whether
# every target was met.
# Both instances are removed only at the end: on ext4 without a journal,
# creating files in the minutes after thousands were deleted costs far more
# CPU (bench/README.md), which would count against the MTA benchmark.
bench: build
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/mgbench.XXXXXX"); status=0; \
		BENCH_KEEP=1 BENCH_DIR=$$dir/mda ./bench/run.sh $(BUILD_DIR) || status=1; \
		BENCH_KEEP=1 BENCH_DIR=$$dir/mta ./bench/mta_run.sh $(BUILD_DIR) || status=1; \
		if [ "$${BENCH_KEEP:-0}" = 1 ]; then echo "bench: both instances kept in $$dir"; \
		else echo "bench: removing both instances ($$dir)"; rm -rf "$$dir"; fi; \
		exit $$status

bench-mda: build
	@./bench/run.sh $(BUILD_DIR)

bench-mta: build
	@./bench/mta_run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR)

deb: build
	@rm -f $(BUILD_DIR)/deb/mailgenic_*.deb
	@cd $(BUILD_DIR) && cpack >/dev/null
	@ls $(BUILD_DIR)/deb/mailgenic_*.deb

test-deploy: deb
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -R '^integration/test_deploy_' $(CTEST_ARGS)
