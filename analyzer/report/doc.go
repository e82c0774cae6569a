// Package report is the analyzer's pure logic: it counts events with missing
// metadata per node, ties them to the sensor's ring drops, reads Falco's JSON
// output for the same analysis, renders enriched events as Falco-style JSON,
// and checks enrichment against a flood's ground truth.
//
// Nothing here does I/O beyond the io.Reader/io.Writer it is given, and
// nothing is safe for concurrent use: callers lock.
package report
