// Package attacks holds the attacks of issue 9 ("trust nothing on the
// wire") as tests: a real NATS server run from the config `ringwise nats
// --init-auth` writes, and the enricher and analyzer run apart, each with
// its own identity and connection, while test sensors publish with theirs.
package attacks
