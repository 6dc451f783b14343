# Weft's container images: static release binaries in from-scratch images
# (e2e/cluster/build-image.sh), written to target/images/<name>.tar and
# imported into the local clusters. Included by the root Makefile.
#
#   make images                     build every image, load it into $(CLUSTER)
#   make images CLUSTERS="a b"      ... into clusters a and b
#   make images-build               build the archives only (no cluster needed)
#
# Adding an image is one line at the bottom:
#   $(eval $(call weft-image,<name>,<cargo package>,<binary>,<build-image.sh options>))
# which makes weft.local/<name>:$(IMAGE_TAG) from target/<triple>/release/<binary>.

IMAGE_REGISTRY ?= weft.local
IMAGE_TAG ?= dev
IMAGE_DIR ?= target/images
CLUSTERS ?= $(CLUSTER)
# Static binaries without a musl target: glibc with crt-static. An explicit
# --target keeps RUSTFLAGS away from build scripts and proc macros.
STATIC_TARGET ?= x86_64-unknown-linux-gnu
STATIC_RUSTFLAGS ?= -C target-feature=+crt-static
STATIC_BIN_DIR := target/$(STATIC_TARGET)/release
# weft-proxy is built apart, profile-guided (dataplane/pgo/build.sh;
# WEFT_PGO=0 builds it without a profile).
PGO_PROXY_BIN := target/pgo/weft-proxy

WEFT_IMAGE_NAMES :=
WEFT_IMAGE_PACKAGES :=

# weft-image <name> <package> <binary> <build-image.sh options> [<extra files or dirs>]
define weft-image
WEFT_IMAGE_NAMES += $(1)
WEFT_IMAGE_PACKAGES += $(2)
IMAGE_REF_$(1) := $(IMAGE_REGISTRY)/$(1):$(IMAGE_TAG)
IMAGE_BIN_$(1) := $(STATIC_BIN_DIR)/$(3)
IMAGE_OPTS_$(1) := $(4)
IMAGE_EXTRA_$(1) := $(5)
endef

.PHONY: images images-build images-static images-list

images-static: ## build the static release binaries of every image (weft-proxy profile-guided)
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" $(CARGO) build --release --target $(STATIC_TARGET) \
	  $(foreach p,$(sort $(WEFT_IMAGE_PACKAGES)),-p $(p))
	CARGO="$(CARGO)" STATIC_TARGET="$(STATIC_TARGET)" STATIC_RUSTFLAGS="$(STATIC_RUSTFLAGS)" \
	  dataplane/pgo/build.sh $(PGO_PROXY_BIN)

images-build: images-static ## build every image archive under target/images (no cluster needed)
	@mkdir -p $(IMAGE_DIR)
	@set -e; $(foreach n,$(WEFT_IMAGE_NAMES),$(call weft-image-build,$(n));)
	@printf '%s\n' $(foreach n,$(WEFT_IMAGE_NAMES),"$(IMAGE_REF_$(n)) $(IMAGE_DIR)/$(n).tar") > $(IMAGE_DIR)/images.txt
	@echo "images: wrote $(IMAGE_DIR)/images.txt:"; cat $(IMAGE_DIR)/images.txt

# weft-image-build <name>: check the binary is static, (re)build the archive
# when the binary or build-image.sh is newer.
define weft-image-build
bin="$(IMAGE_BIN_$(1))"; tar="$(IMAGE_DIR)/$(1).tar"; \
if ! file -L "$$bin" | grep -q 'statically linked\|static-pie linked'; then \
  echo "images: $$bin is not static: $$(file -L $$bin)" >&2; exit 1; fi; \
if ldd "$$bin" >/dev/null 2>&1 && ! ldd "$$bin" 2>&1 | grep -q 'statically linked'; then \
  echo "images: ldd lists shared libraries for $$bin:" >&2; ldd "$$bin" >&2; exit 1; fi; \
stale=""; for x in $(IMAGE_EXTRA_$(1)); do if [ "$$x" -nt "$$tar" ]; then stale=1; fi; done; \
if [ ! -f "$$tar" ] || [ -n "$$stale" ] || [ "$$bin" -nt "$$tar" ] || [ e2e/cluster/build-image.sh -nt "$$tar" ] || [ e2e/images.mk -nt "$$tar" ]; then \
  e2e/cluster/build-image.sh $(IMAGE_OPTS_$(1)) "$(IMAGE_REF_$(1))" "$$tar" "$$bin" $(IMAGE_EXTRA_$(1)); \
else echo "images: $$tar is up to date ($(IMAGE_REF_$(1)))"; fi
endef

images: images-build ## build Weft's images (target/images) and load them into CLUSTERS="a b" (default: CLUSTER)
	@set -e; for c in $(CLUSTERS); do \
	  for n in $(WEFT_IMAGE_NAMES); do \
	    $(MAKE) --no-print-directory image-load CLUSTER=$$c ARCHIVE=$(IMAGE_DIR)/$$n.tar; \
	  done; \
	done

images-list: ## print the image refs `make images` builds
	@printf '%s\n' $(foreach n,$(WEFT_IMAGE_NAMES),$(IMAGE_REF_$(n)))

# ---- the images (one line each) ----
$(eval $(call weft-image,echo,weft-echo,weft-echo,--port 8080 --port 9090 --port 9000))
$(eval $(call weft-image,weftd,weftd,weftd,--user 65532:65532 --port 15010 --port 15012 --port 15014 --port 15017))
# weft-proxy carries Debian's iptables (with its libraries and loader) for `weft-proxy init`.
# Its binary is the profile-guided one (no package for the plain static build).
$(eval $(call weft-image,weft-proxy,,weft-proxy,--port 15001 --port 15006 --port 15021 --port 15090,$(IMAGE_DIR)/weft-iptables))
IMAGE_BIN_weft-proxy := $(PGO_PROXY_BIN)
images-build: $(IMAGE_DIR)/weft-iptables
$(IMAGE_DIR)/weft-iptables: dataplane/image/iptables-bundle.sh
	dataplane/image/iptables-bundle.sh $@
$(eval $(call weft-image,weft-operator,weft-operator,weft-operator,--user 65532:65532 --port 8080))
