module github.com/ringwise/ringwise/sensor

go 1.26.0

require (
	github.com/ringwise/ringwise/bpf v0.0.0
	github.com/ringwise/ringwise/services v0.0.0
)

replace github.com/ringwise/ringwise/services => ../services

replace github.com/ringwise/ringwise/bpf => ../bpf
