# mod_shmguard — build, test, run.
#   make            build core, shmguard-probe, unit tests and (with apxs) mod_shmguard.so into build/
#   make test       install missing Debian packages, build, run every test; last line "N passed, M failed"
#   make test-asan  unit tests + CLI tests under AddressSanitizer/UBSan
#   make fuzz-smoke each libFuzzer target briefly
#   make run        start the demo server (Apache + mod_fcgid + php-cgi) on 127.0.0.1:$(PORT)
#   make bench      benchmarks (bench/, BENCHMARKS.md); make bench-smoke: the same with tiny sizes
#   make install    module into `apxs -q LIBEXECDIR`, conf into /etc/apache2/mods-available
#   make deb        Debian packages (dpkg-buildpackage, debhelper, dh_apache2) + lintian, into build/deb
#   make test-package  make deb, then install the packages on this machine, test them, purge them

CXX      ?= g++
CLANGXX  ?= clang++
BUILD    ?= build
PORT     ?= 8080
PYTHON   ?= /usr/bin/python3
OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Werror
CXXFLAGS_COMMON := -std=c++17 $(WARN) -fPIC -Iinclude -Imod_shmguard -pthread
# Hardening for everything that ships (module, probe, helpers); not for the sanitizer/fuzz builds.
HARDEN   ?= -D_FORTIFY_SOURCE=2 -fstack-protector-strong
HARDEN_LD ?= -Wl,-z,relro,-z,now
# apxs is looked up when it is used, never at parse time alone: the targets that install packages
# (`deps`) build in a second make that starts after them, so a first run on a bare machine sees the
# apxs that `deps` has just installed.
APXS     ?= $(shell command -v apxs 2>/dev/null || command -v apxs2 2>/dev/null)
DEPS     ?= sh scripts/deps.sh

