# The two commands of README.md: `make run` and `make test`.
# Everything else here is what they are made of.

GO        ?= go
BIN       := bin/audittrail
VENV      := .venv
PYTHON    ?= python3
BUF_VERSION := v1.75.0
# How much each fuzz target runs in `make test`: a count of executions, not a
# duration. Go 1.26's fuzz coordinator can fail a duration-bounded run with a
# bare "context deadline exceeded" when a loaded machine delays a worker at
# the deadline (golang/go#75804, fixed in Go 1.27); a count has no deadline to
# race. Longer runs: make fuzz FUZZTIME=5m, or FUZZTIME=1000000x.
FUZZTIME  ?= 20000x

.PHONY: run build test go-test race fuzz python-test generate check-generate lint bench clean keycloak


## run: start the service on the embedded store in dev mode (data in .data/)
run: build
	./$(BIN) serve --dev --data-dir .data

## build: compile the one binary
build:
	$(GO) build -o $(BIN) ./cmd/audittrail

## test: every test (Go unit, conformance, end-to-end, fuzz briefly, the official Python client),
## after checking that the committed generated code is what proto/ generates
test: build check-generate lint go-test fuzz python-test

# AUDITTRAIL_REQUIRE_POSTGRES turns "PostgreSQL not installed" from a skip
# into a failure: `make test` never skips the PostgreSQL store. Likewise
# AUDITTRAIL_REQUIRE_KEYCLOAK for the Keycloak forwarder's end-to-end tests,
# which run the distribution that `make keycloak` unpacks.
KCTEST_ENV = AUDITTRAIL_REQUIRE_POSTGRES=1 AUDITTRAIL_REQUIRE_KEYCLOAK=1 AUDITTRAIL_KEYCLOAK_HOME=$(KEYCLOAK_HOME)
go-test: keycloak
	$(KCTEST_ENV) $(GO) test -count=1 -timeout 20m ./...

## keycloak: download the Keycloak distribution of the forwarder's tests once (Maven, checksum
## checked against the repository's .sha1) and unpack it into .cache/keycloak (needs mvn and Java 17+)
KEYCLOAK_VERSION := 26.5.6
KEYCLOAK_ARTIFACT := org.keycloak:keycloak-quarkus-dist:$(KEYCLOAK_VERSION):zip
KEYCLOAK_M2 := $(CURDIR)/.cache/m2
KEYCLOAK_ZIP := $(KEYCLOAK_M2)/org/keycloak/keycloak-quarkus-dist/$(KEYCLOAK_VERSION)/keycloak-quarkus-dist-$(KEYCLOAK_VERSION).zip
KEYCLOAK_HOME := $(CURDIR)/.cache/keycloak/keycloak-$(KEYCLOAK_VERSION)
keycloak: $(KEYCLOAK_HOME)/bin/kc.sh
$(KEYCLOAK_HOME)/bin/kc.sh:
	mvn -q -B -C -Dmaven.repo.local=$(KEYCLOAK_M2) \
	  org.apache.maven.plugins:maven-dependency-plugin:3.6.1:get -Dartifact=$(KEYCLOAK_ARTIFACT) -Dtransitive=false
	test "$$(sha1sum < $(KEYCLOAK_ZIP) | cut -d' ' -f1)" = "$$(cut -c1-40 $(KEYCLOAK_ZIP).sha1)"
	rm -rf $(KEYCLOAK_HOME) && mkdir -p $(dir $(KEYCLOAK_HOME))
	unzip -q $(KEYCLOAK_ZIP) -d $(dir $(KEYCLOAK_HOME))
	touch $@

## race: every Go test under the race detector, the servers of the end-to-end tests built with it too
## (internal/testserver), then the Python suites against a server built with it (a race it reports
## fails them); about 40 minutes on 2 cores, so not part of `make test`.
race: keycloak
	$(KCTEST_ENV) $(GO) test -race -count=1 -timeout 90m ./...
	GOFLAGS=-race $(MAKE) python-test BIN=bin/audittrail-race

