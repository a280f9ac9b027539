// Package version holds the pgfm version, set at build time with
// -ldflags "-X github.com/pgfm/pgfm/internal/version.Version=...".
package version

// Version of this build.
var Version = "0.1.0-dev"
