module github.com/ringwise/ringwise/bpf

go 1.26.0

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

tool github.com/cilium/ebpf/cmd/bpf2go

require (
	github.com/cilium/ebpf v0.22.0
	github.com/ringwise/ringwise/services v0.0.0
)

replace github.com/ringwise/ringwise/services => ../services
