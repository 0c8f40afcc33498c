# The two commands of the README:
#   make demo   provision everything, start a local 3-node cluster and show egress IPs at work
#   make test   provision everything, then typecheck, lint and run every test tier
# Other targets are pieces of those two.
.PHONY: provision demo test bench typecheck lint cluster

provision:
	@scripts/provision.sh

demo: provision
	@node_modules/.bin/node --disable-warning=ExperimentalWarning src/devenv/demo.ts

# TIERS=unit (or "unit int") runs a subset; the default is every tier.
test: provision
	@scripts/test.sh $(TIERS)

bench: provision
	@npm run --silent bench

# The real-node cluster (kubelet, containerd, kube-proxy, flannel in node containers) with the
# project installed by kubectl apply -k k8s/overlays/dev; stays up until Ctrl-C.
cluster: provision
	@node_modules/.bin/node --disable-warning=ExperimentalWarning src/devenv/real-cluster-main.ts
