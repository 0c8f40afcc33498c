module github.com/kube-static-egress-ip/tools/flannel

go 1.26.0

require github.com/flannel-io/flannel v0.28.10

// flannel's Tencent Cloud VPC backend (compiled in, never used here) pins an SDK version the Go
// module proxy does not serve; an older vpc client with the same calls stands in for it.
replace github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc => github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc v1.1.0
