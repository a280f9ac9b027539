// Package cli is the pgfm command line: one file per subcommand, each
// parsing its arguments, calling the local agent's API and printing.
package cli