# Each fuzz target runs briefly; `go test -fuzz` takes one target per run.
# The targets are found in the test files' source: `go test -list` linked a
# test binary for each of the ~40 packages to list them (a minute or two of
# CI). A target the source shows but the build leaves out (a build tag)
# fails here: go test only warns "no fuzz tests to fuzz" and passes.
fuzz:
	@set -e; pkgs=$$($(GO) list -f '{{.ImportPath}}={{.Dir}}' ./...); for p in $$pkgs; do \
	  pkg=$${p%%=*}; dir=$${p#*=}; \
	  for t in $$(cat $$dir/*_test.go 2>/dev/null | sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p'); do \
	    echo "fuzz $$pkg $$t"; \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	    echo "$$out"; \
	    case "$$out" in *"no fuzz tests to fuzz"*) echo "$$pkg: fuzz target $$t is not in the test build"; exit 1;; esac; \
	  done; \
	done

$(VENV)/.installed: tests/compat/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r tests/compat/requirements.txt
	touch $@

# Our package and the official one share the import name h2o_audit_trail, so
# ours goes into its own venv and the official one beside it (--target).
PYVENV := .venv-python
$(PYVENV)/.installed: python/pyproject.toml $(shell find python/src -name '*.py')
	$(PYTHON) -m venv $(PYVENV)
	$(PYVENV)/bin/pip install --quiet --upgrade pip
	$(PYVENV)/bin/pip install --quiet pytest ./python
	$(PYVENV)/bin/pip install --quiet --target $(PYVENV)/h2o-official h2o-audit-trail==1.5.3
	touch $@

# Both suites run on the embedded store, then on the PostgreSQL store in a
# throwaway cluster (needs PostgreSQL's server programs, as go-test does):
# the compatibility suite (the published client) whole, our package's suite
# for the tests that depend on the store: those of its session server and those that start servers of
# their own (marker `store`), each on a new database of the cluster (python/tests/conftest.py).
python-test: build $(VENV)/.installed $(PYVENV)/.installed
	$(GO) build -o bin/withpostgres ./internal/pgcluster/cmd/withpostgres
	AUDITTRAIL_BIN=$(CURDIR)/$(BIN) $(VENV)/bin/python -m pytest -q tests/compat
	AUDITTRAIL_BIN=$(CURDIR)/$(BIN) bin/withpostgres -env AUDITTRAIL_TEST_STORE -- \
	  $(VENV)/bin/python -m pytest -q tests/compat
	H2O_AUDIT_TRAIL_OFFICIAL=$(CURDIR)/$(PYVENV)/h2o-official AUDITTRAIL_BIN=$(CURDIR)/$(BIN) \
	  $(PYVENV)/bin/python -m pytest -q python/tests
	H2O_AUDIT_TRAIL_OFFICIAL=$(CURDIR)/$(PYVENV)/h2o-official AUDITTRAIL_BIN=$(CURDIR)/$(BIN) \
	  bin/withpostgres -env AUDITTRAIL_TEST_STORE -- $(PYVENV)/bin/python -m pytest -q python/tests

## generate: regenerate Go code and the OpenAPI document from proto/ (needs only the Go toolchain)
generate:
	$(GO) run github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION) lint proto
	$(GO) run github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION) generate --path proto/ai

## lint: go vet and staticcheck (pinned; run with `go run`, so go.mod does not carry its dependencies)
STATICCHECK_VERSION := v0.8.2
lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## check-generate: fail if the committed generated code differs from a fresh generation
check-generate: generate
	git diff --exit-code -- internal/gen docs/api

clean:
	rm -rf bin $(VENV) $(PYVENV)

## bench: the whole benchmark (about half an hour on 2 cores); rewrites the figures in BENCHMARKS.md.
## Our PostgreSQL store runs the query suite at 1M only; at 10M its ingest, disk and memory are measured
## (its scan-bound queries there would take most of an hour).
bench:
	$(GO) run ./bench/cmd/auditbench -sizes 1000000,10000000 -pgstore-suite-max 1000000 -out BENCHMARKS.md