CORE_SRC  := $(sort $(wildcard mod_shmguard/core/*.cpp))
PROBE_SRC := $(sort $(wildcard mod_shmguard/probe/*.cpp))
WRAPPER_SRC := $(sort $(wildcard mod_shmguard/wrapper/*.cpp))
UNIT_SRC  := $(sort $(wildcard tests/unit/*.cpp))
GLUE_SRC  := $(sort $(wildcard mod_shmguard/glue/*.cpp mod_shmguard/sampler/*.cpp))
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.cpp))
HEADERS   := $(wildcard include/shmguard/*.hpp mod_shmguard/*/*.hpp tests/unit/*.hpp)

# ---------------------------------------------------------------- normal build
.PHONY: all
all: $(BUILD)/shmguard-probe $(BUILD)/shmguard-php-wrapper $(BUILD)/unit-tests $(if $(APXS),$(BUILD)/mod_shmguard.so)

$(BUILD)/obj/%.o: %.cpp $(HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_COMMON) $(OPT) $(HARDEN) $(CXXFLAGS) -c $< -o $@

$(BUILD)/libshmguard_core.a: $(CORE_SRC:%.cpp=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/shmguard-probe: $(PROBE_SRC:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/libshmguard_core.a
	$(CXX) $(OPT) -pthread $(HARDEN_LD) -o $@ $^ $(LDFLAGS)

$(BUILD)/shmguard-php-wrapper: $(WRAPPER_SRC:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/libshmguard_core.a
	$(CXX) $(OPT) -pthread $(HARDEN_LD) -o $@ $^ $(LDFLAGS)

# The sampler loop has no httpd dependency: the unit tests run it too.
SAMPLER_SRC := mod_shmguard/sampler/sampler.cpp
$(BUILD)/unit-tests: $(UNIT_SRC:%.cpp=$(BUILD)/obj/%.o) $(SAMPLER_SRC:%.cpp=$(BUILD)/obj/%.o) \
                     $(BUILD)/libshmguard_core.a
	$(CXX) $(OPT) -pthread -o $@ $^ -lgtest -lgtest_main $(LDFLAGS)

# The module: glue and sampler compiled against httpd/APR headers (flags from apxs), linked with
# the core into one shared object with g++ -shared; only shmguard_module is exported.
ifneq ($(APXS),)
HTTPD_INC := -I$(shell $(APXS) -q INCLUDEDIR) $(shell $(APXS) -q EXTRA_CPPFLAGS 2>/dev/null) \
             $(shell pkg-config --cflags apr-1 apr-util-1 2>/dev/null)
$(BUILD)/glue/%.o: %.cpp $(HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_COMMON) $(OPT) $(HARDEN) $(HTTPD_INC) $(CXXFLAGS) -c $< -o $@

$(BUILD)/mod_shmguard.so: $(GLUE_SRC:%.cpp=$(BUILD)/glue/%.o) $(BUILD)/libshmguard_core.a mod_shmguard/exports.map
	$(CXX) -shared -pthread $(HARDEN_LD) -o $@ $(GLUE_SRC:%.cpp=$(BUILD)/glue/%.o) $(BUILD)/libshmguard_core.a \
	  -Wl,--version-script=mod_shmguard/exports.map -Wl,--as-needed \
	  $(shell pkg-config --libs apr-1 apr-util-1 2>/dev/null) $(LDFLAGS)
endif

# ---------------------------------------------------------------- sanitizers
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
.PHONY: build-asan test-asan
build-asan:
	$(MAKE) BUILD=$(BUILD)/asan OPT="-O1 -g $(ASAN_FLAGS)" LDFLAGS="$(ASAN_FLAGS)" APXS= HARDEN= HARDEN_LD= \
	  $(BUILD)/asan/unit-tests $(BUILD)/asan/shmguard-probe

test-asan: deps build-asan
	@mkdir -p $(BUILD)/results
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(BUILD)/asan/unit-tests --gtest_output=xml:$(BUILD)/results/asan-unit.xml; \
	ASAN_OPTIONS=detect_leaks=1 SHMGUARD_PROBE=$(BUILD)/asan/shmguard-probe SHMGUARD_SKIP_BUILD_TEST=1 \
	  $(PYTHON) -m pytest -q tests/cli --junitxml=$(BUILD)/results/asan-cli.xml; \
	$(PYTHON) tests/summary.py $(BUILD)/results/asan-unit.xml $(BUILD)/results/asan-cli.xml

# ---------------------------------------------------------------- fuzzing (libFuzzer, clang)
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/%: tests/fuzz/%.cpp $(CORE_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANGXX) -std=c++17 $(WARN) -Iinclude -O1 -g $(FUZZ_FLAGS) -o $@ $< $(CORE_SRC)

.PHONY: fuzz-smoke
FUZZ_SECONDS ?= 10
fuzz-smoke: $(FUZZ_SRC:tests/fuzz/%.cpp=$(BUILD)/fuzz/%)
	@set -e; for f in $^; do \
	  echo "fuzz: $$f ($(FUZZ_SECONDS) s)"; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/fuzz/corpus-$$(basename $$f) \
	     tests/fixtures >/dev/null 2>$(BUILD)/fuzz/$$(basename $$f).log \
	     || { tail -40 $(BUILD)/fuzz/$$(basename $$f).log; exit 1; }; \
	done; echo "fuzz-smoke: all targets ran clean"

# ---------------------------------------------------------------- set-up, tests, run
# `build`: install what is missing, then build in a new make, which looks for apxs only now; in
# parallel on every CPU unless the caller gave -j (a serial first `make test` took 11 min on 2 cores).
NPROC := $(shell nproc 2>/dev/null || echo 2)
JOBS   = $(if $(filter -j%,$(MAKEFLAGS))$(findstring jobserver,$(MAKEFLAGS)),,-j$(NPROC))
build: deps
	$(MAKE) $(JOBS) all

.PHONY: build deps deps-bench deps-package test test-asan-module soak test-unit test-cli test-integration clean format run install bench bench-smoke deb test-package
deps:
	$(DEPS) test

deps-bench:
	$(DEPS) bench

deps-package:
	$(DEPS) package

# Every suite writes JUnit XML; tests/summary.py prints the one "N passed, M failed" line.
test: build
	@mkdir -p $(BUILD)/results && rm -f $(BUILD)/results/*.xml
	-$(BUILD)/unit-tests --gtest_output=xml:$(BUILD)/results/unit.xml
	-SHMGUARD_PROBE=$(BUILD)/shmguard-probe $(PYTHON) -m pytest -q tests/cli \
	  --junitxml=$(BUILD)/results/cli.xml
	-@if [ -d tests/integration ] && ls tests/integration/test_*.py >/dev/null 2>&1; then \
	  SHMGUARD_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/integration \
	  --junitxml=$(BUILD)/results/integration.xml; fi
	-@for mpm in worker prefork; do \
	  SHMGUARD_IT_MPM=$$mpm SHMGUARD_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/integration \
	    --junitxml=$(BUILD)/results/integration-$$mpm.xml -o junit_suite_name=integration-$$mpm; \
	done
	-SHMGUARD_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/monitoring \
	  --junitxml=$(BUILD)/results/monitoring.xml
	@$(PYTHON) tests/summary.py $(BUILD)/results/*.xml

# The module itself under ASan/UBSan inside a real httpd (libasan preloaded into apache2), for
# the integration suite; any sanitizer report fails the target.
ASAN_MODULE_DIR := $(abspath $(BUILD))/asan-module
# Reports are written by httpd's children and php-cgi's wrapper as the server's user: outside the
# checkout, which that user may not be able to reach (a clone under a 0700 directory).
ASAN_MODULE_REPORTS ?= /tmp/shmguard-asan-module-reports
test-asan-module: build
	$(MAKE) BUILD=$(BUILD)/asan-module OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" HARDEN= HARDEN_LD= $(BUILD)/asan-module/mod_shmguard.so \
	  $(BUILD)/asan-module/shmguard-php-wrapper
	rm -rf $(ASAN_MODULE_REPORTS) && mkdir -p $(ASAN_MODULE_REPORTS) && chmod 1777 $(ASAN_MODULE_REPORTS)
	@mkdir -p $(BUILD)/results
	-SHMGUARD_BUILD=$(ASAN_MODULE_DIR) \
	  SHMGUARD_IT_LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libubsan.so)" \
	  SHMGUARD_IT_ASAN_OPTIONS="detect_leaks=0:log_path=$(ASAN_MODULE_REPORTS)/asan:abort_on_error=0" \
	  SHMGUARD_IT_UBSAN_OPTIONS="print_stacktrace=1:log_path=$(ASAN_MODULE_REPORTS)/ubsan" \
	  $(PYTHON) -m pytest -q tests/integration/test_module.py tests/integration/test_serving.py \
	  --deselect tests/integration/test_module.py::test_make_install_puts_module_and_conf_in_place \
	  --junitxml=$(BUILD)/results/asan-module.xml
	@if ls $(ASAN_MODULE_REPORTS)/* >/dev/null 2>&1; then \
	  echo "sanitizer reports:"; head -50 $(ASAN_MODULE_REPORTS)/*; exit 1; fi
	@$(PYTHON) tests/summary.py $(BUILD)/results/asan-module.xml

test-unit: all
	$(BUILD)/unit-tests

run: build
	sh scripts/run-demo.sh $(PORT)

# Benchmarks (not part of `make test`): one table of ratios; see BENCHMARKS.md.
bench: deps-bench
	$(MAKE) all
	BUILD=$(BUILD) sh bench/run.sh

# 60 s at 256 connections on DokuWiki with the budget moving: 0 bare 500s, 0 crashes, no leak.
soak: deps-bench
	$(MAKE) all
	SHMGUARD_BUILD=$(abspath $(BUILD)) $(PYTHON) bench/serving.py --soak

bench-smoke: deps-bench
	$(MAKE) all
	BUILD=$(BUILD) sh bench/run.sh --smoke

# Debian packages: built in a copy of the tree under $(BUILD)/deb (see scripts/build-deb.sh).
# The package test installs them on this machine (the system Apache is configtested, never
# started; the status page is tried on a private Apache on a loopback port), then purges them and
# checks nothing is left. Not part of `make test`: it changes the machine while it runs (CI runs
# it, .ci/run). DEB_BUILD_OPTIONS=nocheck skips the unit tests inside the package build.
deb: deps-package
	sh scripts/build-deb.sh $(BUILD)/deb

test-package: deb
	@mkdir -p $(BUILD)/results && rm -f $(BUILD)/results/package.xml
	-SHMGUARD_DEB_DIR=$(abspath $(BUILD))/deb/src $(PYTHON) -m pytest -q tests/package \
	  --junitxml=$(BUILD)/results/package.xml
	@$(PYTHON) tests/summary.py $(BUILD)/results/package.xml

install: all
	install -D -m 0644 $(BUILD)/mod_shmguard.so $(DESTDIR)$(shell $(APXS) -q LIBEXECDIR)/mod_shmguard.so
	install -D -m 0644 conf/shmguard.load $(DESTDIR)/etc/apache2/mods-available/shmguard.load
	install -D -m 0644 conf/shmguard.conf $(DESTDIR)/etc/apache2/mods-available/shmguard.conf
	install -D -m 0755 $(BUILD)/shmguard-probe $(DESTDIR)/usr/local/sbin/shmguard-probe
	install -D -m 0755 $(BUILD)/shmguard-php-wrapper $(DESTDIR)/usr/local/lib/shmguard/shmguard-php-wrapper

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD)
