// Package netns builds throw-away multi-host networks for tests: each host in
// its own Linux network namespace on a shared bridge, with faults (isolation,
// cuts, one-way cuts, packet loss) made by nftables rules in the host's
// namespace, all removed when the test ends.
package netns
