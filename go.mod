module github.com/ringwise/ringwise

go 1.26.0

require (
	github.com/ringwise/ringwise/analyzer v0.0.0
	github.com/ringwise/ringwise/bpf v0.0.0
	github.com/ringwise/ringwise/enricher v0.0.0
	github.com/ringwise/ringwise/sensor v0.0.0
	github.com/ringwise/ringwise/services v0.0.0
)

replace github.com/ringwise/ringwise/services => ./services

replace github.com/ringwise/ringwise/bpf => ./bpf

replace github.com/ringwise/ringwise/sensor => ./sensor

replace github.com/ringwise/ringwise/enricher => ./enricher

replace github.com/ringwise/ringwise/analyzer => ./analyzer
