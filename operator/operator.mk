# The operator: install it from config/ into the current kubeconfig's cluster.
# Included by the root Makefile.

.PHONY: deploy undeploy

deploy: ## install the operator (CRDs, RBAC, Deployment) with kubectl apply -k config/default into $KUBECONFIG's cluster
	kubectl apply --server-side --force-conflicts --field-manager=weft-deploy -k config/default
	kubectl -n weft-operator rollout status deployment/weft-operator --timeout=180s

undeploy: ## remove the operator (delete MeshInstallations first so Weft uninstalls the mesh)
	kubectl delete -k config/default --ignore-not-found
