// Package cluster is pgfm's vocabulary: node types, WAL positions and the
// status records agents publish. It has no behaviour beyond parsing and
// formatting, so every other package can depend on it.
package cluster
