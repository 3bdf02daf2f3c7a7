# The Pachyderm bundle: images, pipeline specs, deployment (included from Makefile).
#
#   make build-images [BUILDER=docker|buildah] [REGISTRY=... TAG=...]
#                                              build every stage's target (default docker)
#   make push-images  [BUILDER=...] [REGISTRY=... TAG=...]   push them (not a -dirty tag
#                                              unless ALLOW_DIRTY=1)
#   make deploy [VARIANT=cpu|single-stage|pachyderm-1.x] [REGISTRY=... TAG=...]
#               [GPU_TOLERATIONS=key[=value]:Effect,...] [GPU_NODE_SELECTOR=k=v,...]
#               [REPROCESS=1]                  check pachd, create repos, then pipelines
#                                              in DAG order
#   make update-pipelines [VARIANT=...]        the same with `pachctl update pipeline`
#   make put-sample / make put-models          upload sample_data/ and models/
#
# Image names and the registry default live in scripts/render_pipelines.py; TAG defaults
# to the commit (git describe --always --dirty), so a rebuilt image never reuses a tag
# that nodes have already pulled. The specs deployed are rendered with this REGISTRY and
# TAG into build/pipelines/.

BUNDLE_PYTHON ?= python3
BUILDER ?= docker
DOCKER ?= docker
# buildah with its global options, e.g. BUILDAH="buildah --root DIR --runroot DIR".
BUILDAH ?= buildah
# Extra options for each build, e.g. BUILD_FLAGS="--pull=never" or a -v mount.
BUILD_FLAGS ?=
PACHCTL ?= pachctl
RENDER := $(BUNDLE_PYTHON) scripts/render_pipelines.py
REGISTRY ?= $(shell $(RENDER) --default registry)
TAG ?= $(shell $(RENDER) --default tag)
VARIANT ?=
GPU_TOLERATIONS ?=
GPU_NODE_SELECTOR ?=
REPROCESS ?=
ALLOW_DIRTY ?=
BUNDLE_SPECS ?= build/pipelines
SPEC_DIR := $(BUNDLE_SPECS)/$(VARIANT)

# Same targets and tags either way. buildah needs no daemon; chroot isolation runs the
# RUN steps without an OCI runtime, so it also works inside containers and CI jobs;
# --force-rm removes a failed step's container too, as docker does.
ifeq ($(BUILDER),docker)
BUILD = DOCKER_BUILDKIT=1 $(DOCKER) build
PUSH = $(DOCKER) push
NEED_BUILDER = command -v $(DOCKER) >/dev/null 2>&1 || { \
	echo "$@: '$(DOCKER)' not found: install Docker with BuildKit (buildx), or use BUILDER=buildah" >&2; exit 1; }
else ifeq ($(BUILDER),buildah)
BUILD = $(BUILDAH) build --layers --force-rm --isolation chroot
PUSH = $(BUILDAH) push
NEED_BUILDER = command -v $(firstword $(BUILDAH)) >/dev/null 2>&1 || { \
	echo "$@: '$(firstword $(BUILDAH))' not found: apt-get install buildah (or use BUILDER=docker)" >&2; exit 1; }
else
NEED_BUILDER = echo "$@: BUILDER=$(BUILDER) is not a builder: use BUILDER=docker or BUILDER=buildah" >&2; exit 2
endif
NEED_CLUSTER = command -v $(PACHCTL) >/dev/null 2>&1 || { \
	echo "$@: '$(PACHCTL)' not found: install pachctl (or use scripts/deploy.py)" >&2; exit 1; }; \
	$(PACHCTL) version >/dev/null 2>&1 || { \
	echo "$@: no Pachyderm cluster reachable: '$(PACHCTL) version' failed;" \
	"check 'pachctl config get active-context' or run 'pachctl port-forward'" >&2; exit 1; }

.PHONY: build-images push-images render-bundle deploy update-pipelines put-sample put-models

IMAGES = images=$$($(RENDER) --images --registry $(REGISTRY) --tag $(TAG)) || exit 1

build-images:
	@$(NEED_BUILDER)
	@$(IMAGES); echo "$$images" | while read -r target image; do \
		echo "$(BUILDER) build -f docker/Dockerfile --target $$target -t $$image ."; \
		$(BUILD) $(BUILD_FLAGS) -f docker/Dockerfile --target $$target -t $$image . || exit 1; \
	done

push-images:
	@$(NEED_BUILDER)
	@case "$(TAG)" in *-dirty) [ "$(ALLOW_DIRTY)" = 1 ] || { \
		echo "$@: TAG $(TAG) is built from uncommitted changes: commit first, or push it" \
		"anyway with ALLOW_DIRTY=1" >&2; exit 1; } ;; esac
	@$(IMAGES); echo "$$images" | while read -r target image; do \
		echo "$(BUILDER) push $$image"; \
		$(PUSH) $$image || exit 1; \
	done

RENDER_BUNDLE = rm -rf $(BUNDLE_SPECS) && $(RENDER) --out $(BUNDLE_SPECS) --registry $(REGISTRY) \
	--tag $(TAG) --gpu-tolerations "$(GPU_TOLERATIONS)" --gpu-node-selector "$(GPU_NODE_SELECTOR)"
DEPLOY_PLAN = $(BUNDLE_PYTHON) scripts/deploy.py --plan $(SPEC_DIR) \
	--pachctl-version $(BUNDLE_SPECS)/.pachctl-version \
	--pachctl-pipelines $(BUNDLE_SPECS)/.pachctl-pipelines \
	$(if $(filter update,$(PIPELINE_VERB)),--update) $(if $(REPROCESS),--reprocess)

render-bundle:
	@$(RENDER_BUNDLE)

deploy: PIPELINE_VERB = create
update-pipelines: PIPELINE_VERB = update
deploy update-pipelines:
	@$(NEED_CLUSTER)
	@$(RENDER_BUNDLE)
	@$(PACHCTL) version > $(BUNDLE_SPECS)/.pachctl-version
	@$(PACHCTL) list pipeline --raw > $(BUNDLE_SPECS)/.pachctl-pipelines
	@plan=$$($(DEPLOY_PLAN)) || exit 1; \
	for repo in $$($(RENDER) --source-repos); do \
		$(PACHCTL) inspect repo $$repo >/dev/null 2>&1 || $(PACHCTL) create repo $$repo || exit 1; \
	done; \
	echo "$$plan" | while read -r call; do \
		echo "$(PACHCTL) $$call"; \
		$(PACHCTL) $$call || exit 1; \
	done

put-sample:
	@$(NEED_CLUSTER)
	$(PACHCTL) put file -r sample_data@master:/ -f sample_data/

put-models:
	@$(NEED_CLUSTER)
	$(PACHCTL) put file -r models@master:/ -f models/
