// Package tools pins the Kubernetes binaries the test environment builds. Nothing here runs;
// `go build k8s.io/kubernetes/cmd/...` inside this module resolves versions from go.mod.
package tools
