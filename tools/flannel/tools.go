// Package tools pins flannel, the CNI of the real-node test cluster. Nothing here runs;
// `go build github.com/flannel-io/flannel` inside this module resolves versions from go.mod.
package tools
