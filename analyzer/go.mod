module github.com/ringwise/ringwise/analyzer

go 1.26.0

require github.com/ringwise/ringwise/services v0.0.0

replace github.com/ringwise/ringwise/services => ../services
