//go:build tools

// Package tools pins helm, which the chart tests (test/helm-chart.int.test.ts) run for `helm lint`
// and `helm template`. Nothing here runs; `go build helm.sh/helm/v4/cmd/helm` inside this module
// resolves versions from go.mod.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
