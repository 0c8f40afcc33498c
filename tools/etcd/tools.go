// Package tools pins the etcd server the test environment builds.
package tools
