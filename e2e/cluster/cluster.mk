# Local real-Kubernetes clusters for end-to-end tests (see e2e/cluster/README.md).
# Included by the root Makefile, which sets CLUSTER ?= a and WEFT_CACHE.

E2E_CLUSTER := e2e/cluster
ARCHIVE ?=

.PHONY: cluster-deps cluster-binaries cluster-up cluster-down cluster-kubeconfig cluster-status cluster-smoke image-load

cluster-deps: ## install the Debian packages the local clusters need (root)
	$(E2E_CLUSTER)/install-deps.sh

cluster-binaries: ## build (or reuse cached) Kubernetes, etcd, CoreDNS binaries
	$(E2E_CLUSTER)/build.sh

cluster-up: cluster-deps ## start local cluster CLUSTER (a|b), wait for node Ready and CoreDNS
	$(E2E_CLUSTER)/up.sh $(CLUSTER)

cluster-down: ## stop local cluster CLUSTER and remove its state
	$(E2E_CLUSTER)/down.sh $(CLUSTER)

cluster-kubeconfig: ## print the admin kubeconfig path of cluster CLUSTER
	@source $(E2E_CLUSTER)/lib.sh && cluster_vars $(CLUSTER) && echo "$$KUBECONFIG_ADMIN"

cluster-status: ## show the daemons and RSS of cluster CLUSTER
	$(E2E_CLUSTER)/status.sh $(CLUSTER)

SMOKE_CLUSTERS ?= $(CLUSTER)
cluster-smoke: ## smoke-test running clusters: make cluster-smoke SMOKE_CLUSTERS="a b"
	$(E2E_CLUSTER)/smoke.sh $(SMOKE_CLUSTERS)

image-load: ## import an image archive into cluster CLUSTER: make image-load CLUSTER=a ARCHIVE=x.tar
	@test -n "$(ARCHIVE)" || { echo "image-load: set ARCHIVE=path/to/image.tar" >&2; exit 2; }
	$(E2E_CLUSTER)/image-load.sh $(CLUSTER) $(ARCHIVE)
