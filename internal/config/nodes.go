package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ParseNodes reads a .nodes file: "host:port" bind addresses of other
// agents (IPv4 "198.51.100.7:7800" or IPv6 "[2001:db8::7]:7800") separated
// by spaces, tabs or newlines; '#' starts a comment that runs to the end of
// the line. Duplicates are dropped, keeping the first. Every bad entry is
// reported (errors.Join of *Problem, naming file and line); the good
// entries are returned either way. file is used in messages only.
func ParseNodes(data []byte, file string) ([]netip.AddrPort, error) {
	var addrs []netip.AddrPort
	var errs []error
	seen := make(map[netip.AddrPort]bool)
	for n, line := range bytes.Split(data, []byte("\n")) {
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, tok := range strings.Fields(string(line)) {
			ap, msg := parsePeerAddr(tok)
			if msg != "" {
				errs = append(errs, &Problem{File: file, Line: n + 1, Key: tok, Message: msg + nodesFix})
				continue
			}
			if !seen[ap] {
				seen[ap] = true
				addrs = append(addrs, ap)
			}
		}
	}
	return addrs, errors.Join(errs...)
}

const nodesFix = " (the .nodes file lists other agents' bind.address values, IP:port, separated by spaces or newlines)"

// ReadNodes reads and parses a .nodes file. A missing file is an empty list:
// the first agent of a new cluster has nobody to join through.
func ReadNodes(path string) ([]netip.AddrPort, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Problem{File: path, Message: fmt.Sprintf("cannot read the nodes file: %v; check its permissions", err)}
	}
	return ParseNodes(data, path)
}

const nodesHeader = `# Addresses (bind.address, IP:port) of this cluster's members, used to join
# the cluster at start (this node's own address is skipped). pgfm rewrites
# this file as members join and leave, unless stable.nodes.file=true.
`

// WriteNodes replaces the .nodes file atomically: a temporary file in the
// same directory is written, synced and renamed over the old one, then the
// directory is synced so the rename survives a crash. Readers see the old
// or the new list, never half of one. Addresses are written sorted, one per
// line, without duplicates. The old file's permission bits are kept (0644
// for a new file).
func WriteNodes(path string, addrs []netip.AddrPort) error {
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write nodes file: %w", err)
	}
	if err := writeNodesTo(tmp, addrs, mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write nodes file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write nodes file: %w", err)
	}
	return syncDir(dir)
}

// writeNodesTo fills, chmods, syncs and closes f.
func writeNodesTo(f *os.File, addrs []netip.AddrPort, mode fs.FileMode) error {
	sorted := slices.Clone(addrs)
	slices.SortFunc(sorted, func(a, b netip.AddrPort) int { return a.Compare(b) })
	sorted = slices.Compact(sorted)
	w := bufio.NewWriter(f)
	w.WriteString(nodesHeader)
	for _, a := range sorted {
		w.WriteString(a.String() + "\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Chmod, not the umask-filtered create mode, so the mode is kept exactly.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync nodes file directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync nodes file directory: %w", err)
	}
	return nil
}
